//! Podman (and every containers.conf reader): a drop-in
//! `/etc/containers/containers.conf.d/99-amdgpu-cdi.conf` setting `[engine]` `cdi_spec_dirs`
//! (always including `/etc/cdi` and `/var/run/cdi`) and `hooks_dir`.
//!
//! Podman has no runtime entry to add: CDI is built in (`--device amd.com/gpu=0`). A list set in a
//! drop-in replaces the one from `containers.conf`, so the lists start from the values in
//! `containers.conf` next to the drop-in directory (or podman's defaults). Podman 4.3 does not
//! know `cdi_spec_dirs` yet and reads the two standard directories regardless. The whole file
//! belongs to amdgpu-cdi: `--remove` deletes it.
//!
//! Read back ([`read_config`]): the `[engine]` runtimes that are the wrapper and `cdi_spec_dirs`
//! from the packaged and the administrator's `containers.conf`.

use serde_json::json;
use toml_edit::DocumentMut;

use super::change::{self, ChangeError, key};
use super::toml_tree::TomlTree;
use super::{
    DROPIN_HEADER, EngineConfig, HostPaths, RuntimeEntry, merged_list, read_toml_files,
    string_array,
};
use crate::paths::{HOOKS_DIRS, SPEC_DIRS, WRAPPER_NAME};

/// The `containers.conf` files read back, in the order podman reads them.
pub const CONFIGS: [&str; 2] = [
    "/usr/share/containers/containers.conf",
    "/etc/containers/containers.conf",
];

/// The main config's file name, next to the drop-in directory.
pub const MAIN_CONFIG_NAME: &str = "containers.conf";

/// The drop-in amdgpu-cdi writes.
pub const DROPIN: &str = "/etc/containers/containers.conf.d/99-amdgpu-cdi.conf";

/// The drop-in text. `main_config` is the text of `containers.conf` when it exists.
pub fn dropin(settings: &RuntimeEntry, main_config: Option<&str>) -> Result<String, ChangeError> {
    let mut cdi_dirs: Vec<String> = SPEC_DIRS.iter().map(|d| (*d).to_string()).collect();
    cdi_dirs.extend(settings.spec_dir_strings());
    let cdi_key = key(&["engine", "cdi_spec_dirs"]);
    let hooks_key = key(&["engine", "hooks_dir"]);
    let cdi_dirs = merged_list(main_config, &cdi_key, &SPEC_DIRS, &cdi_dirs)?;
    let hooks_dirs = merged_list(
        main_config,
        &hooks_key,
        &HOOKS_DIRS,
        &[HOOKS_DIRS[0].to_string()],
    )?;

    let mut doc = DocumentMut::new();
    let tree = &mut TomlTree(&mut doc);
    let mut changes = Vec::new();
    change::set(tree, &cdi_key, json!(cdi_dirs), &mut changes)?;
    change::set(tree, &hooks_key, json!(hooks_dirs), &mut changes)?;
    Ok(format!("{DROPIN_HEADER}{doc}"))
}

/// What the `containers.conf` files say about CDI and the wrapper: a later file's value replaces
/// an earlier one's.
pub fn read_config(host: &dyn HostPaths) -> EngineConfig {
    read_toml_files(
        host,
        CONFIGS.map(|file| host.host(file)),
        |config, table| {
            let engine = table.get("engine");
            if let Some(runtimes) = engine
                .and_then(|e| e.get("runtimes"))
                .and_then(toml::Value::as_table)
            {
                for (name, paths) in runtimes {
                    let paths = paths.as_array().map(Vec::as_slice).unwrap_or_default();
                    if let Some(path) = paths
                        .iter()
                        .filter_map(toml::Value::as_str)
                        .find(|p| p.contains(WRAPPER_NAME))
                    {
                        config.wrappers.push((name.clone(), path.to_string()));
                    }
                }
            }
            if let Some(dirs) = string_array(engine.and_then(|e| e.get("cdi_spec_dirs"))) {
                config.spec_dirs = Some(dirs);
            }
            if let Some(label) = table
                .get("containers")
                .and_then(|c| c.get("label")?.as_bool())
            {
                config.selinux_labels = Some(label);
            }
        },
    )
}
