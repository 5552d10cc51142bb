//! The container side of amdgpu-cdi: OCI hook state and bundles, safe device node creation in an
//! untrusted rootfs, device cgroup updates, and the runc-compatible runtime wrapper.

pub mod bundle;
pub mod cgroup;
pub mod log;
pub mod oci_config;
pub mod prestart;
pub mod rootfs;
pub mod state;
pub mod syscalls;
pub mod wrapper;
