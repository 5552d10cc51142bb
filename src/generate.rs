//! Turns a discovered [`Host`] into a CDI [`Spec`]: one device per GPU (or partition) and name
//! strategy, an `all` device, and `/dev/kfd` in the spec-level edits; [`wsl`] does the same for a
//! WSL2 host (`/dev/dxg`).
//!
//! Choices, and why:
//! - Only render nodes by default: compute needs `/dev/kfd` plus the GPU's render node, and KFD
//!   restricts a container to the GPUs whose render nodes it may open. Card (primary) nodes give
//!   display/modesetting access that compute containers do not need, and exposing them widens
//!   what a container can do; [`GenerateOptions::include_card_nodes`] adds them.
//! - No major, minor or file mode unless [`GenerateOptions::pin_device_numbers`]: engines fill
//!   them from the host node when the container starts, so the spec survives reboots and driver
//!   reloads that renumber `/dev/kfd` and the render minors.
//! - The `cdiVersion` is the minimum the content needs (0.5.0 with the defaults, because names
//!   start with a digit), so podman 4.3 and Docker 25 load the spec.
//! - A YAML spec's first line records the options it was generated with ([`record`]), so `check`
//!   and `doctor` compare it with what the same options give now.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cdi::codec::Format;
use cdi::name::NameError;
use cdi::spec::{ContainerEdits, Device, DeviceNode, Spec};
use cdi::version::{Version, minimum_required_version};

use crate::discover::{FoundNode, Gpu, Host};
use crate::naming::{self, NameStrategy, device_name};

pub mod record;
pub mod wsl;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// The vendor part of the kind, `amd.com` by default.
    pub vendor: String,
    /// The class part of the kind, `gpu` by default.
    pub class: String,
    /// How devices are named; every GPU gets one device per strategy.
    /// [`NameStrategy::DEFAULT`] (index and uuid) by default.
    pub strategies: Vec<NameStrategy>,
    /// Add the `all` device (default true).
    pub all_device: bool,
    /// The `cdiVersion` to declare; `None` (the default) writes the minimum the content needs.
    pub cdi_version: Option<Version>,
    /// Per-device annotations: PCI address, partition, unique id, gfx target, product (CDI 0.6.0).
    pub annotations: bool,
    /// Spec-level `additionalGids` with the groups of the nodes under the dev root (CDI 0.7.0).
    pub additional_gids: bool,
    /// Write type, major, minor and file mode of each node (they go stale on renumbering).
    pub pin_device_numbers: bool,
    /// Add each GPU's card (primary) node beside its render node.
    pub include_card_nodes: bool,
    /// Leave integrated GPUs (APUs) out, the others numbered from 0 ([`Host::without_integrated`]).
    pub exclude_integrated: bool,
    /// Where the host's `/dev` lives; nodes get a `hostPath` under it when it is not `/`.
    pub dev_root: PathBuf,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            vendor: naming::VENDOR.into(),
            class: naming::CLASS.into(),
            strategies: NameStrategy::DEFAULT.to_vec(),
            all_device: true,
            cdi_version: None,
            annotations: false,
            additional_gids: false,
            pin_device_numbers: false,
            include_card_nodes: false,
            exclude_integrated: false,
            dev_root: PathBuf::from("/"),
        }
    }
}

/// Why a spec could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// The host has no GPU, and a spec needs at least one device.
    #[error("no GPU to put in the spec")]
    NoGpus,
    /// Every GPU of the host is integrated and integrated GPUs are excluded.
    #[error(
        "every GPU here is integrated (an APU), so --exclude-integrated leaves none for the spec \
         (drop the option)"
    )]
    OnlyIntegrated,
    /// A WSL host whose spec would hold no device with these options.
    #[error(
        "no device to put in the spec: /dev/dxg serves {adapters} adapters at once, so only the \
         `all` device can give it (drop --no-all-device)"
    )]
    NoWslDevice {
        /// The adapters found.
        adapters: usize,
    },
    /// A vendor or class name the reference library would reject.
    #[error(transparent)]
    InvalidKind(#[from] NameError),
    /// A GPU got no name under the chosen strategies.
    #[error(
        "GPU {index} ({pci_address}) has no unique id, so the uuid strategy cannot name it (add \
         --device-name-strategy index or pci)"
    )]
    Unnamed {
        /// The GPU's index.
        index: usize,
        /// Its PCI address.
        pci_address: String,
    },
    /// Two devices would get one name.
    #[error(
        "two devices would be named {name:?} (GPUs {first} and {second} share it; use another \
         --device-name-strategy)"
    )]
    DuplicateName {
        /// The name.
        name: String,
        /// Index of the first GPU.
        first: usize,
        /// Index of the second GPU.
        second: usize,
    },
    /// `additionalGids` asked for a node that does not exist under the dev root.
    #[error(
        "cannot tell the group of {}: it does not exist (point --dev-root at the host's nodes or \
         drop --additional-gids)",
        path.display()
    )]
    UnknownGroup {
        /// The node under the dev root.
        path: PathBuf,
    },
    /// Not a published CDI version.
    #[error("unknown CDI version {0} (expected auto or one of 0.3.0 ... 1.1.0)")]
    UnknownVersion(Version),
    /// The requested version is older than the content needs.
    #[error("cdiVersion {requested} cannot hold this spec: {reason} needs {required} or newer")]
    VersionTooOld {
        /// The version asked for.
        requested: Version,
        /// The minimum the content needs.
        required: Version,
        /// The content that needs it.
        reason: &'static str,
    },
}

