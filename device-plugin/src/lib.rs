//! amdgpu-cdi-device-plugin: a kubelet device plugin (Device Plugin API `v1beta1`) that hands
//! out AMD GPUs and compute partitions as CDI devices.
//!
//! | module | role |
//! |---|---|
//! | [`api`] | the API's messages (prost) and services (tonic) |
//! | [`inventory`] | devices, ids, resources per strategy, health, from discovery |
//! | [`policy`] | `GetPreferredAllocation`: topology-aware choice of devices |
//! | [`allocate`] | `Allocate`: CDI names, annotations or device nodes |
//! | [`server`] | one resource's `DevicePlugin` service on its socket |
//! | [`kubelet`] | registration with the kubelet |
//! | [`events`] | inotify on the dev and device plugin directories |
//! | [`plugin`] | the event loop: spec, servers, registration, changes, shutdown |
//! | [`options`] | settings, from the command line shared with `amdgpu-cdi device-plugin` |
#![forbid(unsafe_code)]

pub mod allocate;
pub mod api;
pub mod events;
pub mod inventory;
pub mod kubelet;
mod log;
pub mod options;
pub mod plugin;
pub mod policy;
pub mod server;

#[cfg(test)]
mod testing;
