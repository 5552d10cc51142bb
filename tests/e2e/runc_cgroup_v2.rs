//! The prestart hook's cgroup v2 path with runc in pure cgroup v2 mode.
//!
//! On this hybrid host runc uses the v1 `devices` controller (`runc_prestart.rs`). In a private
//! mount namespace where `/sys/fs/cgroup` is the cgroup2 hierarchy alone (`umount -R
//! /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup`), runc runs in unified mode and confines
//! devices with an eBPF program attached to the container's cgroup2 directory; the hook, started
//! by runc, sees the same mount table and must replace that program. The container's v1 devices
//! cgroup stays the host's root one there (nothing mounts v1), so every denial seen inside comes
//! from an eBPF program.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::runc_prestart::{FakeHost, assert_gpu_1_injected, gpu_1_bundle, wait_output};
use crate::support;

/// What the shell in the private mount namespace runs before exec'ing runc with its arguments.
const PURE_V2: &str = "umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && \
    exec \"$@\"";

/// runc with `--root root`, run in a private mount namespace with only cgroup2 mounted.
struct PureV2Runc {
    root: PathBuf,
}

impl PureV2Runc {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(support::find_tool("unshare").expect("unshare"));
        command
            .args([
                "-m",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                PURE_V2,
                "sh",
            ])
            .arg(support::find_tool("runc").expect("runc"))
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// `runc run --bundle bundle id`: (success, stdout, stderr).
    fn run(&self, bundle: &Path, id: &str) -> (bool, String, String) {
        let bundle = bundle.to_str().expect("UTF-8 bundle path");
        let child = self
            .command(&["run", "--bundle", bundle, id])
            .spawn()
            .expect("spawn unshare + runc");
        let cleanup = DeleteOnDrop { runc: self, id };
        let result = wait_output(child, Duration::from_secs(60));
        drop(cleanup);
        result
    }
}

/// Deletes a container left behind by a failed run, in the same kind of namespace (its cgroup is
/// a cgroup2 directory).
struct DeleteOnDrop<'a> {
    runc: &'a PureV2Runc,
    id: &'a str,
}

