//! Compute partitions: which GPUs are partitions of one physical GPU, how many each has, and
//! when KFD lists fewer than the partition mode implies.

use std::collections::{BTreeMap, HashMap};

use super::DiscoverError;
use super::address::PciAddress;
use super::model::{Gpu, Partition};
use super::pci::PciInfo;

/// The partition a KFD node is on a GPU whose compute partition mode is not `SPX`; its count is
/// filled in by [`count_partitions`] once every GPU is known.
pub(super) fn partition(info: &PciInfo, index: u8) -> Option<Partition> {
    match &info.compute_partition {
        Some(mode) if mode != "SPX" => Some(Partition {
            index: u32::from(index),
            count: 0,
            compute_mode: mode.clone(),
            memory_mode: info.memory_partition.clone(),
        }),
        _ => None,
    }
}

/// Fills `Partition::count` and rejects two KFD nodes claiming one partition. `gpus` is sorted.
pub(super) fn count_partitions(gpus: &mut [Gpu]) -> Result<(), DiscoverError> {
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
pub(super) fn partition_count_warnings(gpus: &[Gpu]) -> Vec<String> {
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
