//! proptest generators shared by the engine modules' property tests, so every engine is tested
//! with the same requests: runtime names that collide with entries the generated configs hold
//! (`amd`, `runc`, `kata`) or not, and spec directories that are the standard ones or not.

use std::path::PathBuf;

use proptest::prelude::*;

use super::RuntimeEntry;
use crate::paths::WRAPPER_PATH;

/// A runtime entry name.
pub(crate) fn runtime_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("amd".to_string()),
        Just("runc".to_string()),
        Just("kata".to_string()),
        "[a-z]{1,6}"
    ]
}

/// Up to two CDI spec directories, standard or not, repeats possible.
pub(crate) fn spec_dirs() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![
            Just("/etc/cdi".to_string()),
            Just("/var/run/cdi".to_string()),
            "/[a-z]{1,5}"
        ],
        0..3,
    )
}

/// What `configure` is asked to write.
pub(crate) fn settings() -> impl Strategy<Value = RuntimeEntry> {
    (runtime_name(), any::<bool>(), spec_dirs()).prop_map(|(runtime_name, set_as_default, dirs)| {
        RuntimeEntry {
            runtime_name,
            runtime_path: PathBuf::from(WRAPPER_PATH),
            set_as_default,
            cdi_spec_dirs: dirs.into_iter().map(PathBuf::from).collect(),
        }
    })
}
