//! Unit tests of [`super`]: each edit kind, the host lookups, and the all-or-nothing contract.

use std::collections::BTreeMap;

use nix::sys::stat::lstat;
use serde_json::json;

use super::env::env_key;
use super::mounts::path_depth;
use super::*;
use crate::host::{FakeHostFs, HostNode};
use crate::spec::{Device, DeviceNode, Hook, IntelRdt, Mount, NetDevice};

fn node(path: &str) -> DeviceNode {
    DeviceNode {
        path: path.into(),
        ..DeviceNode::default()
    }
}

fn edits_with_nodes(nodes: Vec<DeviceNode>) -> ContainerEdits {
    ContainerEdits {
        device_nodes: nodes,
        ..ContainerEdits::default()
    }
}

fn edits_with_env(env: &[&str]) -> ContainerEdits {
    ContainerEdits {
        env: env.iter().map(|e| (*e).to_owned()).collect(),
        ..ContainerEdits::default()
    }
}

fn apply_ok(config: &mut Value, edits: &ContainerEdits) {
    apply(config, edits).expect("edits apply");
}

#[test]
fn fills_a_device_node_from_the_host() {
    let mut config = json!({"ociVersion": "1.0.2"});
    apply_ok(&mut config, &edits_with_nodes(vec![node("/dev/null")]));
    let mode = lstat("/dev/null").expect("stat /dev/null").st_mode & 0o7777;
    assert_eq!(
        config,
        json!({
            "ociVersion": "1.0.2",
            "linux": {
                "devices": [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": mode}],
                "resources": {"devices": [
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
                ]}
            }
        })
    );
}

#[test]
fn trusts_numbers_when_type_and_major_are_set() {
    let mut config = json!({});
    let n = DeviceNode {
        kind: Some("c".into()),
        major: Some(226),
        minor: Some(128),
        host_path: Some("/nonexistent/renderD128".into()),
        permissions: Some("rw".into()),
        ..node("/dev/dri/renderD128")
    };
    apply_ok(&mut config, &edits_with_nodes(vec![n]));
    assert_eq!(
        config["linux"]["devices"][0],
        json!({"path": "/dev/dri/renderD128", "type": "c", "major": 226, "minor": 128})
    );
    assert_eq!(config["linux"]["resources"]["devices"][0]["access"], "rw");
}

#[test]
fn host_path_is_stated_instead_of_path() {
    let mut config = json!({});
    let n = DeviceNode {
        host_path: Some("/dev/zero".into()),
        file_mode: Some(0o600),
        ..node("/dev/kfd")
    };
    apply_ok(&mut config, &edits_with_nodes(vec![n]));
    assert_eq!(
        config["linux"]["devices"][0],
        json!({"path": "/dev/kfd", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600})
    );
}

/// An empty `hostPath` is none: the host node is at `path`, and the resolved node says so (the
/// prestart stage bind-mounts from `host_path`, else `path`).
#[test]
fn an_empty_host_path_resolves_to_none() {
    let n = DeviceNode {
        host_path: Some(String::new()),
        ..node("/dev/null")
    };
    let resolved =
        resolve_nodes(&json!({}), &[&edits_with_nodes(vec![n])], &LiveHostFs).expect("resolves");
    assert_eq!(
        (
            resolved[0].host_path.as_deref(),
            resolved[0].major,
            resolved[0].minor
        ),
        (None, 1, 3)
    );
}

#[test]
fn rejects_a_symlink_host_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("null");
    std::os::unix::fs::symlink("/dev/null", &link).expect("symlink");
    let mut config = json!({"keep": 1});
    let n = DeviceNode {
        host_path: Some(link.display().to_string()),
        ..node("/dev/null")
    };
    let err = apply(&mut config, &edits_with_nodes(vec![n])).expect_err("symlink rejected");
    assert!(matches!(err, EditError::NotADeviceNode { .. }), "{err}");
    assert!(err.to_string().contains("is not a device node"), "{err}");
    assert_eq!(config, json!({"keep": 1}));
}

#[test]
fn rejects_a_regular_file_and_a_missing_path() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let n = DeviceNode {
        host_path: Some(file.path().display().to_string()),
        ..node("/dev/x")
    };
    let err = apply(&mut json!({}), &edits_with_nodes(vec![n])).expect_err("file rejected");
    assert!(matches!(err, EditError::NotADeviceNode { .. }), "{err}");
    let err = apply(
        &mut json!({}),
        &edits_with_nodes(vec![node("/nonexistent/dev")]),
    )
    .expect_err("missing rejected");
    assert!(matches!(err, EditError::StatHostDevice { .. }), "{err}");
}

