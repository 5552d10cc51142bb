//! `amdgpu-cdi generate` feeds a real engine: podman 4.3.1 with runc loads the spec generated for
//! the `mi210x4` example host over fake GPU nodes under a temp dev root, and a container gets
//! `/dev/kfd` plus exactly the render node of the GPU it asked for, by index, uuid or PCI name.
//!
//! The example's render minors are 128..131 (in KFD probe order, not PCI order), which are the
//! nodes `support::fake_gpu_nodes` makes, so GPU 1 (0000:23:00.0) must bring `renderD131`.
//! Podman 4.3 reads only the default spec dirs, so it runs in a private mount namespace with the
//! temp spec dir bind-mounted over `/var/run/cdi` and an empty dir over `/etc/cdi`.

use std::path::Path;
use std::process::Command;

use crate::support;

/// Lists `/dev/dri`, then checks `/dev/kfd` and every listed render node are readable.
const PROBE: &str = "ls /dev/dri | busybox tr '\\n' ' '; echo; \
                     head -c 1 /dev/kfd | busybox wc -c; \
                     for n in /dev/dri/*; do cat \"$n\" && echo \"read $n\"; done";

/// The lines [`PROBE`] prints in a container given `--device device`.
fn run_with(podman: &support::PodmanCdi, device: &str) -> Vec<String> {
    let (ok, stdout, stderr) = podman.run(&["--device", device], PROBE);
    assert!(
        ok,
        "podman --device {device} failed:\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn podman_gets_exactly_the_requested_gpu() {
    let Some(podman) = support::PodmanCdi::new("podman_gets_exactly_the_requested_gpu") else {
        return;
    };
    let dev_root = support::fake_gpu_nodes(&podman.path("host"), 4);
    let spec_dir = &podman.spec_dir;
    let sysfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hosts/mi210x4/sys");

    let (ok, stdout, stderr) = support::output(
        Command::new(support::bin("amdgpu-cdi"))
            .arg("generate")
            .arg("--sysfs-root")
            .arg(&sysfs)
            .arg("--dev-root")
            .arg(&dev_root)
            .args(["--device-name-strategy", "index"])
            .args(["--device-name-strategy", "uuid"])
            .args(["--device-name-strategy", "pci"])
            .arg("--output")
            .arg(spec_dir.join("amd.com-gpu.yaml")),
    );
    assert!(ok, "generate failed:\nstdout: {stdout}\nstderr: {stderr}");
    let spec = cdi::codec::load(&spec_dir.join("amd.com-gpu.yaml")).expect("spec loads");
    assert_eq!(spec.cdi_version, "0.5.0");

    let expect = |renders: &[&str]| {
        let mut lines = vec![renders.join(" "), "1".to_string()];
        lines.extend(renders.iter().map(|r| format!("read /dev/dri/{r}")));
        lines
    };

    // By index: GPU 1 in PCI order is 0000:23:00.0, probed last, so renderD131.
    assert_eq!(run_with(&podman, "amd.com/gpu=1"), expect(&["renderD131"]));
    // By ROCm uuid and by PCI address.
    assert_eq!(
        run_with(&podman, "amd.com/gpu=GPU-f07655db2e3690b4"),
        expect(&["renderD131"])
    );
    assert_eq!(
        run_with(&podman, "amd.com/gpu=0000:63:00.0"),
        expect(&["renderD130"])
    );
    // All of them.
    assert_eq!(
        run_with(&podman, "amd.com/gpu=all"),
        expect(&["renderD128", "renderD129", "renderD130", "renderD131"])
    );
}
