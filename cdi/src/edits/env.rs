//! The `env` edit: `KEY=VALUE` entries of `process.env`, an entry whose key is already set
//! replacing it in place, others appended.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::EditError;
use super::json_path::{array_at, check_array_at};
use crate::spec::ContainerEdits;

/// Fails where [`apply`] would.
pub(super) fn check(config: &Value, edits: &[&ContainerEdits]) -> Result<(), EditError> {
    if edits.iter().any(|e| !e.env.is_empty()) {
        check_array_at(config, &["process", "env"])?;
    }
    Ok(())
}

/// Sets every entry of `edits` in order.
pub(super) fn apply(config: &mut Value, edits: &[&ContainerEdits]) -> Result<(), EditError> {
    let env: Vec<&String> = edits.iter().flat_map(|e| &e.env).collect();
    if env.is_empty() {
        return Ok(());
    }
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

/// The key of a `KEY=VALUE` entry (the whole entry when it has no `=`).
pub(crate) fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(key, _)| key)
}
