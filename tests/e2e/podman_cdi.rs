//! A spec written by `cdi::write` loads in a real consumer: podman 4.3.1 (CDI library 0.5.2)
//! resolves `--device vendor/class=name`, and the container sees the injected node and env.
//!
//! Podman 4.3 reads only the default spec dirs (`cdi_spec_dirs` arrived in later releases), so
//! podman runs in a private mount namespace where a temp dir is bind-mounted over `/var/run/cdi`
//! and an empty one over `/etc/cdi`: the host's specs are neither seen nor touched (the two
//! directories are only created, empty, if the host lacks them, to have mount points).

use cdi::spec::{ContainerEdits, Device, DeviceNode, Spec};
use cdi::write::{WriteOutcome, write_spec};

use crate::support;

fn spec(kind: &str, name: &str, node: DeviceNode, env: &str) -> Spec {
    let mut spec = Spec {
        cdi_version: String::new(),
        kind: kind.into(),
        devices: vec![Device {
            name: name.into(),
            container_edits: ContainerEdits {
                env: vec![env.into()],
                device_nodes: vec![node],
                ..ContainerEdits::default()
            },
            ..Device::default()
        }],
        ..Spec::default()
    };
    spec.cdi_version = cdi::version::minimum_required_version(&spec).to_string();
    spec
}

#[test]
fn podman_loads_specs_written_by_the_library() {
    let Some(podman) = support::PodmanCdi::new("podman_loads_specs_written_by_the_library") else {
        return;
    };
    let dev_root = support::fake_gpu_nodes(&podman.path("host"), 1);

    // A digit-leading name with a hostPath: needs 0.5.0, the newest podman 4.3 accepts.
    let null_node = DeviceNode {
        path: "/dev/test0".into(),
        host_path: Some(dev_root.join("dev/dri/renderD128").display().to_string()),
        ..DeviceNode::default()
    };
    let yaml = spec("test.com/e2e", "0", null_node, "TEST_E2E=yaml");
    assert_eq!(yaml.cdi_version, "0.5.0");
    let zero_node = DeviceNode {
        path: "/dev/testzero".into(),
        host_path: Some(dev_root.join("dev/kfd").display().to_string()),
        ..DeviceNode::default()
    };
    let json = spec("test.com/e2ejson", "zero", zero_node, "TEST_E2E_JSON=json");
    for (file, spec) in [
        ("test.com-e2e.yaml", &yaml),
        ("test.com-e2ejson.json", &json),
    ] {
        let path = podman.spec_dir.join(file);
        assert_eq!(
            write_spec(&path, spec).expect("write spec"),
            WriteOutcome::Written
        );
        assert_eq!(
            write_spec(&path, spec).expect("rewrite spec"),
            WriteOutcome::Unchanged
        );
    }

    let script = "cat /dev/test0 && echo null-read-ok; \
                  head -c 3 /dev/testzero > /tmp/z && busybox wc -c < /tmp/z; \
                  echo \"env=$TEST_E2E,$TEST_E2E_JSON\"";
    let (ok, stdout, stderr) = podman.run(
        &[
            "--device",
            "test.com/e2e=0",
            "--device",
            "test.com/e2ejson=zero",
        ],
        script,
    );
    assert!(ok, "podman run failed:\nstdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["null-read-ok", "3", "env=yaml,json"],
        "stderr: {stderr}"
    );

    // A name the spec dir does not provide fails the start.
    let (ok, stdout, stderr) = podman.run(&["--device", "test.com/e2e=1"], "true");
    assert!(!ok, "podman started with an unknown CDI device:\n{stdout}");
    assert!(
        stderr.contains("unresolvable CDI devices"),
        "stderr: {stderr}"
    );
}
