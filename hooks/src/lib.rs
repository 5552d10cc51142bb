//! The container side of amdgpu-cdi: OCI hook state and bundles, safe device node creation in an
//! untrusted rootfs, device cgroup updates, and the runc-compatible runtime wrapper.

pub mod bundle;
pub mod log;
pub mod state;
pub mod wrapper;
