//! Applying CDI container edits to an OCI runtime config held as JSON.
//!
//! The config is edited as a [`serde_json::Value`] (with `preserve_order`), never round-tripped
//! through a typed OCI model, so fields this crate does not know and the key order survive.
//!
//! The semantics mirror the reference Go library (`pkg/cdi/container-edits.go`): the edits of
//! every requested device are concatenated (a spec's own edits once, before its first device),
//! then applied kind by kind: environment, device nodes, network devices, mounts, hooks, Intel RDT,
//! additional GIDs. A device node's host node is stat'ed (never followed through a symlink) unless
//! the spec gives a type and a non-zero major, or is a FIFO; a node without `uid`/`gid` is owned
//! by the container user when that user is not root. Deliberate differences from the Go library
//! 0.5.2:
//! - a device node whose host node was stat'ed also gets the host node's permission bits as
//!   `fileMode` when the spec leaves it unset (REFERENCE.md 1.5);
//! - an identical `linux.resources.devices` allow rule is not added twice;
//! - mounts are sorted stably by the depth of their destination (the newer Go releases do this;
//!   0.5.2 additionally orders equal depths by destination);
//! - mounts are never given ID mappings for user namespaces (newer Go releases add them);
//! - an environment entry replaces an entry of the config with the same key (0.5.2, through
//!   runtime-tools, only replaces entries added by CDI itself and appends a second `KEY=` entry).
//!
//! Every entry point is all-or-nothing: the edits are applied to a copy that replaces the config
//! only when everything succeeded.

use std::collections::HashMap;

use nix::sys::stat::{SFlag, lstat};
use serde_json::{Map, Value, json};

use crate::spec::{ContainerEdits, DeviceNode, Hook, IntelRdt, Mount, Spec};
use crate::text::escape;
use crate::validate::HOOK_NAMES;

/// Why edits could not be applied. The config is unchanged whenever one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A device name requested from a spec is not in it.
    #[error("spec {kind} has no device named {name:?}")]
    UnknownDevice {
        /// The spec's `vendor/class`.
        kind: String,
        /// The requested device name.
        name: String,
    },
    /// The host node of a device node could not be stat'ed.
    #[error(
        "cannot stat host device {} for CDI device node {}",
        escape(host_path),
        escape(path)
    )]
    StatHostDevice {
        /// The device node's path in the container.
        path: String,
        /// The host path that was stat'ed.
        host_path: String,
        /// The failure.
        #[source]
        source: nix::Error,
    },
    /// The host path is a symlink, a regular file, a directory or a socket.
    #[error(
        "host path {} of CDI device node {} is not a device node (symlinks are not followed: \
         point hostPath at the node itself)",
        escape(host_path),
        escape(path)
    )]
    NotADeviceNode {
        /// The device node's path in the container.
        path: String,
        /// The host path.
        host_path: String,
    },
    /// The spec declares a node type the host node does not have.
    #[error(
        "CDI device node {} declares type {declared:?} but host node {} has type {found:?}",
        escape(path),
        escape(host_path)
    )]
    TypeMismatch {
        /// The device node's path in the container.
        path: String,
        /// The host path.
        host_path: String,
        /// The type the spec declares.
        declared: String,
        /// The type of the host node.
        found: String,
    },
    /// A hook names an OCI stage that does not exist.
    #[error(
        "unknown hook name {name:?} (expected one of prestart, createRuntime, createContainer, \
         startContainer, poststart, poststop)"
    )]
    UnknownHook {
        /// The hook name from the spec.
        name: String,
    },
    /// The OCI config has a field of the wrong JSON type where an edit must go.
    #[error("cannot edit OCI config: {field} is not {expected}")]
    ConfigShape {
        /// The dotted path of the field, e.g. `linux.devices`.
        field: String,
        /// What it should be, e.g. `an array`.
        expected: &'static str,
    },
}

/// Applies one set of edits to `config`.
pub fn apply(config: &mut Value, edits: &ContainerEdits) -> Result<(), EditError> {
    apply_many(config, &[edits])
}

