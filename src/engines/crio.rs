//! CRI-O: a drop-in `/etc/crio/crio.conf.d/99-amdgpu-cdi.conf` with the wrapper as a runtime
//! handler (`[crio.runtime.runtimes.<name>]`), `cdi_spec_dirs` and `hooks_dir`.
//!
//! CRI-O reads drop-ins after `crio.conf` and a list set in a drop-in replaces the earlier one, so
//! the lists written here start from the values in `crio.conf` next to the drop-in directory (or
//! CRI-O's defaults) and only add what amdgpu-cdi needs. The whole file belongs to amdgpu-cdi:
//! `--remove` deletes it.
//!
//! Read back ([`read_config`]): `crio.conf`, then the drop-ins in name order, as CRI-O reads them.

use serde_json::{Value, json};
use toml_edit::DocumentMut;

use super::change::{self, ChangeError, key};
use super::toml_tree::TomlTree;
use super::{
    DROPIN_HEADER, EngineConfig, HostPaths, RuntimeEntry, dir_files, merged_list, read_toml_files,
    string_array,
};
use crate::paths::{HOOKS_DIRS, SPEC_DIRS, WRAPPER_NAME};

/// CRI-O's main config.
pub const MAIN_CONFIG: &str = "/etc/crio/crio.conf";

/// The main config's file name, next to the drop-in directory.
pub const MAIN_CONFIG_NAME: &str = "crio.conf";

/// CRI-O's drop-in directory.
pub const DROPIN_DIR: &str = "/etc/crio/crio.conf.d";

/// The drop-in amdgpu-cdi writes.
pub const DROPIN: &str = "/etc/crio/crio.conf.d/99-amdgpu-cdi.conf";

/// CRI-O's default `hooks_dir`: the first of the standard dirs only.
pub const DEFAULT_HOOKS_DIRS: &[&str] = &[HOOKS_DIRS[0]];

/// The drop-in text. `main_config` is the text of `crio.conf` when it exists.
pub fn dropin(settings: &RuntimeEntry, main_config: Option<&str>) -> Result<String, ChangeError> {
    let runtime_key = key(&["crio", "runtime"]);
    let list = |name: &str, defaults: &[&str], ours: Vec<String>| {
        let mut full = runtime_key.clone();
        full.push(name.to_string());
        merged_list(main_config, &full, defaults, &ours)
    };
    let mut cdi_dirs: Vec<String> = SPEC_DIRS.iter().map(|d| (*d).to_string()).collect();
    cdi_dirs.extend(settings.spec_dir_strings());
    let cdi_dirs = list("cdi_spec_dirs", &SPEC_DIRS, cdi_dirs)?;
    let hooks_dirs = list(
        "hooks_dir",
        DEFAULT_HOOKS_DIRS,
        vec![HOOKS_DIRS[0].to_string()],
    )?;

    let mut doc = DocumentMut::new();
    let tree = &mut TomlTree(&mut doc);
    let mut changes = Vec::new();
    let at = |name: &str| key(&["crio", "runtime", name]);
    if settings.set_as_default {
        let name = Value::String(settings.runtime_name.clone());
        change::set(tree, &at("default_runtime"), name, &mut changes)?;
    }
    change::set(tree, &at("cdi_spec_dirs"), json!(cdi_dirs), &mut changes)?;
    change::set(tree, &at("hooks_dir"), json!(hooks_dirs), &mut changes)?;
    let runtime = json!({
        "runtime_path": settings.runtime_path.to_string_lossy(),
        "runtime_type": "oci",
    });
    let runtime_key = key(&["crio", "runtime", "runtimes", &settings.runtime_name]);
    change::set(tree, &runtime_key, runtime, &mut changes)?;
    Ok(format!("{DROPIN_HEADER}{doc}"))
}

/// What `crio.conf` and its drop-ins say about CDI, hooks and the wrapper: a later file's value
/// replaces an earlier one's.
pub fn read_config(host: &dyn HostPaths) -> EngineConfig {
    let mut files = vec![host.host(MAIN_CONFIG)];
    files.extend(dir_files(&host.host(DROPIN_DIR), "conf"));
    read_toml_files(host, files, |config, table| {
        let runtime = table.get("crio").and_then(|c| c.get("runtime"));
        if let Some(runtimes) = runtime
            .and_then(|r| r.get("runtimes"))
            .and_then(toml::Value::as_table)
        {
            for (name, entry) in runtimes {
                if let Some(path) = entry.get("runtime_path").and_then(toml::Value::as_str)
                    && path.contains(WRAPPER_NAME)
                {
                    config.wrappers.push((name.clone(), path.to_string()));
                }
            }
        }
        if let Some(dirs) = string_array(runtime.and_then(|r| r.get("hooks_dir"))) {
            config.hooks_dirs = Some(dirs);
        }
        if let Some(dirs) = string_array(runtime.and_then(|r| r.get("cdi_spec_dirs"))) {
            config.spec_dirs = Some(dirs);
        }
        if let Some(labels) = runtime.and_then(|r| r.get("selinux")?.as_bool()) {
            config.selinux_labels = Some(labels);
        }
    })
}
