//! One line per event on standard error, prefixed with the program's name: the kubelet's
//! container runtime adds the timestamps (`kubectl logs --timestamps`).

/// Something worth knowing happened.
pub(crate) fn info(message: &str) {
    eprintln!("amdgpu-cdi-device-plugin: {message}");
}

/// Something failed; the plugin goes on.
pub(crate) fn error(message: &str) {
    eprintln!("amdgpu-cdi-device-plugin: error: {message}");
}

/// Something looks wrong.
pub(crate) fn warning(message: &str) {
    eprintln!("amdgpu-cdi-device-plugin: warning: {message}");
}