/// Applies the spec-level edits of `spec` once, then the edits of each named device, in order.
///
/// Fails without touching `config` when a name is not a device of `spec`.
pub fn apply_spec_devices(
    config: &mut Value,
    spec: &Spec,
    names: &[&str],
) -> Result<(), EditError> {
    let mut all = vec![&spec.container_edits];
    for name in names {
        let device = spec
            .devices
            .iter()
            .find(|d| d.name == *name)
            .ok_or_else(|| EditError::UnknownDevice {
                kind: spec.kind.clone(),
                name: (*name).to_string(),
            })?;
        all.push(&device.container_edits);
    }
    apply_many(config, &all)
}

/// Applies several sets of edits as one: they are concatenated in order (the last Intel RDT
/// setting wins), then applied kind by kind like the reference library does.
///
/// Everything that can fail (host device nodes, the shape of the config's fields, hook names) is
/// checked before the first change, in the order the edits are applied, so a failure leaves
/// `config` as it was without a copy of it: a config is 10-30 kB, and copying it was most of the
/// work of injecting a device.
pub fn apply_many(config: &mut Value, edits: &[&ContainerEdits]) -> Result<(), EditError> {
    let resolved = check(config, edits)?;
    apply_checked(config, edits, &resolved)
}

/// Resolves the device nodes of `edits` and checks every field they will change, in the order
/// they are applied, without changing anything.
fn check(config: &Value, edits: &[&ContainerEdits]) -> Result<Vec<ResolvedNode>, EditError> {
    if edits.iter().any(|e| !e.env.is_empty()) {
        check_array_at(config, &["process", "env"])?;
    }
    let mut resolved = Vec::new();
    for node in edits.iter().flat_map(|e| &e.device_nodes) {
        let node = resolve_node(node)?;
        check_array_at(config, &["linux", "devices"])?;
        if node.kind == "b" || node.kind == "c" {
            check_array_at(config, &["linux", "resources", "devices"])?;
        }
        resolved.push(node);
    }
    if edits.iter().any(|e| !e.net_devices.is_empty()) {
        check_object_at(config, &["linux", "netDevices"])?;
    }
    if edits.iter().any(|e| !e.mounts.is_empty()) {
        check_array_at(config, &["mounts"])?;
    }
    for hook in edits.iter().flat_map(|e| &e.hooks) {
        check_hook_name(hook)?;
        check_array_at(config, &["hooks", &hook.hook_name])?;
    }
    if edits.iter().any(|e| e.intel_rdt.is_some()) {
        check_object_at(config, &["linux"])?;
    }
    if edits
        .iter()
        .flat_map(|e| &e.additional_gids)
        .any(|g| *g != 0)
    {
        check_array_at(config, &["process", "user", "additionalGids"])?;
    }
    Ok(resolved)
}

/// Applies `edits` to a config [`check`] accepted, with the nodes it resolved. The errors of the
/// field helpers cannot occur any more; they are passed on rather than assumed away.
fn apply_checked(
    config: &mut Value,
    edits: &[&ContainerEdits],
    resolved: &[ResolvedNode],
) -> Result<(), EditError> {
    let env: Vec<&String> = edits.iter().flat_map(|e| &e.env).collect();
    if !env.is_empty() {
        apply_env(config, &env)?;
    }
    for (node, resolved) in edits.iter().flat_map(|e| &e.device_nodes).zip(resolved) {
        apply_device_node(config, node, resolved)?;
    }
    for net in edits.iter().flat_map(|e| &e.net_devices) {
        let map = object_at(config, &["linux", "netDevices"])?;
        map.insert(net.host_interface_name.clone(), json!({ "name": net.name }));
    }
    let mounts: Vec<&Mount> = edits.iter().flat_map(|e| &e.mounts).collect();
    if !mounts.is_empty() {
        apply_mounts(config, &mounts)?;
    }
    for hook in edits.iter().flat_map(|e| &e.hooks) {
        apply_hook(config, hook)?;
    }
    if let Some(rdt) = edits.iter().rev().find_map(|e| e.intel_rdt.as_ref()) {
        object_at(config, &["linux"])?.insert("intelRdt".to_string(), intel_rdt_json(rdt));
    }
    let gids: Vec<u32> = edits
        .iter()
        .flat_map(|e| &e.additional_gids)
        .copied()
        .filter(|g| *g != 0)
        .collect();
    if !gids.is_empty() {
        let list = array_at(config, &["process", "user", "additionalGids"])?;
        for gid in gids {
            if !list.iter().any(|v| v.as_u64() == Some(u64::from(gid))) {
                list.push(json!(gid));
            }
        }
    }
    Ok(())
}

