//! End-to-end tests of the device plugin binary against the Go kubelet stand-in (built from the
//! official `k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1` in the sid engine root) on the example
//! hosts: registration, resources per strategy, preferred allocations, allocation results,
//! health flips, partition switches, kubelet restarts and SIGTERM. They need root (to build the
//! stand-in); without it they skip, except under CI=true.

mod kubelet;
mod manifest;
#[path = "../../../tests/skip.rs"]
mod skip;
mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use kubelet::{Standin, standin, strings};
use manifest::DaemonSet;
use nix::sys::signal::Signal;
use serde_json::Value;
use support::{Node, RunningPlugin, nanos, repo_root};

/// The stand-in binary; without it the test returns, skipped with the reason (or fails under
/// CI, see `skip`).
macro_rules! standin_or_skip {
    ($test:literal) => {
        match standin($test) {
            Some(binary) => binary,
            None => return,
        }
    };
}

/// The plugin's arguments for the mixed resource strategy.
const MIXED: &[&str] = &["--strategy", "mixed"];

/// Everything a test needs: a node with `hosts`, the plugin on it started with `args`, and the
/// stand-in (`binary`) the plugin has registered `resource` with.
fn running(
    binary: &Path,
    hosts: &[&str],
    args: &[&str],
    resource: &str,
) -> (Node, RunningPlugin, Standin) {
    let node = Node::new(hosts);
    let plugin = RunningPlugin::start(&node, args);
    let mut kubelet = Standin::start(binary, &node.plugin_dir());
    answer(
        &mut kubelet,
        &plugin,
        &format!("wait-registered {resource} 5000"),
    );
    (node, plugin, kubelet)
}

/// Runs a stand-in command that must succeed; when it fails, the plugin's log says why.
fn answer(kubelet: &mut Standin, plugin: &RunningPlugin, line: &str) -> Value {
    let value = kubelet.try_cmd(line);
    assert!(
        value.get("error").is_none(),
        "{line}: {value}\nplugin log:\n{}",
        plugin.log()
    );
    value
}

#[test]
fn registers_and_lists_every_partition_under_the_single_strategy() {
    let binary = standin_or_skip!("registers_and_lists_every_partition_under_the_single_strategy");
    let (node, _plugin, mut kubelet) = running(&binary, &["mi300x-cpx"], &[], "amd.com/gpu");
    let registrations = kubelet.cmd("registrations");
    let registrations = registrations["registrations"].as_array().expect("list");
    assert_eq!(registrations.len(), 1, "{registrations:?}");
    assert_eq!(registrations[0]["resource"], "amd.com/gpu");
    assert_eq!(registrations[0]["endpoint"], "amdgpu-cdi-gpu.sock");
    assert_eq!(registrations[0]["version"], "v1beta1");
    assert_eq!(registrations[0]["preferred"], true);

    let devices = kubelet.list("amd.com/gpu");
    assert_eq!(devices.len(), 64);
    assert_eq!(devices[0]["id"], "0000:05:00.0-p0");
    assert_eq!(devices[0]["numa"], serde_json::json!([0]));
    assert_eq!(devices[63]["id"], "0000:f5:00.0-p7");
    assert_eq!(devices[63]["numa"], serde_json::json!([1]));
    assert!(devices.iter().all(|d| d["health"] == "Healthy"));

    let options = kubelet.cmd("options amd.com/gpu");
    assert_eq!(options["get_preferred_allocation_available"], true);
    assert_eq!(options["pre_start_required"], false);

    // Every advertised id is a device of the spec the plugin wrote.
    let spec = cdi::codec::load(&node.cdi_dir().join("amd.com-gpu.yaml")).expect("spec");
    assert_eq!(spec.kind, "amd.com/gpu");
    for device in &devices {
        let id = device["id"].as_str().expect("id");
        assert!(
            spec.devices.iter().any(|d| d.name == id),
            "{id} not in the spec"
        );
    }

    // The spec records its generate options, so `check` (and `doctor`) judge it current by
    // them instead of by the defaults, which would drop the ids.
    let checked = amdgpu_cdi::check::check(
        &node.cdi_dir().join("amd.com-gpu.yaml"),
        &amdgpu_cdi::discover::DiscoverOptions {
            sysfs_root: node.sysfs(),
            dev_root: node.dir.path().to_path_buf(),
        },
        &amdgpu_cdi::generate::GenerateOptions {
            dev_root: node.dir.path().to_path_buf(),
            ..amdgpu_cdi::generate::GenerateOptions::default()
        },
    )
    .expect("check the plugin's spec");
    assert!(checked.recorded, "the plugin's spec records no options");
    assert_eq!(checked.outcome, amdgpu_cdi::check::Currentness::Current);
}

