//! Docker's `daemon.json`: CDI on through `features.cdi` (merged into an existing `features`
//! object), the wrapper as `runtimes.<name>`, optionally `default-runtime` and `cdi-spec-dirs`.
//!
//! The edit keeps every other key, the key order (serde_json with `preserve_order`) and the file's
//! indentation. Docker rejects unknown keys in daemon.json, so `cdi-spec-dirs` (Docker 25+) is only
//! written when asked for.
//!
//! A UTF-8 byte order mark at the start (Notepad and PowerShell 5 write one) is skipped when
//! reading, as dockerd does since 23.0 (RFC 8259 lets a parser ignore it). A file that is edited is
//! written without it, so that dockerd before 23.0, which refuses the mark, reads the result too;
//! a file left unchanged keeps its bytes, mark included.
//!
//! Read back ([`read_config`]): `features.cdi`, `cdi-spec-dirs`, the runtimes that are the
//! wrapper and those that are NVIDIA's, judged as the installed dockerd reads the file (the byte
//! order mark above).

use std::fs;

use serde_json::{Map, Value, json};

use super::change::{self, Change, ChangeError, Tree, dotted, json_kind, key};
use super::releases::{DOCKER_SKIPS_BOM, EngineVersion};
use super::{Edited, EngineConfig, HostPaths, Reverted, RuntimeEntry};
use crate::paths::WRAPPER_NAME;

/// Docker's config file.
pub const CONFIG: &str = "/etc/docker/daemon.json";

/// Adds the amdgpu-cdi settings to `original` (the text of daemon.json; empty for a new file).
pub fn configure(original: &str, settings: &RuntimeEntry) -> Result<Edited, ChangeError> {
    let mut root = parse(original)?;
    let mut changes = Vec::new();
    let tree = &mut JsonTree(&mut root);
    change::set(
        tree,
        &key(&["features", "cdi"]),
        Value::Bool(true),
        &mut changes,
    )?;
    let runtime = json!({ "path": settings.runtime_path.to_string_lossy() });
    change::set(
        tree,
        &key(&["runtimes", &settings.runtime_name]),
        runtime,
        &mut changes,
    )?;
    if settings.set_as_default {
        let name = Value::String(settings.runtime_name.clone());
        change::set(tree, &key(&["default-runtime"]), name, &mut changes)?;
    }
    if !settings.cdi_spec_dirs.is_empty() {
        let dirs = settings.spec_dir_strings();
        change::append(tree, &key(&["cdi-spec-dirs"]), &dirs, &mut changes)?;
    }
    let text = if changes.is_empty() {
        original.to_string()
    } else {
        render(&root, original)
    };
    Ok(Edited { text, changes })
}

/// Undoes the recorded `changes` in `current` (the text of daemon.json now).
pub fn remove(current: &str, changes: &[Change]) -> Result<Reverted, ChangeError> {
    let mut root = parse(current)?;
    let before = root.clone();
    let kept = change::revert(&mut JsonTree(&mut root), changes)?;
    let text = if root == before {
        current.to_string()
    } else {
        render(&root, current)
    };
    Ok(Reverted { text, kept })
}

/// Whether a reverted daemon.json holds nothing (so a file amdgpu-cdi created can go).
pub fn is_empty(text: &str) -> bool {
    parse(text).is_ok_and(|v| v.as_object().is_some_and(Map::is_empty))
}

/// Whether two daemon.json texts hold the same values (layout aside).
pub fn same_meaning(a: &str, b: &str) -> bool {
    matches!((parse(a), parse(b)), (Ok(a), Ok(b)) if a == b)
}

