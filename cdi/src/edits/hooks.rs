//! The `hooks` edit: each hook appended to the OCI stage it names, which must be one the OCI
//! runtime spec defines.

use serde_json::{Map, Value, json};

use super::EditError;
use super::json_path::{array_at, check_array_at};
use crate::spec::{ContainerEdits, Hook};
use crate::validate::HOOK_NAMES;

/// Fails where [`apply`] would: an unknown stage, or a stage list that is not an array.
pub(super) fn check(config: &Value, edits: &[&ContainerEdits]) -> Result<(), EditError> {
    for hook in edits.iter().flat_map(|e| &e.hooks) {
        check_name(hook)?;
        check_array_at(config, &["hooks", &hook.hook_name])?;
    }
    Ok(())
}

/// Appends every hook of `edits` in order.
pub(super) fn apply(config: &mut Value, edits: &[&ContainerEdits]) -> Result<(), EditError> {
    for hook in edits.iter().flat_map(|e| &e.hooks) {
        check_name(hook)?;
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
    }
    Ok(())
}

fn check_name(hook: &Hook) -> Result<(), EditError> {
    if HOOK_NAMES.contains(&hook.hook_name.as_str()) {
        Ok(())
    } else {
        Err(EditError::UnknownHook {
            name: hook.hook_name.clone(),
        })
    }
}