#[test]
fn the_mixed_strategy_names_resources_by_partition_mode() {
    let binary = standin_or_skip!("the_mixed_strategy_names_resources_by_partition_mode");
    let (_node, _plugin, mut kubelet) =
        running(&binary, &["mi300a-tpx"], MIXED, "amd.com/tpx_nps1");
    let registrations = kubelet.cmd("registrations");
    assert_eq!(
        registrations["registrations"][0]["endpoint"],
        "amdgpu-cdi-tpx_nps1.sock"
    );
    let devices = kubelet.devices("amd.com/tpx_nps1");
    assert_eq!(devices.len(), 12);
    assert_eq!(devices[0].0, "0000:02:00.0-p0");
    assert_eq!(devices[11].0, "0003:02:00.0-p2");

    // GPUs without partitions are amd.com/gpu under mixed too.
    let (_node, _plugin, mut kubelet) = running(&binary, &["mi210x4"], MIXED, "amd.com/gpu");
    assert_eq!(kubelet.devices("amd.com/gpu").len(), 4);
}

#[test]
fn gpus_in_two_pci_domains_keep_their_ids_and_numa_nodes_apart() {
    let binary = standin_or_skip!("gpus_in_two_pci_domains_keep_their_ids_and_numa_nodes_apart");
    let (node, _plugin, mut kubelet) =
        running(&binary, &["mi308x-two-domains"], MIXED, "amd.com/cpx_nps1");
    let devices = kubelet.list("amd.com/cpx_nps1");
    assert_eq!(devices.len(), 32);
    assert_eq!(devices[0]["id"], "0000:05:00.0-p0");
    assert_eq!(devices[0]["numa"], serde_json::json!([0]));
    assert_eq!(devices[16]["id"], "0001:05:00.0-p0");
    assert_eq!(devices[16]["numa"], serde_json::json!([1]));
    assert!(
        devices[..16]
            .iter()
            .all(|d| d["numa"] == serde_json::json!([0]))
    );
    assert!(
        devices[16..]
            .iter()
            .all(|d| d["numa"] == serde_json::json!([1]))
    );
    // The same bus in the other domain is another GPU with its own render nodes.
    assert_ne!(
        node.render_node_of("0000:05:00.0-p0"),
        node.render_node_of("0001:05:00.0-p0")
    );
    let ids: Vec<&str> = devices
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        kubelet.preferred(&format!("amd.com/cpx_nps1 8 {} -", ids.join(","))),
        [
            "0000:05:00.0-p0",
            "0000:05:00.0-p1",
            "0000:05:00.0-p2",
            "0000:05:00.0-p3",
            "0000:15:00.0-p0",
            "0000:15:00.0-p1",
            "0000:15:00.0-p2",
            "0000:15:00.0-p3"
        ]
    );
    assert_eq!(
        kubelet.cdi_devices("amd.com/cpx_nps1 0001:05:00.0-p3"),
        ["amd.com/gpu=0001:05:00.0-p3"]
    );
}

