//! The device plugin's last mile, as on a Kubernetes node: `amdgpu-cdi device-plugin` runs in the
//! sid root beside containerd 2.1 (CRI plugin configured by `amdgpu-cdi configure containerd`),
//! registers with the Go kubelet stand-in (the official device plugin API), and writes the only
//! spec containerd sees. The stand-in asks `Allocate` for two of the four GPUs; the `CDIDevices`
//! it gets back go unchanged into a CRI `CreateContainer` through the official CRI client
//! (`tests/go/cri-run`), and the container sees exactly the render nodes of those two GPUs.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::containerd_cri::CriSetup;
use crate::gpu_root;
use crate::roots::{self, output};
use crate::support;

#[path = "../../device-plugin/tests/standin/kubelet.rs"]
mod kubelet;

use kubelet::{Standin, strings};

/// The spec containerd reads and the plugin writes (`--cdi-dir /var/run/cdi`).
const SPEC: &str = "/var/run/cdi/amd.com-gpu.yaml";

/// The plugin binary beside `amdgpu-cdi` (where `amdgpu-cdi device-plugin` execs it), built
/// with cargo when this test binary was built alone (`cargo test --test e2e`).
fn plugin_binary(test: &str) -> Option<PathBuf> {
    let binary =
        support::bin("amdgpu-cdi").with_file_name(amdgpu_cdi::cli::device_plugin::PLUGIN_BINARY);
    if !binary.is_file() {
        let (ok, _, stderr) = output(
            Command::new(env!("CARGO"))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args(["build", "--package", "amdgpu-cdi-device-plugin"]),
        );
        if !ok || !binary.is_file() {
            roots::unavailable(test, &format!("cannot build the device plugin: {stderr}"));
            return None;
        }
    }
    Some(binary)
}

/// The render node the plugin's spec gives CDI device `name` (`amd.com/gpu=...`).
fn render_node_of(spec: &cdi::spec::Spec, name: &str) -> String {
    let device = name
        .strip_prefix("amd.com/gpu=")
        .unwrap_or_else(|| panic!("not an amd.com/gpu device: {name}"));
    let edits = &spec
        .devices
        .iter()
        .find(|d| d.name == device)
        .unwrap_or_else(|| panic!("{name} is not in the plugin's spec"))
        .container_edits;
    let path = &edits.device_nodes[0].path;
    path.rsplit('/').next().expect("node name").to_string()
}

#[test]
fn device_plugin_allocation_reaches_a_containerd_2_1_cri_container() {
    let test = "device_plugin_allocation_reaches_a_containerd_2_1_cri_container";
    let Some(standin) = kubelet::standin(test) else {
        return;
    };
    let Some(plugin) = plugin_binary(test) else {
        return;
    };
    let Some(mut setup) = CriSetup::start(test, "sid", "2.1.9") else {
        return;
    };
    // Only the plugin's spec: the one CriSetup generated goes.
    fs::remove_file(setup.gpu.session.host_path(SPEC)).expect("remove the generated spec");

    let plugin_dir = setup.gpu.dir().join("device-plugins");
    fs::create_dir_all(&plugin_dir).expect("device plugin dir");
    let mut kubelet = Standin::start(&standin, &plugin_dir);
    let plugin_dir = plugin_dir.display().to_string();
    let dev_root = setup.gpu.dev_root.display().to_string();
    let amdgpu_cdi = support::bin("amdgpu-cdi").display().to_string();
    assert!(plugin.is_file());
    setup.gpu.session.start_daemon(
        "device-plugin",
        &[],
        &[
            &amdgpu_cdi,
            "device-plugin",
            "--device-plugin-dir",
            &plugin_dir,
            "--cdi-dir",
            "/var/run/cdi",
            "--sysfs-root",
            gpu_root::SYSFS,
            "--dev-root",
            &dev_root,
        ],
        Duration::from_secs(10),
        |_| true,
    );
    let registered = kubelet.try_cmd("wait-registered amd.com/gpu 10000");
    assert!(
        registered.get("error").is_none(),
        "{registered}\nplugin log:\n{}",
        setup.gpu.session.log("device-plugin")
    );
    let devices = kubelet.devices("amd.com/gpu");
    assert_eq!(devices.len(), 4, "{devices:?}");
    assert!(devices.iter().all(|(_, health)| health == "Healthy"));

    // Two different pairs, each seen exactly by its own container.
    let spec = cdi::codec::load(&setup.gpu.session.host_path(SPEC)).expect("the plugin's spec");
    let mut seen = Vec::new();
    for pair in [[0, 2], [1, 3]] {
        let ids = format!("{},{}", devices[pair[0]].0, devices[pair[1]].0);
        let response = kubelet.cmd(&format!("allocate amd.com/gpu {ids}"));
        let names = strings(&response["cdi_devices"]);
        assert_eq!(names.len(), 2, "{response}");
        assert!(
            response["annotations"]
                .as_object()
                .is_some_and(serde_json::Map::is_empty),
            "CDIDevices only by default: {response}"
        );
        let mut renders: Vec<String> = names.iter().map(|n| render_node_of(&spec, n)).collect();
        renders.sort();
        renders.dedup();
        assert_eq!(renders.len(), 2, "{names:?} share a render node");

        let mut args = Vec::new();
        for name in &names {
            args.extend(["-cdi-device", name.as_str()]);
        }
        let name = format!("pair-{}-{}", pair[0], pair[1]);
        args.extend(["-name", name.as_str()]);
        let renders: Vec<&str> = renders.iter().map(String::as_str).collect();
        setup.assert_sees(&args, &renders);
        seen.extend(renders.iter().map(|r| r.to_string()));
    }
    seen.sort();
    let mut all: Vec<String> = gpu_root::RENDER_OF_INDEX
        .iter()
        .map(|r| r.to_string())
        .collect();
    all.sort();
    assert_eq!(
        seen, all,
        "the two allocations cover the four GPUs once each"
    );
    kubelet.quit();
}