/// Generates the spec for `host`.
pub fn generate(host: &Host, options: &GenerateOptions) -> Result<Spec, GenerateError> {
    if host.gpus.is_empty() {
        return Err(GenerateError::NoGpus);
    }
    let host = in_spec(host, options);
    if host.gpus.is_empty() {
        return Err(GenerateError::OnlyIntegrated);
    }
    cdi::name::validate_vendor(&options.vendor)?;
    cdi::name::validate_class(&options.class)?;

    let mut devices = Vec::new();
    let mut named_by: BTreeMap<String, usize> = BTreeMap::new();
    for &strategy in &options.strategies {
        for gpu in &host.gpus {
            let Some(name) = device_name(gpu, strategy) else {
                continue;
            };
            if let Some(&first) = named_by.get(&name) {
                if first == gpu.index {
                    continue;
                }
                return Err(GenerateError::DuplicateName {
                    name,
                    first,
                    second: gpu.index,
                });
            }
            named_by.insert(name.clone(), gpu.index);
            devices.push(Device {
                name,
                annotations: if options.annotations {
                    annotations(gpu)
                } else {
                    BTreeMap::new()
                },
                container_edits: ContainerEdits {
                    device_nodes: gpu_nodes(gpu, options)
                        .map(|n| node_edit(n, options))
                        .collect(),
                    ..ContainerEdits::default()
                },
            });
        }
    }
    for gpu in &host.gpus {
        if !named_by.values().any(|&index| index == gpu.index) {
            return Err(GenerateError::Unnamed {
                index: gpu.index,
                pci_address: gpu.pci_address.to_string(),
            });
        }
    }
    if options.all_device {
        devices.push(Device {
            name: "all".into(),
            annotations: BTreeMap::new(),
            container_edits: ContainerEdits {
                device_nodes: host
                    .gpus
                    .iter()
                    .flat_map(|gpu| gpu_nodes(gpu, options))
                    .map(|n| node_edit(n, options))
                    .collect(),
                ..ContainerEdits::default()
            },
        });
    }

    let mut container_edits = ContainerEdits {
        device_nodes: vec![node_edit(&host.kfd, options)],
        ..ContainerEdits::default()
    };
    if options.additional_gids {
        let nodes = std::iter::once(&host.kfd)
            .chain(host.gpus.iter().flat_map(|gpu| gpu_nodes(gpu, options)));
        container_edits.additional_gids = node_groups(nodes, &options.dev_root)?;
    }

    assemble(devices, container_edits, options)
}

