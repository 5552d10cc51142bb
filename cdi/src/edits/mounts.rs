//! The `mounts` edit: each mount replaces one with the same destination, then the list is sorted
//! stably by the depth of the destinations, as the engines do.

use serde_json::{Map, Value, json};

use super::EditError;
use super::json_path::{array_at, check_array_at};
use crate::spec::{ContainerEdits, Mount};

/// Fails where [`apply`] would.
pub(super) fn check(config: &Value, edits: &[&ContainerEdits]) -> Result<(), EditError> {
    if edits.iter().any(|e| !e.mounts.is_empty()) {
        check_array_at(config, &["mounts"])?;
    }
    Ok(())
}

/// Adds every mount of `edits` in order, then sorts.
pub(super) fn apply(config: &mut Value, edits: &[&ContainerEdits]) -> Result<(), EditError> {
    let mounts: Vec<&Mount> = edits.iter().flat_map(|e| &e.mounts).collect();
    if mounts.is_empty() {
        return Ok(());
    }
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
pub(super) fn path_depth(path: &str) -> usize {
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