#[test]
fn type_mismatch_is_an_error() {
    let n = DeviceNode {
        kind: Some("b".into()),
        ..node("/dev/null")
    };
    let err = apply(&mut json!({}), &edits_with_nodes(vec![n])).expect_err("mismatch");
    assert!(matches!(err, EditError::TypeMismatch { .. }), "{err}");
}

#[test]
fn fifo_gets_no_cgroup_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o640)).expect("mkfifo");
    let mut config = json!({});
    let n = DeviceNode {
        host_path: Some(fifo.display().to_string()),
        ..node("/run/fifo")
    };
    apply_ok(&mut config, &edits_with_nodes(vec![n]));
    assert_eq!(
        config["linux"]["devices"][0],
        json!({"path": "/run/fifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o640})
    );
    assert!(config["linux"].get("resources").is_none());
}

#[test]
fn replaces_a_device_with_the_same_path_and_keeps_one_rule() {
    let mut config = json!({
        "linux": {
            "devices": [
                {"path": "/dev/null", "type": "c", "major": 9, "minor": 9},
                {"path": "/dev/other", "type": "c", "major": 1, "minor": 7}
            ],
            "resources": {"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
            ]}
        }
    });
    let n = DeviceNode {
        file_mode: Some(0o666),
        ..node("/dev/null")
    };
    apply_ok(&mut config, &edits_with_nodes(vec![n.clone(), n]));
    let paths: Vec<&str> = config["linux"]["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["path"].as_str().expect("path"))
        .collect();
    assert_eq!(paths, ["/dev/other", "/dev/null"]);
    assert_eq!(
        config["linux"]["resources"]["devices"]
            .as_array()
            .expect("rules")
            .len(),
        2
    );
}

#[test]
fn non_root_user_owns_nodes_unless_the_spec_says_otherwise() {
    let mut config = json!({"process": {"user": {"uid": 1000, "gid": 0}}});
    let a = DeviceNode {
        file_mode: Some(0o666),
        ..node("/dev/null")
    };
    let b = DeviceNode {
        file_mode: Some(0o666),
        uid: Some(0),
        gid: Some(44),
        ..node("/dev/zero")
    };
    apply_ok(&mut config, &edits_with_nodes(vec![a, b]));
    assert_eq!(config["linux"]["devices"][0]["uid"], 1000);
    assert!(config["linux"]["devices"][0].get("gid").is_none());
    assert_eq!(config["linux"]["devices"][1]["uid"], 0);
    assert_eq!(config["linux"]["devices"][1]["gid"], 44);
}

#[test]
fn env_last_writer_wins_in_place() {
    let mut config = json!({"process": {"env": ["PATH=/bin", "A=old", "B"]}});
    let first = edits_with_env(&["A=1", "C=1"]);
    let second = edits_with_env(&["C=2", "B=set"]);
    apply_many(&mut config, &[&first, &second]).expect("apply");
    assert_eq!(
        config["process"]["env"],
        json!(["PATH=/bin", "A=1", "B=set", "C=2"])
    );
}

#[test]
fn mounts_replace_same_destination_and_sort_stably_by_depth() {
    let mut config = json!({"mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/opt/x", "source": "/old"}
    ]});
    let edits = ContainerEdits {
        mounts: vec![
            Mount {
                host_path: "/new".into(),
                container_path: "/opt/x".into(),
                options: vec!["ro".into(), "bind".into()],
                kind: None,
            },
            Mount {
                host_path: "/lib".into(),
                container_path: "/a/".into(),
                options: vec![],
                kind: Some("bind".into()),
            },
        ],
        ..Default::default()
    };
    apply_ok(&mut config, &edits);
    assert_eq!(
        config["mounts"],
        json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/a/", "type": "bind", "source": "/lib"},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
            {"destination": "/opt/x", "source": "/new", "options": ["ro", "bind"]}
        ])
    );
}

