//! DRM: the render and card nodes of a GPU, and the device each hangs off (a PCI GPU, or an
//! `amdgpu_xcp` platform device for a compute partition), read from the `class/drm` links.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::DiscoverError;
use super::model::FoundNode;
use super::pass::{Detail, Scan};
use super::reader::OpenDir;

/// The device a DRM minor belongs to, from its `class/drm` link.
#[derive(Clone)]
pub(super) struct DrmParent {
    /// The parent device's directory as the link spells it (a key, never opened).
    pub(super) dir: PathBuf,
    /// The parent's name: a PCI address or `amdgpu_xcp_<k>` / `amdgpu_xcp.<k>`.
    pub(super) name: String,
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
pub(super) struct DrmIndex {
    /// `renderD<N>` / `card<N>` -> its parent.
    parents: HashMap<String, DrmParent>,
    /// Parent directory -> its card minors, ascending.
    cards: HashMap<PathBuf, Vec<u32>>,
}

/// What a pass reads once and looks every GPU up in.
pub(super) struct Listings {
    /// `class/drm`, opened once.
    pub(super) drm_dir: OpenDir,
    /// `bus/pci/devices`, opened once.
    pub(super) pci_dir: OpenDir,
    /// Where every DRM minor hangs; full discovery only (injection reads one link per GPU).
    pub(super) drm: Option<DrmIndex>,
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// True for partition platform devices: `amdgpu_xcp_<k>` (newer kernels) or `amdgpu_xcp.<k>`.
pub(super) fn is_xcp_device(name: &str) -> bool {
    name.strip_prefix("amdgpu_xcp")
        .and_then(|rest| rest.strip_prefix('_').or_else(|| rest.strip_prefix('.')))
        .is_some_and(is_number)
}

impl Scan<'_> {
    /// The device the render node `render_name` of KFD node `node` hangs off: from the DRM index
    /// in full discovery, from one `readlink` of its `class/drm` link for injection.
    pub(super) fn render_parent<'l>(
        &self,
        node: u32,
        render_minor: u32,
        render_name: &str,
        listings: &'l Listings,
    ) -> Result<Cow<'l, DrmParent>, DiscoverError> {
        let parent = match &listings.drm {
            Some(drm) => drm.parents.get(render_name).map(Cow::Borrowed),
            None => self
                .drm_parent(&listings.drm_dir, render_name, true)?
                .map(Cow::Owned),
        };
        parent.ok_or_else(|| DiscoverError::MissingRenderNode {
            node,
            minor: render_minor,
            path: listings.drm_dir.path().join(render_name),
        })
    }

    /// The render node `/dev/dri/<render_name>`: with its sysfs numbers, completed from `stat`,
    /// in full discovery; only its path for injection.
    pub(super) fn render_node(
        &self,
        render_name: &str,
        drm_dir: &OpenDir,
        warnings: &mut Vec<String>,
    ) -> Result<FoundNode, DiscoverError> {
        let path = PathBuf::from(format!("/dev/dri/{render_name}"));
        Ok(match self.detail {
            Detail::Full => {
                let dev = drm_dir.path().join(render_name).join("dev");
                let (major, minor) = self.read_dev_numbers(&dev)?;
                self.device_node(path, major, minor, warnings)
            }
            Detail::Injection => FoundNode {
                path,
                major: 0,
                minor: 0,
                gid: None,
                file_mode: None,
            },
        })
    }

    /// Where every DRM minor hangs: one listing of `class/drm` and one `readlink` per entry.
    /// The kernel writes class links as `../../devices/<path>/<parent>/drm/<name>`, so the link
    /// text names the parent device; a link of another shape is resolved fully.
    pub(super) fn drm_index(&self, drm_dir: &OpenDir) -> Result<DrmIndex, DiscoverError> {
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
    pub(super) fn card_node(
        &self,
        drm: &DrmIndex,
        parent_dir: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<Option<FoundNode>, DiscoverError> {
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
}
