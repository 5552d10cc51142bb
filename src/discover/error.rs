//! Why discovery failed: one variant per way a host can be unusable or its sysfs unreadable,
//! each naming the file or node it is about.

use std::io;
use std::path::PathBuf;

use super::address::PciAddress;

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// No AMD display controller or accelerator on the PCI bus, and no KFD device: this machine
    /// has no AMD GPU, and no driver would change that.
    #[error(
        "no AMD GPU on this machine: {} has no AMD (vendor 0x1002) display controller or \
         accelerator (to try amdgpu-cdi without one, pass --sysfs-root examples/hosts/<name>/sys \
         from the source tree)",
        path.display()
    )]
    NoAmdGpu {
        /// The PCI devices directory that was listed.
        path: PathBuf,
    },
    /// No KFD device, and the PCI bus cannot be listed to tell whether there is an AMD GPU.
    #[error(
        "no AMD GPU found: {} does not exist, and {} cannot be listed to tell whether there is \
         one: {} (if there is, load the amdgpu driver: `modprobe amdgpu`)",
        path.display(),
        pci.display(),
        describe_io(error)
    )]
    NoKfd {
        /// The missing KFD class directory.
        path: PathBuf,
        /// The PCI devices directory that could not be listed.
        pci: PathBuf,
        /// Why it could not be listed.
        error: io::Error,
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

impl DiscoverError {
    /// Whether discovery found no KFD device at all (no AMD GPU, no driver, or a PCI bus that
    /// cannot be listed): the only failure after which a WSL2 host (`/dev/dxg`) can be there.
    pub fn is_no_kfd(&self) -> bool {
        matches!(
            self,
            Self::NoAmdGpu { .. } | Self::NoDriver { .. } | Self::NoKfd { .. }
        )
    }
}

/// Lower-case description of an I/O error, with a hint for the errors users can act on.
pub(super) fn describe_io(error: &io::Error) -> String {
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