#[test]
fn depth_counts_separators_of_the_clean_path() {
    assert_eq!(path_depth("/"), 1);
    assert_eq!(path_depth("/dev"), 1);
    assert_eq!(path_depth("/dev/"), 1);
    assert_eq!(path_depth("//dev//dri/./x"), 3);
    assert_eq!(path_depth("/a/b/../c"), 2);
    assert_eq!(path_depth("a/b"), 1);
    assert_eq!(path_depth(""), 0);
}

#[test]
fn hooks_rdt_gids_and_net_devices() {
    let mut config = json!({"process": {"user": {"uid": 0, "gid": 0, "additionalGids": [44]}}});
    let edits = ContainerEdits {
        hooks: vec![Hook {
            hook_name: "createContainer".into(),
            path: "/usr/bin/hook".into(),
            args: vec!["hook".into(), "x".into()],
            env: vec![],
            timeout: Some(5),
        }],
        intel_rdt: Some(IntelRdt {
            clos_id: Some("gpu".into()),
            ..Default::default()
        }),
        additional_gids: vec![0, 44, 109, 109],
        net_devices: vec![NetDevice {
            host_interface_name: "eth7".into(),
            name: "net0".into(),
        }],
        ..Default::default()
    };
    apply_ok(&mut config, &edits);
    assert_eq!(
        config,
        json!({
            "process": {"user": {"uid": 0, "gid": 0, "additionalGids": [44, 109]}},
            "linux": {"netDevices": {"eth7": {"name": "net0"}}, "intelRdt": {"closID": "gpu"}},
            "hooks": {"createContainer": [{"path": "/usr/bin/hook", "args": ["hook", "x"], "timeout": 5}]}
        })
    );
}

