//! The record of what `configure` changed in an engine config, and how to undo exactly that.
//!
//! Engines edit their config through the [`Tree`] trait (JSON for Docker, TOML for the others) with
//! [`set`] and [`append`]. Each edit returns the [`Change`]s it made: the value a key had before, the
//! value we wrote, list entries we added, tables we created. `--remove` replays the record
//! backwards with [`revert`]: a key goes back to its old value only while it still holds the value
//! we wrote, so a `features.cdi = true` that the user had before stays, and a value the user changed
//! after us is left alone and reported.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why an edit of an engine config failed. The engine configs are parsed text, so most variants
/// carry the place in the file.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The text does not parse.
    #[error("line {line}, column {column}: {message}")]
    Parse {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message (one line).
        message: String,
    },
    /// A key we need to edit holds a value of another type.
    #[error("`{key}` is {found}, expected {expected} (fix or remove it by hand)")]
    Type {
        /// The dotted key.
        key: String,
        /// What the file holds there.
        found: &'static str,
        /// What the key should hold.
        expected: &'static str,
    },
    /// The config declares a layout we do not edit.
    #[error("{0}")]
    Unsupported(String),
}

/// One change `configure` made, as recorded in the ledger next to the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Change {
    /// A key was set to `after`; `before` is what it held (absent when `None`).
    Set {
        /// The key, one element per level.
        key: Vec<String>,
        /// The value before amdgpu-cdi touched it.
        before: Option<Value>,
        /// The value amdgpu-cdi wrote.
        after: Value,
    },
    /// Entries were appended to a list; `created` when the list did not exist before.
    Append {
        /// The key of the list.
        key: Vec<String>,
        /// Whether amdgpu-cdi created the list.
        created: bool,
        /// The entries amdgpu-cdi added.
        added: Vec<Value>,
    },
    /// A table (object) was created to hold our keys; removed again when empty.
    CreateTable {
        /// The key of the table.
        key: Vec<String>,
    },
}

impl Change {
    fn key(&self) -> &[String] {
        match self {
            Change::Set { key, .. } | Change::Append { key, .. } | Change::CreateTable { key } => {
                key
            }
        }
    }
}

/// Dotted form of a key for messages: `features.cdi`.
pub(crate) fn dotted(key: &[String]) -> String {
    key.join(".")
}

/// A parsed config document that changes can be applied to. Values cross the boundary as JSON
/// values (strings, booleans, integers, arrays and objects).
pub(crate) trait Tree {
    /// The value at `key`, or `None` when absent. Fails when a parent is not a table.
    fn get(&self, key: &[String]) -> Result<Option<Value>, ChangeError>;
    /// Whether a table exists at `key`.
    fn is_table(&self, key: &[String]) -> bool;
    /// Sets `key` to `value`, creating missing parent tables.
    fn set(&mut self, key: &[String], value: &Value) -> Result<(), ChangeError>;
    /// Removes `key` (nothing when absent).
    fn remove(&mut self, key: &[String]);
}

/// Builds a key from string slices.
pub(crate) fn key(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_string()).collect()
}

/// Sets `key` to `value` unless it already holds it, recording the change and any parent tables
/// created on the way.
pub(crate) fn set(
    tree: &mut dyn Tree,
    key: &[String],
    value: Value,
    changes: &mut Vec<Change>,
) -> Result<(), ChangeError> {
    let before = tree.get(key)?;
    if before.as_ref() == Some(&value) {
        return Ok(());
    }
    record_created_parents(tree, key, changes);
    tree.set(key, &value)?;
    changes.push(Change::Set {
        key: key.to_vec(),
        before,
        after: value,
    });
    Ok(())
}

