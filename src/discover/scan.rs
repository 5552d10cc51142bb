//! One discovery pass: the KFD node, the topology's GPU nodes, and each GPU assembled from the
//! steps of the `kfd`, `drm`, `pci` and `partitions` modules, read again when the topology
//! changes during the pass.

use std::io;
use std::path::{Path, PathBuf};

use super::address::{PciAddress, comma_separated};
use super::drm::Listings;
use super::error::describe_io;
use super::kfd::{KfdGpu, KfdKeys};
use super::model::{AMD_VENDOR_ID, FoundNode, Gpu, Host};
use super::partitions::{count_partitions, partition, partition_count_warnings};
use super::pass::{Detail, Scan};
use super::pci::{Found, PciInfo, amd_gpus_on_pci};
use super::products::{is_apu, known_product};
use super::reader::{OpenDir, dev_numbers};
use super::{DiscoverError, Discovery};

/// How often discovery re-reads the topology when `generation_id` changes under it.
const TOPOLOGY_ATTEMPTS: usize = 3;

impl Scan<'_> {
    /// Runs the scan, again (up to three times) when the topology's `generation_id` changes
    /// during the read.
    pub(super) fn discover(&self) -> Result<Discovery, DiscoverError> {
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
    pub(super) fn read_at(&self, dir: &OpenDir, name: &str) -> Result<String, DiscoverError> {
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
        optional(self.reader.read_to_string(path), || path.to_path_buf())
    }

    /// [`Scan::read_optional`] of the file `name` below `dir`.
    pub(super) fn read_optional_at(
        &self,
        dir: &OpenDir,
        name: &str,
    ) -> Result<Option<String>, DiscoverError> {
        optional(self.reader.read_at(dir, name), || dir.path().join(name))
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
            let pci = self.options.sysfs_root.join("bus/pci/devices");
            return Err(match amd_gpus_on_pci(self.reader, &pci) {
                Ok(devices) if devices.is_empty() => DiscoverError::NoAmdGpu { path: pci },
                Ok(devices) => DiscoverError::NoDriver {
                    path,
                    devices: comma_separated(&devices),
                },
                Err(error) => DiscoverError::NoKfd { path, pci, error },
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

        let drm_dir = self
            .reader
            .open_dir(&self.options.sysfs_root.join("class/drm"));
        let pci_dir = self
            .reader
            .open_dir(&self.options.sysfs_root.join("bus/pci/devices"));
        let drm = match self.detail {
            Detail::Full => Some(self.drm_index(&drm_dir)?),
            Detail::Injection => None,
        };
        let listings = Listings {
            drm_dir,
            pci_dir,
            drm,
        };
        let mut found = Found {
            warnings,
            ..Found::default()
        };
        let mut gpus = Vec::with_capacity(kfd_gpus.len());
        for kfd_gpu in &kfd_gpus {
            gpus.push(self.gpu(kfd_gpu, &listings, &mut found)?);
        }
        let mut warnings = found.warnings;

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

    /// One GPU from its KFD node, in steps: the keys KFD must report, the render node they name
    /// and the device it hangs off, the physical GPU that device is or belongs to, its card node
    /// and PCI attributes, and then what KFD says about it.
    fn gpu(
        &self,
        kfd_gpu: &KfdGpu,
        listings: &Listings,
        found: &mut Found,
    ) -> Result<Gpu, DiscoverError> {
        let keys = kfd_gpu.keys()?;
        let render_name = keys.render_name();
        let parent = self.render_parent(kfd_gpu.node, keys.render_minor, &render_name, listings)?;
        let render = self.render_node(&render_name, &listings.drm_dir, &mut found.warnings)?;
        let pci_address = self.physical_gpu(kfd_gpu.node, &keys, &parent, listings, found)?;
        let card = match &listings.drm {
            Some(drm) => self.card_node(drm, &parent.dir, &mut found.warnings)?,
            None => None,
        };
        let info = self.cached_pci_info(&listings.pci_dir, pci_address, &mut found.pci_info)?;
        Ok(assemble(kfd_gpu, &keys, pci_address, render, card, info))
    }

    /// Parses a sysfs `dev` file, `MAJOR:MINOR`.
    pub(super) fn read_dev_numbers(&self, path: &Path) -> Result<(u32, u32), DiscoverError> {
        let text = self.read(path)?;
        dev_numbers(&text).ok_or_else(|| DiscoverError::BadValue {
            path: path.to_path_buf(),
            expected: "MAJOR:MINOR",
            found: text.trim().chars().take(60).collect(),
        })
    }

    /// A node with the sysfs numbers, completed (group, mode) from `stat` under the dev root.
    pub(super) fn device_node(
        &self,
        path: PathBuf,
        major: u32,
        minor: u32,
        warnings: &mut Vec<String>,
    ) -> FoundNode {
        let relative = path.strip_prefix("/").unwrap_or(&path);
        let under_root = self.options.dev_root.join(relative);
        let mut node = FoundNode {
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

/// An optional attribute's trimmed text from `read`: `None` when the file does not exist or holds
/// only white space, an error naming `path` for any other failure.
fn optional(
    read: io::Result<String>,
    path: impl FnOnce() -> PathBuf,
) -> Result<Option<String>, DiscoverError> {
    match read {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(DiscoverError::Read {
            path: path(),
            error,
        }),
    }
}

/// The GPU as discovery reports it, from its KFD node, its physical GPU and that GPU's PCI
/// attributes; `index` and the partition count are filled in once every GPU is known.
fn assemble(
    kfd_gpu: &KfdGpu,
    keys: &KfdKeys,
    pci_address: PciAddress,
    render: FoundNode,
    card: Option<FoundNode>,
    info: PciInfo,
) -> Gpu {
    let props = &kfd_gpu.properties;
    let device_id = keys.device_id;
    let unique_id = props.get("unique_id").filter(|&id| id != 0);
    let hive_id = props.get("hive_id").filter(|&id| id != 0);
    let gfx_target_version = props
        .get("gfx_target_version")
        .filter(|&v| v != 0)
        .and_then(|v| u32::try_from(v).ok());
    let integrated = props.get("cpu_cores_count").unwrap_or(0) > 0 || is_apu(device_id);
    Gpu {
        index: 0,
        pci_address,
        partition: partition(&info, keys.partition_index),
        kfd_node: kfd_gpu.node,
        gpu_id: kfd_gpu.gpu_id,
        unique_id,
        hive_id,
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
    }
}
