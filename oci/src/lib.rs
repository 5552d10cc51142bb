//! The container side of amdgpu-cdi: OCI hook state and bundles, safe device node creation in an
//! untrusted rootfs, device cgroup updates, and the runc command line the runtime wrapper parses.

pub mod bundle;
pub mod cgroup;
pub mod log;
pub mod nodes;
pub mod oci_config;
pub mod rootfs;
pub mod runtime_args;
pub mod state;
pub mod syscalls;

#[cfg(test)]
#[path = "../../tests/files.rs"]
mod files;
