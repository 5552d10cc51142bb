//! What the plugin advertises: one device per GPU or compute partition, its resource name, its
//! topology (parent GPU, XGMI hive, NUMA node) and its health, built from a discovered
//! [`Host`].
//!
//! - **Ids** are the device's `pci` CDI name (`0000:05:00.0`, `0000:05:00.0-p3`): stable across
//!   reboots and repartitioning as long as the boards stay in their slots, unique on the host,
//!   and at most 15 characters (the kubelet allows 63). The CDI name an allocation returns is
//!   `amd.com/gpu=<id>`, which the plugin's own spec defines.
//! - **Resources**: [`ResourceStrategy::Single`] puts every device under `amd.com/gpu` and needs a
//!   homogeneous node (all GPUs whole, or all partitioned in one compute and memory mode);
//!   [`ResourceStrategy::Mixed`] names the devices of partition-capable GPUs by their mode
//!   (`amd.com/cpx_nps1`, `amd.com/spx_nps1`) and other GPUs `amd.com/gpu`, as ROCm's plugin
//!   does.
//! - **Health**: a device is healthy while KFD topology lists it and both `/dev/kfd` and its
//!   render node exist under the dev root.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use amdgpu_cdi::discover::{Gpu, Host, PciAddress};
use amdgpu_cdi::naming::{NameStrategy, device_name};

pub use amdgpu_cdi::naming::{KIND, VENDOR};
/// The resource of whole GPUs, and of every device under [`ResourceStrategy::Single`]: spelled
/// like the CDI kind, as Kubernetes users expect.
pub const GPU_RESOURCE: &str = KIND;

/// How devices are grouped into resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceStrategy {
    /// Everything is `amd.com/gpu`; the node must be homogeneous.
    Single,
    /// Partition-capable GPUs by mode (`amd.com/cpx_nps4`), others `amd.com/gpu`.
    Mixed,
}

/// One advertised device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDevice {
    /// The kubelet's device id, the `pci` CDI name.
    pub id: String,
    /// The resource the device belongs to, e.g. `amd.com/gpu`.
    pub resource: String,
    /// The physical GPU.
    pub parent: PciAddress,
    /// The partition index, for partitions.
    pub partition: Option<u32>,
    /// The GPU's NUMA node, when known.
    pub numa_node: Option<i32>,
    /// The XGMI hive, when the GPU is in one.
    pub hive_id: Option<u64>,
    /// The render node's path on the host, `/dev/dri/renderD<N>`.
    pub render: PathBuf,
    /// Whether the kubelet may allocate it.
    pub healthy: bool,
}

impl PluginDevice {
    /// The fully qualified CDI name, `amd.com/gpu=<id>`.
    pub fn cdi_name(&self) -> String {
        format!("{KIND}={}", self.id)
    }
}

/// Every device the plugin advertises, in discovery order (PCI address, then partition).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The devices.
    pub devices: Vec<PluginDevice>,
}

/// Why a host cannot be advertised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// `single` on a node whose GPUs are partitioned differently.
    #[error(
        "the single resource strategy needs every GPU in one partition mode, but this node has \
         {modes} (use --strategy mixed, or repartition the GPUs alike)"
    )]
    Heterogeneous {
        /// Each mode with the GPUs in it, e.g. `CPX/NPS1 (0000:05:00.0), whole (0000:15:00.0)`.
        modes: String,
    },
    /// A partition mode that cannot be part of a resource name.
    #[error(
        "cannot name a resource after the partition mode {mode:?} of {pci_address}: expected \
         letters and digits, as the driver writes them (SPX, CPX, NPS1, ...)"
    )]
    BadPartitionMode {
        /// The GPU.
        pci_address: PciAddress,
        /// The mode as sysfs holds it.
        mode: String,
    },
}

/// The partition mode of a GPU for resource naming: `None` for GPUs that cannot be partitioned.
fn mode_of(gpu: &Gpu) -> Option<(&str, Option<&str>)> {
    gpu.compute_partition
        .as_deref()
        .map(|compute| (compute, gpu.memory_partition.as_deref()))
}