/// The groups owning `nodes`, for `additionalGids`: each once, sorted, root's left out; an error
/// naming the first node (under `dev_root`) whose group discovery could not read.
fn node_groups<'a>(
    nodes: impl Iterator<Item = &'a FoundNode>,
    dev_root: &Path,
) -> Result<Vec<u32>, GenerateError> {
    let mut gids = Vec::new();
    for node in nodes {
        let gid = node.gid.ok_or_else(|| GenerateError::UnknownGroup {
            path: under_root(dev_root, &node.path),
        })?;
        if gid != 0 && !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    gids.sort_unstable();
    Ok(gids)
}

/// The spec of `devices` and the spec-wide `container_edits`, of the kind `options` names, with
/// the `cdiVersion` asked for or, by default, the minimum its content needs.
fn assemble(
    devices: Vec<Device>,
    container_edits: ContainerEdits,
    options: &GenerateOptions,
) -> Result<Spec, GenerateError> {
    let mut spec = Spec {
        cdi_version: String::new(),
        kind: format!("{}/{}", options.vendor, options.class),
        annotations: BTreeMap::new(),
        devices,
        container_edits,
    };
    let required = minimum_required_version(&spec);
    spec.cdi_version = match options.cdi_version {
        None => required,
        Some(requested) if !requested.is_known() => {
            return Err(GenerateError::UnknownVersion(requested));
        }
        Some(requested) if requested < required => {
            return Err(GenerateError::VersionTooOld {
                requested,
                required,
                reason: cdi::version::required_by(&spec).unwrap_or("the base format"),
            });
        }
        Some(requested) => requested,
    }
    .to_string();
    Ok(spec)
}

/// The GPUs of `host` a spec generated with `options` holds: all of them, or without the
/// integrated ones (renumbered) under `exclude_integrated`.
fn in_spec<'a>(host: &'a Host, options: &GenerateOptions) -> Cow<'a, Host> {
    if options.exclude_integrated && host.gpus.iter().any(|gpu| gpu.integrated) {
        Cow::Owned(host.clone().without_integrated())
    } else {
        Cow::Borrowed(host)
    }
}

/// The host nodes a spec generated with `options` names (`/dev/kfd`, each GPU's render node and,
/// when asked for, its card node) that discovery did not find under the dev root, as paths under
/// it, in spec order. Engines refuse to create a container given a node that does not exist.
pub fn missing_nodes(host: &Host, options: &GenerateOptions) -> Vec<PathBuf> {
    let host = in_spec(host, options);
    std::iter::once(&host.kfd)
        .chain(host.gpus.iter().flat_map(|gpu| gpu_nodes(gpu, options)))
        .filter(|node| node.gid.is_none())
        .map(|node| under_root(&options.dev_root, &node.path))
        .collect()
}

/// The text of `spec` as `generate` writes it: in YAML, the [`record`] of `options` first.
pub fn to_text(spec: &Spec, options: &GenerateOptions, format: Format) -> String {
    let body = cdi::codec::to_string(spec, format);
    match format {
        Format::Yaml => record::header(options) + &body,
        Format::Json => body,
    }
}

/// The nodes one GPU's device gets: its render node, then its card node when asked for.
fn gpu_nodes<'a>(gpu: &'a Gpu, options: &GenerateOptions) -> impl Iterator<Item = &'a FoundNode> {
    let card = if options.include_card_nodes {
        gpu.card.as_ref()
    } else {
        None
    };
    std::iter::once(&gpu.render).chain(card)
}

fn under_root(dev_root: &Path, path: &Path) -> PathBuf {
    dev_root.join(path.strip_prefix("/").unwrap_or(path))
}

fn node_edit(node: &FoundNode, options: &GenerateOptions) -> DeviceNode {
    let host_path = (options.dev_root != Path::new("/")).then(|| {
        under_root(&options.dev_root, &node.path)
            .display()
            .to_string()
    });
    let mut edit = DeviceNode {
        path: node.path.display().to_string(),
        host_path,
        ..DeviceNode::default()
    };
    if options.pin_device_numbers {
        edit.kind = Some("c".into());
        edit.major = Some(i64::from(node.major));
        edit.minor = Some(i64::from(node.minor));
        edit.file_mode = node.file_mode;
    }
    edit
}

fn annotations(gpu: &Gpu) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    map.insert(
        "amd.com/pci-address".to_string(),
        gpu.pci_address.to_string(),
    );
    if let Some(mode) = &gpu.compute_partition {
        map.insert("amd.com/compute-partition".into(), mode.clone());
    }
    if let Some(mode) = &gpu.memory_partition {
        map.insert("amd.com/memory-partition".into(), mode.clone());
    }
    if let Some(partition) = &gpu.partition {
        map.insert(
            "amd.com/partition-index".into(),
            partition.index.to_string(),
        );
    }
    if let Some(uuid) = gpu.rocm_uuid() {
        map.insert("amd.com/unique-id".into(), uuid);
    }
    if let Some(target) = gpu.gfx_target() {
        map.insert("amd.com/gfx-target".into(), target);
    }
    if let Some(name) = &gpu.product_name {
        map.insert("amd.com/product-name".into(), name.clone());
    }
    map
}

#[cfg(test)]
mod tests;
