//! The fields of the OCI config that edits change, reached by a path of keys: created (empty)
//! where missing or null when applying, and checked without changing anything first, failing
//! exactly where creating them would.

use serde_json::{Map, Value};

use super::EditError;

/// The object at `path`, created (empty) where missing or null.
pub(super) fn object_at<'a>(
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
pub(super) fn array_at<'a>(
    root: &'a mut Value,
    path: &[&str],
) -> Result<&'a mut Vec<Value>, EditError> {
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
pub(super) fn check_object_at<'a>(
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
pub(super) fn check_array_at(root: &Value, path: &[&str]) -> Result<(), EditError> {
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
