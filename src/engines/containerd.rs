//! containerd's `config.toml`: `enable_cdi`, `cdi_spec_dirs`, a runtime entry whose
//! `options.BinaryName` is the wrapper, and optionally `default_runtime_name`.
//!
//! Config version 2 (containerd 1.x, still read by 2.x) keeps all of it under
//! `[plugins."io.containerd.grpc.v1.cri"]`; version 3 (containerd 2.x) under
//! `[plugins.'io.containerd.cri.v1.runtime']`. Version 1 (no `version` key, short plugin names) is
//! refused with a hint; a file with no tables at all gets `version = 2`, which both 1.x and 2.x
//! read.
//!
//! Drop-ins: containerd 1.x replaces a whole plugin section with the one from an imported file, so
//! a drop-in holding only our keys would wipe the user's CRI settings. A drop-in is therefore only
//! written for version 3 configs that use `imports` (containerd 2.x merges imported plugin tables
//! key by key); version 2 configs are edited in place even when they import other files.
//!
//! Read back ([`read_config`]): the plugin table of the version containerd reads the file as (its
//! `version` key, else the one the installed release assumes; [`ConfigVersion::read_as`]), so
//! what `configure` wrote is found whatever the release.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use toml_edit::DocumentMut;

use super::change::{self, Change, ChangeError, key};
use super::releases::{CONTAINERD_CONFIG_V3, EngineVersion};
use super::toml_tree::{TomlTree, parse};
use super::{
    Edited, EngineConfig, HostPaths, Reverted, RuntimeEntry, read_toml_files, string_array,
};
use crate::paths::WRAPPER_NAME;

/// containerd's config file.
pub const CONFIG: &str = "/etc/containerd/config.toml";

/// The runtime type of the wrapper's entry: the runc shim, which execs `BinaryName`.
pub const RUNTIME_TYPE: &str = "io.containerd.runc.v2";

/// A config version amdgpu-cdi edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigVersion {
    /// `version = 2` (containerd 1.x; 2.x converts it).
    V2,
    /// `version = 3` (containerd 2.x).
    V3,
}

impl ConfigVersion {
    /// The plugin table that holds `enable_cdi` and the runtimes.
    fn plugin(self) -> &'static str {
        match self {
            ConfigVersion::V2 => "io.containerd.grpc.v1.cri",
            ConfigVersion::V3 => "io.containerd.cri.v1.runtime",
        }
    }

    /// The version containerd `release` (when known) reads a file as whose `version` key is
    /// `file_version`: containerd 2.x still reads (and converts) a `version = 2` file; without
    /// the key, 2.x assumes 3 and 1.x assumes 2.
    pub fn read_as(file_version: Option<i64>, release: Option<EngineVersion>) -> ConfigVersion {
        let v3 = file_version.map_or(release.is_some_and(|v| v >= CONTAINERD_CONFIG_V3), |v| {
            v >= 3
        });
        if v3 {
            ConfigVersion::V3
        } else {
            ConfigVersion::V2
        }
    }
}

/// What the existing config looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The config version (`None`: a file without tables and without `version`, which gets 2).
    pub version: Option<ConfigVersion>,
    /// The `imports` entries.
    pub imports: Vec<String>,
}

