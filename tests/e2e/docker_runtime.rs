//! Docker Engine 20.10 (no CDI) with `amdgpu-container-runtime` registered as runtime `amd`:
//! `docker run --runtime amd -e AMD_VISIBLE_DEVICES=0,2` gets fake GPUs 0 and 2 only. The test
//! starts its own dockerd (own data root, exec root, socket) with `AMDGPU_CDI_CONFIG` in its
//! environment, which dockerd passes on to the runtime through containerd.

use std::ffi::OsStr;

use crate::support::{
    Dockerd, GPU_PROBE, NodeAccess, VisibleDevices, bin, busybox_rootfs, fake_gpu_nodes_with,
    output, scratch_dir, wrapper_settings_discover,
};

/// A running dockerd with the wrapper as runtime `amd`; fields drop in order, so the daemon stops
/// before its directory goes.
pub(crate) struct Docker {
    pub(crate) daemon: Dockerd,
    _dir: tempfile::TempDir,
}

impl Docker {
    /// Starts dockerd over three fake GPUs, when root, dockerd, docker and runc are there.
    fn start(test: &str) -> Option<Self> {
        Self::start_with(test, NodeAccess::WORLD)
    }

    /// [`Docker::start`] with the fake nodes' owner and mode set to `access`.
    pub(crate) fn start_with(test: &str, access: NodeAccess) -> Option<Self> {
        let dir = scratch_dir(test, &["dockerd", "docker", "runc"])?;
        let d = dir.path();
        let dev_root = fake_gpu_nodes_with(&d.join("devroot"), 3, access);
        let settings = wrapper_settings_discover(d, &dev_root);
        let runtime = format!("amd={}", bin("amdgpu-container-runtime").display());
        let extra = [
            OsStr::new("--storage-driver=vfs"),
            OsStr::new("--add-runtime"),
            OsStr::new(&runtime),
        ];
        let daemon = Dockerd::start(d, &settings, &extra);
        daemon.import(&busybox_rootfs(d), "amdgpu-cdi-test");
        Some(Self { daemon, _dir: dir })
    }
}

impl VisibleDevices for Docker {
    /// `docker run --runtime amd`.
    fn run(&self, args: &[&str], value: &str, script: &str) -> (bool, String, String) {
        let mut cmd = self.daemon.cli();
        cmd.args(["run", "--rm", "--network", "none", "--runtime", "amd"])
            .args(args)
            .arg("-e")
            .arg(format!("AMD_VISIBLE_DEVICES={value}"))
            .args(["amdgpu-cdi-test", "sh", "-c", script]);
        output(&mut cmd)
    }
}

#[test]
fn docker_runtime_wrapper_gives_gpus_0_and_2_only() {
    let Some(docker) = Docker::start("docker_runtime_wrapper_gives_gpus_0_and_2_only") else {
        return;
    };
    let (ok, stdout, stderr) = docker.run(&[], "0,2", GPU_PROBE);
    assert!(ok, "docker run failed: {stderr}\n{}", docker.daemon.log());
    assert_eq!(
        stdout,
        "renderD128 renderD130 kfd-readable\n/dev/dri/renderD128-readable\n/dev/dri/renderD130-readable\n"
    );
    // Nothing requested: no GPU nodes, the container runs.
    let (ok, stdout, stderr) = docker.run(
        &[],
        "void",
        "ls /dev/dri 2>&1; test -e /dev/kfd || echo no-kfd",
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("no-kfd"), "{stdout}");
    // An unknown GPU fails `docker run` with the wrapper's message.
    let (ok, stdout, stderr) = docker.run(&[], "0,7", "echo started");
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(
            "OCI runtime create failed: amdgpu-container-runtime: AMD_VISIBLE_DEVICES: no GPU \
             matches \"7\" (valid: all, none, void, indices 0-2,"
        ),
        "{stderr}"
    );
}