impl Drop for DeleteOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self
            .runc
            .command(&["delete", "--force", self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Checks that this host can give runc a pure cgroup v2 view (the design of these tests relies on
/// it): a shell in the namespace sees cgroup2 at `/sys/fs/cgroup` and nothing of v1.
fn assert_pure_v2_namespace_works() {
    let unshare = support::find_tool("unshare").expect("unshare");
    let (ok, stdout, stderr) = support::output(Command::new(unshare).args([
        "-m",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        &PURE_V2.replace("exec \"$@\"", "grep ' /sys/fs/cgroup' /proc/self/mountinfo"),
    ]));
    assert!(
        ok,
        "cannot mount cgroup2 alone in a private mount namespace: {stderr}"
    );
    let types: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split(" - ").nth(1)?.split(' ').next())
        .collect();
    assert_eq!(
        types,
        ["cgroup2"],
        "cgroup mounts in the namespace:\n{stdout}"
    );
}

/// The GPU 1 bundle of [`gpu_1_bundle`] (the hook registered for `prestart`) in a temp dir, its
/// `config.json` parsed for editing, to run with a [`PureV2Runc`].
struct PureV2Bundle {
    _tmp: tempfile::TempDir,
    host: FakeHost,
    bundle: PathBuf,
    config: serde_json::Value,
    runc: PureV2Runc,
}

impl PureV2Bundle {
    /// The bundle, when root, runc and unshare are there; asserts the host gives runc a pure
    /// cgroup v2 view.
    fn new(test: &str) -> Option<Self> {
        let tmp = support::scratch_dir(test, &["runc", "unshare"])?;
        assert_pure_v2_namespace_works();
        let (host, bundle) = gpu_1_bundle(tmp.path(), "prestart");
        let config =
            serde_json::from_str(&fs::read_to_string(bundle.join("config.json")).expect("config"))
                .expect("JSON config");
        let runc = PureV2Runc {
            root: tmp.path().join("runc-root"),
        };
        Some(Self {
            _tmp: tmp,
            host,
            bundle,
            config,
            runc,
        })
    }

    /// Writes the config as it stands and runs the bundle as container `id`: (success, stdout,
    /// stderr).
    fn run(&self, id: &str) -> (bool, String, String) {
        fs::write(self.bundle.join("config.json"), self.config.to_string())
            .expect("write config.json");
        self.runc.run(&self.bundle, id)
    }
}

#[test]
fn runc_v2_prestart_hook_replaces_the_ebpf_program_allowing_only_the_requested_gpu() {
    let Some(mut v2) = PureV2Bundle::new("runc_v2_prestart_hook") else {
        return;
    };
    // Also show where the container is: a cgroup2 directory of its own.
    let script = &mut v2.config["process"]["args"][2];
    *script = json!(format!(
        "{}; grep -q '^0::/.' /proc/self/cgroup && echo IN_OWN_V2_CGROUP",
        script.as_str().expect("script")
    ));
    let id = format!("amdgpu-cdi-v2-{}", std::process::id());
    let (ok, stdout, stderr) = v2.run(&id);
    let log = v2.host.hook_log();
    assert!(ok, "runc run failed: {stderr}\nhook log:\n{log}");
    assert_gpu_1_injected(&stdout, &stderr, &log);
    assert!(
        stdout.contains("IN_OWN_V2_CGROUP"),
        "container output:\n{stdout}"
    );
    assert!(
        log.contains(&format!(
            "replaced the device program of /sys/fs/cgroup/{id}"
        )),
        "hook log:\n{log}"
    );
    assert!(!log.contains("allowed in "), "no v1 write: {log}");
}

/// Issue 12 item 6 on a real runc in cgroup v2 mode: with `"devices": [allow all]` and
/// `"DEVICES": [deny all]`, runc's Go decoder keeps the deny-all (shown by running the same
/// bundle without the hook: the hand-made node stays denied), while a hook reading exact keys
/// rebuilt an allow-all eBPF program. The hook now refuses the config, so the container never
/// runs with more than runc gave it.
#[test]
fn runc_v2_case_variant_device_rules_do_not_become_an_allow_all_program() {
    let Some(mut v2) = PureV2Bundle::new("runc_v2_case_variant") else {
        return;
    };
    v2.config["linux"]["resources"] = json!({
        "devices": [{"allow": true, "access": "rwm"}],
        "DEVICES": [{"allow": false, "access": "rwm"}]
    });
    let hooks = v2
        .config
        .as_object_mut()
        .expect("object")
        .remove("hooks")
        .expect("hooks");

    // Without the hook: what runc itself makes of the config.
    let id = format!("amdgpu-cdi-v2-case-{}", std::process::id());
    let (ok, stdout, stderr) = v2.run(&id);
    assert!(ok, "runc run without the hook failed: {stderr}");
    assert!(
        stdout.contains("HANDMADE_PRESENT") && stdout.contains("HANDMADE_DENIED"),
        "runc must enforce the deny-all of DEVICES:\n{stdout}\nstderr: {stderr}"
    );

    // With the hook: refused with one line, nothing ran.
    v2.config["hooks"] = hooks;
    let (ok, stdout, stderr) = v2.run(&id);
    let log = v2.host.hook_log();
    assert!(!ok, "runc must fail: {stdout}\nhook log:\n{log}");
    assert!(
        stderr.contains(
            "key \\\"DEVICES\\\" in linux.resources is the OCI field \\\"devices\\\" spelled in another case"
        ) || stderr.contains(
            "key \"DEVICES\" in linux.resources is the OCI field \"devices\" spelled in another case"
        ),
        "runc's error must carry the hook's refusal: {stderr}"
    );
    for marker in ["KFD_OPENS", "GPU1_OPENS", "HANDMADE_PRESENT"] {
        assert!(!stdout.contains(marker), "the container ran: {stdout}");
    }
    assert!(
        !log.contains("replaced the device program"),
        "hook log:\n{log}"
    );
}