#[test]
fn preferred_allocations_follow_hives_numa_nodes_and_parent_gpus() {
    let binary = standin_or_skip!("preferred_allocations_follow_hives_numa_nodes_and_parent_gpus");
    let (_node, _plugin, mut kubelet) = running(&binary, &["mi210x4"], &[], "amd.com/gpu");
    let all = "0000:03:00.0,0000:23:00.0,0000:43:00.0,0000:63:00.0";
    assert_eq!(
        kubelet.preferred(&format!("amd.com/gpu 2 {all} -")),
        ["0000:03:00.0", "0000:23:00.0"]
    );
    // 03 taken: the other hive's pair, not 23 + 43.
    assert_eq!(
        kubelet.preferred("amd.com/gpu 2 0000:23:00.0,0000:43:00.0,0000:63:00.0 -"),
        ["0000:43:00.0", "0000:63:00.0"]
    );
    assert_eq!(
        kubelet.preferred(&format!("amd.com/gpu 2 {all} 0000:63:00.0")),
        ["0000:43:00.0", "0000:63:00.0"]
    );

    let (_node, _plugin, mut kubelet) = running(&binary, &["mi300x-cpx"], &[], "amd.com/gpu");
    let ids: Vec<String> = kubelet
        .devices("amd.com/gpu")
        .into_iter()
        .map(|d| d.0)
        .collect();
    // Partitions 0-4 of the first GPU in use: two more fill it, four take a fresh GPU.
    let available = ids[5..].join(",");
    assert_eq!(
        kubelet.preferred(&format!("amd.com/gpu 2 {available} -")),
        ["0000:05:00.0-p5", "0000:05:00.0-p6"]
    );
    assert_eq!(
        kubelet.preferred(&format!("amd.com/gpu 4 {available} -")),
        [
            "0000:15:00.0-p0",
            "0000:15:00.0-p1",
            "0000:15:00.0-p2",
            "0000:15:00.0-p3"
        ]
    );
}

#[test]
fn allocate_returns_cdi_names_annotations_or_device_nodes() {
    let binary = standin_or_skip!("allocate_returns_cdi_names_annotations_or_device_nodes");
    let started_with = |args: &[&str]| running(&binary, &["mi210x4"], args, "amd.com/gpu");
    let (_node, _plugin, mut kubelet) = started_with(&[]);
    let cdi = kubelet.cmd("allocate amd.com/gpu 0000:43:00.0,0000:63:00.0");
    assert_eq!(
        strings(&cdi["cdi_devices"]),
        ["amd.com/gpu=0000:43:00.0", "amd.com/gpu=0000:63:00.0"]
    );
    assert_eq!(cdi["devices"], serde_json::json!([]));
    assert_eq!(cdi["annotations"], serde_json::json!({}));
    let unknown = kubelet.try_cmd("allocate amd.com/gpu 0000:99:00.0");
    let error = unknown["error"].as_str().expect("an error");
    assert!(
        error.contains("cannot allocate 0000:99:00.0: amd.com/gpu has no such device"),
        "{error}"
    );

    let (_node, _plugin, mut kubelet) = started_with(&["--allocation", "annotations"]);
    let annotated = kubelet.cmd("allocate amd.com/gpu 0000:03:00.0");
    assert_eq!(
        annotated["annotations"],
        serde_json::json!({"cdi.k8s.io/amdgpu-cdi_gpu": "amd.com/gpu=0000:03:00.0"})
    );
    assert_eq!(annotated["cdi_devices"], serde_json::json!([]));

    let (node, _plugin, mut kubelet) = started_with(&["--allocation", "device-specs"]);
    let nodes = kubelet.cmd("allocate amd.com/gpu 0000:03:00.0");
    let render = node.render_node_of("0000:03:00.0");
    let root = node.dir.path().display().to_string();
    assert_eq!(
        nodes["devices"],
        serde_json::json!([
            {"container_path": "/dev/kfd", "host_path": format!("{root}/dev/kfd"),
             "permissions": "rw"},
            {"container_path": format!("/dev/dri/{render}"),
             "host_path": format!("{root}/dev/dri/{render}"), "permissions": "rw"},
        ])
    );
    assert_eq!(nodes["cdi_devices"], serde_json::json!([]));
}

#[test]
fn a_device_whose_render_node_goes_is_unhealthy_within_a_second_and_comes_back() {
    let binary = standin_or_skip!(
        "a_device_whose_render_node_goes_is_unhealthy_within_a_second_and_comes_back"
    );
    let (node, plugin, mut kubelet) = running(&binary, &["mi210x4"], &[], "amd.com/gpu");
    let render = node
        .path("dev/dri")
        .join(node.render_node_of("0000:23:00.0"));
    let removed = nanos();
    fs::remove_file(&render).expect("remove the render node");
    let gone = answer(
        &mut kubelet,
        &plugin,
        "wait-health amd.com/gpu 0000:23:00.0 Unhealthy 1000",
    );
    let latency = gone["at"].as_i64().expect("at") - removed;
    assert!(latency < 1_000_000_000, "{latency} ns");
    let devices = kubelet.devices("amd.com/gpu");
    let healthy: Vec<&str> = devices
        .iter()
        .filter(|d| d.1 == "Healthy")
        .map(|d| d.0.as_str())
        .collect();
    assert_eq!(healthy, ["0000:03:00.0", "0000:43:00.0", "0000:63:00.0"]);
    let refused = kubelet.try_cmd("allocate amd.com/gpu 0000:23:00.0");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("unhealthy")),
        "{refused}"
    );

    fs::write(&render, "").expect("restore the render node");
    answer(
        &mut kubelet,
        &plugin,
        "wait-health amd.com/gpu 0000:23:00.0 Healthy 1000",
    );
}

