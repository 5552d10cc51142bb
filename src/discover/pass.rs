//! One discovery pass: what it reads with and how much. A leaf module, so that the per-source
//! modules (`kfd`, `drm`, `pci`), which each add their part of the pass to [`Scan`], and `scan`,
//! which runs it, depend on it and not on each other in a circle.

use super::DiscoverOptions;
use super::reader::SysfsReader;

/// What a discovery reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Detail {
    /// Everything a [`Gpu`] holds.
    Full,
    /// Only what injection needs: no card nodes, NUMA nodes or sysfs product names.
    Injection,
}

/// One discovery pass.
pub(super) struct Scan<'a> {
    pub(super) options: &'a DiscoverOptions,
    pub(super) reader: &'a dyn SysfsReader,
    pub(super) detail: Detail,
}
