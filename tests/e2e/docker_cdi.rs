//! Docker 26.1 (trixie) and 28.5 (sid) inject CDI devices from a spec written by the real
//! `amdgpu-cdi generate`, with the daemon configured by the real `amdgpu-cdi configure docker`
//! (both run inside the engine root, on the daemon's own `/etc/docker/daemon.json`):
//! `docker run --device amd.com/gpu=N` gets `/dev/kfd` plus exactly that GPU's render node, by
//! index, uuid, PCI name or `all`, and an unknown name fails with Docker's message naming it.
//! On 28.5 CDI also works without `features.cdi` (on by default since 28.2), and a spec dir set
//! with `configure docker --cdi-spec-dir` is read.

use crate::gpu_root::{self, GpuRoot, PROBE, probe_sees};
use crate::roots::{EngineRoot, output};
use crate::support::NodeAccess;

/// The image name the busybox rootfs is imported as.
pub(crate) const IMAGE: &str = "amdgpu-cdi-busybox";

/// `docker run --device device` with the probe; (success, stdout, stderr).
fn run_device(gpu: &GpuRoot, device: &str) -> (bool, String, String) {
    docker_run(gpu, &["--device", device], PROBE)
}

/// `docker run --rm --network none [args] IMAGE sh -c script`; (success, stdout, stderr).
pub(crate) fn docker_run(gpu: &GpuRoot, args: &[&str], script: &str) -> (bool, String, String) {
    output(
        gpu.session
            .command("docker")
            .args(["run", "--rm", "--network", "none"])
            .args(args)
            .args([IMAGE, "sh", "-c", script]),
    )
}

/// Asserts `--device device` gives exactly `renders` (plus kfd).
fn assert_sees(gpu: &GpuRoot, device: &str, renders: &[&str]) {
    let (ok, stdout, stderr) = run_device(gpu, device);
    assert!(
        ok,
        "docker run --device {device} failed:\n{stdout}{stderr}\ndockerd log:\n{}",
        gpu.session.log("dockerd")
    );
    assert_eq!(stdout, probe_sees(renders), "--device {device}");
}

/// The daemon.json `configure` wrote, parsed.
fn daemon_json(gpu: &GpuRoot) -> serde_json::Value {
    serde_json::from_str(&gpu.session.read("/etc/docker/daemon.json")).expect("daemon.json is JSON")
}

/// Generates the spec into the default dir, configures Docker, starts containerd and dockerd, and
/// checks every kind of name.
fn docker_injects_cdi_devices(test: &str, suite: &str, docker: &str) -> Option<GpuRoot> {
    let gpu = start_docker(test, suite, docker, NodeAccess::WORLD)?;
    let renders = gpu_root::RENDER_OF_INDEX;
    assert_sees(&gpu, "amd.com/gpu=1", &[renders[1]]);
    assert_sees(&gpu, "amd.com/gpu=0", &[renders[0]]);
    assert_sees(
        &gpu,
        &format!("amd.com/gpu={}", gpu_root::UUID_OF_GPU_1),
        &[renders[1]],
    );
    let (pci, pci_render) = gpu_root::PCI_NAME;
    assert_sees(&gpu, &format!("amd.com/gpu={pci}"), &[pci_render]);
    let mut all = renders;
    all.sort_unstable();
    assert_sees(&gpu, "amd.com/gpu=all", &all);

    let (ok, stdout, stderr) = run_device(&gpu, "amd.com/gpu=7");
    assert!(!ok, "an unknown device started a container: {stdout}");
    assert!(
        stderr.contains("unresolvable CDI devices amd.com/gpu=7"),
        "Docker names the unknown device: {stderr}"
    );
    Some(gpu)
}

/// Enters the `suite` root (whose Docker must be `docker`) over fake nodes with `access`,
/// generates the spec into the default dir, configures Docker with the real `configure docker`,
/// starts containerd (with the runtime wrapper's settings, [`GpuRoot::write_wrapper_settings`],
/// in its environment, which reaches the wrapper through the shim) and dockerd, and imports the
/// busybox image.
pub(crate) fn start_docker(
    test: &str,
    suite: &str,
    docker: &str,
    access: NodeAccess,
) -> Option<GpuRoot> {
    let root = EngineRoot::open(test, suite)?;
    assert_eq!(root.version("docker"), docker, "the {suite} root's Docker");
    let mut gpu = GpuRoot::enter_with(&root, access);
    gpu.generate("/var/run/cdi/amd.com-gpu.yaml");

    let stdout = gpu.amdgpu_cdi(&["configure", "docker"]);
    assert!(stdout.contains("restart docker"), "restart hint: {stdout}");
    let config = daemon_json(&gpu);
    assert_eq!(config["features"]["cdi"], true, "{config}");

    let settings = gpu.write_wrapper_settings(None);
    let env = format!("AMDGPU_CDI_CONFIG={}", settings.display());
    gpu.session.start_containerd(&[&env]);
    gpu.session.start_dockerd(&[], &[]);
    let (ok, version, _) =
        output(
            gpu.session
                .command("docker")
                .args(["version", "--format", "{{.Server.Version}}"]),
        );
    assert!(
        ok && version.trim().starts_with(docker),
        "server version {version}"
    );
    gpu.session.docker_import(&gpu.rootfs, IMAGE);
    Some(gpu)
}

#[test]
fn docker_26_1_injects_cdi_devices_configured_by_configure() {
    let _ = docker_injects_cdi_devices(
        "docker_26_1_injects_cdi_devices_configured_by_configure",
        "trixie",
        "26.1.5",
    );
}

#[test]
fn docker_28_5_injects_cdi_devices_with_and_without_the_feature_flag_and_from_extra_dirs() {
    let test =
        "docker_28_5_injects_cdi_devices_with_and_without_the_feature_flag_and_from_extra_dirs";
    let Some(mut gpu) = docker_injects_cdi_devices(test, "sid", "28.5.2") else {
        return;
    };
    let renders = gpu_root::RENDER_OF_INDEX;

    // CDI is on by default since 28.2: a daemon.json without `features.cdi` still injects.
    let mut config = daemon_json(&gpu);
    config
        .as_object_mut()
        .expect("object")
        .remove("features")
        .expect("configure wrote features");
    gpu.session
        .write("/etc/docker/daemon.json", &config.to_string());
    gpu.session.stop_daemon("dockerd");
    gpu.session.start_dockerd(&[], &[]);
    assert_sees(&gpu, "amd.com/gpu=1", &[renders[1]]);

    // A spec only in a dir set by `configure docker --cdi-spec-dir` is found.
    let extra = "/etc/amdgpu-cdi/specs";
    gpu.session.run("rm", &["/var/run/cdi/amd.com-gpu.yaml"]);
    gpu.generate(&format!("{extra}/amd.com-gpu.yaml"));
    gpu.amdgpu_cdi(&["configure", "docker", "--cdi-spec-dir", extra]);
    let config = daemon_json(&gpu);
    let dirs = config["cdi-spec-dirs"].as_array().expect("cdi-spec-dirs");
    assert!(dirs.iter().any(|d| d == extra), "{config}");
    gpu.session.stop_daemon("dockerd");
    gpu.session.start_dockerd(&[], &[]);
    assert_sees(&gpu, "amd.com/gpu=2", &[renders[2]]);
}
