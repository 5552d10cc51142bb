//! `amdgpu-cdi hook prestart` (and `createRuntime`) with youki on a raw bundle: the runc scenario
//! of `runc_prestart.rs` (its bundle and checks are reused) on a second OCI runtime.
//!
//! youki comes from `target/tools/bin` (`scripts/install-youki`, built with the v1 and v2 cgroup
//! managers only). It runs hooks with an empty environment (no `PATH`) and their stdout discarded,
//! so the hook must work from its arguments and log file alone. On a hybrid cgroup host youki
//! uses the v1 hierarchies, so the hand-made node staying denied proves the hook's
//! `devices.allow` rule is what lets GPU 1 open.
//!
//! `youki run` can hang when the container exits, so the test drives `create`, `start`, polls
//! `state` until the container has stopped and deletes it, every step bounded by a timeout.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::runc_prestart::{assert_gpu_1_injected, gpu_1_bundle_as, injects_gpu_1, wait_output};
use crate::support::{self, NodeAccess};

/// youki with its state under `root`, its container deleted on drop (a failed test may leave it).
struct Youki {
    binary: PathBuf,
    root: PathBuf,
    id: String,
}

impl Youki {
    fn new(dir: &Path, id: String) -> Self {
        Self {
            binary: support::find_tool("youki").expect("youki"),
            root: dir.join("youki-root"),
            id,
        }
    }

    /// `youki --root <root> <verb> [args] <id>`.
    fn command(&self, verb: &str, args: &[&std::ffi::OsStr]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg(verb)
            .args(args)
            .arg(&self.id)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `youki <verb>` within `timeout`; panics with its output and `context()` when it fails.
    fn run(
        &self,
        verb: &str,
        args: &[&std::ffi::OsStr],
        timeout: Duration,
        context: impl Fn() -> String,
    ) {
        let child = self
            .command(verb, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn youki");
        let (ok, stdout, stderr) = wait_output(child, timeout);
        assert!(ok, "youki {verb} failed: {stdout}{stderr}\n{}", context());
    }

    /// The container's status from `youki state` (`created`, `running`, `stopped`...).
    fn status(&self) -> String {
        let child = self
            .command("state", &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn youki state");
        let (_ok, stdout, _stderr) = wait_output(child, Duration::from_secs(10));
        serde_json::from_str::<serde_json::Value>(&stdout)
            .ok()
            .and_then(|state| state["status"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

impl Drop for Youki {
    fn drop(&mut self) {
        if let Ok(child) = self
            .command("delete", &["--force".as_ref()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            let _ = wait_output(child, Duration::from_secs(30));
        }
    }
}

#[test]
fn youki_prestart_hook_adds_the_requested_gpu_and_the_cgroup_enforces_the_rest() {
    injects_gpu_1(
        "youki_prestart_hook",
        "youki",
        "prestart",
        youki_injects_gpu_1_as,
    );
}

#[test]
fn youki_create_runtime_hook_adds_the_requested_gpu() {
    injects_gpu_1(
        "youki_create_runtime_hook",
        "youki",
        "createRuntime",
        youki_injects_gpu_1_as,
    );
}

/// [`crate::runc_prestart::InjectsGpu1`] with youki: creates, starts and waits for the busybox container of
/// [`gpu_1_bundle_as`].
pub(crate) fn youki_injects_gpu_1_as(stage: &str, access: NodeAccess, user: (u32, u32)) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (host, bundle) = gpu_1_bundle_as(tmp.path(), stage, access, user);
    let youki = Youki::new(
        tmp.path(),
        format!(
            "amdgpu-cdi-youki-{}-{}",
            stage.to_lowercase(),
            std::process::id()
        ),
    );
    // The container inherits `youki create`'s stdout and stderr: files, so that nothing waits
    // for a pipe the created container still holds open.
    let out_path = tmp.path().join("container.out");
    let err_path = tmp.path().join("container.err");
    let out = File::create(&out_path).expect("create container.out");
    let err = File::create(&err_path).expect("create container.err");
    let report = || {
        format!(
            "container stdout:\n{}\nyouki's and the hook's stderr:\n{}\nhook log:\n{}",
            fs::read_to_string(&out_path).unwrap_or_default(),
            fs::read_to_string(&err_path).unwrap_or_default(),
            host.hook_log()
        )
    };

    let child = youki
        .command("create", &["--bundle".as_ref(), bundle.as_os_str()])
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn youki create");
    let (created, _, _) = wait_output(child, Duration::from_secs(60));
    assert!(created, "youki create failed\n{}", report());

    youki.run("start", &[], Duration::from_secs(30), report);
    let stopped = support::wait_until(Duration::from_secs(30), || youki.status() == "stopped");
    assert!(
        stopped,
        "the container did not stop within 30 s\n{}",
        report()
    );

    let stdout = fs::read_to_string(&out_path).expect("read container.out");
    assert_gpu_1_injected(
        &stdout,
        &fs::read_to_string(&err_path).expect("read container.err"),
        &host.hook_log(),
    );
    stdout
}
