//! What discovery finds: the host's KFD node and its GPUs, each a whole GPU or one compute
//! partition, with the device nodes a container needs.

use std::path::PathBuf;

use super::address::PciAddress;

/// KFD's `vendor_id` for AMD (0x1002).
pub const AMD_VENDOR_ID: u16 = 0x1002;

/// A character device node on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundNode {
    /// Path as seen in the host's `/dev` (not prefixed with a dev root), e.g. `/dev/dri/renderD128`.
    pub path: PathBuf,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Group owning the node under the dev root (from `stat`), when the node exists there.
    pub gid: Option<u32>,
    /// Permission bits of the node under the dev root (from `stat`), when it exists there.
    pub file_mode: Option<u32>,
}

/// A compute partition of an MI300-class GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Partition index within its physical GPU (0-based; the low 3 bits of KFD's `location_id`).
    pub index: u32,
    /// Number of partitions of the physical GPU listed in KFD topology. A partition the kernel
    /// could not give a DRM node (DRM minors exhausted) is not in KFD and not counted.
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
    /// The partition, when the physical GPU is partitioned into more than one (any compute
    /// partition mode other than `SPX`).
    pub partition: Option<Partition>,
    /// KFD topology node number.
    pub kfd_node: u32,
    /// KFD `gpu_id` (0 from [`discover_for_injection`], which does not read it).
    pub gpu_id: u32,
    /// KFD `unique_id`, shown by ROCm as `GPU-<hex>`.
    pub unique_id: Option<u64>,
    /// KFD `hive_id`: GPUs (and their partitions) linked by XGMI share it; `None` when 0.
    pub hive_id: Option<u64>,
    /// PCI vendor id (0x1002 for AMD).
    pub vendor_id: u16,
    /// PCI device id.
    pub device_id: u16,
    /// `gfx_target_version` from KFD, e.g. 90402 for gfx942.
    pub gfx_target_version: Option<u32>,
    /// Render node, `/dev/dri/renderD<N>`.
    pub render: FoundNode,
    /// Primary (card) node, `/dev/dri/card<N>`, when the GPU has one.
    pub card: Option<FoundNode>,
    /// NUMA node of the PCI device, when known.
    pub numa_node: Option<i32>,
    /// Marketing name, when known.
    pub product_name: Option<String>,
    /// True for integrated GPUs (APUs).
    pub integrated: bool,
    /// The physical GPU's `current_compute_partition` (e.g. `SPX`, `CPX`), on GPUs that support
    /// compute partitions; `Some("SPX")` for an unpartitioned MI300.
    pub compute_partition: Option<String>,
    /// The physical GPU's `current_memory_partition` (e.g. `NPS1`), when reported.
    pub memory_partition: Option<String>,
}

impl Gpu {
    /// The `gfx` target name, e.g. `gfx942` for `gfx_target_version` 90402 or `gfx90a` for 90010.
    pub fn gfx_target(&self) -> Option<String> {
        self.gfx_target_version
            .map(|v| format!("gfx{}{:x}{:x}", v / 10000, (v / 100) % 100, v % 100))
    }

    /// The ROCm form of the unique id, `GPU-<16 hex digits>`.
    pub fn rocm_uuid(&self) -> Option<String> {
        self.unique_id.map(|id| format!("GPU-{id:016x}"))
    }
}

/// Everything the generator needs from one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The KFD compute node, `/dev/kfd`.
    pub kfd: FoundNode,
    /// The GPUs in amdgpu-cdi's stable order.
    pub gpus: Vec<Gpu>,
}

impl Host {
    /// The host without its integrated GPUs (APUs), the others numbered again from 0 in the same
    /// order: what `--exclude-integrated` (generate, the hooks' `exclude-integrated`, the device
    /// plugin) makes of it, so that indices agree wherever the choice is made.
    pub fn without_integrated(mut self) -> Host {
        self.gpus.retain(|gpu| !gpu.integrated);
        for (index, gpu) in self.gpus.iter_mut().enumerate() {
            gpu.index = index;
        }
        self
    }
}
