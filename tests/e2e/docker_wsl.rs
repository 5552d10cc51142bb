//! Docker 26.1 (trixie) and 28.5 (sid) give a WSL2 container what the spec `amdgpu-cdi generate`
//! writes for the `wsl2` example host over a fake WSL tree (see `podman_wsl`): with CDI enabled by
//! `amdgpu-cdi configure docker`, `docker run --device amd.com/gpu=all` (and `=0`) reads
//! `/dev/dxg`, sees the DXCore library read-only and `HSA_ENABLE_DXG_DETECTION=1`, and has no
//! `/dev/dri`.

use crate::gpu_root::GpuRoot;
use crate::podman_wsl::{WSL_EXPECTED, WSL_PROBE, fake_wsl_tree, wsl_generate_args};
use crate::roots::{EngineRoot, output};

/// The image name the busybox rootfs is imported as.
const IMAGE: &str = "amdgpu-cdi-busybox";

fn docker_gives_a_wsl_container_dxg(test: &str, suite: &str, docker: &str) {
    let Some(root) = EngineRoot::open(test, suite) else {
        return;
    };
    assert_eq!(root.version("docker"), docker, "the {suite} root's Docker");
    let mut gpu = GpuRoot::enter(&root);
    // The fake WSL tree lies in the scratch dir, at the same path inside the root; generate runs
    // in the root, writing the daemon's spec dir.
    let wsl = gpu.dir().join("wsl");
    fake_wsl_tree(&wsl);
    let args = wsl_generate_args(&wsl, std::path::Path::new("/var/run/cdi/amd.com-gpu.yaml"));
    let mut generate = vec!["generate"];
    generate.extend(args.iter().map(String::as_str));
    gpu.amdgpu_cdi(&generate);
    gpu.amdgpu_cdi(&["configure", "docker"]);
    gpu.session.start_containerd(&[]);
    gpu.session.start_dockerd(&[], &[]);
    gpu.session.docker_import(&gpu.rootfs, IMAGE);
    for device in ["amd.com/gpu=all", "amd.com/gpu=0"] {
        let (ok, stdout, stderr) = output(gpu.session.command("docker").args([
            "run",
            "--rm",
            "--network",
            "none",
            "--device",
            device,
            IMAGE,
            "sh",
            "-c",
            WSL_PROBE,
        ]));
        assert!(
            ok,
            "docker run --device {device} failed:\n{stdout}{stderr}\ndockerd log:\n{}",
            gpu.session.log("dockerd")
        );
        let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
        assert_eq!(lines, WSL_EXPECTED, "{device}; stderr: {stderr}");
    }
}

#[test]
fn docker_26_1_gives_a_wsl_container_dxg_dxcore_and_the_variable() {
    docker_gives_a_wsl_container_dxg(
        "docker_26_1_gives_a_wsl_container_dxg_dxcore_and_the_variable",
        "trixie",
        "26.1.5",
    );
}

#[test]
fn docker_28_5_gives_a_wsl_container_dxg_dxcore_and_the_variable() {
    docker_gives_a_wsl_container_dxg(
        "docker_28_5_gives_a_wsl_container_dxg_dxcore_and_the_variable",
        "sid",
        "28.5.2",
    );
}
