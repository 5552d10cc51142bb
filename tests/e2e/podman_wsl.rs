//! A WSL2 spec from `amdgpu-cdi generate` feeds a real engine: podman 4.3.1 with runc loads the
//! spec generated for the `wsl2` example host over a fake WSL tree (a `/dev/dxg` character node
//! with the numbers of `/dev/zero` and a stand-in `usr/lib/wsl/lib/libdxcore.so` under a temp
//! root), and a container asking for `amd.com/gpu=all` or `=0` reads `/dev/dxg`, sees the DXCore
//! library read-only at `/usr/lib/libdxcore.so` and `HSA_ENABLE_DXG_DETECTION=1`, and has no
//! `/dev/dri`. Podman 4.3 reads only the default spec dirs, so it runs in a private mount
//! namespace with the temp spec dir over `/var/run/cdi` (`support::podman_with_spec_dir`).

use std::path::Path;
use std::process::Command;

use crate::support::{self, VisibleDevices};

/// Reads three bytes of `/dev/dxg`, prints the library and the variable, tries to write the
/// library, and lists `/dev/dri`.
pub(crate) const WSL_PROBE: &str = "head -c 3 /dev/dxg | busybox wc -c; cat /usr/lib/libdxcore.so; \
     echo \"env=$HSA_ENABLE_DXG_DETECTION\"; \
     (echo x >> /usr/lib/libdxcore.so) 2>/dev/null && echo writable || echo read-only; \
     ls /dev/dri 2>/dev/null || echo no-dri";

/// What [`WSL_PROBE`] prints in a container given the WSL spec.
pub(crate) const WSL_EXPECTED: [&str; 5] = ["3", "fake dxcore", "env=1", "read-only", "no-dri"];

/// A fake WSL tree under `root`: `dev/dxg` (the numbers of `/dev/zero`) and
/// `usr/lib/wsl/lib/libdxcore.so`.
pub(crate) fn fake_wsl_tree(root: &Path) {
    std::fs::create_dir_all(root.join("dev")).expect("create dev");
    support::char_device(&root.join("dev/dxg"), 1, 5);
    let lib = root.join("usr/lib/wsl/lib");
    std::fs::create_dir_all(&lib).expect("create lib");
    std::fs::write(lib.join("libdxcore.so"), "fake dxcore\n").expect("write libdxcore.so");
}

/// The `generate` arguments (after `generate`) writing `output` for the `wsl2` example host over
/// the fake WSL tree at `root`.
pub(crate) fn wsl_generate_args(root: &Path, output: &Path) -> Vec<String> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hosts/wsl2");
    [
        "--sysfs-root".to_string(),
        example.join("sys").display().to_string(),
        "--proc-root".to_string(),
        example.join("proc").display().to_string(),
        "--dev-root".to_string(),
        root.display().to_string(),
        "--wsl-lib-root".to_string(),
        root.join("usr/lib/wsl").display().to_string(),
        "--output".to_string(),
        output.display().to_string(),
    ]
    .to_vec()
}

/// The fake WSL tree under `root` and the spec `generate` writes for it into `spec_dir`.
fn fake_wsl_spec(root: &Path, spec_dir: &Path) {
    fake_wsl_tree(root);
    let (ok, stdout, stderr) = support::output(
        Command::new(support::bin("amdgpu-cdi"))
            .arg("generate")
            .args(wsl_generate_args(root, &spec_dir.join("amd.com-gpu.yaml"))),
    );
    assert!(ok, "generate failed:\nstdout: {stdout}\nstderr: {stderr}");
}

#[test]
fn podman_gives_a_wsl_container_dxg_dxcore_and_the_variable() {
    let Some(podman) =
        support::PodmanCdi::new("podman_gives_a_wsl_container_dxg_dxcore_and_the_variable")
    else {
        return;
    };
    fake_wsl_spec(&podman.path("host"), &podman.spec_dir);
    let spec = cdi::codec::load(&podman.spec_dir.join("amd.com-gpu.yaml")).expect("spec loads");
    assert_eq!(spec.cdi_version, "0.5.0");

    for device in ["amd.com/gpu=all", "amd.com/gpu=0"] {
        let (ok, stdout, stderr) = podman.run(&["--device", device], WSL_PROBE);
        assert!(
            ok,
            "podman --device {device} failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
        assert_eq!(lines, WSL_EXPECTED, "{device}; stderr: {stderr}");
    }
}

/// The precreate hook on a WSL2 host: podman 4.3 with the shipped hooks.d file (pointed at the
/// `wsl2` example and the fake WSL tree) gives `AMD_VISIBLE_DEVICES=all` and `=0` the same
/// `/dev/dxg`, DXCore library and variable as the CDI spec, and nothing for `none`.
#[test]
fn podman_precreate_hook_gives_a_wsl_container_dxg_dxcore_and_the_variable() {
    let Some(dir) = support::scratch_dir(
        "podman_precreate_hook_gives_a_wsl_container_dxg_dxcore_and_the_variable",
        &["podman", "runc"],
    ) else {
        return;
    };
    let root = dir.path().join("host");
    fake_wsl_tree(&root);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hosts/wsl2/sys");
    let config = format!(
        "wsl-lib-root = \"{}\"\n",
        root.join("usr/lib/wsl").display()
    );
    let setup = crate::podman_hooks::HookSetup::with_host(dir, &example, &root, &config);
    for value in ["all", "0"] {
        let (ok, stdout, stderr) = setup.run(&[], value, WSL_PROBE);
        assert!(ok, "AMD_VISIBLE_DEVICES={value}: {stdout}{stderr}");
        let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
        assert_eq!(
            lines, WSL_EXPECTED,
            "AMD_VISIBLE_DEVICES={value}; stderr: {stderr}"
        );
    }
    let (ok, stdout, stderr) = setup.run(&[], "none", WSL_PROBE);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("no-dri") && !stdout.contains("fake dxcore"),
        "{stdout}"
    );
}