/// `KEY=VALUE` entries: an entry whose key is already set replaces it in place, others append.
fn apply_env(config: &mut Value, env: &[&String]) -> Result<(), EditError> {
    let list = array_at(config, &["process", "env"])?;
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, entry) in list.iter().enumerate() {
        if let Some(s) = entry.as_str() {
            index.insert(env_key(s).to_string(), i);
        }
    }
    for entry in env {
        let key = env_key(entry);
        match index.get(key) {
            Some(&i) => list[i] = json!(entry),
            None => {
                index.insert(key.to_string(), list.len());
                list.push(json!(entry));
            }
        }
    }
    Ok(())
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(key, _)| key)
}

/// A device node with everything the OCI config needs filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResolvedNode {
    kind: String,
    major: i64,
    minor: i64,
    file_mode: Option<u32>,
}

/// Fills type, major, minor and fileMode from the host node unless the spec fixes them
/// (REFERENCE.md 1.5): numbers are trusted when a type is set and major is non-zero, or for FIFOs.
fn resolve_node(node: &DeviceNode) -> Result<ResolvedNode, EditError> {
    let declared = node.kind.clone().unwrap_or_default();
    let major = node.major.unwrap_or(0);
    let minor = node.minor.unwrap_or(0);
    if !declared.is_empty() && (major != 0 || declared == "p") {
        return Ok(ResolvedNode {
            kind: declared,
            major,
            minor,
            file_mode: node.file_mode,
        });
    }
    let host_path = node
        .host_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(&node.path);
    let host = host_node(host_path).map_err(|err| match err {
        HostNodeError::Stat(source) => EditError::StatHostDevice {
            path: node.path.clone(),
            host_path: host_path.to_string(),
            source,
        },
        HostNodeError::NotADevice => EditError::NotADeviceNode {
            path: node.path.clone(),
            host_path: host_path.to_string(),
        },
    })?;
    if !declared.is_empty() && declared != host.kind {
        return Err(EditError::TypeMismatch {
            path: node.path.clone(),
            host_path: host_path.to_string(),
            declared,
            found: host.kind.to_string(),
        });
    }
    let kind = host.kind.to_string();
    let (major, minor) = if major == 0 && kind != "p" {
        (host.major, host.minor)
    } else {
        (major, minor)
    };
    Ok(ResolvedNode {
        kind,
        major,
        minor,
        file_mode: node.file_mode.or(Some(host.permissions)),
    })
}

/// What `lstat` says about a host device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HostNode {
    kind: &'static str,
    major: i64,
    minor: i64,
    permissions: u32,
}

enum HostNodeError {
    Stat(nix::Error),
    NotADevice,
}

fn host_node(path: &str) -> Result<HostNode, HostNodeError> {
    let st = lstat(path).map_err(HostNodeError::Stat)?;
    let format = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let kind = if format == SFlag::S_IFCHR {
        "c"
    } else if format == SFlag::S_IFBLK {
        "b"
    } else if format == SFlag::S_IFIFO {
        "p"
    } else {
        return Err(HostNodeError::NotADevice);
    };
    let rdev = st.st_rdev;
    Ok(HostNode {
        kind,
        major: device_number(nix::sys::stat::major(rdev)),
        minor: device_number(nix::sys::stat::minor(rdev)),
        permissions: st.st_mode & 0o7777,
    })
}

