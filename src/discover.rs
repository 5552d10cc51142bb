//! Discovery of the host's AMD GPUs and compute partitions from sysfs and `/dev`.
//!
//! # What is read
//!
//! - `class/kfd/kfd/dev` (the `/dev/kfd` numbers) and `class/kfd/kfd/topology/nodes/<n>/
//!   {properties,gpu_id}`: every KFD node with SIMDs and AMD's `vendor_id` is a GPU, or one
//!   compute partition of a GPU (CPU nodes have no SIMDs; `gpu_id`, 0 for them, is only
//!   reported). KFD topology is the list of record: a render node that KFD does not list (the
//!   placeholder `amdgpu_xcp` nodes present in every partition mode) is not a GPU, and a node
//!   KFD lists but that cannot be read is an error, never a shorter list.
//! - `class/drm/renderD<drm_render_minor>`: its `dev` file, its `device` link (a PCI device, or a
//!   partition platform device `amdgpu_xcp_<k>` / `amdgpu_xcp.<k>`) and the `card<N>` beside it.
//! - `bus/pci/devices/<BDF>/{vendor,numa_node,current_compute_partition,
//!   current_memory_partition,product_name}` of the physical GPU.
//! - `stat` of the nodes under the dev root, for their group and mode.
//!
//! # Order
//!
//! GPUs are ordered by PCI address (domain, bus, device, function), and the partitions of one
//! physical GPU by partition index. This is the order `lspci` shows, it does not depend on driver
//! probe order or on how the kernel numbered KFD nodes and DRM minors, and it survives reboots
//! as long as the hardware stays in its slots. ROCm numbers devices in KFD node order instead,
//! which can differ (seen on multi-GPU MI210 hosts): index `1` here is not necessarily ROCm's
//! device `1`. The `uuid` and `pci` name strategies name devices independently of any order;
//! see `docs/discovery.md`.
//!
//! # Device numbers
//!
//! The numbers in the sysfs `dev` files win: they are the kernel's record of the device KFD
//! refers to. The node under the dev root is only a name and can be stale (a container's `/dev`
//! populated earlier, a test's fake node); when `stat` disagrees, discovery reports a warning.
//! Without a sysfs `dev` file, the numbers come from `stat`.
//!
//! # Layout
//!
//! `scan` runs one pass and assembles each GPU from the steps of the other modules: `kfd`
//! (topology nodes, parsed by `properties`), `drm` (render and card nodes and the device they
//! hang off), `pci` (addresses, the physical GPU and its attributes) and `partitions`;
//! `products` fills in what sysfs does not say, `model` is what comes out and `error` why it did
//! not. Every read goes through `reader`, so tests can inject failures. `wsl` discovers a WSL2
//! host, which has no KFD and reaches the GPU through `/dev/dxg` (docs/wsl.md).

mod address;
mod drm;
mod error;
mod kfd;
mod model;
mod partitions;
mod pass;
mod pci;
mod products;
mod properties;
mod reader;
mod scan;
pub mod wsl;

use std::path::{Path, PathBuf};

pub use address::{ParsePciAddressError, PciAddress, PciSelector};
pub use error::DiscoverError;
pub use model::{AMD_VENDOR_ID, FoundNode, Gpu, Host, Partition};
use pass::{Detail, Scan};
pub(crate) use properties::Properties;
pub use reader::{NodeStat, OpenDir, RealSysfs, SysfsReader};

/// Where discovery looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// The sysfs mount, normally `/sys`.
    pub sysfs_root: PathBuf,
    /// The directory holding `dev/`, normally `/`; nodes are looked up as `<dev_root>/dev/...`.
    pub dev_root: PathBuf,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        Self {
            sysfs_root: PathBuf::from("/sys"),
            dev_root: PathBuf::from("/"),
        }
    }
}

/// A discovered host plus what looked wrong but did not stop discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The host.
    pub host: Host,
    /// One line each, lower-case: device-number mismatches, partitions missing from KFD, ...
    pub warnings: Vec<String>,
}

/// The AMD display controllers and accelerators on the PCI bus of the sysfs tree at
/// `sysfs_root`, whatever their driver: none means the machine has no AMD GPU. An error when
/// `<sysfs_root>/bus/pci/devices` cannot be listed.
pub fn amd_gpus_on_pci(sysfs_root: &Path) -> std::io::Result<Vec<PciAddress>> {
    pci::amd_gpus_on_pci(&RealSysfs, &sysfs_root.join("bus/pci/devices"))
}

/// Discovers the host's AMD GPUs from the real file system.
pub fn discover(options: &DiscoverOptions) -> Result<Host, DiscoverError> {
    discover_with(options, &RealSysfs).map(|discovery| discovery.host)
}

/// Discovers what injecting GPUs into a container needs, for the hooks and the runtime wrapper,
/// which run for every container: the same GPUs, in the same order and with the same render
/// node paths, partitions and ids as [`discover`], but without reading what only descriptions
/// and pinned device numbers use: `gpu_id` is 0, `card` and `numa_node` are `None`,
/// `product_name` comes only from the built-in table, and a render node carries only its path
/// (major and minor 0, no group or mode: specs name nodes by path and the engine reads the
/// numbers from the node). The render node's parent comes from one `readlink` of its own
/// `class/drm` link instead of a listing of every DRM minor. On a 64-partition host this skips
/// over two thirds of discovery's system calls.
pub fn discover_for_injection(options: &DiscoverOptions) -> Result<Host, DiscoverError> {
    let scan = Scan {
        options,
        reader: &RealSysfs,
        detail: Detail::Injection,
    };
    scan.discover().map(|discovery| discovery.host)
}

/// Discovers the host's AMD GPUs through `reader`, returning warnings too. The topology is read
/// again (up to three times) when its `generation_id` changes during the read.
pub fn discover_with(
    options: &DiscoverOptions,
    reader: &dyn SysfsReader,
) -> Result<Discovery, DiscoverError> {
    let scan = Scan {
        options,
        reader,
        detail: Detail::Full,
    };
    scan.discover()
}

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;
