//! CDI device names for discovered GPUs: by index, by ROCm unique id, or by PCI address.
//!
//! | strategy | whole GPU | partition 3 of a GPU |
//! |---|---|---|
//! | `index` | `0` | `5` (partitions are GPUs of their own in the index order) |
//! | `uuid` | `GPU-8d1c3f2a5b6e7d90` | `GPU-8d1c3f2a5b6e7d90-p3` |
//! | `pci` | `0000:03:00.0` | `0000:03:00.0-p3` |
//!
//! `uuid` names use ROCm's form (`GPU-` and the KFD `unique_id` as 16 lower-case hex digits), so
//! the name a user sees in `rocminfo` or `amd-smi` selects the same GPU. Partitions always carry a
//! `-p<k>` suffix in the `uuid` and `pci` strategies: all partitions of a GPU share its PCI address,
//! and on many systems its unique id too, so without the suffix the names would collide. Every
//! name is a valid CDI device name (letters, digits, `_.:-`, starting and ending alphanumeric).

/// The vendor of every CDI kind and Kubernetes resource amdgpu-cdi provides.
pub const VENDOR: &str = "amd.com";
/// The class of the CDI kind.
pub const CLASS: &str = "gpu";
/// The CDI kind of the devices amdgpu-cdi provides: `VENDOR/CLASS`.
pub const KIND: &str = "amd.com/gpu";

use std::fmt;
use std::str::FromStr;

use crate::discover::Gpu;

/// How devices are named in a generated spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameStrategy {
    /// `0`, `1`, ...: the position in amdgpu-cdi's stable order (PCI address, then partition).
    Index,
    /// `GPU-<hex unique id>` as ROCm shows it, `-p<k>` for partition `k`.
    Uuid,
    /// The PCI address, `0000:03:00.0`, `-p<k>` for partition `k`.
    Pci,
}

impl NameStrategy {
    /// Every strategy, in the order a device's names are listed (index first).
    pub const ALL: [Self; 3] = [Self::Index, Self::Uuid, Self::Pci];

    /// The strategies of a spec generated without `--device-name-strategy`: the index (what
    /// Docker's `--gpus N` asks for) and ROCm's unique id (a name that survives moving boards and
    /// GPUs coming or going), as NVIDIA's toolkit does; docs/discovery.md says why not `pci`.
    pub const DEFAULT: [Self; 2] = [Self::Index, Self::Uuid];

    /// The strategy's command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Index => "index",
            Self::Uuid => "uuid",
            Self::Pci => "pci",
        }
    }
}

impl fmt::Display for NameStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a strategy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown device name strategy {0:?} (expected index, uuid or pci)")]
pub struct ParseNameStrategyError(pub String);

impl FromStr for NameStrategy {
    type Err = ParseNameStrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "index" => Ok(Self::Index),
            "uuid" => Ok(Self::Uuid),
            "pci" => Ok(Self::Pci),
            other => Err(ParseNameStrategyError(other.to_string())),
        }
    }
}

/// The name of `gpu` under one strategy; `None` for `uuid` when the GPU has no unique id.
pub fn device_name(gpu: &Gpu, strategy: NameStrategy) -> Option<String> {
    let suffix = gpu
        .partition
        .as_ref()
        .map(|p| format!("-p{}", p.index))
        .unwrap_or_default();
    match strategy {
        NameStrategy::Index => Some(gpu.index.to_string()),
        NameStrategy::Uuid => gpu.rocm_uuid().map(|uuid| format!("{uuid}{suffix}")),
        NameStrategy::Pci => Some(format!("{}{suffix}", gpu.pci_address)),
    }
}

/// The names of `gpu` under each strategy, in the given order, without duplicates. A strategy
/// that does not apply (`uuid` without a unique id) contributes nothing.
pub fn device_names(gpu: &Gpu, strategies: &[NameStrategy]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(strategies.len());
    for &strategy in strategies {
        if let Some(name) = device_name(gpu, strategy)
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kind_is_vendor_slash_class() {
        assert_eq!(super::KIND, format!("{}/{}", super::VENDOR, super::CLASS));
    }

    use super::*;
    use crate::discover::fixture;

    /// GPU `index` at PCI address `0000:03:00.0`.
    fn gpu(index: usize, partition: Option<u32>, unique_id: Option<u64>) -> Gpu {
        fixture::gpu(index, 3, partition, unique_id)
    }

    #[test]
    fn names_whole_gpus() {
        let g = gpu(2, None, Some(0x8d1c_3f2a_5b6e_7d90));
        assert_eq!(
            device_names(&g, &NameStrategy::ALL),
            ["2", "GPU-8d1c3f2a5b6e7d90", "0000:03:00.0"]
        );
    }

    #[test]
    fn partitions_get_a_suffix_except_by_index() {
        let g = gpu(11, Some(3), Some(0xab));
        let all = [NameStrategy::Pci, NameStrategy::Uuid, NameStrategy::Index];
        assert_eq!(
            device_names(&g, &all),
            ["0000:03:00.0-p3", "GPU-00000000000000ab-p3", "11"]
        );
    }

    #[test]
    fn uuid_without_unique_id_gives_no_name_and_duplicates_collapse() {
        let g = gpu(0, None, None);
        assert_eq!(
            device_names(&g, &[NameStrategy::Uuid]),
            Vec::<String>::new()
        );
        let twice = [NameStrategy::Index, NameStrategy::Index];
        assert_eq!(device_names(&g, &twice), ["0"]);
    }

    #[test]
    fn strategies_parse_and_display() {
        for s in NameStrategy::ALL {
            assert_eq!(s.as_str().parse::<NameStrategy>(), Ok(s));
        }
        assert_eq!(
            "bus"
                .parse::<NameStrategy>()
                .expect_err("unknown")
                .to_string(),
            "unknown device name strategy \"bus\" (expected index, uuid or pci)"
        );
    }
}