/// The one conversion between the kernel's unsigned device numbers (nix: u64) and the signed
/// ones of CDI and OCI (i64). Linux device numbers have at most 32 bits, so it never saturates
/// in practice.
fn device_number(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn apply_device_node(
    config: &mut Value,
    node: &DeviceNode,
    resolved: &ResolvedNode,
) -> Result<(), EditError> {
    let uid = node
        .uid
        .map(u64::from)
        .or_else(|| process_id(config, "uid"));
    let gid = node
        .gid
        .map(u64::from)
        .or_else(|| process_id(config, "gid"));

    let mut device = Map::new();
    device.insert("path".into(), json!(node.path));
    device.insert("type".into(), json!(resolved.kind));
    device.insert("major".into(), json!(resolved.major));
    device.insert("minor".into(), json!(resolved.minor));
    if let Some(mode) = resolved.file_mode {
        device.insert("fileMode".into(), json!(mode));
    }
    if let Some(uid) = uid {
        device.insert("uid".into(), json!(uid));
    }
    if let Some(gid) = gid {
        device.insert("gid".into(), json!(gid));
    }
    let devices = array_at(config, &["linux", "devices"])?;
    if let Some(i) = devices
        .iter()
        .position(|d| d.get("path").and_then(Value::as_str) == Some(&node.path))
    {
        devices.remove(i);
    }
    devices.push(Value::Object(device));

    if resolved.kind == "b" || resolved.kind == "c" {
        let access = node
            .permissions
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("rwm");
        let rules = array_at(config, &["linux", "resources", "devices"])?;
        let present = rules.iter().any(|r| {
            r.get("allow") == Some(&Value::Bool(true))
                && r.get("type").and_then(Value::as_str) == Some(&resolved.kind)
                && r.get("major").and_then(Value::as_i64) == Some(resolved.major)
                && r.get("minor").and_then(Value::as_i64) == Some(resolved.minor)
                && r.get("access").and_then(Value::as_str) == Some(access)
        });
        if !present {
            rules.push(json!({
                "allow": true,
                "type": resolved.kind,
                "major": resolved.major,
                "minor": resolved.minor,
                "access": access,
            }));
        }
    }
    Ok(())
}

/// `process.user.uid`/`gid` when the container user is not root: such a user owns the injected
/// nodes unless the spec says otherwise.
fn process_id(config: &Value, field: &str) -> Option<u64> {
    config
        .get("process")?
        .get("user")?
        .get(field)?
        .as_u64()
        .filter(|id| *id > 0)
}

fn apply_mounts(config: &mut Value, mounts: &[&Mount]) -> Result<(), EditError> {
    let list = array_at(config, &["mounts"])?;
    for mount in mounts {
        let same =
            |m: &Value| m.get("destination").and_then(Value::as_str) == Some(&mount.container_path);
        if let Some(i) = list.iter().position(same) {
            list.remove(i);
        }
        let mut entry = Map::new();
        entry.insert("destination".into(), json!(mount.container_path));
        if let Some(kind) = mount.kind.as_deref().filter(|k| !k.is_empty()) {
            entry.insert("type".into(), json!(kind));
        }
        entry.insert("source".into(), json!(mount.host_path));
        if !mount.options.is_empty() {
            entry.insert("options".into(), json!(mount.options));
        }
        list.push(Value::Object(entry));
    }
    list.sort_by_key(|m| path_depth(m.get("destination").and_then(Value::as_str).unwrap_or("")));
    Ok(())
}

/// The number of separators in the lexically cleaned path, the key the engines sort mounts by.
fn path_depth(path: &str) -> usize {
    let mut parts: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    match (absolute, parts.len()) {
        (true, n) => n.max(1),
        (false, 0) => 0,
        (false, n) => n - 1,
    }
}

fn check_hook_name(hook: &Hook) -> Result<(), EditError> {
    if HOOK_NAMES.contains(&hook.hook_name.as_str()) {
        Ok(())
    } else {
        Err(EditError::UnknownHook {
            name: hook.hook_name.clone(),
        })
    }
}

fn apply_hook(config: &mut Value, hook: &Hook) -> Result<(), EditError> {
    check_hook_name(hook)?;
    let mut entry = Map::new();
    entry.insert("path".into(), json!(hook.path));
    if !hook.args.is_empty() {
        entry.insert("args".into(), json!(hook.args));
    }
    if !hook.env.is_empty() {
        entry.insert("env".into(), json!(hook.env));
    }
    if let Some(timeout) = hook.timeout {
        entry.insert("timeout".into(), json!(timeout));
    }
    array_at(config, &["hooks", &hook.hook_name])?.push(Value::Object(entry));
    Ok(())
}

fn intel_rdt_json(rdt: &IntelRdt) -> Value {
    let mut entry = Map::new();
    if let Some(clos) = &rdt.clos_id {
        entry.insert("closID".into(), json!(clos));
    }
    if let Some(l3) = &rdt.l3_cache_schema {
        entry.insert("l3CacheSchema".into(), json!(l3));
    }
    if let Some(mem) = &rdt.mem_bw_schema {
        entry.insert("memBwSchema".into(), json!(mem));
    }
    if !rdt.schemata.is_empty() {
        entry.insert("schemata".into(), json!(rdt.schemata));
    }
    if rdt.enable_monitoring {
        entry.insert("enableMonitoring".into(), json!(true));
    }
    Value::Object(entry)
}

/// The object at `path`, created (empty) where missing or null.
fn object_at<'a>(
    root: &'a mut Value,
    path: &[&str],
) -> Result<&'a mut Map<String, Value>, EditError> {
    let mut current = root;
    for (depth, key) in std::iter::once(&"").chain(path).enumerate() {
        if depth > 0 {
            let map = current
                .as_object_mut()
                .ok_or_else(|| shape(&path[..depth - 1], "an object"))?;
            current = map.entry(key.to_string()).or_insert(Value::Null);
        }
        if current.is_null() {
            *current = Value::Object(Map::new());
        }
    }
    current
        .as_object_mut()
        .ok_or_else(|| shape(path, "an object"))
}