#[test]
fn unknown_hook_changes_nothing() {
    let mut config = json!({"process": {"env": []}});
    let edits = ContainerEdits {
        env: vec!["A=1".into()],
        hooks: vec![Hook {
            hook_name: "precreate".into(),
            path: "/x".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = apply(&mut config, &edits).expect_err("unknown hook");
    assert!(matches!(err, EditError::UnknownHook { .. }));
    assert_eq!(config, json!({"process": {"env": []}}));
}

#[test]
fn wrong_config_shape_is_reported_with_the_field() {
    let mut config = json!({"linux": {"devices": {}}});
    let err = apply(
        &mut config,
        &edits_with_nodes(vec![DeviceNode {
            kind: Some("c".into()),
            major: Some(1),
            ..node("/dev/x")
        }]),
    )
    .expect_err("shape");
    assert_eq!(
        err.to_string(),
        "cannot edit OCI config: linux.devices is not an array"
    );
    let err = apply(&mut json!([]), &edits_with_env(&["A=1"])).expect_err("shape");
    assert_eq!(
        err.to_string(),
        "cannot edit OCI config: the config is not an object"
    );
}

#[test]
fn spec_edits_apply_once_and_unknown_names_fail() {
    let spec = Spec {
        cdi_version: "0.5.0".into(),
        kind: "example.com/device".into(),
        container_edits: edits_with_env(&["SPEC=1"]),
        devices: vec![
            Device {
                name: "a".into(),
                container_edits: edits_with_env(&["A=1"]),
                ..Default::default()
            },
            Device {
                name: "b".into(),
                container_edits: edits_with_env(&["B=1"]),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let mut config = json!({});
    apply_spec_devices(&mut config, &spec, &["b", "a"]).expect("apply");
    assert_eq!(config["process"]["env"], json!(["SPEC=1", "B=1", "A=1"]));
    let err = apply_spec_devices(&mut config, &spec, &["a", "c"]).expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "spec example.com/device has no device named \"c\""
    );
    assert_eq!(config["process"]["env"], json!(["SPEC=1", "B=1", "A=1"]));
}

proptest::proptest! {
    /// Env: keys stay unique, each key ends with its last value, and keys keep the position
    /// of their first appearance (the config's own entries first).
    #[test]
    fn env_is_last_writer_wins_by_key(
        base in proptest::collection::vec(("[A-D]", "[a-z0-9=]{0,3}"), 0..6),
        edits in proptest::collection::vec(
            proptest::collection::vec(("[A-F]", "[a-z0-9=]{0,3}"), 0..5), 1..4),
    ) {
        let mut seen = std::collections::HashSet::new();
        let base: Vec<String> = base
            .into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let edits: Vec<ContainerEdits> = edits
            .into_iter()
            .map(|env| ContainerEdits {
                env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
                ..ContainerEdits::default()
            })
            .collect();
        let mut expected: Vec<(String, String)> = Vec::new();
        for entry in base.iter().chain(edits.iter().flat_map(|e| &e.env)) {
            let key = env_key(entry).to_string();
            match expected.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = entry.clone(),
                None => expected.push((key, entry.clone())),
            }
        }
        let mut config = json!({"process": {"env": base}});
        let refs: Vec<&ContainerEdits> = edits.iter().collect();
        apply_many(&mut config, &refs).expect("env edits apply");
        let expected: Vec<String> = expected.into_iter().map(|(_, e)| e).collect();
        proptest::prop_assert_eq!(config["process"]["env"].clone(), json!(expected));
    }
}

/// The edits one at a time (env and mounts as one step each, as they are applied), each
/// checked against and applied to the result of the steps before it, on a copy: the order
/// of work and errors `apply_many` promises, spelt out.
fn step_by_step(config: &Value, edits: &[&ContainerEdits]) -> Result<Value, EditError> {
    let all = |f: fn(&ContainerEdits) -> ContainerEdits| {
        edits
            .iter()
            .map(|e| f(e))
            .fold(ContainerEdits::default(), |mut a, b| {
                a.env.extend(b.env);
                a.mounts.extend(b.mounts);
                a.additional_gids.extend(b.additional_gids);
                a
            })
    };
    let mut steps = vec![all(|e| ContainerEdits {
        env: e.env.clone(),
        ..Default::default()
    })];
    for e in edits {
        steps.extend(
            e.device_nodes
                .iter()
                .map(|n| edits_with_nodes(vec![n.clone()])),
        );
    }
    for e in edits {
        steps.extend(e.net_devices.iter().map(|n| ContainerEdits {
            net_devices: vec![n.clone()],
            ..Default::default()
        }));
    }
    steps.push(all(|e| ContainerEdits {
        mounts: e.mounts.clone(),
        ..Default::default()
    }));
    for e in edits {
        steps.extend(e.hooks.iter().map(|h| ContainerEdits {
            hooks: vec![h.clone()],
            ..Default::default()
        }));
    }
    steps.push(ContainerEdits {
        intel_rdt: edits.iter().rev().find_map(|e| e.intel_rdt.clone()),
        ..Default::default()
    });
    steps.push(all(|e| ContainerEdits {
        additional_gids: e.additional_gids.clone(),
        ..Default::default()
    }));
    let mut work = config.clone();
    for step in &steps {
        let resolved = resolve_nodes(&work, &[step], &LiveHostFs)?;
        apply_resolved(&mut work, &[step], &resolved)?;
    }
    Ok(work)
}

fn shaped(kind: u8, array: Value, object: Value) -> Option<Value> {
    match kind {
        0 => None,
        1 => Some(Value::Null),
        2 => Some(array),
        3 => Some(object),
        _ => Some(json!("neither")),
    }
}

proptest::proptest! {
    /// Checking first and applying in place gives what applying step by step to a copy
    /// gives: the same config, or the same first error and the config untouched.
    #[test]
    fn checking_first_equals_applying_step_by_step_to_a_copy(
        shapes in proptest::collection::vec(0u8..5, 9),
        envs in proptest::collection::vec("[AB]=[0-9]", 0..3),
        nodes in proptest::collection::vec(0usize..4, 0..3),
        mounts in proptest::collection::vec("/[ab]{1,2}", 0..3),
        hooks in proptest::collection::vec(0usize..3, 0..3),
        gids in proptest::collection::vec(0u32..3, 0..3),
        rdt in proptest::bool::ANY,
        split in 0usize..4,
    ) {
        let mut process = serde_json::Map::new();
        let mut linux = serde_json::Map::new();
        let mut root = serde_json::Map::new();
        let set = |map: &mut serde_json::Map<String, Value>, key: &str, value: Option<Value>| {
            if let Some(value) = value {
                map.insert(key.into(), value);
            }
        };
        set(&mut process, "env", shaped(shapes[0], json!(["A=9", 1]), json!({})));
        set(&mut process, "user", shaped(shapes[1], json!([]), json!({"uid": 5, "additionalGids": [2]})));
        set(&mut linux, "devices", shaped(shapes[2], json!([{"path": "/dev/null"}]), json!({})));
        set(&mut linux, "resources", shaped(shapes[3], json!([]), json!({"devices": []})));
        set(&mut linux, "netDevices", shaped(shapes[4], json!([]), json!({"x": {}})));
        set(&mut root, "process", shaped(shapes[5], json!([]), Value::Object(process)));
        set(&mut root, "linux", shaped(shapes[6], json!([]), Value::Object(linux)));
        set(&mut root, "mounts", shaped(shapes[7], json!([{"destination": "/a"}]), json!({})));
        set(&mut root, "hooks", shaped(shapes[8], json!([]), json!({"prestart": []})));
        let config = Value::Object(root);

        let node_of = |i: &usize| match i {
            0 => DeviceNode { kind: Some("c".into()), major: Some(7), ..node("/dev/fixed") },
            1 => node("/dev/null"),
            2 => node("/nonexistent/amdgpu-cdi-test"),
            _ => node("/"),
        };
        let hook_of = |i: &usize| Hook {
            hook_name: ["prestart", "createContainer", "precreate"][*i].into(),
            path: "/bin/hook".into(),
            ..Default::default()
        };
        let whole = ContainerEdits {
            env: envs,
            device_nodes: nodes.iter().map(node_of).collect(),
            net_devices: if rdt { vec![NetDevice { host_interface_name: "eth0".into(), name: "n0".into() }] } else { vec![] },
            mounts: mounts.iter().map(|m| Mount { host_path: "/h".into(), container_path: m.clone(), ..Default::default() }).collect(),
            hooks: hooks.iter().map(hook_of).collect(),
            intel_rdt: rdt.then(|| IntelRdt { clos_id: Some("c".into()), ..Default::default() }),
            additional_gids: gids,
        };
        // The same edits as one set or as spec-level plus device edits.
        let first = ContainerEdits { env: whole.env.iter().take(split).cloned().collect(), ..whole.clone() };
        let second = ContainerEdits { env: whole.env.iter().skip(split).cloned().collect(), ..Default::default() };
        for edits in [vec![&whole], vec![&first, &second]] {
            let expected = step_by_step(&config, &edits).map_err(|e| e.to_string());
            let mut actual = config.clone();
            match apply_many(&mut actual, &edits) {
                Ok(_) => proptest::prop_assert_eq!(Ok(actual), expected),
                Err(err) => {
                    proptest::prop_assert_eq!(Err(err.to_string()), expected);
                    proptest::prop_assert_eq!(&actual, &config, "changed on error");
                }
            }
        }
    }
}

/// The host is asked through [`HostFs`], so a block device (which only root can make) is
/// resolved without one, and what is returned is what was written.
#[test]
fn a_fake_host_answers_for_the_host_nodes() {
    let host = FakeHostFs(BTreeMap::from([(
        "/dev/vdz",
        HostNode::block_device(7, 250),
    )]));
    let mut config = json!({"process": {"user": {"uid": 1000, "gid": 1000}}});
    let nodes = apply_many_on(
        &mut config,
        &[&edits_with_nodes(vec![node("/dev/vdz")])],
        &host,
    )
    .expect("apply");
    assert_eq!(
        config["linux"]["devices"],
        json!([{"path": "/dev/vdz", "type": "b", "major": 7, "minor": 250, "fileMode": 0o660, "uid": 1000, "gid": 1000}])
    );
    assert_eq!(
        config["linux"]["resources"]["devices"],
        json!([{"allow": true, "type": "b", "major": 7, "minor": 250, "access": "rwm"}])
    );
    assert_eq!(
        nodes,
        [ResolvedNode {
            path: "/dev/vdz".into(),
            host_path: None,
            kind: "b".into(),
            major: 7,
            minor: 250,
            file_mode: Some(0o660),
            uid: Some(1000),
            gid: Some(1000),
            access: "rwm".into(),
        }]
    );
    let unchanged = config.clone();
    let resolved = resolve_nodes(&config, &[&edits_with_nodes(vec![node("/dev/vdz")])], &host)
        .expect("resolve");
    assert_eq!((resolved, &config), (nodes, &unchanged));
    let err = apply_many_on(
        &mut config,
        &[&edits_with_nodes(vec![node("/dev/missing")])],
        &host,
    )
    .expect_err("missing");
    assert!(matches!(err, EditError::StatHostDevice { .. }), "{err}");
    assert_eq!(config, unchanged);
}
