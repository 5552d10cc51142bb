//! containerd 1.6 (no CDI) with `ctr run --runc-binary amdgpu-container-runtime`: the shim calls
//! the wrapper as runc, and the container gets the GPU named in `AMD_VISIBLE_DEVICES`. The test
//! starts its own containerd (own root, state and socket) with `AMDGPU_CDI_CONFIG` set; the shim
//! inherits it.

use std::fs;

use crate::support::{
    Containerd, GPU_PROBE, bin, busybox_rootfs, fake_gpu_nodes, output, scratch_dir,
    wrapper_settings_discover,
};

#[test]
fn containerd_ctr_with_the_wrapper_gets_the_gpu() {
    let Some(dir) = scratch_dir(
        "containerd_ctr_with_the_wrapper_gets_the_gpu",
        &["containerd", "ctr", "containerd-shim-runc-v2", "runc"],
    ) else {
        return;
    };
    let d = dir.path();
    let dev_root = fake_gpu_nodes(&d.join("devroot"), 3);
    let config = wrapper_settings_discover(d, &dev_root);
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
    let daemon = Containerd::start(d, &d.join("containerd.toml"), &socket, &config);
    let run = |id: &str, value: &str, script: &str| {
        let mut cmd = daemon.ctr();
        cmd.args(["run", "--rm", "--runc-binary"])
            .arg(bin("amdgpu-container-runtime"))
            .args(["--env", "PATH=/bin", "--env"])
            .arg(format!("AMD_VISIBLE_DEVICES={value}"))
            .arg("--rootfs")
            .arg(&rootfs)
            .args([id, "/bin/sh", "-c", script]);
        output(&mut cmd)
    };
    let (ok, stdout, stderr) = run("gpu1", "1", GPU_PROBE);
    assert!(ok, "ctr run failed: {stderr}\n{}", daemon.log());
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
