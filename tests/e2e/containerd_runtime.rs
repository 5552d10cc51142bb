//! containerd 1.6 (no CDI) with `ctr run --runc-binary amdgpu-container-runtime`: the shim calls
//! the wrapper as runc, and the container gets the GPU named in `AMD_VISIBLE_DEVICES`. The test
//! starts its own containerd (own root, state and socket) with `AMDGPU_CDI_CONFIG` set; the shim
//! inherits it.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::docker_runtime::{Daemon, LIST, wait_until, wrapper_config};
use crate::support::{bin, busybox_rootfs, fake_gpu_nodes, find_tool, output, prerequisites};

#[test]
fn containerd_ctr_with_the_wrapper_gets_the_gpu() {
    if !prerequisites(
        "containerd_ctr_with_the_wrapper_gets_the_gpu",
        &["containerd", "ctr", "containerd-shim-runc-v2", "runc"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let dev_root = fake_gpu_nodes(&d.join("devroot"), 3);
    let config = wrapper_config(d, &dev_root);
    let rootfs = busybox_rootfs(d);
    let socket = d.join("containerd.sock");
    let containerd_config = format!(
        "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n\
         [grpc]\n  address = \"{sock}\"\n\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
        root = d.join("root").display(),
        state = d.join("state").display(),
        sock = socket.display()
    );
    fs::write(d.join("containerd.toml"), containerd_config).expect("containerd config");
    let log = fs::File::create(d.join("containerd.log")).expect("log");
    let child = Command::new(find_tool("containerd").expect("containerd"))
        .env("AMDGPU_CDI_CONFIG", &config)
        .arg("--config")
        .arg(d.join("containerd.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("start containerd");
    let _daemon = Daemon::new(child, d);
    let ctr = || {
        let mut cmd = Command::new(find_tool("ctr").expect("ctr"));
        cmd.arg("--address").arg(&socket);
        cmd
    };
    let daemon_log = || fs::read_to_string(d.join("containerd.log")).unwrap_or_default();
    let up = wait_until(Duration::from_secs(30), || {
        ctr()
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(up, "containerd did not come up: {}", daemon_log());
    let run = |id: &str, value: &str, script: &str| {
        let mut cmd = ctr();
        cmd.args(["run", "--rm", "--runc-binary"])
            .arg(bin("amdgpu-container-runtime"))
            .args(["--env", "PATH=/bin", "--env"])
            .arg(format!("AMD_VISIBLE_DEVICES={value}"))
            .arg("--rootfs")
            .arg(&rootfs)
            .args([id, "/bin/sh", "-c", script]);
        output(&mut cmd)
    };
    let (ok, stdout, stderr) = run("gpu1", "1", LIST);
    assert!(ok, "ctr run failed: {stderr}\n{}", daemon_log());
    assert_eq!(
        stdout,
        "renderD129 kfd-readable\n/dev/dri/renderD129-readable\n"
    );
    let (ok, stdout, stderr) = run("bad", "GPU-1234567890", "echo started");
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(
            "amdgpu-container-runtime: AMD_VISIBLE_DEVICES: no GPU matches \"GPU-1234567890\""
        ),
        "{stderr}"
    );
}