/// What daemon.json says about CDI and the wrapper, as dockerd `version` (when known) reads it.
pub fn read_config(host: &dyn HostPaths, version: Option<EngineVersion>) -> EngineConfig {
    let path = host.host(CONFIG);
    let mut config = EngineConfig::default();
    let Ok(text) = fs::read_to_string(&path) else {
        return config;
    };
    let text = match text.strip_prefix(BOM) {
        Some(_) if version.is_some_and(|v| v < DOCKER_SKIPS_BOM) => {
            config.broken = Some(format!(
                "{}: it starts with a UTF-8 byte order mark, which dockerd before 23.0 refuses \
                 (save it as UTF-8 without one)",
                host.show(&path)
            ));
            return config;
        }
        Some(rest) => rest,
        None => &text,
    };
    let json: Value = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(e) => {
            config.broken = Some(format!("{}: {e}", host.show(&path)));
            return config;
        }
    };
    config.cdi_enabled = json.pointer("/features/cdi").and_then(Value::as_bool);
    config.selinux_labels = json.get("selinux-enabled").and_then(Value::as_bool);
    config.spec_dirs = json.get("cdi-spec-dirs").and_then(|v| {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
    });
    if let Some(runtimes) = json.get("runtimes").and_then(Value::as_object) {
        for (name, runtime) in runtimes {
            let Some(p) = runtime.get("path").and_then(Value::as_str) else {
                continue;
            };
            if p.contains(WRAPPER_NAME) {
                config.wrappers.push((name.clone(), p.to_string()));
            } else if p.contains(NVIDIA_RUNTIME) {
                config.nvidia_runtimes.push((name.clone(), p.to_string()));
            }
        }
    }
    config
}

/// The name of NVIDIA's runtime wrapper (`nvidia-ctk runtime configure` adds it as `nvidia`).
const NVIDIA_RUNTIME: &str = "nvidia-container-runtime";

/// The UTF-8 byte order mark, as a character.
const BOM: char = '\u{feff}';

fn parse(text: &str) -> Result<Value, ChangeError> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_json::from_str(text).map_err(|err| ChangeError::Parse {
        line: err.line(),
        column: err.column(),
        message: parse_message(&err),
    })?;
    if !value.is_object() {
        return Err(ChangeError::Type {
            key: "(top level)".to_string(),
            found: json_kind(&value),
            expected: "an object",
        });
    }
    Ok(value)
}

/// serde_json's message without its own " at line L column C" suffix.
fn parse_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Pretty-prints with the indentation the original file uses (4 spaces when it has none).
fn render(root: &Value, original: &str) -> String {
    use serde::Serialize;
    let indent = detect_indent(original);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    if root.serialize(&mut ser).is_err() {
        return original.to_string();
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push('\n');
    text
}

fn detect_indent(text: &str) -> String {
    text.lines()
        .find_map(|line| {
            let trimmed = line.trim_start_matches([' ', '\t']);
            let indent = &line[..line.len() - trimmed.len()];
            (!indent.is_empty() && trimmed.starts_with('"')).then(|| indent.to_string())
        })
        .unwrap_or_else(|| "    ".to_string())
}

/// A JSON object as a [`Tree`].
struct JsonTree<'a>(&'a mut Value);