/// What `single` compares: whole GPUs are alike, partitioned ones alike when their modes match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Whole,
    Partitioned(String),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Whole => f.write_str("whole GPUs"),
            Self::Partitioned(mode) => f.write_str(mode),
        }
    }
}

fn kind_of(gpu: &Gpu) -> Kind {
    match (&gpu.partition, mode_of(gpu)) {
        (Some(_), Some((compute, memory))) => Kind::Partitioned(match memory {
            Some(memory) => format!("{compute}/{memory}"),
            None => compute.to_string(),
        }),
        _ => Kind::Whole,
    }
}

/// `amd.com/<compute>_<memory>` in lower case (`amd.com/<compute>` without a memory mode).
fn mode_resource(gpu: &Gpu, compute: &str, memory: Option<&str>) -> Result<String, InventoryError> {
    let mut name = format!("{VENDOR}/{}", compute.to_ascii_lowercase());
    if let Some(memory) = memory {
        name.push('_');
        name.push_str(&memory.to_ascii_lowercase());
    }
    for mode in std::iter::once(compute).chain(memory) {
        if mode.is_empty() || !mode.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(InventoryError::BadPartitionMode {
                pci_address: gpu.pci_address,
                mode: mode.chars().take(40).collect(),
            });
        }
    }
    Ok(name)
}

/// Checks that `single` can advertise `host`.
fn check_homogeneous(host: &Host) -> Result<(), InventoryError> {
    let mut kinds: Vec<(Kind, Vec<String>)> = Vec::new();
    for gpu in &host.gpus {
        let kind = kind_of(gpu);
        let address = gpu.pci_address.to_string();
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, addresses)) => {
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
            None => kinds.push((kind, vec![address])),
        }
    }
    if kinds.len() <= 1 {
        return Ok(());
    }
    let modes = kinds
        .iter()
        .map(|(kind, addresses)| format!("{kind} ({})", addresses.join(", ")))
        .collect::<Vec<_>>()
        .join(", ");
    Err(InventoryError::Heterogeneous { modes })
}

/// Whether a node (an absolute host path such as `/dev/kfd`) exists under `dev_root`.
pub fn node_exists(dev_root: &Path, node: &Path) -> bool {
    let relative = node.strip_prefix("/").unwrap_or(node);
    dev_root.join(relative).symlink_metadata().is_ok()
}

impl Inventory {
    /// The devices of `host` under `strategy`; `present(path)` says whether a node exists
    /// (normally [`node_exists`] under the dev root).
    pub fn build(
        host: &Host,
        strategy: ResourceStrategy,
        present: &dyn Fn(&Path) -> bool,
    ) -> Result<Self, InventoryError> {
        if strategy == ResourceStrategy::Single {
            check_homogeneous(host)?;
        }
        let kfd_present = present(&host.kfd.path);
        let mut devices = Vec::with_capacity(host.gpus.len());
        for gpu in &host.gpus {
            let resource = match (strategy, mode_of(gpu)) {
                (ResourceStrategy::Mixed, Some((compute, memory))) => {
                    mode_resource(gpu, compute, memory)?
                }
                _ => GPU_RESOURCE.to_string(),
            };
            let id = device_name(gpu, NameStrategy::Pci).unwrap_or_default();
            devices.push(PluginDevice {
                id,
                resource,
                parent: gpu.pci_address,
                partition: gpu.partition.as_ref().map(|p| p.index),
                numa_node: gpu.numa_node,
                hive_id: gpu.hive_id,
                render: gpu.render.path.clone(),
                healthy: kfd_present && present(&gpu.render.path),
            });
        }
        Ok(Self { devices })
    }

    /// This inventory plus, as unhealthy, the devices of `previous` whose physical GPU is gone
    /// from it altogether (its KFD nodes disappeared): they keep their resource, so they can
    /// become healthy again when the GPU returns. Devices of a GPU that is still here but in
    /// another partition mode are dropped: the new devices replace them.
    pub fn keeping_vanished(mut self, previous: &Inventory) -> Self {
        let parents: BTreeSet<PciAddress> = self.devices.iter().map(|d| d.parent).collect();
        for device in &previous.devices {
            if !parents.contains(&device.parent) {
                self.devices.push(PluginDevice {
                    healthy: false,
                    ..device.clone()
                });
            }
        }
        self.devices.sort_by_key(|d| (d.parent, d.partition));
        self
    }

