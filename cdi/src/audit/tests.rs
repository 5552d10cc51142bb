//! Unit tests of [`super`]: every danger, where it is found, and what it says.

use std::collections::BTreeMap;

use super::*;
use crate::codec::{Format, parse};
use crate::host::FakeHostFs;

fn host() -> FakeHostFs {
    FakeHostFs(BTreeMap::from([
        ("/dev/sda", HostNode::block_device(8, 0)),
        ("/dev/kfd", HostNode::char_device(235, 0)),
        ("/dev/mem", HostNode::char_device(1, 1)),
        ("/dev/fast-mem", HostNode::char_device(1, 1)),
    ]))
}

fn shown(yaml: &str) -> Vec<String> {
    let spec = parse(yaml.as_bytes(), Format::Yaml).expect("spec");
    warnings_on(&spec, &host())
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn device(edits: &str) -> String {
    format!(
        "cdiVersion: '0.5.0'\nkind: example.com/x\ndevices:\n- name: d\n  containerEdits:\n{edits}"
    )
}

#[test]
fn a_gpu_spec_has_no_warnings() {
    let yaml = "cdiVersion: '0.5.0'\nkind: amd.com/gpu\ncontainerEdits:\n  deviceNodes: [{path: /dev/kfd}]\ndevices:\n- name: '0'\n  containerEdits:\n    deviceNodes: [{path: /dev/dri/renderD128, hostPath: /dev/dri/renderD128}]\n    mounts: [{hostPath: /opt/rocm/lib, containerPath: /opt/rocm/lib, options: [ro, bind]}, {hostPath: /etc/vulkan/icd.d/amd.json, containerPath: /etc/vulkan/icd.d/amd.json, options: [ro, bind]}]\n    hooks: [{hookName: createContainer, path: /usr/bin/true}]\n    env: [ROCR_VISIBLE_DEVICES=0, LD_BIND_NOW=1]\n";
    assert_eq!(shown(yaml), Vec::<String>::new());
}

#[test]
fn block_devices_are_found_by_type_or_on_the_host() {
    let yaml = device(
        "    deviceNodes:\n    - {path: /dev/sda}\n    - {path: /dev/disk0, type: b, permissions: r}\n    - {path: /dev/kfd}\n",
    );
    assert_eq!(
        shown(&yaml),
        [
            "device \"d\": containerEdits.deviceNodes[0]: injects the host block device /dev/sda \
             with access rwm: the container can read and write the host disk behind it",
            "device \"d\": containerEdits.deviceNodes[1]: injects the host block device \
             /dev/disk0 with access r: the container can read the host disk behind it",
        ]
    );
}

/// An empty `hostPath` is no `hostPath` to the engines (and to `edits`): they use `path`, so the
/// audit looks there too instead of at an empty path.
#[test]
fn an_empty_host_path_is_audited_at_the_path() {
    let yaml = device("    deviceNodes:\n    - {path: /dev/sda, hostPath: ''}\n");
    assert_eq!(
        shown(&yaml),
        [
            "device \"d\": containerEdits.deviceNodes[0]: injects the host block device /dev/sda \
          with access rwm: the container can read and write the host disk behind it"
        ]
    );
}

#[test]
fn memory_devices_are_found_by_path_or_number() {
    let yaml = device(
        "    deviceNodes:\n    - {path: /dev/mem}\n    - {path: /dev/x, hostPath: /dev/fast-mem}\n    - {path: /dev/port, type: c, major: 1, minor: 4}\n    - {path: /dev/null, type: c, major: 1, minor: 3}\n",
    );
    let found: Vec<String> = shown(&yaml)
        .iter()
        .map(|w| w.split(": ").nth(2).unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        found,
        [
            "injects /dev/mem",
            "injects /dev/fast-mem",
            "injects /dev/port",
        ]
    );
}

#[test]
fn sensitive_bind_mounts_and_directories_holding_them() {
    let yaml = device(
        "    mounts:\n    - {hostPath: /, containerPath: /host, options: [rbind]}\n    - {hostPath: /etc/, containerPath: /e, options: [ro, bind]}\n    - {hostPath: /var/run, containerPath: /r, options: [bind]}\n    - {hostPath: /run/docker.sock, containerPath: /d.sock}\n    - {hostPath: proc, containerPath: /proc, type: proc}\n    - {hostPath: /opt/../proc, containerPath: /p, options: [ro, bind]}\n",
    );
    assert_eq!(
        shown(&yaml),
        [
            "device \"d\": containerEdits.mounts[0].hostPath: bind-mounts the host's / \
             read-write: the whole host file system",
            "device \"d\": containerEdits.mounts[1].hostPath: bind-mounts the host's /etc/ \
             read-only: the host's configuration and password hashes",
            "device \"d\": containerEdits.mounts[2].hostPath: bind-mounts the host's /var/run \
             read-write, which holds /var/run/docker.sock: the Docker API, which is root on the \
             host",
            "device \"d\": containerEdits.mounts[3].hostPath: bind-mounts the host's \
             /run/docker.sock read-write: the Docker API, which is root on the host",
            "device \"d\": containerEdits.mounts[5].hostPath: \"/opt/../proc\" uses `..`, so it \
             may not name the place it seems to",
            "device \"d\": containerEdits.mounts[5].hostPath: bind-mounts the host's \
             /opt/../proc read-only: every host process",
        ]
    );
}

#[test]
fn relative_and_parent_paths() {
    let yaml = device(
        "    deviceNodes: [{path: /dev/x, hostPath: dev/x}, {path: /dev/../dev/y}]\n    hooks: [{hookName: createContainer, path: bin/hook}]\n    mounts: [{hostPath: lib, containerPath: /usr/../lib, options: [bind]}]\n",
    );
    assert_eq!(
        shown(&yaml),
        [
            "device \"d\": containerEdits.deviceNodes[0].hostPath: relative path \"dev/x\": the \
             runtime resolves it against its own working directory",
            "device \"d\": containerEdits.deviceNodes[1].path: \"/dev/../dev/y\" uses `..`, so it \
             may not name the place it seems to",
            "device \"d\": containerEdits.hooks[0].path: relative path \"bin/hook\": the runtime \
             resolves it against its own working directory",
            "device \"d\": containerEdits.mounts[0].hostPath: relative path \"lib\": the runtime \
             resolves it against its own working directory",
            "device \"d\": containerEdits.mounts[0].containerPath: \"/usr/../lib\" uses `..`, so \
             it may not name the place it seems to",
        ]
    );
}

#[test]
fn loader_variables_spec_wide_and_per_device() {
    let yaml = "cdiVersion: '0.5.0'\nkind: example.com/x\ncontainerEdits:\n  env: [LD_AUDIT=/a.so]\ndevices:\n- name: d\n  containerEdits:\n    env: [LD_PRELOAD=/x.so, LD_PRELOADX=1, LD_LIBRARY_PATH, GCONV_PATH=/g]\n";
    assert_eq!(
        shown(yaml),
        [
            "containerEdits.env[0]: sets LD_AUDIT: the dynamic loader loads the code it names \
             into every process of the container",
            "device \"d\": containerEdits.env[0]: sets LD_PRELOAD: the dynamic loader loads the \
             code it names into every process of the container",
            "device \"d\": containerEdits.env[2]: sets LD_LIBRARY_PATH: the dynamic loader loads \
             the code it names into every process of the container",
            "device \"d\": containerEdits.env[3]: sets GCONV_PATH: the dynamic loader loads the \
             code it names into every process of the container",
        ]
    );
}

#[test]
fn warnings_are_typed_with_device_field_and_code() {
    let spec = parse(
        device("    env: [LD_PRELOAD=/x.so]\n").as_bytes(),
        Format::Yaml,
    )
    .expect("spec");
    let found = warnings_on(&spec, &host());
    assert_eq!(
        found,
        [Warning {
            device: Some("d".to_owned()),
            field: "containerEdits.env[0]".to_owned(),
            danger: Danger::LoaderVariable {
                name: "LD_PRELOAD".to_owned()
            },
        }]
    );
    assert_eq!(found[0].danger.code(), "loader-variable");
}

#[test]
fn normalize_resolves_by_text() {
    assert_eq!(normalize("//etc/./x/.."), Some("/etc".into()));
    assert_eq!(normalize("/.."), Some("/".into()));
    assert_eq!(normalize("etc"), None);
}