#[test]
fn every_device_is_unhealthy_while_dev_kfd_is_gone() {
    let binary = standin_or_skip!("every_device_is_unhealthy_while_dev_kfd_is_gone");
    let (node, plugin, mut kubelet) = running(&binary, &["mi300x-cpx"], &[], "amd.com/gpu");
    let all_are = |kubelet: &mut Standin, health: &str| {
        kubelet.devices("amd.com/gpu").iter().all(|d| d.1 == health)
    };
    fs::remove_file(node.path("dev/kfd")).expect("remove kfd");
    for id in ["0000:05:00.0-p0", "0000:f5:00.0-p7"] {
        answer(
            &mut kubelet,
            &plugin,
            &format!("wait-health amd.com/gpu {id} Unhealthy 1000"),
        );
    }
    assert!(all_are(&mut kubelet, "Unhealthy"));
    fs::write(node.path("dev/kfd"), "").expect("restore kfd");
    answer(
        &mut kubelet,
        &plugin,
        "wait-health amd.com/gpu 0000:f5:00.0-p7 Healthy 1000",
    );
    assert!(all_are(&mut kubelet, "Healthy"));
}

#[test]
fn a_partition_switch_is_advertised_without_restarting_the_kubelet() {
    let binary =
        standin_or_skip!("a_partition_switch_is_advertised_without_restarting_the_kubelet");
    let (node, plugin, mut kubelet) = running(
        &binary,
        &["mi300x-spx", "mi300x-cpx"],
        MIXED,
        "amd.com/spx_nps1",
    );
    assert_eq!(kubelet.devices("amd.com/spx_nps1").len(), 8);
    // The GPUs switch to CPX; kernels that keep every render node send no /dev event, hence
    // SIGHUP (docs/kubernetes.md).
    node.use_host("mi300x-cpx");
    plugin.signal(Signal::SIGHUP);
    answer(
        &mut kubelet,
        &plugin,
        "wait-registered amd.com/cpx_nps1 3000",
    );
    kubelet.cmd("wait-devices amd.com/cpx_nps1 64 3000");
    kubelet.cmd("wait-devices amd.com/spx_nps1 0 3000");
    let spec = cdi::codec::load(&node.cdi_dir().join("amd.com-gpu.yaml")).expect("spec");
    assert!(spec.devices.iter().any(|d| d.name == "0000:95:00.0-p7"));
    assert!(!spec.devices.iter().any(|d| d.name == "0000:95:00.0"));
    assert_eq!(
        kubelet.cdi_devices("amd.com/cpx_nps1 0000:95:00.0-p7"),
        ["amd.com/gpu=0000:95:00.0-p7"]
    );
}

#[test]
fn the_plugin_registers_again_when_the_kubelet_restarts() {
    let binary = standin_or_skip!("the_plugin_registers_again_when_the_kubelet_restarts");
    let (node, plugin, kubelet) = running(&binary, &["mi210x4"], &[], "amd.com/gpu");
    kubelet.quit();
    // The new kubelet empties the directory (the plugin's socket goes) and creates kubelet.sock.
    let mut kubelet = Standin::start(&binary, &node.plugin_dir());
    answer(&mut kubelet, &plugin, "wait-registered amd.com/gpu 5000");
    assert_eq!(kubelet.devices("amd.com/gpu").len(), 4);
    assert_eq!(
        kubelet.cdi_devices("amd.com/gpu 0000:03:00.0"),
        ["amd.com/gpu=0000:03:00.0"]
    );
}

#[test]
fn a_plugin_started_before_the_kubelet_registers_when_it_comes() {
    let binary = standin_or_skip!("a_plugin_started_before_the_kubelet_registers_when_it_comes");
    let node = Node::new(&["mi210x4"]);
    let plugin = RunningPlugin::start(&node, &[]);
    plugin.wait_for_log("waiting for the kubelet", Duration::from_secs(5));
    let mut kubelet = Standin::start(&binary, &node.plugin_dir());
    answer(&mut kubelet, &plugin, "wait-registered amd.com/gpu 5000");
}

