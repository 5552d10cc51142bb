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

mod properties;
mod reader;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use properties::Properties;
pub use reader::{NodeStat, OpenDir, RealSysfs, SysfsReader};

/// KFD's `vendor_id` for AMD (0x1002).
pub const AMD_VENDOR_ID: u16 = 0x1002;

/// How often discovery re-reads the topology when `generation_id` changes under it.
const TOPOLOGY_ATTEMPTS: usize = 3;

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

/// A string that is not a `domain:bus:device.function` PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a PCI address (expected domain:bus:device.function, e.g. 0000:03:00.0)")]
pub struct ParsePciAddressError(pub String);

impl FromStr for PciAddress {
    type Err = ParsePciAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ParsePciAddressError(s.to_string());
        let (domain, rest) = s.split_once(':').ok_or_else(invalid)?;
        let (bus, rest) = rest.split_once(':').ok_or_else(invalid)?;
        let (device, function) = rest.split_once('.').ok_or_else(invalid)?;
        let hex = |text: &str, max_len: usize| {
            if text.is_empty() || text.len() > max_len {
                return Err(invalid());
            }
            u32::from_str_radix(text, 16).map_err(|_| invalid())
        };
        let address = Self {
            domain: hex(domain, 8)?,
            bus: u8::try_from(hex(bus, 2)?).map_err(|_| invalid())?,
            device: u8::try_from(hex(device, 2)?).map_err(|_| invalid())?,
            function: u8::try_from(hex(function, 1)?).map_err(|_| invalid())?,
        };
        if address.device >= 32 || address.function >= 8 {
            return Err(invalid());
        }
        Ok(address)
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
    pub kfd: DeviceNode,
    /// The GPUs in amdgpu-cdi's stable order.
    pub gpus: Vec<Gpu>,
}

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

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// No KFD device: no amdgpu driver or no AMD GPU.
    #[error(
        "no AMD GPU found: {} does not exist (is the amdgpu driver loaded? try `modprobe amdgpu`; \
         use --sysfs-root for another sysfs tree)",
        path.display()
    )]
    NoKfd {
        /// The missing KFD class directory.
        path: PathBuf,
    },
    /// AMD GPUs are on the PCI bus, but no KFD device: the amdgpu driver is not loaded or bound.
    #[error(
        "no usable AMD GPU: {devices} found, but {} does not exist (the amdgpu driver is not \
         loaded or not bound: try `modprobe amdgpu` and see `dmesg | grep amdgpu`)",
        path.display()
    )]
    NoDriver {
        /// The missing KFD class directory.
        path: PathBuf,
        /// The AMD GPUs found on the PCI bus, comma-separated.
        devices: String,
    },
    /// KFD exists but lists no AMD GPU.
    #[error(
        "no AMD GPU found: the KFD topology in {} lists no GPU (is the amdgpu driver bound to \
         a GPU? see `dmesg | grep amdgpu`)",
        path.display()
    )]
    NoGpus {
        /// The topology nodes directory.
        path: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("cannot read {}: {}", path.display(), describe_io(error))]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// A KFD `properties` line is not `key <decimal>`.
    #[error(
        "cannot parse {} line {line}: expected `key <decimal>`, found {text:?} (is this a KFD \
         topology node?)",
        path.display()
    )]
    Malformed {
        /// The `properties` file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending line (at most 60 characters).
        text: String,
    },
    /// A file holds something other than what the kernel writes there.
    #[error("cannot parse {}: expected {expected}, found {found:?}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// What the file should hold.
        expected: &'static str,
        /// What it holds (at most 60 characters).
        found: String,
    },
    /// A GPU node of KFD topology lacks a key every GPU node has.
    #[error("{} has no `{key}` line (is this a KFD topology node?)", path.display())]
    MissingKey {
        /// The `properties` file.
        path: PathBuf,
        /// The missing key.
        key: &'static str,
    },
    /// KFD names a render minor without a DRM render node.
    #[error(
        "KFD node {node} uses render minor {minor}, but {} does not exist (was the GPU removed \
         or its driver reloaded?)",
        path.display()
    )]
    MissingRenderNode {
        /// The KFD node number.
        node: u32,
        /// Its `drm_render_minor`.
        minor: u32,
        /// The missing DRM class entry.
        path: PathBuf,
    },
    /// A render node's `device` is neither a PCI device nor an amdgpu partition device.
    #[error(
        "render node {} of KFD node {node} belongs to {device:?}, neither a PCI device nor an \
         amdgpu_xcp partition",
        path.display()
    )]
    UnknownRenderParent {
        /// The KFD node number.
        node: u32,
        /// The DRM class entry.
        path: PathBuf,
        /// The `device` link's last component.
        device: String,
    },
    /// No AMD PCI GPU matches a partition's KFD location.
    #[error(
        "cannot find the PCI device of KFD node {node}: no AMD GPU at {location} under {}",
        path.display()
    )]
    NoPciDevice {
        /// The KFD node number.
        node: u32,
        /// The location searched, e.g. `0000:03:00` or `*:03:00` without a domain.
        location: String,
        /// The PCI devices directory.
        path: PathBuf,
    },
    /// Several AMD PCI GPUs match a partition's KFD location (no `domain` in KFD).
    #[error(
        "cannot tell which PCI device KFD node {node} belongs to: {candidates} all match \
         (this kernel's KFD topology has no `domain`)"
    )]
    AmbiguousPciDevice {
        /// The KFD node number.
        node: u32,
        /// The matching addresses, comma-separated.
        candidates: String,
    },
    /// Two KFD nodes claim the same partition of one GPU.
    #[error("KFD nodes {first} and {second} both claim partition {index} of {pci_address}")]
    DuplicatePartition {
        /// The physical GPU.
        pci_address: PciAddress,
        /// The partition index.
        index: u32,
        /// The first KFD node.
        first: u32,
        /// The second KFD node.
        second: u32,
    },
    /// The topology's `generation_id` kept changing while it was read.
    #[error(
        "the KFD topology kept changing while it was read ({} changed {attempts} times); try \
         again",
        path.display()
    )]
    TopologyChanged {
        /// The `generation_id` file.
        path: PathBuf,
        /// How many reads were attempted.
        attempts: usize,
    },
}

