//! End-to-end tests against real container engines (podman, runc, Docker, containerd) on a busybox
//! rootfs with fake GPU nodes. They need root and the engines: under `CI=true` a missing
//! prerequisite fails the test; elsewhere the test is skipped with a printed reason.

mod containerd_configure;
mod containerd_runtime;
mod docker_configure;
mod docker_runtime;
mod ebpf;
mod packaging;
mod podman_cdi;
mod podman_generate;
mod podman_hooks;
mod runc_prestart;
mod support;
mod units;