#[test]
fn sigterm_stops_the_plugin_and_removes_its_socket() {
    let binary = standin_or_skip!("sigterm_stops_the_plugin_and_removes_its_socket");
    let (node, mut plugin, _kubelet) = running(&binary, &["mi210x4"], &[], "amd.com/gpu");
    let socket = node.plugin_dir().join("amdgpu-cdi-gpu.sock");
    assert!(socket.exists());
    plugin.signal(Signal::SIGTERM);
    let status = plugin
        .wait(Duration::from_secs(5))
        .expect("exits within 5 s");
    assert!(status.success(), "{status:?}\n{}", plugin.log());
    assert!(!socket.exists());
    assert!(
        plugin
            .log()
            .ends_with("amdgpu-cdi-device-plugin: stopped\n"),
        "{}",
        plugin.log()
    );
}

/// Startup errors need neither root nor the stand-in: one line, exit 2, nothing served.
#[test]
fn startup_errors_are_one_line() {
    let node = Node::new(&["mi210x4"]);
    node.use_host("no-amd");
    let log = startup_error(&node);
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(
        log.starts_with("amdgpu-cdi-device-plugin: no AMD GPU on this machine:"),
        "{log}"
    );
    assert_eq!(fs::read_dir(node.plugin_dir()).expect("dir").count(), 0);

    let node = Node::new(&["wsl2"]);
    assert_eq!(
        startup_error(&node),
        "amdgpu-cdi-device-plugin: this is a WSL2 host (/dev/dxg, no KFD): a container given \
         /dev/dxg sees every GPU, so there is nothing to hand out one by one; use `amdgpu-cdi \
         generate` and request amd.com/gpu=all (docs/wsl.md)\n"
    );
    assert_eq!(fs::read_dir(node.cdi_dir()).expect("dir").count(), 0);

    let node = Node::new(&["mi210x4"]);
    fs::remove_dir(node.plugin_dir()).expect("remove the plugin dir");
    assert_eq!(
        startup_error(&node),
        format!(
            "amdgpu-cdi-device-plugin: {} does not exist (is the kubelet running? mount its \
             device plugin directory into the pod)\n",
            node.plugin_dir().display()
        )
    );
}

/// Starts the plugin on `node`, which must exit with status 2; returns what it logged.
fn startup_error(node: &Node) -> String {
    let mut plugin = RunningPlugin::start(node, &[]);
    let status = plugin.wait(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2), "{}", plugin.log());
    plugin.log()
}

/// The DaemonSet runs `amdgpu-cdi device-plugin` with the mounts it needs, configured through
/// environment variables the plugin accepts: started with that environment (the host paths
/// pointed at a fake node), the plugin comes up and waits for the kubelet. Needs neither root
/// nor the stand-in.
#[test]
fn the_daemonset_manifest_runs_the_plugin() {
    let manifest =
        DaemonSet::load(&repo_root().join("packaging/kubernetes/amdgpu-cdi-daemonset.yaml"));
    assert_eq!(
        manifest.container()["command"],
        serde_json::json!(["/usr/bin/amdgpu-cdi", "device-plugin"])
    );
    assert_eq!(
        manifest.mounts(),
        [
            ("/host/sys", true),
            ("/dev", true),
            ("/var/run/cdi", false),
            ("/var/lib/kubelet/device-plugins", false)
        ]
    );
    assert_eq!(
        manifest.host_paths(),
        [
            "/sys",
            "/dev",
            "/var/run/cdi",
            "/var/lib/kubelet/device-plugins"
        ]
    );
    let env = manifest.env();
    assert!(env.contains(&("AMDGPU_CDI_SYSFS_ROOT", "/host/sys")));

    let node = Node::new(&["mi300x-cpx"]);
    let mut plugin = RunningPlugin::start_with_env(&node, &env);
    plugin.wait_for_log("waiting for the kubelet", Duration::from_secs(10));
    assert!(
        plugin.log().contains("advertising amd.com/gpu: 64 devices"),
        "{}",
        plugin.log()
    );
    plugin.signal(Signal::SIGTERM);
    let status = plugin.wait(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{}", plugin.log());
}
