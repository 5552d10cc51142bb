//! The `deviceNodes` edit: each node resolved first (type, numbers and mode from the host node
//! unless the spec fixes them, as engines do; owner from a non-root container user), then
//! written to `linux.devices` (replacing an entry with the same path) with a device cgroup allow
//! rule for character and block devices (an identical rule is not added twice).

use std::path::Path;

use serde_json::{Map, Value, json};

use super::EditError;
use super::json_path::{array_at, check_array_at};
use crate::host::{HostFs, NodeType};
use crate::spec::{ContainerEdits, DeviceNode};

/// A device node of the edits with everything the OCI config gets filled in: what
/// [`apply_many`](super::apply_many) writes to `linux.devices` and `linux.resources.devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedNode {
    /// The path in the container.
    pub path: String,
    /// The spec's `hostPath` when it gives one ([`DeviceNode::given_host_path`]: an empty
    /// `hostPath` is none, and the host node is at `path`).
    pub host_path: Option<String>,
    /// `c`, `b` or `p` (or the spec's type when the spec fixes the numbers).
    pub kind: String,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// Permission bits, from the spec or else the host node; `None` when neither gives them.
    pub file_mode: Option<u32>,
    /// Owner: the spec's `uid`, or else the container user when not root.
    pub uid: Option<u64>,
    /// Group: the spec's `gid`, or else the container group when not root.
    pub gid: Option<u64>,
    /// The device cgroup access of its allow rule (`rwm` unless the spec says otherwise).
    pub access: String,
}

impl ResolvedNode {
    /// The path of the host node: the given `hostPath`, else `path`.
    #[must_use]
    pub fn host_node_path(&self) -> &str {
        self.host_path.as_deref().unwrap_or(&self.path)
    }

    /// Character and block devices get a device cgroup allow rule; FIFOs do not.
    #[must_use]
    pub fn has_cgroup_rule(&self) -> bool {
        self.kind == "b" || self.kind == "c"
    }
}

/// Resolves every device node of `edits` and checks the fields they will change, in order.
pub(super) fn check(
    config: &Value,
    edits: &[&ContainerEdits],
    host: &impl HostFs,
) -> Result<Vec<ResolvedNode>, EditError> {
    let mut resolved = Vec::new();
    for node in edits.iter().flat_map(|e| &e.device_nodes) {
        let node = resolve(config, node, host)?;
        check_array_at(config, &["linux", "devices"])?;
        if node.has_cgroup_rule() {
            check_array_at(config, &["linux", "resources", "devices"])?;
        }
        resolved.push(node);
    }
    Ok(resolved)
}

/// Fills type, major, minor and fileMode from the host node unless the spec fixes them
/// (as the engines' CDI code does): numbers are trusted when a type is set and major is non-zero,
/// or for FIFOs; a trusted stale major injects the wrong device, so specs leave numbers out.
fn resolve(
    config: &Value,
    node: &DeviceNode,
    host: &impl HostFs,
) -> Result<ResolvedNode, EditError> {
    let declared = node.kind.clone().unwrap_or_default();
    let mut resolved = ResolvedNode {
        path: node.path.clone(),
        host_path: node.given_host_path().map(str::to_owned),
        kind: declared,
        major: node.major.unwrap_or(0),
        minor: node.minor.unwrap_or(0),
        file_mode: node.file_mode,
        uid: node
            .uid
            .map(u64::from)
            .or_else(|| process_id(config, "uid")),
        gid: node
            .gid
            .map(u64::from)
            .or_else(|| process_id(config, "gid")),
        access: node.access().to_string(),
    };
    if !resolved.kind.is_empty() && (resolved.major != 0 || resolved.kind == "p") {
        return Ok(resolved);
    }
    let host_path = node.host_node_path();
    let found = host
        .lstat(Path::new(host_path))
        .map_err(|source| EditError::StatHostDevice {
            path: node.path.clone(),
            host_path: host_path.to_string(),
            source,
        })?;
    let kind = found
        .kind
        .letter()
        .ok_or_else(|| EditError::NotADeviceNode {
            path: node.path.clone(),
            host_path: host_path.to_string(),
        })?;
    if !resolved.kind.is_empty() && resolved.kind != kind {
        return Err(EditError::TypeMismatch {
            path: node.path.clone(),
            host_path: host_path.to_string(),
            declared: resolved.kind,
            found: kind.to_string(),
        });
    }
    if resolved.major == 0 && found.kind != NodeType::Fifo {
        resolved.major = device_number(found.major);
        resolved.minor = device_number(found.minor);
    }
    resolved.kind = kind.to_string();
    resolved.file_mode = resolved.file_mode.or(Some(found.permissions));
    Ok(resolved)
}

/// The one conversion between the kernel's unsigned device numbers (nix: u64) and the signed
/// ones of CDI and OCI (i64). Linux device numbers have at most 32 bits, so it never saturates
/// in practice.
fn device_number(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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

/// Writes one resolved node to `linux.devices` and its allow rule to `linux.resources.devices`.
pub(super) fn apply(config: &mut Value, node: &ResolvedNode) -> Result<(), EditError> {
    let mut device = Map::new();
    device.insert("path".into(), json!(node.path));
    device.insert("type".into(), json!(node.kind));
    device.insert("major".into(), json!(node.major));
    device.insert("minor".into(), json!(node.minor));
    if let Some(mode) = node.file_mode {
        device.insert("fileMode".into(), json!(mode));
    }
    if let Some(uid) = node.uid {
        device.insert("uid".into(), json!(uid));
    }
    if let Some(gid) = node.gid {
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

    if node.has_cgroup_rule() {
        let rules = array_at(config, &["linux", "resources", "devices"])?;
        let present = rules.iter().any(|r| {
            r.get("allow") == Some(&Value::Bool(true))
                && r.get("type").and_then(Value::as_str) == Some(&node.kind)
                && r.get("major").and_then(Value::as_i64) == Some(node.major)
                && r.get("minor").and_then(Value::as_i64) == Some(node.minor)
                && r.get("access").and_then(Value::as_str) == Some(&node.access)
        });
        if !present {
            rules.push(json!({
                "allow": true,
                "type": node.kind,
                "major": node.major,
                "minor": node.minor,
                "access": node.access,
            }));
        }
    }
    Ok(())
}
