//! podman 4.3 with the precreate hook from a hooks.d directory (the shipped file, pointed at the
//! test binary and the three-GPU sysfs fixture): `AMD_VISIBLE_DEVICES` selects fake render nodes.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{
    GPU_PROBE, NodeAccess, VisibleDevices, bin, busybox_rootfs, fake_gpu_nodes_with, output,
    podman, scratch_dir,
};

fn sysfs_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/three-gpus/sys")
}

/// A temp dir with a rootfs, three fake GPUs and a hooks.d dir holding the shipped precreate hook
/// rewritten for the test binary and fixture.
pub(crate) struct HookSetup {
    dir: tempfile::TempDir,
}

impl HookSetup {
    /// A setup over three fake GPUs, when root, podman and runc are there.
    fn new(test: &str) -> Option<Self> {
        Self::with_access(test, NodeAccess::WORLD)
    }

    /// [`HookSetup::new`] with the fake nodes' owner and mode set to `access`.
    pub(crate) fn with_access(test: &str, access: NodeAccess) -> Option<Self> {
        let dir = scratch_dir(test, &["podman", "runc"])?;
        let dev_root = fake_gpu_nodes_with(&dir.path().join("devroot"), 3, access);
        Some(Self::with_host(dir, &sysfs_fixture(), &dev_root, ""))
    }

    /// A setup in `dir` whose hook discovers the host at `sysfs` over `dev_root`, with the
    /// settings file `config` (TOML).
    pub(crate) fn with_host(
        dir: tempfile::TempDir,
        sysfs: &Path,
        dev_root: &Path,
        config: &str,
    ) -> Self {
        busybox_rootfs(dir.path());
        fs::write(dir.path().join("config.toml"), config).expect("config");
        let shipped = fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("packaging/hooks.d/amdgpu-cdi-precreate.json"),
        )
        .expect("shipped hooks.d file");
        let mut hook: serde_json::Value = serde_json::from_str(&shipped).expect("JSON");
        hook["hook"]["path"] = bin("amdgpu-cdi").display().to_string().into();
        let args = hook["hook"]["args"].as_array_mut().expect("args");
        for arg in [
            "--config".to_string(),
            dir.path().join("config.toml").display().to_string(),
            "--sysfs-root".to_string(),
            sysfs.display().to_string(),
            "--dev-root".to_string(),
            dev_root.display().to_string(),
        ] {
            args.push(arg.into());
        }
        let hooks = dir.path().join("hooks.d");
        fs::create_dir(&hooks).expect("hooks dir");
        fs::write(hooks.join("amdgpu-cdi-precreate.json"), hook.to_string()).expect("hook");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for HookSetup {
    /// podman leaves its storage's private bind mount behind.
    fn drop(&mut self) {
        crate::support::unmount_under(self.dir.path());
    }
}

impl VisibleDevices for HookSetup {
    fn run(&self, args: &[&str], value: &str, script: &str) -> (bool, String, String) {
        let mut cmd = podman(&self.path("podman"));
        cmd.args(args)
            .arg("--hooks-dir")
            .arg(self.path("hooks.d"))
            .arg("-e")
            .arg(format!("AMD_VISIBLE_DEVICES={value}"))
            .arg("--rootfs")
            .arg(self.path("rootfs"))
            .args(["sh", "-c", script]);
        output(&mut cmd)
    }
}

/// The output of [`GPU_PROBE`] in a container given `AMD_VISIBLE_DEVICES=value`, when the test
/// can run; asserts the container ran.
fn probe(test: &str, value: &str) -> Option<(String, String)> {
    let setup = HookSetup::new(test)?;
    let (ok, stdout, stderr) = setup.run(&[], value, GPU_PROBE);
    assert!(ok, "podman run failed: {stderr}");
    Some((stdout, stderr))
}

#[test]
fn podman_precreate_hook_gives_exactly_gpu_1() {
    let Some((stdout, stderr)) = probe("podman_precreate_hook_gives_exactly_gpu_1", "1") else {
        return;
    };
    assert_eq!(
        stdout, "renderD129 kfd-readable\n/dev/dri/renderD129-readable\n",
        "stderr: {stderr}"
    );
}

#[test]
fn podman_precreate_hook_gives_all() {
    let Some((stdout, stderr)) = probe("podman_precreate_hook_gives_all", "all") else {
        return;
    };
    assert!(
        stdout.starts_with("renderD128 renderD129 renderD130 kfd-readable\n"),
        "{stdout} {stderr}"
    );
}

#[test]
fn podman_precreate_hook_refuses_an_invalid_value() {
    let Some(setup) = HookSetup::new("podman_precreate_hook_refuses_an_invalid_value") else {
        return;
    };
    let (ok, stdout, stderr) = setup.run(&[], "1,bogus", "echo started");
    assert!(!ok, "the container must not start: {stdout}");
    assert!(!stdout.contains("started"));
    assert!(
        stderr.contains("AMD_VISIBLE_DEVICES=1,bogus: invalid entry \"bogus\""),
        "{stderr}"
    );
    let (ok, stdout, stderr) = setup.run(&[], "3", "echo started");
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("no GPU matches \"3\""), "{stderr}");
}
