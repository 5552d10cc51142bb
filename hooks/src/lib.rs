//! The container side of amdgpu-cdi: OCI hook state and bundles, safe device node creation in an
//! untrusted rootfs, device cgroup updates, and the runc-compatible runtime wrapper.

pub mod cgroup;
pub mod prestart;
pub mod rootfs;
pub mod syscalls;