/// Appends the `items` missing from the string list at `key` (creating it when absent).
pub(crate) fn append(
    tree: &mut dyn Tree,
    key: &[String],
    items: &[String],
    changes: &mut Vec<Change>,
) -> Result<(), ChangeError> {
    let current = tree.get(key)?;
    let created = current.is_none();
    let mut list = match current {
        None => Vec::new(),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(ChangeError::Type {
                key: dotted(key),
                found: json_kind(&other),
                expected: "a list",
            });
        }
    };
    let mut added = Vec::new();
    for item in items {
        let item = Value::String(item.clone());
        if !list.contains(&item) && !added.contains(&item) {
            added.push(item);
        }
    }
    if added.is_empty() {
        return Ok(());
    }
    record_created_parents(tree, key, changes);
    list.extend(added.iter().cloned());
    tree.set(key, &Value::Array(list))?;
    changes.push(Change::Append {
        key: key.to_vec(),
        created,
        added,
    });
    Ok(())
}

fn record_created_parents(tree: &dyn Tree, key: &[String], changes: &mut Vec<Change>) {
    for len in 1..key.len() {
        let parent = &key[..len];
        if !tree.is_table(parent) {
            changes.push(Change::CreateTable {
                key: parent.to_vec(),
            });
        }
    }
}

/// Undoes `changes` (newest first). Returns the dotted keys left alone because they changed since
/// amdgpu-cdi wrote them.
pub(crate) fn revert(tree: &mut dyn Tree, changes: &[Change]) -> Result<Vec<String>, ChangeError> {
    let mut kept = Vec::new();
    for change in changes.iter().rev() {
        match change {
            Change::Set { key, before, after } => match tree.get(key)? {
                Some(current) if &current == after => match before {
                    Some(old) => tree.set(key, old)?,
                    None => tree.remove(key),
                },
                None if before.is_none() => {}
                _ => kept.push(dotted(key)),
            },
            Change::Append {
                key,
                created,
                added,
            } => {
                let Some(Value::Array(list)) = tree.get(key)? else {
                    continue;
                };
                let remaining: Vec<Value> = list
                    .iter()
                    .filter(|v| !added.contains(v))
                    .cloned()
                    .collect();
                if remaining.len() == list.len() {
                    continue;
                }
                if remaining.is_empty() && *created {
                    tree.remove(key);
                } else {
                    tree.set(key, &Value::Array(remaining))?;
                }
            }
            Change::CreateTable { key } => {
                if tree
                    .get(key)?
                    .is_some_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
                {
                    tree.remove(key);
                }
            }
        }
    }
    Ok(kept)
}

/// Merges the changes of a new run into the ledger of earlier runs: a key keeps the value it had
/// before amdgpu-cdi first touched it, list additions accumulate.
pub(crate) fn merge(mut old: Vec<Change>, new: Vec<Change>) -> Vec<Change> {
    for change in new {
        let slot = old.iter_mut().find(|c| {
            c.key() == change.key() && std::mem::discriminant(*c) == std::mem::discriminant(&change)
        });
        match (slot, change) {
            (
                Some(Change::Set { after, .. }),
                Change::Set {
                    after: new_after, ..
                },
            ) => {
                *after = new_after;
            }
            (Some(Change::Append { added, .. }), Change::Append { added: more, .. }) => {
                added.extend(
                    more.into_iter()
                        .filter(|v| !added.contains(v))
                        .collect::<Vec<_>>(),
                );
            }
            (Some(_), _) => {}
            (None, change) => old.push(change),
        }
    }
    old
}

/// A short name of a JSON value's type for messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// 1-based line and column of a byte offset in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }

    #[test]
    fn merge_keeps_the_first_before_value() {
        let first = vec![Change::Set {
            key: key(&["default-runtime"]),
            before: Some(Value::String("runc".into())),
            after: Value::String("amd".into()),
        }];
        let second = vec![Change::Set {
            key: key(&["default-runtime"]),
            before: Some(Value::String("amd".into())),
            after: Value::String("gpu".into()),
        }];
        let merged = merge(first, second);
        assert_eq!(
            merged,
            vec![Change::Set {
                key: key(&["default-runtime"]),
                before: Some(Value::String("runc".into())),
                after: Value::String("gpu".into()),
            }]
        );
    }
}
