//! `docker run --gpus` on Docker 28.5 (sid) with this project installed: a CDI spec written by
//! `amdgpu-cdi generate` and the `amd` runtime entry written by `amdgpu-cdi configure docker`.
//!
//! Docker 28.3+ has an AMD `--gpus` driver, but dockerd registers it only when an executable
//! named `amd-container-runtime` is on its `PATH` (and NVIDIA's `nvidia-container-runtime-hook`
//! is not); the driver then only adds `AMD_VISIBLE_DEVICES` (`all`, the ids, `0..N-1` for a
//! count, `void` for 0) to the container's environment and leaves the runtime alone. A CDI spec
//! alone does nothing for `--gpus` before Docker 29.3. So, as observed here:
//! - without that executable, `--gpus` fails: `could not select device driver "" with
//!   capabilities: [[gpu]]`, with or without `--runtime amd`;
//! - with it (a link to `amdgpu-container-runtime`), `--runtime amd --gpus all|N|device=I` gives
//!   exactly those GPUs, through the wrapper honouring `AMD_VISIBLE_DEVICES`;
//! - with it but without `--runtime amd`, runc ignores the variable: no GPU.
//!
//! docs/engines.md records this per Docker version.

use crate::docker_cdi::{IMAGE, docker_run, start_docker};
use crate::gpu_root::{self, GpuRoot, PROBE, probe_sees};
use crate::roots::EngineRoot;
use crate::support::{self, NodeAccess};

/// `docker run [args] IMAGE sh -c PROBE`.
fn run(gpu: &GpuRoot, args: &[&str]) -> (bool, String, String) {
    docker_run(gpu, args, PROBE)
}

fn assert_sees(gpu: &GpuRoot, args: &[&str], renders: &[&str]) {
    let (ok, stdout, stderr) = run(gpu, args);
    let log = gpu.wrapper_log();
    assert!(
        ok,
        "docker run {args:?} failed:\n{stdout}{stderr}\nwrapper log:\n{log}"
    );
    assert_eq!(
        stdout,
        probe_sees(renders),
        "docker run {args:?}\nwrapper log:\n{log}"
    );
}

/// Links `/usr/local/bin/amd-container-runtime` (on dockerd's `PATH`) to the wrapper.
fn link_amd_container_runtime(gpu: &GpuRoot) {
    let wrapper = support::bin("amdgpu-container-runtime")
        .display()
        .to_string();
    gpu.session.run(
        "ln",
        &["-s", &wrapper, "/usr/local/bin/amd-container-runtime"],
    );
}

/// How dockerd refuses `--gpus` without an AMD driver.
const NO_GPU_DRIVER: &str = "could not select device driver \"\" with capabilities: [[gpu]]";

#[test]
fn docker_28_5_gpus_flag_works_through_the_wrapper_once_amd_container_runtime_is_on_path() {
    let test =
        "docker_28_5_gpus_flag_works_through_the_wrapper_once_amd_container_runtime_is_on_path";
    // The wrapper finds its settings in containerd's environment (dockerd -> containerd -> shim
    // -> wrapper).
    let Some(mut gpu) = start_docker(test, "sid", "28.5.2", NodeAccess::WORLD) else {
        return;
    };

    // A CDI spec and the `amd` runtime are not enough.
    for args in [
        &["--gpus", "all"][..],
        &["--runtime", "amd", "--gpus", "all"],
    ] {
        let (ok, stdout, stderr) = run(&gpu, args);
        assert!(!ok, "docker run {args:?} started: {stdout}");
        assert!(
            stderr.contains(NO_GPU_DRIVER),
            "docker run {args:?}: {stderr}"
        );
    }

    // An `amd-container-runtime` on dockerd's PATH registers Docker's AMD driver.
    link_amd_container_runtime(&gpu);
    gpu.session.stop_daemon("dockerd");
    gpu.session.start_dockerd(&[], &[]);
    let renders = gpu_root::RENDER_OF_INDEX;
    let mut all = renders;
    all.sort_unstable();
    assert_sees(&gpu, &["--runtime", "amd", "--gpus", "all"], &all);
    assert_sees(
        &gpu,
        &["--runtime", "amd", "--gpus", "device=1"],
        &[renders[1]],
    );
    let mut first_two = [renders[0], renders[1]];
    first_two.sort_unstable();
    assert_sees(&gpu, &["--runtime", "amd", "--gpus", "2"], &first_two);
    // runc does not read the variable.
    let (ok, stdout, stderr) = run(&gpu, &["--gpus", "all"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "\n", "runc gives no GPU: {stdout}");
}

/// Docker 26.1 has no AMD `--gpus` driver at all: even with `amd-container-runtime` on dockerd's
/// `PATH`, `--gpus` fails and `--device amd.com/gpu=N` (CDI) is the way.
#[test]
fn docker_26_1_has_no_amd_gpus_driver() {
    let Some(root) = EngineRoot::open("docker_26_1_has_no_amd_gpus_driver", "trixie") else {
        return;
    };
    let mut gpu = GpuRoot::enter(&root);
    gpu.generate("/var/run/cdi/amd.com-gpu.yaml");
    gpu.amdgpu_cdi(&["configure", "docker"]);
    link_amd_container_runtime(&gpu);
    gpu.session.start_containerd(&[]);
    gpu.session.start_dockerd(&[], &[]);
    gpu.session.docker_import(&gpu.rootfs, IMAGE);
    let (ok, stdout, stderr) = run(&gpu, &["--runtime", "amd", "--gpus", "all"]);
    assert!(!ok, "--gpus started a container: {stdout}");
    assert!(stderr.contains(NO_GPU_DRIVER), "{stderr}");
}
