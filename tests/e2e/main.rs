//! End-to-end tests against real container engines (podman, runc, youki, Docker, containerd) on a
//! busybox rootfs with fake GPU nodes. They need root and the engines: under `CI=true` a missing
//! prerequisite fails the test; elsewhere the test is skipped with a printed reason.

mod containerd_configure;
mod containerd_cri;
mod containerd_runtime;
mod device_plugin_cri;
mod docker_cdi;
mod docker_configure;
mod docker_gpus;
mod docker_runtime;
mod docker_wsl;
mod doctor_engines;
mod ebpf;
#[path = "../files.rs"]
mod files;
mod gpu_root;
mod non_root;
mod packaging;
mod podman5;
mod podman_cdi;
mod podman_generate;
mod podman_hooks;
mod podman_wsl;
mod rootless;
mod roots;
mod runc_cgroup_v2;
mod runc_prestart;
#[path = "../skip.rs"]
mod skip;
mod special_files;
mod support;
mod units;
mod youki_prestart;
