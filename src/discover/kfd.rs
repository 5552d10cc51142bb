//! KFD topology: the GPU nodes of `class/kfd/kfd/topology/nodes`, and the keys every GPU node
//! has (render minor, PCI location, device id), decoded.

use std::path::{Path, PathBuf};

use super::DiscoverError;
use super::model::AMD_VENDOR_ID;
use super::pass::{Detail, Scan};
use super::properties::Properties;
use super::reader::OpenDir;

/// One GPU node of KFD topology, before it is matched to DRM and PCI.
pub(super) struct KfdGpu {
    pub(super) node: u32,
    pub(super) gpu_id: u32,
    pub(super) properties: Properties,
    properties_path: PathBuf,
}

/// The keys every GPU node of KFD topology has, decoded.
#[derive(Debug, Clone, Copy)]
pub(super) struct KfdKeys {
    /// `drm_render_minor`: the GPU's render node is `renderD<render_minor>`.
    pub(super) render_minor: u32,
    /// `device_id`: the PCI device id.
    pub(super) device_id: u16,
    /// `domain`, which older kernels do not report.
    pub(super) domain: Option<u32>,
    /// The bus of `location_id` (bits 8..16).
    pub(super) bus: u8,
    /// The device (slot) of `location_id` (bits 3..8).
    pub(super) slot: u8,
    /// The low 3 bits of `location_id`: the partition index on a partitioned GPU.
    pub(super) partition_index: u8,
}

impl KfdKeys {
    /// The render node's name, `renderD<render_minor>`.
    pub(super) fn render_name(&self) -> String {
        format!("renderD{}", self.render_minor)
    }
}

impl KfdGpu {
    /// The keys every GPU node has; a node without one is not a KFD topology node.
    pub(super) fn keys(&self) -> Result<KfdKeys, DiscoverError> {
        let props = &self.properties;
        let require = |key: &'static str| {
            props.get(key).ok_or(DiscoverError::MissingKey {
                path: self.properties_path.clone(),
                key,
            })
        };
        let render_minor = u32::try_from(require("drm_render_minor")?).unwrap_or(u32::MAX);
        let location_id = require("location_id")?;
        let device_id = u16::try_from(require("device_id")?).unwrap_or(u16::MAX);
        let domain = props
            .get("domain")
            .map(|d| u32::try_from(d).unwrap_or(u32::MAX));
        Ok(KfdKeys {
            render_minor,
            device_id,
            domain,
            bus: u8::try_from((location_id >> 8) & 0xff).unwrap_or(0),
            slot: u8::try_from((location_id >> 3) & 0x1f).unwrap_or(0),
            partition_index: u8::try_from(location_id & 0x7).unwrap_or(0),
        })
    }
}

impl Scan<'_> {
    /// Reads every topology node and keeps the AMD GPU ones, in node order.
    pub(super) fn kfd_gpus(&self, nodes_dir: &Path) -> Result<Vec<KfdGpu>, DiscoverError> {
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
            // The decision uses the properties alone, so injection, which skips the gpu_id
            // files, numbers GPUs exactly as full discovery.
            if !properties.is_gpu_node() {
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
}