impl Tree for JsonTree<'_> {
    fn get(&self, key: &[String]) -> Result<Option<Value>, ChangeError> {
        let mut node = &*self.0;
        for (depth, part) in key.iter().enumerate() {
            let Some(object) = node.as_object() else {
                return Err(ChangeError::Type {
                    key: dotted(&key[..depth]),
                    found: json_kind(node),
                    expected: "an object",
                });
            };
            match object.get(part) {
                Some(next) => node = next,
                None => return Ok(None),
            }
        }
        Ok(Some(node.clone()))
    }

    fn is_table(&self, key: &[String]) -> bool {
        let mut node = &*self.0;
        for part in key {
            match node.get(part) {
                Some(next) => node = next,
                None => return false,
            }
        }
        node.is_object()
    }

    fn set(&mut self, key: &[String], value: &Value) -> Result<(), ChangeError> {
        let Some((last, parents)) = key.split_last() else {
            return Ok(());
        };
        let mut node = &mut *self.0;
        for (depth, part) in parents.iter().enumerate() {
            let found = json_kind(node);
            let object = node.as_object_mut().ok_or_else(|| ChangeError::Type {
                key: dotted(&key[..depth]),
                found,
                expected: "an object",
            })?;
            node = object
                .entry(part.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        let found = json_kind(node);
        let object = node.as_object_mut().ok_or_else(|| ChangeError::Type {
            key: dotted(parents),
            found,
            expected: "an object",
        })?;
        object.insert(last.clone(), value.clone());
        Ok(())
    }

    fn remove(&mut self, key: &[String]) {
        let Some((last, parents)) = key.split_last() else {
            return;
        };
        let mut node = &mut *self.0;
        for part in parents {
            match node.get_mut(part) {
                Some(next) => node = next,
                None => return,
            }
        }
        if let Some(object) = node.as_object_mut() {
            object.shift_remove(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indentation_is_detected() {
        assert_eq!(detect_indent("{\n  \"a\": 1\n}"), "  ");
        assert_eq!(detect_indent("{\n\t\"a\": 1\n}"), "\t");
        assert_eq!(detect_indent("{\"a\": 1}"), "    ");
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_not_written_back() {
        let settings = RuntimeEntry::for_tests();
        let original = "\u{feff}{\r\n  \"debug\": true\r\n}\r\n";
        let edited = configure(original, &settings).expect("a BOM is not a parse error");
        assert!(!edited.text.starts_with(BOM), "{:?}", edited.text);
        assert!(
            edited
                .text
                .starts_with("{\n  \"debug\": true,\n  \"features\"")
        );
        assert!(same_meaning(original, "{\"debug\": true}"));
        // Removing gives back the meaning; the bytes come back from the backup (see `engines.rs`).
        let reverted = remove(&edited.text, &edited.changes).expect("remove");
        assert!(same_meaning(&reverted.text, original));
        // Nothing to change: the file keeps its bytes, mark included.
        let configured = format!("{BOM}{}", edited.text);
        let again = configure(&configured, &settings).expect("configure again");
        assert!(again.changes.is_empty());
        assert_eq!(again.text, configured);
        // A mark alone is an empty file; a mark that is not at the start is still an error.
        assert!(is_empty("\u{feff}"));
        assert!(configure("{}\u{feff}", &settings).is_err());
    }

    #[test]
    fn features_that_is_not_an_object_is_refused() {
        let settings = RuntimeEntry::for_tests();
        let err = configure("{\"features\": true}", &settings)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("`features` is a boolean, expected an object (fix or remove it by hand)")
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;
    use crate::engines::strategies::{runtime_name, settings, spec_dirs};

    fn runtime() -> impl Strategy<Value = Value> {
        (
            "/[a-z]{1,8}",
            proptest::option::of(Just(json!(["--debug"]))),
        )
            .prop_map(|(path, args)| {
                let mut entry = Map::new();
                entry.insert("path".into(), Value::String(path));
                if let Some(args) = args {
                    entry.insert("runtimeArgs".into(), args);
                }
                Value::Object(entry)
            })
    }

    /// A daemon.json with any mix of the keys `configure` touches and unrelated ones.
    fn daemon_json() -> impl Strategy<Value = Value> {
        (
            proptest::option::of(proptest::collection::btree_map(
                prop_oneof![Just("cdi".to_string()), "[a-z]{1,6}"],
                any::<bool>(),
                0..3,
            )),
            proptest::option::of(proptest::collection::btree_map(
                runtime_name(),
                runtime(),
                0..3,
            )),
            proptest::option::of(runtime_name()),
            proptest::option::of(spec_dirs()),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(features, runtimes, default, spec_dirs, debug)| {
                let mut root = Map::new();
                if let Some(debug) = debug {
                    root.insert("debug".into(), Value::Bool(debug));
                }
                if let Some(features) = features {
                    root.insert("features".into(), json!(features));
                }
                if let Some(runtimes) = runtimes {
                    root.insert("runtimes".into(), json!(runtimes));
                }
                if let Some(default) = default {
                    root.insert("default-runtime".into(), Value::String(default));
                }
                if let Some(spec_dirs) = spec_dirs {
                    root.insert("cdi-spec-dirs".into(), json!(spec_dirs));
                }
                Value::Object(root)
            })
    }

    proptest! {
        #[test]
        fn remove_after_configure_gives_back_the_original(
            original in daemon_json(),
            settings in settings(),
        ) {
            let text = serde_json::to_string_pretty(&original).expect("render");
            let edited = configure(&text, &settings).expect("configure");
            let again = configure(&edited.text, &settings).expect("configure again");
            prop_assert!(again.changes.is_empty(), "second run changed {:?}", again.changes);
            prop_assert_eq!(&again.text, &edited.text);
            let configured: Value = serde_json::from_str(&edited.text).expect("json");
            prop_assert_eq!(&configured["features"]["cdi"], &Value::Bool(true));
            let reverted = remove(&edited.text, &edited.changes).expect("remove");
            prop_assert!(reverted.kept.is_empty());
            let back: Value = serde_json::from_str(&reverted.text).expect("json");
            prop_assert_eq!(back, original);
        }
    }
}