/// Lower-case description of an I/O error, with a hint for the errors users can act on.
fn describe_io(error: &io::Error) -> String {
    let text = match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => error.to_string(),
    };
    match error.kind() {
        io::ErrorKind::PermissionDenied => {
            format!("{text} (is this running inside a restricted container?)")
        }
        _ => text,
    }
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

/// One GPU node of KFD topology, before it is matched to DRM and PCI.
struct KfdGpu {
    node: u32,
    gpu_id: u32,
    properties: Properties,
    properties_path: PathBuf,
}

/// The PCI attributes of one physical GPU.
#[derive(Clone)]
struct PciInfo {
    numa_node: Option<i32>,
    compute_partition: Option<String>,
    memory_partition: Option<String>,
    product_name: Option<String>,
}

/// The device a DRM minor belongs to, from its `class/drm` link.
struct DrmParent {
    /// The parent device's directory as the link spells it (a key, never opened).
    dir: PathBuf,
    /// The parent's name: a PCI address or `amdgpu_xcp_<k>` / `amdgpu_xcp.<k>`.
    name: String,
}

impl DrmParent {
    /// Splits `.../<parent>/drm/<minor name>`.
    fn from_target(target: &Path) -> Option<Self> {
        let drm_dir = target.parent()?;
        if drm_dir.file_name()? != "drm" {
            return None;
        }
        let dir = drm_dir.parent()?;
        let name = dir.file_name()?.to_str()?.to_string();
        Some(Self {
            dir: dir.to_path_buf(),
            name,
        })
    }
}