/// Reads the version and imports of `text` (empty for a missing file).
pub fn layout(text: &str) -> Result<Layout, ChangeError> {
    let doc = parse(text)?;
    let imports = doc
        .get("imports")
        .and_then(|i| i.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let version = match doc.get("version").map(|v| v.as_integer()) {
        Some(Some(2)) => Some(ConfigVersion::V2),
        Some(Some(3)) => Some(ConfigVersion::V3),
        None if !doc.iter().any(|(_, item)| item.is_table_like()) => None,
        None | Some(Some(1)) => {
            return Err(ChangeError::Unsupported(
                "config version 1 (no `version = 2` line) is not supported: convert it to \
                 version 2 first (add `version = 2` and use full plugin names such as \
                 `io.containerd.grpc.v1.cri`)"
                    .to_string(),
            ));
        }
        Some(other) => {
            let shown = other.map_or_else(|| "not a number".to_string(), |v| v.to_string());
            return Err(ChangeError::Unsupported(format!(
                "config version {shown} is not supported (expected 2 or 3)"
            )));
        }
    };
    Ok(Layout { version, imports })
}

/// Adds the amdgpu-cdi settings to `original` in place.
pub fn configure(original: &str, settings: &RuntimeEntry) -> Result<Edited, ChangeError> {
    let layout = layout(original)?;
    let mut doc = parse(original)?;
    let mut changes = Vec::new();
    let version = match layout.version {
        Some(version) => version,
        None => {
            let tree = &mut TomlTree(&mut doc);
            change::set(tree, &key(&["version"]), json!(2), &mut changes)?;
            ConfigVersion::V2
        }
    };
    add_settings(&mut doc, version, settings, &mut changes)?;
    let text = if changes.is_empty() {
        original.to_string()
    } else {
        super::toml_tree::indent_new_items(&mut doc);
        doc.to_string()
    };
    Ok(Edited { text, changes })
}

/// `<config dir>/conf.d/99-amdgpu-cdi.toml`: the drop-in for `config` (version 3 with
/// `imports`).
pub fn dropin_path(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or(Path::new("/"))
        .join("conf.d")
        .join("99-amdgpu-cdi.toml")
}

/// The whole text of a version 3 drop-in holding only the amdgpu-cdi settings.
pub fn dropin(settings: &RuntimeEntry) -> Result<String, ChangeError> {
    let mut doc = DocumentMut::new();
    let mut changes = Vec::new();
    change::set(
        &mut TomlTree(&mut doc),
        &key(&["version"]),
        json!(3),
        &mut changes,
    )?;
    add_settings(&mut doc, ConfigVersion::V3, settings, &mut changes)?;
    Ok(format!("{}{doc}", super::DROPIN_HEADER))
}

/// Makes sure `dropin` is matched by an `imports` entry of the main config `original`, adding
/// its absolute path otherwise. `config_dir` resolves relative entries.
pub fn ensure_imported(
    original: &str,
    dropin: &Path,
    config_dir: &Path,
) -> Result<Edited, ChangeError> {
    let layout = layout(original)?;
    let target = dropin.to_string_lossy();
    let covered = layout.imports.iter().any(|entry| {
        let pattern = if Path::new(entry).is_absolute() {
            entry.clone()
        } else {
            config_dir.join(entry).to_string_lossy().into_owned()
        };
        glob_match(&pattern, &target)
    });
    if covered {
        return Ok(Edited {
            text: original.to_string(),
            changes: Vec::new(),
        });
    }
    let mut doc = parse(original)?;
    let mut changes = Vec::new();
    change::append(
        &mut TomlTree(&mut doc),
        &key(&["imports"]),
        &[target.into_owned()],
        &mut changes,
    )?;
    Ok(Edited {
        text: doc.to_string(),
        changes,
    })
}

fn add_settings(
    doc: &mut DocumentMut,
    version: ConfigVersion,
    settings: &RuntimeEntry,
    changes: &mut Vec<Change>,
) -> Result<(), ChangeError> {
    let plugin = version.plugin();
    let tree = &mut TomlTree(doc);
    change::set(
        tree,
        &key(&["plugins", plugin, "enable_cdi"]),
        Value::Bool(true),
        changes,
    )?;
    if !settings.cdi_spec_dirs.is_empty() {
        let dirs = settings.spec_dir_strings();
        change::append(
            tree,
            &key(&["plugins", plugin, "cdi_spec_dirs"]),
            &dirs,
            changes,
        )?;
    }
    let runtime = json!({
        "runtime_type": RUNTIME_TYPE,
        "options": { "BinaryName": settings.runtime_path.to_string_lossy() },
    });
    let name = settings.runtime_name.as_str();
    change::set(
        tree,
        &key(&["plugins", plugin, "containerd", "runtimes", name]),
        runtime,
        changes,
    )?;
    if settings.set_as_default {
        let default_key = key(&["plugins", plugin, "containerd", "default_runtime_name"]);
        change::set(tree, &default_key, Value::String(name.to_string()), changes)?;
    }
    Ok(())
}

/// Undoes the recorded `changes` in `current`.
pub fn remove(current: &str, changes: &[Change]) -> Result<Reverted, ChangeError> {
    let mut doc = parse(current)?;
    let kept = change::revert(&mut TomlTree(&mut doc), changes)?;
    // toml_edit prints an untouched document byte for byte.
    let text = doc.to_string();
    Ok(Reverted { text, kept })
}

/// Whether two TOML texts hold the same values (comments and layout aside).
pub fn same_meaning(a: &str, b: &str) -> bool {
    match (a.parse::<toml::Table>(), b.parse::<toml::Table>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether a reverted TOML file holds no values (so a file amdgpu-cdi created can go).
pub fn is_empty(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok_and(|t| t.is_empty())
}

/// What config.toml says about CDI and the wrapper, as containerd `version` (when known) reads it.
pub fn read_config(host: &dyn HostPaths, version: Option<EngineVersion>) -> EngineConfig {
    read_toml_files(host, [host.host(CONFIG)], |config, table| {
        let file_version = table.get("version").and_then(toml::Value::as_integer);
        let section = ConfigVersion::read_as(file_version, version).plugin();
        if let Some(cri) = table
            .get("plugins")
            .and_then(|p| p.get(section))
            .and_then(|s| s.as_table())
        {
            config.cdi_enabled = cri.get("enable_cdi").and_then(toml::Value::as_bool);
            config.spec_dirs = string_array(cri.get("cdi_spec_dirs"));
            config.selinux_labels = cri.get("enable_selinux").and_then(toml::Value::as_bool);
        }
        collect_binary_names(&toml::Value::Table(table), "", &mut config.wrappers);
    })
}

/// Finds `runtimes.<name>.options.BinaryName` entries pointing at the wrapper, at any depth.
fn collect_binary_names(value: &toml::Value, name: &str, out: &mut Vec<(String, String)>) {
    if let Some(table) = value.as_table() {
        for (key, child) in table {
            if key == "BinaryName"
                && let Some(path) = child.as_str()
                && path.contains(WRAPPER_NAME)
            {
                out.push((name.to_string(), path.to_string()));
            }
            let child_name = if key == "options" { name } else { key };
            collect_binary_names(child, child_name, out);
        }
    }
}

/// Go `filepath.Match`-style matching of `*` and `?` (neither crosses `/`), as containerd uses for
/// `imports`.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => n.first().is_some_and(|&c| c != '/') && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_go() {
        assert!(glob_match(
            "/etc/containerd/conf.d/*.toml",
            "/etc/containerd/conf.d/99-a.toml"
        ));
        assert!(!glob_match(
            "/etc/containerd/*.toml",
            "/etc/containerd/conf.d/a.toml"
        ));
        assert!(glob_match("/etc/c?nf.toml", "/etc/conf.toml"));
    }

    #[test]
    fn version_one_is_refused() {
        let err = layout("[plugins.cri]\nsandbox_image = \"x\"\n")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.starts_with("config version 1")));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::engines::strategies::settings;

    /// A config of version 2 or 3 with any mix of the tables `configure` touches.
    fn config() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just(2), Just(3)],
            proptest::option::of(any::<bool>()),
            proptest::option::of(proptest::collection::vec("/[a-z]{1,5}", 0..3)),
            proptest::option::of(prop_oneof![Just("runc"), Just("amd"), Just("kata")]),
            proptest::collection::vec(prop_oneof![Just("runc"), Just("amd"), Just("kata")], 0..3),
            any::<bool>(),
        )
            .prop_map(|(version, cdi, dirs, default, runtimes, indent)| {
                let plugin = if version == 2 {
                    "\"io.containerd.grpc.v1.cri\""
                } else {
                    "'io.containerd.cri.v1.runtime'"
                };
                let pad = if indent { "  " } else { "" };
                let mut text = format!("# a comment\nversion = {version}\nroot = \"/r\"\n\n");
                if cdi.is_some() || dirs.is_some() {
                    text.push_str(&format!("[plugins.{plugin}]\n"));
                    if let Some(cdi) = cdi {
                        text.push_str(&format!("{pad}enable_cdi = {cdi}  # keep\n"));
                    }
                    if let Some(dirs) = dirs {
                        text.push_str(&format!("{pad}cdi_spec_dirs = {dirs:?}\n"));
                    }
                }
                if let Some(default) = default {
                    text.push_str(&format!(
                        "\n[plugins.{plugin}.containerd]\n{pad}default_runtime_name = \"{default}\"\n"
                    ));
                }
                let mut seen = Vec::new();
                for name in runtimes {
                    if seen.contains(&name) {
                        continue;
                    }
                    seen.push(name);
                    text.push_str(&format!(
                        "\n[plugins.{plugin}.containerd.runtimes.{name}]\n{pad}runtime_type = \
                         \"io.containerd.{name}.v2\"\n"
                    ));
                }
                text
            })
    }

    proptest! {
        #[test]
        fn remove_after_configure_gives_back_the_original(
            original in config(),
            settings in settings(),
        ) {
            let edited = configure(&original, &settings).expect("configure");
            let again = configure(&edited.text, &settings).expect("configure again");
            prop_assert!(again.changes.is_empty(), "second run changed {:?}", again.changes);
            prop_assert_eq!(&again.text, &edited.text);
            prop_assert!(edited.text.contains("enable_cdi = true"));
            prop_assert!(edited.text.contains("# a comment\n"), "comments kept");
            let reverted = remove(&edited.text, &edited.changes).expect("remove");
            prop_assert!(reverted.kept.is_empty());
            prop_assert!(
                same_meaning(&reverted.text, &original),
                "not the original:\n{}\n---\n{}", reverted.text, original
            );
        }
    }
}