/// The array at `path`, created (empty) where missing or null.
fn array_at<'a>(root: &'a mut Value, path: &[&str]) -> Result<&'a mut Vec<Value>, EditError> {
    let (last, parent) = path.split_last().ok_or_else(|| shape(path, "an array"))?;
    let slot = object_at(root, parent)?
        .entry(last.to_string())
        .or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().ok_or_else(|| shape(path, "an array"))
}

/// Fails exactly when [`object_at`] would, without changing anything. Returns the object at
/// `path` when it exists (not when `object_at` would create it).
fn check_object_at<'a>(
    root: &'a Value,
    path: &[&str],
) -> Result<Option<&'a Map<String, Value>>, EditError> {
    let mut current = Some(root);
    for (depth, key) in path.iter().enumerate() {
        // Missing or null: created from here on, so nothing below can be in the way.
        let Some(value) = current.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let map = value
            .as_object()
            .ok_or_else(|| shape(&path[..depth], "an object"))?;
        current = map.get(*key);
    }
    match current.filter(|v| !v.is_null()) {
        Some(value) => value
            .as_object()
            .map(Some)
            .ok_or_else(|| shape(path, "an object")),
        None => Ok(None),
    }
}

/// Fails exactly when [`array_at`] would, without changing anything.
fn check_array_at(root: &Value, path: &[&str]) -> Result<(), EditError> {
    let (last, parent) = path.split_last().ok_or_else(|| shape(path, "an array"))?;
    let slot = check_object_at(root, parent)?
        .and_then(|object| object.get(*last))
        .filter(|v| !v.is_null());
    match slot {
        Some(value) if !value.is_array() => Err(shape(path, "an array")),
        _ => Ok(()),
    }
}

fn shape(path: &[&str], expected: &'static str) -> EditError {
    let field = if path.is_empty() {
        "the config".to_string()
    } else {
        path.join(".")
    };
    EditError::ConfigShape { field, expected }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Device, NetDevice};

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
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o640))
            .expect("mkfifo");
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
        let first = ContainerEdits {
            env: vec!["A=1".into(), "C=1".into()],
            ..Default::default()
        };
        let second = ContainerEdits {
            env: vec!["C=2".into(), "B=set".into()],
            ..Default::default()
        };
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
        let err = apply(
            &mut json!([]),
            &ContainerEdits {
                env: vec!["A=1".into()],
                ..Default::default()
            },
        )
        .expect_err("shape");
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
            container_edits: ContainerEdits {
                env: vec!["SPEC=1".into()],
                ..Default::default()
            },
            devices: vec![
                Device {
                    name: "a".into(),
                    container_edits: ContainerEdits {
                        env: vec!["A=1".into()],
                        ..Default::default()
                    },
                    ..Default::default()
                },
                Device {
                    name: "b".into(),
                    container_edits: ContainerEdits {
                        env: vec!["B=1".into()],
                        ..Default::default()
                    },
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
            let resolved = check(&work, &[step])?;
            apply_checked(&mut work, &[step], &resolved)?;
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
                    Ok(()) => proptest::prop_assert_eq!(Ok(actual), expected),
                    Err(err) => {
                        proptest::prop_assert_eq!(Err(err.to_string()), expected);
                        proptest::prop_assert_eq!(&actual, &config, "changed on error");
                    }
                }
            }
        }
    }
}
