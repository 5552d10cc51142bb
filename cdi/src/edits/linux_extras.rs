//! The edits of one field each: network devices (`linux.netDevices`), Intel RDT
//! (`linux.intelRdt`, the last setting wins) and additional GIDs
//! (`process.user.additionalGids`, 0 skipped, each GID once).

use serde_json::{Map, Value, json};

use super::EditError;
use super::json_path::{array_at, check_array_at, check_object_at, object_at};
use crate::spec::{ContainerEdits, IntelRdt};

/// Fails where [`apply_net_devices`] would.
pub(super) fn check_net_devices(
    config: &Value,
    edits: &[&ContainerEdits],
) -> Result<(), EditError> {
    if edits.iter().any(|e| !e.net_devices.is_empty()) {
        check_object_at(config, &["linux", "netDevices"])?;
    }
    Ok(())
}

/// Adds every network device of `edits`, keyed by its host interface.
pub(super) fn apply_net_devices(
    config: &mut Value,
    edits: &[&ContainerEdits],
) -> Result<(), EditError> {
    for net in edits.iter().flat_map(|e| &e.net_devices) {
        let map = object_at(config, &["linux", "netDevices"])?;
        map.insert(net.host_interface_name.clone(), json!({ "name": net.name }));
    }
    Ok(())
}

/// Fails where [`apply_intel_rdt`] would.
pub(super) fn check_intel_rdt(config: &Value, edits: &[&ContainerEdits]) -> Result<(), EditError> {
    if edits.iter().any(|e| e.intel_rdt.is_some()) {
        check_object_at(config, &["linux"])?;
    }
    Ok(())
}

/// Sets `linux.intelRdt` to the last Intel RDT setting of `edits`.
pub(super) fn apply_intel_rdt(
    config: &mut Value,
    edits: &[&ContainerEdits],
) -> Result<(), EditError> {
    if let Some(rdt) = edits.iter().rev().find_map(|e| e.intel_rdt.as_ref()) {
        object_at(config, &["linux"])?.insert("intelRdt".to_string(), intel_rdt_json(rdt));
    }
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

fn gids<'a>(edits: &'a [&ContainerEdits]) -> impl Iterator<Item = u32> + 'a {
    edits
        .iter()
        .flat_map(|e| &e.additional_gids)
        .copied()
        .filter(|g| *g != 0)
}

/// Fails where [`apply_additional_gids`] would.
pub(super) fn check_additional_gids(
    config: &Value,
    edits: &[&ContainerEdits],
) -> Result<(), EditError> {
    if gids(edits).next().is_some() {
        check_array_at(config, &["process", "user", "additionalGids"])?;
    }
    Ok(())
}

/// Adds every non-zero GID of `edits` the list does not have yet.
pub(super) fn apply_additional_gids(
    config: &mut Value,
    edits: &[&ContainerEdits],
) -> Result<(), EditError> {
    let gids: Vec<u32> = gids(edits).collect();
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
