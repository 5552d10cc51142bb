//! The standard paths amdgpu-cdi uses when it is not told otherwise, each spelled once here so
//! that the settings, the wrapper, `configure` and `doctor` agree on them.

/// The runtime wrapper's file name, spelled once for [`WRAPPER_NAME`] and [`WRAPPER_PATH`].
macro_rules! wrapper_name {
    () => {
        "amdgpu-container-runtime"
    };
}

/// The CDI spec directories engines read by default, lowest priority first: `/etc/cdi` for
/// static specs, then `/var/run/cdi` for generated ones (the `cdi` crate's registry constants).
pub const SPEC_DIRS: [&str; 2] = [cdi::registry::STATIC_DIR, cdi::registry::DYNAMIC_DIR];

/// The OCI hooks directories (`hooks.d`) podman reads by default: the one packages install into
/// first, then the administrator's. CRI-O reads only the first by default.
pub const HOOKS_DIRS: [&str; 2] = [
    "/usr/share/containers/oci/hooks.d",
    "/etc/containers/oci/hooks.d",
];

/// The runtime wrapper's binary name, which is also its name in messages and in engine configs.
pub const WRAPPER_NAME: &str = wrapper_name!();

/// Where the packages install the runtime wrapper.
pub const WRAPPER_PATH: &str = concat!("/usr/bin/", wrapper_name!());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_path_ends_in_its_name() {
        assert_eq!(WRAPPER_PATH, "/usr/bin/amdgpu-container-runtime");
        assert!(WRAPPER_PATH.ends_with(&format!("/{WRAPPER_NAME}")));
    }
}
