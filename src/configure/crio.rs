//! CRI-O: a drop-in `/etc/crio/crio.conf.d/99-amdgpu-cdi.conf` with the wrapper as a runtime
//! handler (`[crio.runtime.runtimes.<name>]`), `cdi_spec_dirs` and `hooks_dir`.
//!
//! CRI-O reads drop-ins after `crio.conf` and a list set in a drop-in replaces the earlier one, so
//! the lists written here start from the values in `crio.conf` next to the drop-in directory (or
//! CRI-O's defaults) and only add what amdgpu-cdi needs. The whole file belongs to amdgpu-cdi:
//! `--remove` deletes it.

use serde_json::{Value, json};
use toml_edit::DocumentMut;

use super::change::{self, ChangeError, key};
use super::toml_tree::TomlTree;
use super::{DROPIN_HEADER, HOOKS_DIR, RuntimeEntry, STANDARD_CDI_DIRS, merged_list};

/// CRI-O's default `hooks_dir`.
const DEFAULT_HOOKS_DIRS: &[&str] = &["/usr/share/containers/oci/hooks.d"];

/// The drop-in text. `main_config` is the text of `crio.conf` when it exists.
pub fn dropin(settings: &RuntimeEntry, main_config: Option<&str>) -> Result<String, ChangeError> {
    let runtime_key = key(&["crio", "runtime"]);
    let list = |name: &str, defaults: &[&str], ours: Vec<String>| {
        let mut full = runtime_key.clone();
        full.push(name.to_string());
        merged_list(main_config, &full, defaults, &ours)
    };
    let mut cdi_dirs: Vec<String> = STANDARD_CDI_DIRS.iter().map(|d| (*d).to_string()).collect();
    cdi_dirs.extend(settings.spec_dir_strings());
    let cdi_dirs = list("cdi_spec_dirs", STANDARD_CDI_DIRS, cdi_dirs)?;
    let hooks_dirs = list("hooks_dir", DEFAULT_HOOKS_DIRS, vec![HOOKS_DIR.to_string()])?;

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