    /// Every device unhealthy: what is advertised while the host cannot be discovered.
    pub fn all_unhealthy(&self) -> Self {
        Self {
            devices: self
                .devices
                .iter()
                .map(|d| PluginDevice {
                    healthy: false,
                    ..d.clone()
                })
                .collect(),
        }
    }

    /// The resource names, sorted.
    pub fn resources(&self) -> BTreeSet<&str> {
        self.devices.iter().map(|d| d.resource.as_str()).collect()
    }

    /// The devices of one resource, in inventory order.
    pub fn of_resource<'a>(&'a self, resource: &'a str) -> impl Iterator<Item = &'a PluginDevice> {
        self.devices.iter().filter(move |d| d.resource == resource)
    }

    /// The device with this id in `resource`.
    pub fn get(&self, resource: &str, id: &str) -> Option<&PluginDevice> {
        self.devices
            .iter()
            .find(|d| d.resource == resource && d.id == id)
    }
}

/// A resource's name without its vendor: `<name>` for `amd.com/<name>`.
pub fn short_name(resource: &str) -> &str {
    resource.rsplit('/').next().unwrap_or(resource)
}

/// The socket file name of a resource's server: `amdgpu-cdi-<name>.sock` for
/// `amd.com/<name>`.
pub fn socket_name(resource: &str) -> String {
    format!("amdgpu-cdi-{}.sock", short_name(resource))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testing::example;

    fn all_present(_: &Path) -> bool {
        true
    }

    #[test]
    fn ids_are_pci_names_and_resources_follow_the_strategy() {
        let host = example("mi300x-cpx");
        let single =
            Inventory::build(&host, ResourceStrategy::Single, &all_present).expect("inventory");
        assert_eq!(single.devices.len(), 64);
        assert_eq!(single.resources(), BTreeSet::from(["amd.com/gpu"]));
        assert_eq!(single.devices[0].id, "0000:05:00.0-p0");
        assert_eq!(single.devices[63].id, "0000:f5:00.0-p7");
        assert_eq!(single.devices[9].cdi_name(), "amd.com/gpu=0000:15:00.0-p1");
        assert_eq!(single.devices[0].numa_node, Some(0));
        assert_eq!(single.devices[63].numa_node, Some(1));
        assert!(single.devices.iter().all(|d| d.hive_id.is_some()));
        let mixed =
            Inventory::build(&host, ResourceStrategy::Mixed, &all_present).expect("inventory");
        assert_eq!(mixed.resources(), BTreeSet::from(["amd.com/cpx_nps1"]));

        let spx = example("mi300x-spx");
        let mixed =
            Inventory::build(&spx, ResourceStrategy::Mixed, &all_present).expect("inventory");
        assert_eq!(mixed.resources(), BTreeSet::from(["amd.com/spx_nps1"]));
        assert_eq!(mixed.devices[0].id, "0000:05:00.0");

        // GPUs that cannot be partitioned are amd.com/gpu under both strategies.
        let mi210 = example("mi210x4");
        for strategy in [ResourceStrategy::Single, ResourceStrategy::Mixed] {
            let inventory = Inventory::build(&mi210, strategy, &all_present).expect("inventory");
            assert_eq!(inventory.resources(), BTreeSet::from(["amd.com/gpu"]));
        }
    }

    #[test]
    fn single_refuses_a_heterogeneous_node_and_mixed_splits_it() {
        let mut host = example("mi300x-cpx");
        // The last GPU back in SPX: one whole device instead of eight partitions.
        let last = host.gpus.last().expect("a GPU").pci_address;
        host.gpus.retain(|g| {
            g.pci_address != last || g.partition.as_ref().is_some_and(|p| p.index == 0)
        });
        let gpu = host.gpus.last_mut().expect("a GPU");
        gpu.partition = None;
        gpu.compute_partition = Some("SPX".into());
        let error =
            Inventory::build(&host, ResourceStrategy::Single, &all_present).expect_err("must fail");
        assert_eq!(
            error.to_string(),
            "the single resource strategy needs every GPU in one partition mode, but this node \
             has CPX/NPS1 (0000:05:00.0, 0000:15:00.0, 0000:65:00.0, 0000:75:00.0, \
             0000:85:00.0, 0000:95:00.0, 0000:e5:00.0), whole GPUs (0000:f5:00.0) (use \
             --strategy mixed, or repartition the GPUs alike)"
        );
        let mixed =
            Inventory::build(&host, ResourceStrategy::Mixed, &all_present).expect("inventory");
        assert_eq!(
            mixed.resources(),
            BTreeSet::from(["amd.com/cpx_nps1", "amd.com/spx_nps1"])
        );
        assert_eq!(mixed.of_resource("amd.com/spx_nps1").count(), 1);
        assert_eq!(mixed.of_resource("amd.com/cpx_nps1").count(), 56);
    }

    #[test]
    fn a_mode_that_cannot_name_a_resource_is_refused() {
        let mut host = example("mi300x-spx");
        host.gpus[2].compute_partition = Some("S/PX".into());
        let error =
            Inventory::build(&host, ResourceStrategy::Mixed, &all_present).expect_err("must fail");
        assert!(
            error.to_string().starts_with(
                "cannot name a resource after the partition mode \"S/PX\" of 0000:65:00.0"
            ),
            "{error}"
        );
    }

    #[test]
    fn health_needs_kfd_and_the_render_node() {
        let host = example("mi210x4");
        let missing = host.gpus[1].render.path.clone();
        let inventory = Inventory::build(&host, ResourceStrategy::Single, &|p: &Path| p != missing)
            .expect("inventory");
        let healthy: Vec<bool> = inventory.devices.iter().map(|d| d.healthy).collect();
        assert_eq!(healthy, [true, false, true, true]);
        let no_kfd = Inventory::build(&host, ResourceStrategy::Single, &|p: &Path| {
            p != Path::new("/dev/kfd")
        })
        .expect("inventory");
        assert!(no_kfd.devices.iter().all(|d| !d.healthy));
    }

    #[test]
    fn vanished_gpus_stay_unhealthy_and_repartitioned_ones_are_replaced() {
        let host = example("mi300x-cpx");
        let before =
            Inventory::build(&host, ResourceStrategy::Mixed, &all_present).expect("inventory");
        // The first GPU's KFD nodes disappear.
        let mut gone = host.clone();
        gone.gpus
            .retain(|g| g.pci_address != host.gpus[0].pci_address);
        let after = Inventory::build(&gone, ResourceStrategy::Mixed, &all_present)
            .expect("inventory")
            .keeping_vanished(&before);
        assert_eq!(after.devices.len(), 64);
        assert_eq!(after.devices[0].id, "0000:05:00.0-p0");
        assert!(after.devices[..8].iter().all(|d| !d.healthy));
        assert!(after.devices[8..].iter().all(|d| d.healthy));
        // The first GPU back in SPX: its partitions are replaced by the whole GPU.
        let mut spx = host.clone();
        spx.gpus
            .retain(|g| g.pci_address != host.gpus[0].pci_address);
        let mut whole = host.gpus[0].clone();
        whole.partition = None;
        whole.compute_partition = Some("SPX".into());
        spx.gpus.insert(0, whole);
        let after = Inventory::build(&spx, ResourceStrategy::Mixed, &all_present)
            .expect("inventory")
            .keeping_vanished(&before);
        assert_eq!(after.devices.len(), 57);
        assert_eq!(after.devices[0].id, "0000:05:00.0");
        assert_eq!(after.devices[0].resource, "amd.com/spx_nps1");
    }

    #[test]
    fn socket_names_follow_the_resource() {
        assert_eq!(socket_name("amd.com/gpu"), "amdgpu-cdi-gpu.sock");
        assert_eq!(socket_name("amd.com/cpx_nps4"), "amdgpu-cdi-cpx_nps4.sock");
    }
}
