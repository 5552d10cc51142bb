//! Podman (and every containers.conf reader): a drop-in
//! `/etc/containers/containers.conf.d/99-amdgpu-cdi.conf` setting `[engine]` `cdi_spec_dirs`
//! (always including `/etc/cdi` and `/var/run/cdi`) and `hooks_dir`.
//!
//! Podman has no runtime entry to add: CDI is built in (`--device amd.com/gpu=0`). A list set in a
//! drop-in replaces the one from `containers.conf`, so the lists start from the values in
//! `containers.conf` next to the drop-in directory (or podman's defaults). Podman 4.3 does not
//! know `cdi_spec_dirs` yet and reads the two standard directories regardless. The whole file
//! belongs to amdgpu-cdi: `--remove` deletes it.

use serde_json::json;
use toml_edit::DocumentMut;

use super::change::{self, ChangeError, key};
use super::toml_tree::TomlTree;
use super::{DROPIN_HEADER, HOOKS_DIR, RuntimeEntry, STANDARD_CDI_DIRS, merged_list};

/// Podman's default `hooks_dir`.
const DEFAULT_HOOKS_DIRS: &[&str] = &[
    "/usr/share/containers/oci/hooks.d",
    "/etc/containers/oci/hooks.d",
];

/// The drop-in text. `main_config` is the text of `containers.conf` when it exists.
pub fn dropin(settings: &RuntimeEntry, main_config: Option<&str>) -> Result<String, ChangeError> {
    let mut cdi_dirs: Vec<String> = STANDARD_CDI_DIRS.iter().map(|d| (*d).to_string()).collect();
    cdi_dirs.extend(settings.spec_dir_strings());
    let cdi_key = key(&["engine", "cdi_spec_dirs"]);
    let hooks_key = key(&["engine", "hooks_dir"]);
    let cdi_dirs = merged_list(main_config, &cdi_key, STANDARD_CDI_DIRS, &cdi_dirs)?;
    let hooks_dirs = merged_list(
        main_config,
        &hooks_key,
        DEFAULT_HOOKS_DIRS,
        &[HOOKS_DIR.to_string()],
    )?;

    let mut doc = DocumentMut::new();
    let tree = &mut TomlTree(&mut doc);
    let mut changes = Vec::new();
    change::set(tree, &cdi_key, json!(cdi_dirs), &mut changes)?;
    change::set(tree, &hooks_key, json!(hooks_dirs), &mut changes)?;
    Ok(format!("{DROPIN_HEADER}{doc}"))
}