/// Every `class/drm` entry's parent device, and the card minors of each parent.
#[derive(Default)]
struct DrmIndex {
    /// `renderD<N>` / `card<N>` -> its parent.
    parents: HashMap<String, DrmParent>,
    /// Parent directory -> its card minors, ascending.
    cards: HashMap<PathBuf, Vec<u32>>,
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The directories a scan reads many entries of, opened once.
struct Dirs {
    /// `class/drm`.
    drm: OpenDir,
    /// `bus/pci/devices`.
    pci: OpenDir,
}

/// Physical GPUs of `amdgpu_xcp` partitions, found once per KFD location.
#[derive(Default)]
struct Parents {
    /// The PCI device directory listing, read on first need.
    listing: Option<Vec<PciAddress>>,
    /// (domain, bus, device) -> the GPU's address.
    resolved: HashMap<(Option<u32>, u8, u8), PciAddress>,
}

/// What a discovery reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// Everything a [`Gpu`] holds.
    Full,
    /// Only what injection needs: no card nodes, NUMA nodes or sysfs product names.
    Injection,
}

/// One discovery pass.
struct Scan<'a> {
    options: &'a DiscoverOptions,
    reader: &'a dyn SysfsReader,
    detail: Detail,
}

impl Scan<'_> {
    /// Runs the scan, again (up to three times) when the topology's `generation_id` changes
    /// during the read.
    fn discover(&self) -> Result<Discovery, DiscoverError> {
        let generation_path = self.kfd_dir().join("topology/generation_id");
        for _ in 0..TOPOLOGY_ATTEMPTS {
            let before = self.generation(&generation_path)?;
            let discovery = self.run()?;
            if self.generation(&generation_path)? == before {
                return Ok(discovery);
            }
        }
        Err(DiscoverError::TopologyChanged {
            path: generation_path,
            attempts: TOPOLOGY_ATTEMPTS,
        })
    }

    fn kfd_dir(&self) -> PathBuf {
        self.options.sysfs_root.join("class/kfd/kfd")
    }

    /// Reads the file `name` below `dir`.
    fn read_at(&self, dir: &OpenDir, name: &str) -> Result<String, DiscoverError> {
        self.reader
            .read_at(dir, name)
            .map_err(|error| DiscoverError::Read {
                path: dir.path().join(name),
                error,
            })
    }

    fn read(&self, path: &Path) -> Result<String, DiscoverError> {
        self.reader
            .read_to_string(path)
            .map_err(|error| DiscoverError::Read {
                path: path.to_path_buf(),
                error,
            })
    }

    /// Reads an optional attribute: `None` when it does not exist, an error for anything else.
    fn read_optional(&self, path: &Path) -> Result<Option<String>, DiscoverError> {
        match self.reader.read_to_string(path) {
            Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(DiscoverError::Read {
                path: path.to_path_buf(),
                error,
            }),
        }
    }

    /// [`Scan::read_optional`] of the file `name` below `dir`.
    fn read_optional_at(&self, dir: &OpenDir, name: &str) -> Result<Option<String>, DiscoverError> {
        match self.reader.read_at(dir, name) {
            Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(DiscoverError::Read {
                path: dir.path().join(name),
                error,
            }),
        }
    }

    fn generation(&self, path: &Path) -> Result<Option<String>, DiscoverError> {
        if !self.reader.is_dir(&self.kfd_dir()) {
            return Ok(None);
        }
        self.read_optional(path)
    }

    fn run(&self) -> Result<Discovery, DiscoverError> {
        let kfd_dir = self.kfd_dir();
        if !self.reader.is_dir(&kfd_dir) {
            let path = self.options.sysfs_root.join("class/kfd");
            let devices = self.amd_gpus_on_pci();
            if devices.is_empty() {
                return Err(DiscoverError::NoKfd { path });
            }
            return Err(DiscoverError::NoDriver {
                path,
                devices: devices.join(", "),
            });
        }
        let mut warnings = Vec::new();
        let (major, minor) = self.read_dev_numbers(&kfd_dir.join("dev"))?;
        let kfd = self.device_node(PathBuf::from("/dev/kfd"), major, minor, &mut warnings);

        let nodes_dir = kfd_dir.join("topology/nodes");
        let kfd_gpus = self.kfd_gpus(&nodes_dir)?;
        if kfd_gpus.is_empty() {
            return Err(DiscoverError::NoGpus { path: nodes_dir });
        }

        let mut pci_cache: HashMap<PciAddress, PciInfo> = HashMap::new();
        let dirs = Dirs {
            drm: self
                .reader
                .open_dir(&self.options.sysfs_root.join("class/drm")),
            pci: self
                .reader
                .open_dir(&self.options.sysfs_root.join("bus/pci/devices")),
        };
        let drm = match self.detail {
            Detail::Full => Some(self.drm_index(&dirs.drm)?),
            Detail::Injection => None,
        };
        let mut parents = Parents::default();
        let mut gpus = Vec::with_capacity(kfd_gpus.len());
        for kfd_gpu in &kfd_gpus {
            gpus.push(self.gpu(
                kfd_gpu,
                &dirs,
                drm.as_ref(),
                &mut pci_cache,
                &mut parents,
                &mut warnings,
            )?);
        }

        gpus.sort_by_key(|gpu| (gpu.pci_address, gpu.partition.as_ref().map(|p| p.index)));
        count_partitions(&mut gpus)?;
        warnings.extend(partition_count_warnings(&gpus));
        for (index, gpu) in gpus.iter_mut().enumerate() {
            gpu.index = index;
        }
        Ok(Discovery {
            host: Host { kfd, gpus },
            warnings,
        })
    }

    /// AMD display controllers and accelerators (PCI class 0x03 or 0x12) on the PCI bus, for the
    /// error when KFD is missing. Best effort: unreadable entries are skipped.
    fn amd_gpus_on_pci(&self) -> Vec<String> {
        let pci_dir = self.options.sysfs_root.join("bus/pci/devices");
        let mut names = self.reader.read_dir_names(&pci_dir).unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .filter(|name| {
                let dir = pci_dir.join(name);
                let read = |file: &str| self.reader.read_to_string(&dir.join(file)).ok();
                let vendor = read("vendor");
                let class = read("class");
                vendor.as_deref().map(str::trim) == Some("0x1002")
                    && class
                        .as_deref()
                        .is_some_and(|c| c.starts_with("0x03") || c.starts_with("0x12"))
            })
            .collect()
    }

    /// Reads every topology node and keeps the AMD GPU ones, in node order.
    fn kfd_gpus(&self, nodes_dir: &Path) -> Result<Vec<KfdGpu>, DiscoverError> {
        let names = self
            .reader
            .read_dir_names(nodes_dir)
            .map_err(|error| DiscoverError::Read {
                path: nodes_dir.to_path_buf(),
                error,
            })?;
        let mut nodes: Vec<u32> = names.iter().filter_map(|n| n.parse().ok()).collect();
        nodes.sort_unstable();
        let mut gpus = Vec::new();
        let nodes_open = self.reader.open_dir(nodes_dir);
        for node in nodes {
            let properties_name = format!("{node}/properties");
            let properties_path = nodes_dir.join(&properties_name);
            let text = self.read_at(&nodes_open, &properties_name)?;
            let properties =
                Properties::parse(text).map_err(|problem| DiscoverError::Malformed {
                    path: properties_path.clone(),
                    line: problem.line,
                    text: problem.text,
                })?;
            // CPU nodes have no SIMDs (and gpu_id 0). The decision uses the properties alone, so
            // injection, which skips the gpu_id files, numbers GPUs exactly as full discovery.
            if properties.get("simd_count").unwrap_or(0) == 0 {
                continue;
            }
            let vendor = properties
                .get("vendor_id")
                .ok_or(DiscoverError::MissingKey {
                    path: properties_path.clone(),
                    key: "vendor_id",
                })?;
            if vendor != u64::from(AMD_VENDOR_ID) {
                continue;
            }
            let gpu_id = match self.detail {
                Detail::Full => self.gpu_id(&nodes_open, node)?,
                Detail::Injection => 0,
            };
            gpus.push(KfdGpu {
                node,
                gpu_id,
                properties,
                properties_path,
            });
        }
        Ok(gpus)
    }

    /// The KFD `gpu_id` of a GPU node (reported by `gpus`, never used to decide what a GPU is).
    fn gpu_id(&self, nodes_open: &OpenDir, node: u32) -> Result<u32, DiscoverError> {
        let name = format!("{node}/gpu_id");
        let text = self.read_at(nodes_open, &name)?;
        text.trim().parse().map_err(|_| DiscoverError::BadValue {
            path: nodes_open.path().join(&name),
            expected: "a decimal gpu id",
            found: text.trim().chars().take(60).collect(),
        })
    }

    fn gpu(
        &self,
        kfd_gpu: &KfdGpu,
        dirs: &Dirs,
        drm: Option<&DrmIndex>,
        pci_cache: &mut HashMap<PciAddress, PciInfo>,
        parents: &mut Parents,
        warnings: &mut Vec<String>,
    ) -> Result<Gpu, DiscoverError> {
        let props = &kfd_gpu.properties;
        let require = |key: &'static str| {
            props.get(key).ok_or(DiscoverError::MissingKey {
                path: kfd_gpu.properties_path.clone(),
                key,
            })
        };
        let render_minor = u32::try_from(require("drm_render_minor")?).unwrap_or(u32::MAX);
        let location_id = require("location_id")?;
        let device_id = u16::try_from(require("device_id")?).unwrap_or(u16::MAX);
        let domain = props
            .get("domain")
            .map(|d| u32::try_from(d).unwrap_or(u32::MAX));
        let bus = u8::try_from((location_id >> 8) & 0xff).unwrap_or(0);
        let slot = u8::try_from((location_id >> 3) & 0x1f).unwrap_or(0);
        let low_bits = u8::try_from(location_id & 0x7).unwrap_or(0);

        // The render node and what it hangs off.
        let render_name = format!("renderD{render_minor}");
        let render_dir = dirs.drm.path().join(&render_name);
        let looked_up;
        let parent = match drm {
            Some(drm) => drm.parents.get(&render_name),
            None => {
                looked_up = self.drm_parent(&dirs.drm, &render_name, true)?;
                looked_up.as_ref()
            }
        };
        let Some(parent) = parent else {
            return Err(DiscoverError::MissingRenderNode {
                node: kfd_gpu.node,
                minor: render_minor,
                path: render_dir,
            });
        };
        let render_path = PathBuf::from(format!("/dev/dri/{render_name}"));
        let render = match self.detail {
            Detail::Full => {
                let (r_major, r_minor) = self.read_dev_numbers(&render_dir.join("dev"))?;
                self.device_node(render_path, r_major, r_minor, warnings)
            }
            Detail::Injection => DeviceNode {
                path: render_path,
                major: 0,
                minor: 0,
                gid: None,
                file_mode: None,
            },
        };
        let parent_name = parent.name.clone();
        let pci_address = if let Ok(address) = parent_name.parse::<PciAddress>() {
            if address.bus != bus
                || address.device != slot
                || domain.is_some_and(|d| d != address.domain)
            {
                warnings.push(format!(
                    "KFD node {} reports location {:04x}:{bus:02x}:{slot:02x} but its render node \
                     renderD{render_minor} belongs to {address}; using {address}",
                    kfd_gpu.node,
                    domain.unwrap_or(0),
                ));
            }
            address
        } else if is_xcp_device(&parent_name) {
            match parents.resolved.get(&(domain, bus, slot)) {
                Some(address) => *address,
                None => {
                    let address = self.partition_parent(
                        &dirs.pci,
                        kfd_gpu.node,
                        domain,
                        bus,
                        slot,
                        &mut parents.listing,
                    )?;
                    parents.resolved.insert((domain, bus, slot), address);
                    address
                }
            }
        } else {
            return Err(DiscoverError::UnknownRenderParent {
                node: kfd_gpu.node,
                path: render_dir,
                device: parent_name,
            });
        };

        let card = match drm {
            Some(drm) => self.card_node(drm, &parent.dir, warnings)?,
            None => None,
        };
        let info = match pci_cache.get(&pci_address) {
            Some(info) => info.clone(),
            None => {
                let info = self.pci_info(&dirs.pci, &pci_address)?;
                pci_cache.insert(pci_address, info.clone());
                info
            }
        };
        let partition = match &info.compute_partition {
            Some(mode) if mode != "SPX" => Some(Partition {
                index: u32::from(low_bits),
                count: 0,
                compute_mode: mode.clone(),
                memory_mode: info.memory_partition.clone(),
            }),
            _ => None,
        };
        let unique_id = props.get("unique_id").filter(|&id| id != 0);
        let gfx_target_version = props
            .get("gfx_target_version")
            .filter(|&v| v != 0)
            .and_then(|v| u32::try_from(v).ok());
        let integrated = props.get("cpu_cores_count").unwrap_or(0) > 0 || is_apu(device_id);
        Ok(Gpu {
            index: 0,
            pci_address,
            partition,
            kfd_node: kfd_gpu.node,
            gpu_id: kfd_gpu.gpu_id,
            unique_id,
            vendor_id: AMD_VENDOR_ID,
            device_id,
            gfx_target_version,
            render,
            card,
            numa_node: info.numa_node,
            product_name: info
                .product_name
                .or_else(|| known_product(device_id).map(String::from)),
            integrated,
            compute_partition: info.compute_partition,
            memory_partition: info.memory_partition,
        })
    }

    /// The physical GPU of a partition whose render node hangs off an `amdgpu_xcp` platform
    /// device: the AMD PCI device with DRM nodes at KFD's bus and device (and domain, if known).
    fn partition_parent(
        &self,
        pci_open: &OpenDir,
        node: u32,
        domain: Option<u32>,
        bus: u8,
        slot: u8,
        pci_listing: &mut Option<Vec<PciAddress>>,
    ) -> Result<PciAddress, DiscoverError> {
        let pci_dir = self.options.sysfs_root.join("bus/pci/devices");
        if pci_listing.is_none() {
            let names =
                self.reader
                    .read_dir_names(&pci_dir)
                    .map_err(|error| DiscoverError::Read {
                        path: pci_dir.clone(),
                        error,
                    })?;
            let mut addresses: Vec<PciAddress> =
                names.iter().filter_map(|n| n.parse().ok()).collect();
            addresses.sort_unstable();
            *pci_listing = Some(addresses);
        }
        let listing = pci_listing.as_deref().unwrap_or_default();
        let mut candidates = Vec::new();
        for address in listing {
            if address.bus != bus || address.device != slot {
                continue;
            }
            if domain.is_some_and(|d| d != address.domain) {
                continue;
            }
            let name = address.to_string();
            let vendor = self.read_optional_at(pci_open, &format!("{name}/vendor"))?;
            if vendor.as_deref() == Some("0x1002")
                && self.reader.is_dir(&pci_dir.join(name).join("drm"))
            {
                candidates.push(*address);
            }
        }
        match candidates.as_slice() {
            [one] => Ok(*one),
            [] => Err(DiscoverError::NoPciDevice {
                node,
                location: match domain {
                    Some(d) => format!("{d:04x}:{bus:02x}:{slot:02x}"),
                    None => format!("*:{bus:02x}:{slot:02x}"),
                },
                path: pci_dir,
            }),
            many => Err(DiscoverError::AmbiguousPciDevice {
                node,
                candidates: many
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Where every DRM minor hangs: one listing of `class/drm` and one `readlink` per entry.
    /// The kernel writes class links as `../../devices/<path>/<parent>/drm/<name>`, so the link
    /// text names the parent device; a link of another shape is resolved fully.
    fn drm_index(&self, drm_dir: &OpenDir) -> Result<DrmIndex, DiscoverError> {
        let names = match self.reader.read_dir_names(drm_dir.path()) {
            Ok(names) => names,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                return Err(DiscoverError::Read {
                    path: drm_dir.path().to_path_buf(),
                    error,
                });
            }
        };
        let mut index = DrmIndex::default();
        for name in names {
            let is_render = name.strip_prefix("renderD").is_some_and(is_number);
            let card = name
                .strip_prefix("card")
                .filter(|m| is_number(m))
                .and_then(|m| m.parse().ok());
            if !is_render && card.is_none() {
                continue;
            }
            let Some(parent) = self.drm_parent(drm_dir, &name, false)? else {
                continue;
            };
            if let Some(minor) = card {
                index
                    .cards
                    .entry(parent.dir.clone())
                    .or_default()
                    .push(minor);
            }
            index.parents.insert(name, parent);
        }
        for cards in index.cards.values_mut() {
            cards.sort_unstable();
        }
        Ok(index)
    }

    /// The device a `class/drm` link points into: `None` when the link's target, even fully
    /// resolved, is not `.../<parent>/drm/<name>`, or (with `missing_is_none`) when there is no
    /// such link.
    fn drm_parent(
        &self,
        drm_dir: &OpenDir,
        name: &str,
        missing_is_none: bool,
    ) -> Result<Option<DrmParent>, DiscoverError> {
        let link = drm_dir.path().join(name);
        let read_error = |error| DiscoverError::Read {
            path: link.clone(),
            error,
        };
        let target = match self.reader.read_link_at(drm_dir, name) {
            Ok(target) => target,
            Err(error) if missing_is_none && error.kind() == io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(error) => return Err(read_error(error)),
        };
        if let Some(parent) = DrmParent::from_target(&target) {
            return Ok(Some(parent));
        }
        let resolved = self.reader.canonicalize(&link).map_err(read_error)?;
        Ok(DrmParent::from_target(&resolved))
    }

    /// The `card<N>` node of the same DRM parent device as a render node, when it has one.
    fn card_node(
        &self,
        drm: &DrmIndex,
        parent_dir: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<Option<DeviceNode>, DiscoverError> {
        let Some(&card_minor) = drm.cards.get(parent_dir).and_then(|cards| cards.first()) else {
            return Ok(None);
        };
        let dev = self
            .options
            .sysfs_root
            .join(format!("class/drm/card{card_minor}/dev"));
        let (major, minor) = self.read_dev_numbers(&dev)?;
        Ok(Some(self.device_node(
            PathBuf::from(format!("/dev/dri/card{card_minor}")),
            major,
            minor,
            warnings,
        )))
    }

    fn pci_info(&self, pci_dir: &OpenDir, address: &PciAddress) -> Result<PciInfo, DiscoverError> {
        let dir = address.to_string();
        let read = |name: &str| self.read_optional_at(pci_dir, &format!("{dir}/{name}"));
        let full = self.detail == Detail::Full;
        let numa_text = if full { read("numa_node")? } else { None };
        let numa_node = numa_text
            .and_then(|n| n.parse::<i32>().ok())
            .filter(|&n| n >= 0);
        Ok(PciInfo {
            numa_node,
            compute_partition: read("current_compute_partition")?,
            memory_partition: read("current_memory_partition")?,
            product_name: if full { read("product_name")? } else { None },
        })
    }

    /// Parses a sysfs `dev` file, `MAJOR:MINOR`.
    fn read_dev_numbers(&self, path: &Path) -> Result<(u32, u32), DiscoverError> {
        let text = self.read(path)?;
        let parsed = text
            .trim()
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
        parsed.ok_or_else(|| DiscoverError::BadValue {
            path: path.to_path_buf(),
            expected: "MAJOR:MINOR",
            found: text.trim().chars().take(60).collect(),
        })
    }

    /// A node with the sysfs numbers, completed (group, mode) from `stat` under the dev root.
    fn device_node(
        &self,
        path: PathBuf,
        major: u32,
        minor: u32,
        warnings: &mut Vec<String>,
    ) -> DeviceNode {
        let relative = path.strip_prefix("/").unwrap_or(&path);
        let under_root = self.options.dev_root.join(relative);
        let mut node = DeviceNode {
            path,
            major,
            minor,
            gid: None,
            file_mode: None,
        };
        match self.reader.stat(&under_root) {
            Ok(st) => {
                if !st.is_char_device {
                    warnings.push(format!(
                        "{} is not a character device (expected {major}:{minor})",
                        under_root.display()
                    ));
                } else if (st.major, st.minor) != (major, minor) {
                    warnings.push(format!(
                        "{} is {}:{} but sysfs says {major}:{minor}; using {major}:{minor}",
                        under_root.display(),
                        st.major,
                        st.minor
                    ));
                }
                node.gid = Some(st.gid);
                node.file_mode = Some(st.mode);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => warnings.push(format!(
                "cannot stat {}: {}",
                under_root.display(),
                describe_io(&error)
            )),
        }
        node
    }
}

/// True for partition platform devices: `amdgpu_xcp_<k>` (newer kernels) or `amdgpu_xcp.<k>`.
fn is_xcp_device(name: &str) -> bool {
    name.strip_prefix("amdgpu_xcp")
        .and_then(|rest| rest.strip_prefix('_').or_else(|| rest.strip_prefix('.')))
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

/// Fills `Partition::count` and rejects two KFD nodes claiming one partition. `gpus` is sorted.
fn count_partitions(gpus: &mut [Gpu]) -> Result<(), DiscoverError> {
    let mut counts: BTreeMap<PciAddress, u32> = BTreeMap::new();
    for pair in gpus.windows(2) {
        if let (Some(a), Some(b)) = (&pair[0].partition, &pair[1].partition)
            && pair[0].pci_address == pair[1].pci_address
            && a.index == b.index
        {
            return Err(DiscoverError::DuplicatePartition {
                pci_address: pair[0].pci_address,
                index: a.index,
                first: pair[0].kfd_node.min(pair[1].kfd_node),
                second: pair[0].kfd_node.max(pair[1].kfd_node),
            });
        }
    }
    for gpu in gpus.iter().filter(|g| g.partition.is_some()) {
        *counts.entry(gpu.pci_address).or_default() += 1;
    }
    for gpu in gpus.iter_mut() {
        let count = counts.get(&gpu.pci_address).copied().unwrap_or(0);
        if let Some(partition) = &mut gpu.partition {
            partition.count = count;
        }
    }
    Ok(())
}

/// Partitions a mode implies: fixed for DPX/TPX/QPX; for other modes, the most any GPU of the
/// same model in the same mode shows on this host.
fn partition_count_warnings(gpus: &[Gpu]) -> Vec<String> {
    let mut most: HashMap<(u16, &str), u32> = HashMap::new();
    let mut per_gpu: BTreeMap<PciAddress, (u16, &str, u32)> = BTreeMap::new();
    for gpu in gpus {
        if let Some(p) = &gpu.partition {
            let entry = most
                .entry((gpu.device_id, p.compute_mode.as_str()))
                .or_default();
            *entry = (*entry).max(p.count);
            per_gpu.insert(
                gpu.pci_address,
                (gpu.device_id, p.compute_mode.as_str(), p.count),
            );
        }
    }
    let mut warnings = Vec::new();
    for (address, (device_id, mode, count)) in per_gpu {
        let expected = match mode {
            "DPX" => 2,
            "TPX" => 3,
            "QPX" => 4,
            _ => most.get(&(device_id, mode)).copied().unwrap_or(count),
        };
        if count < expected {
            warnings.push(format!(
                "{address} is in {mode} mode but KFD lists only {count} of its {expected} \
                 partitions (the kernel may have run out of DRM minors; see `dmesg | grep xcp`)"
            ));
        }
    }
    warnings
}

/// Integrated GPUs (APUs) by PCI device id: KFD reports CPU cores on an APU's GPU node only on
/// some kernels, so a short list of APU device ids fills the gap. Only used for display.
fn is_apu(device_id: u16) -> bool {
    matches!(
        device_id,
        0x15bf
            | 0x15c8
            | 0x164e
            | 0x1681
            | 0x1636
            | 0x1638
            | 0x164c
            | 0x15e7
            | 0x150e
            | 0x1900
            | 0x74a0
    )
}

/// Names for GPUs whose sysfs has no `product_name` (consumer cards and APUs).
fn known_product(device_id: u16) -> Option<&'static str> {
    Some(match device_id {
        0x744c => "Radeon RX 7900 XT/7900 XTX (Navi 31)",
        0x15bf => "Radeon 780M/760M (Phoenix)",
        0x164e => "Radeon Graphics (Raphael)",
        0x7448 => "Radeon PRO W7900",
        0x66a1 => "Instinct MI50/MI60 (Vega 20)",
        0x740f => "Instinct MI210",
        0x74a1 => "Instinct MI300X",
        0x74a0 => "Instinct MI300A",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
