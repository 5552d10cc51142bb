//! Discovery of the host's AMD GPUs and compute partitions from sysfs and `/dev`.

use std::path::PathBuf;

/// A PCI address `domain:bus:device.function`, e.g. `0000:03:00.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// PCI domain (segment).
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
}

impl std::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// A character device node on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path as seen in the host's `/dev` (not prefixed with a dev root), e.g. `/dev/dri/renderD128`.
    pub path: PathBuf,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

/// A compute partition of an MI300-class GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Partition index within its physical GPU (0-based).
    pub index: u32,
    /// Number of partitions the physical GPU is split into.
    pub count: u32,
    /// Compute partition mode, e.g. `CPX`.
    pub compute_mode: String,
    /// Memory partition mode, e.g. `NPS1`, when the GPU reports one.
    pub memory_mode: Option<String>,
}

/// One usable AMD GPU: a whole GPU, or one compute partition of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// Position in amdgpu-cdi's stable order; the CDI index name.
    pub index: usize,
    /// PCI address of the physical GPU.
    pub pci_address: PciAddress,
    /// The partition, when the physical GPU is partitioned into more than one.
    pub partition: Option<Partition>,
    /// KFD topology node number.
    pub kfd_node: u32,
    /// KFD `gpu_id`.
    pub gpu_id: u32,
    /// KFD `unique_id`, shown by ROCm as `GPU-<hex>`.
    pub unique_id: Option<u64>,
    /// PCI vendor id (0x1002 for AMD).
    pub vendor_id: u16,
    /// PCI device id.
    pub device_id: u16,
    /// `gfx_target_version` from KFD, e.g. 90402 for gfx942.
    pub gfx_target_version: Option<u32>,
    /// Render node, `/dev/dri/renderD<N>`.
    pub render: DeviceNode,
    /// Primary (card) node, `/dev/dri/card<N>`, when the GPU has one.
    pub card: Option<DeviceNode>,
    /// NUMA node of the PCI device, when known.
    pub numa_node: Option<i32>,
    /// Marketing name, when known.
    pub product_name: Option<String>,
    /// True for integrated GPUs (APUs).
    pub integrated: bool,
}

/// Everything the generator needs from one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The KFD compute node, `/dev/kfd`.
    pub kfd: DeviceNode,
    /// The GPUs in amdgpu-cdi's stable order.
    pub gpus: Vec<Gpu>,
}
