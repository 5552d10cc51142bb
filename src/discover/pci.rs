//! The PCI side of a scan: which physical GPU a render node belongs to, and that GPU's
//! attributes. Addresses are parsed in [`super::address`].

use std::collections::HashMap;
use std::io;
use std::path::Path;

use super::DiscoverError;
use super::address::{PciAddress, comma_separated};
use super::drm::Listings;
use super::drm::{DrmParent, is_xcp_device};
use super::kfd::KfdKeys;
use super::pass::{Detail, Scan};
use super::reader::{OpenDir, SysfsReader};

/// The AMD display controllers and accelerators (vendor 0x1002, PCI class 0x03 or 0x12) in
/// `pci_dir` (`<sysfs>/bus/pci/devices`), in address order: what tells a machine without an AMD
/// GPU from one whose driver is missing. An error only when the directory cannot be listed; a
/// device whose `vendor` or `class` cannot be read is not counted.
pub(super) fn amd_gpus_on_pci(
    reader: &dyn SysfsReader,
    pci_dir: &Path,
) -> io::Result<Vec<PciAddress>> {
    let mut gpus: Vec<PciAddress> = reader
        .read_dir_names(pci_dir)?
        .iter()
        .filter_map(|name| name.parse().ok())
        .filter(|address: &PciAddress| {
            let dir = pci_dir.join(address.to_string());
            let read = |file: &str| reader.read_to_string(&dir.join(file)).ok();
            let vendor = read("vendor");
            let class = read("class");
            vendor.as_deref().map(str::trim) == Some("0x1002")
                && class
                    .as_deref()
                    .is_some_and(|c| c.starts_with("0x03") || c.starts_with("0x12"))
        })
        .collect();
    gpus.sort_unstable();
    Ok(gpus)
}

/// The PCI attributes of one physical GPU.
#[derive(Clone)]
pub(super) struct PciInfo {
    pub(super) numa_node: Option<i32>,
    pub(super) compute_partition: Option<String>,
    pub(super) memory_partition: Option<String>,
    pub(super) product_name: Option<String>,
}

/// Physical GPUs of `amdgpu_xcp` partitions, found once per KFD location.
#[derive(Default)]
pub(super) struct Parents {
    /// The PCI device directory listing, read on first need.
    listing: Option<Vec<PciAddress>>,
    /// (domain, bus, device) -> the GPU's address.
    resolved: HashMap<(Option<u32>, u8, u8), PciAddress>,
}

/// What a pass learns GPU by GPU.
#[derive(Default)]
pub(super) struct Found {
    /// The PCI attributes of each physical GPU seen so far.
    pub(super) pci_info: HashMap<PciAddress, PciInfo>,
    /// The physical GPUs of `amdgpu_xcp` partitions found so far.
    pub(super) parents: Parents,
    /// What looked wrong but did not stop discovery, in the order it was found.
    pub(super) warnings: Vec<String>,
}

impl Scan<'_> {
    /// The physical GPU a render node belongs to: its PCI parent device (KFD's location, when it
    /// disagrees, is only a warning), or for a render node hanging off an `amdgpu_xcp` partition
    /// device, the AMD PCI GPU at KFD's location, looked up once per location.
    pub(super) fn physical_gpu(
        &self,
        node: u32,
        keys: &KfdKeys,
        parent: &DrmParent,
        listings: &Listings,
        found: &mut Found,
    ) -> Result<PciAddress, DiscoverError> {
        let KfdKeys {
            render_minor,
            domain,
            bus,
            slot,
            ..
        } = *keys;
        if let Ok(address) = parent.name.parse::<PciAddress>() {
            if address.bus != bus
                || address.device != slot
                || domain.is_some_and(|d| d != address.domain)
            {
                found.warnings.push(format!(
                    "KFD node {node} reports location {:04x}:{bus:02x}:{slot:02x} but its render \
                     node renderD{render_minor} belongs to {address}; using {address}",
                    domain.unwrap_or(0),
                ));
            }
            return Ok(address);
        }
        if !is_xcp_device(&parent.name) {
            return Err(DiscoverError::UnknownRenderParent {
                node,
                path: listings.drm_dir.path().join(keys.render_name()),
                device: parent.name.clone(),
            });
        }
        let parents = &mut found.parents;
        if let Some(address) = parents.resolved.get(&(domain, bus, slot)) {
            return Ok(*address);
        }
        let address = self.partition_parent(
            &listings.pci_dir,
            node,
            domain,
            bus,
            slot,
            &mut parents.listing,
        )?;
        parents.resolved.insert((domain, bus, slot), address);
        Ok(address)
    }

    /// The physical GPU of a partition whose render node hangs off an `amdgpu_xcp` platform
    /// device: the AMD PCI device with DRM nodes at KFD's bus and device (and domain, if known).
    pub(super) fn partition_parent(
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
                candidates: comma_separated(many),
            }),
        }
    }

    /// The PCI attributes of the GPU at `address`, read once per physical GPU.
    pub(super) fn cached_pci_info(
        &self,
        pci_dir: &OpenDir,
        address: PciAddress,
        cache: &mut HashMap<PciAddress, PciInfo>,
    ) -> Result<PciInfo, DiscoverError> {
        if let Some(info) = cache.get(&address) {
            return Ok(info.clone());
        }
        let info = self.pci_info(pci_dir, &address)?;
        cache.insert(address, info.clone());
        Ok(info)
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
}
