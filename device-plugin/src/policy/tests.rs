//! The preferred-allocation policy on the example hosts' topologies, and its guarantees under
//! random inventories and requests.

use std::collections::BTreeSet;

use amdgpu_cdi::discover::PciAddress;
use proptest::prelude::*;

use super::preferred;
use crate::inventory::{Inventory, PluginDevice, ResourceStrategy};
use crate::testing::inventory;

fn ids(inventory: &Inventory) -> Vec<String> {
    inventory.devices.iter().map(|d| d.id.clone()).collect()
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn without(all: &[String], used: &[&str]) -> Vec<String> {
    all.iter()
        .filter(|id| !used.contains(&id.as_str()))
        .cloned()
        .collect()
}

fn partitions(gpu: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|k| format!("{gpu}-p{k}")).collect()
}

/// The preferred allocation of `size` devices of `inv` out of `available`, with none that must
/// be included.
fn prefer(inv: &Inventory, available: &[String], size: usize) -> Vec<String> {
    preferred(&inv.devices, available, &[], size)
}

#[test]
fn mi300x_cpx_keeps_partitions_of_one_gpu_together() {
    let inv = inventory("mi300x-cpx", ResourceStrategy::Single);
    let all = ids(&inv);
    assert_eq!(prefer(&inv, &all, 1), ["0000:05:00.0-p0"]);
    assert_eq!(prefer(&inv, &all, 8), partitions("0000:05:00.0", 0..8));
    // More than one GPU holds: one whole GPU, then the rest on one more GPU.
    let mut expected = partitions("0000:05:00.0", 0..8);
    expected.extend(partitions("0000:15:00.0", 0..2));
    assert_eq!(prefer(&inv, &all, 10), expected);
}

#[test]
fn mi300x_cpx_packs_small_requests_into_used_gpus() {
    let inv = inventory("mi300x-cpx", ResourceStrategy::Single);
    let all = ids(&inv);
    // Five partitions of the first GPU are in use: two more fit into its last three.
    let used = [
        "0000:05:00.0-p0",
        "0000:05:00.0-p1",
        "0000:05:00.0-p2",
        "0000:05:00.0-p3",
    ];
    let available = without(&all, &[&used[..], &["0000:05:00.0-p4"]].concat());
    assert_eq!(
        prefer(&inv, &available, 2),
        ["0000:05:00.0-p5", "0000:05:00.0-p6"]
    );
    // Four do not: they go to one fresh GPU of the same NUMA node rather than 3 + 1.
    assert_eq!(
        prefer(&inv, &available, 4),
        partitions("0000:15:00.0", 0..4)
    );
    // A GPU of NUMA node 1 with two partitions in use takes a request for six.
    let available = without(&all, &["0000:85:00.0-p0", "0000:85:00.0-p1"]);
    assert_eq!(
        prefer(&inv, &available, 6),
        partitions("0000:85:00.0", 2..8)
    );
}

#[test]
fn must_include_devices_come_first_and_attract_the_rest() {
    let inv = inventory("mi300x-cpx", ResourceStrategy::Single);
    let all = ids(&inv);
    assert_eq!(
        preferred(&inv.devices, &all, &strings(&["0000:95:00.0-p3"]), 3),
        ["0000:95:00.0-p0", "0000:95:00.0-p1", "0000:95:00.0-p3"]
    );
    // A must_include device that is not available is not returned (and its GPU, now the
    // one with the fewest free partitions, takes the request).
    let available = without(&all, &["0000:95:00.0-p3"]);
    assert_eq!(
        preferred(&inv.devices, &available, &strings(&["0000:95:00.0-p3"]), 1),
        ["0000:95:00.0-p0"]
    );
}

#[test]
fn unhealthy_unknown_and_unavailable_devices_are_never_preferred() {
    let mut inv = inventory("mi300x-cpx", ResourceStrategy::Single);
    inv.devices[0].healthy = false;
    let mut available = ids(&inv);
    available.push("0000:ff:00.0".into());
    assert_eq!(
        preferred(&inv.devices, &available, &strings(&["0000:05:00.0-p0"]), 1),
        ["0000:05:00.0-p1"]
    );
    // Fewer candidates than asked for: all of them.
    let available = strings(&["0000:05:00.0-p0", "0000:05:00.0-p1", "0000:ff:00.0"]);
    assert_eq!(prefer(&inv, &available, 4), ["0000:05:00.0-p1"]);
}

#[test]
fn mi210_gpus_of_one_xgmi_hive_go_together() {
    // Hives: 03 + 23 (NUMA 0) and 43 + 63 (NUMA 1).
    let inv = inventory("mi210x4", ResourceStrategy::Single);
    let all = ids(&inv);
    assert_eq!(prefer(&inv, &all, 2), ["0000:03:00.0", "0000:23:00.0"]);
    // With 03 in use, a pair comes from the other hive, not 23 + 43 across hives.
    let available = without(&all, &["0000:03:00.0"]);
    assert_eq!(
        prefer(&inv, &available, 2),
        ["0000:43:00.0", "0000:63:00.0"]
    );
    // A single GPU goes to the broken hive and keeps the whole one free.
    assert_eq!(prefer(&inv, &available, 1), ["0000:23:00.0"]);
    assert_eq!(
        prefer(&inv, &all, 3),
        ["0000:03:00.0", "0000:23:00.0", "0000:43:00.0"]
    );
}

#[test]
fn multi_domain_prefers_the_xgmi_pair_across_domains() {
    // 0002:81:00.0 and 0000:c1:00.0 share a hive; 0001:41:00.0 has none.
    let inv = inventory("multi-domain", ResourceStrategy::Single);
    let all = ids(&inv);
    assert_eq!(all, ["0000:c1:00.0", "0001:41:00.0", "0002:81:00.0"]);
    assert_eq!(prefer(&inv, &all, 2), ["0000:c1:00.0", "0002:81:00.0"]);
    assert_eq!(prefer(&inv, &all, 1), ["0001:41:00.0"]);
}

#[test]
fn mi308x_in_two_pci_domains_fills_one_numa_node_before_the_other() {
    // GPUs 0000:{05,15,65,75}:00.0 on NUMA node 0 and 0001:{05,15,65,75}:00.0 on NUMA node 1,
    // 4 CPX partitions each, one hive.
    let inv = inventory("mi308x-two-domains", ResourceStrategy::Mixed);
    let all = ids(&inv);
    assert_eq!(all.len(), 32);
    assert_eq!(all[16], "0001:05:00.0-p0");
    let numa = |id: &str| inv.get("amd.com/cpx_nps1", id).and_then(|d| d.numa_node);
    assert_eq!(
        (numa("0000:05:00.0-p0"), numa("0001:05:00.0-p0")),
        (Some(0), Some(1))
    );
    assert_eq!(prefer(&inv, &all, 4), partitions("0000:05:00.0", 0..4));
    let mut eight = partitions("0000:05:00.0", 0..4);
    eight.extend(partitions("0000:15:00.0", 0..4));
    assert_eq!(prefer(&inv, &all, 8), eight);
    // More than a NUMA node holds: all of node 0, then one whole GPU of node 1.
    assert_eq!(
        prefer(&inv, &all, 20),
        [&all[..16], &partitions("0001:05:00.0", 0..4)].concat()
    );
    // Same bus, other domain: a request anchored on 0001:15:00.0 stays there.
    assert_eq!(
        preferred(&inv.devices, &all, &strings(&["0001:15:00.0-p2"]), 2),
        ["0001:15:00.0-p0", "0001:15:00.0-p2"]
    );
}

#[test]
fn mi300a_tpx_keeps_an_apus_partitions_together() {
    let inv = inventory("mi300a-tpx", ResourceStrategy::Mixed);
    let all = ids(&inv);
    assert_eq!(prefer(&inv, &all, 3), partitions("0000:02:00.0", 0..3));
    let available = without(&all, &["0000:02:00.0-p0"]);
    assert_eq!(
        prefer(&inv, &available, 2),
        partitions("0000:02:00.0", 1..3)
    );
    assert_eq!(
        prefer(&inv, &available, 3),
        partitions("0001:02:00.0", 0..3)
    );
}

/// A random inventory: up to six GPUs, each whole or in 2..=8 partitions, with random hives,
/// NUMA nodes and health.
fn arb_inventory() -> impl Strategy<Value = Vec<PluginDevice>> {
    let gpu = (
        prop_oneof![Just(1u32), 2u32..=8],
        prop_oneof![Just(None), (1u64..=2).prop_map(Some)],
        prop_oneof![Just(None), (0i32..=1).prop_map(Some)],
        proptest::collection::vec(any::<bool>(), 8),
    );
    proptest::collection::vec(gpu, 1..=6).prop_map(|gpus| {
        let mut devices = Vec::new();
        for (bus, (count, hive_id, numa_node, health)) in gpus.into_iter().enumerate() {
            let parent = PciAddress {
                domain: 0,
                bus: u8::try_from(bus).unwrap_or(0) + 1,
                device: 0,
                function: 0,
            };
            for k in 0..count {
                let partition = (count > 1).then_some(k);
                devices.push(PluginDevice {
                    id: match partition {
                        Some(k) => format!("{parent}-p{k}"),
                        None => parent.to_string(),
                    },
                    resource: "amd.com/gpu".into(),
                    parent,
                    partition,
                    numa_node,
                    hive_id,
                    render: format!("/dev/dri/renderD{}", 128 + devices.len()).into(),
                    healthy: health[k as usize] || k % 3 == 0,
                });
            }
        }
        devices
    })
}

/// An inventory with a request: available ids (some unknown), must-include ids and a size.
fn arb_request() -> impl Strategy<Value = (Vec<PluginDevice>, Vec<String>, Vec<String>, usize)> {
    arb_inventory().prop_flat_map(|devices| {
        let n = devices.len();
        (
            Just(devices),
            proptest::collection::vec(any::<bool>(), n),
            proptest::collection::vec(any::<bool>(), n),
            0..=n + 2,
            any::<bool>(),
        )
            .prop_map(|(devices, available, must, size, unknown)| {
                let chosen = |chosen: &[bool]| -> Vec<String> {
                    devices
                        .iter()
                        .zip(chosen)
                        .filter(|(_, c)| **c)
                        .map(|(d, _)| d.id.clone())
                        .collect()
                };
                let mut available_ids = chosen(&available);
                let mut must_ids = chosen(&must);
                must_ids.truncate(2);
                if unknown {
                    available_ids.push("0000:ee:00.0".into());
                    must_ids.push("0000:ee:00.0".into());
                }
                (devices, available_ids, must_ids, size)
            })
    })
}

/// Whether the usable (healthy, available) devices of one group can hold `size`; `group` is a
/// device's group (its GPU, its hive), `None` for none.
fn one_group_holds<K: PartialEq>(
    devices: &[PluginDevice],
    available: &[String],
    size: usize,
    group: impl Fn(&PluginDevice) -> Option<K>,
) -> bool {
    devices.iter().filter_map(&group).any(|key| {
        devices
            .iter()
            .filter(|d| group(d).as_ref() == Some(&key) && d.healthy && available.contains(&d.id))
            .count()
            >= size
    })
}

/// The groups the devices of `result` are in.
fn groups_of<K: Ord>(
    devices: &[PluginDevice],
    result: &[String],
    group: impl Fn(&PluginDevice) -> K,
) -> BTreeSet<K> {
    devices
        .iter()
        .filter(|d| result.contains(&d.id))
        .map(group)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn preferred_allocations_keep_their_guarantees(
        (devices, available, must, size) in arb_request()
    ) {
        let result = preferred(&devices, &available, &must, size);
        let candidates: BTreeSet<&str> = devices
            .iter()
            .filter(|d| d.healthy && available.contains(&d.id))
            .map(|d| d.id.as_str())
            .collect();
        let unique: BTreeSet<&str> = result.iter().map(String::as_str).collect();
        prop_assert_eq!(unique.len(), result.len(), "no duplicates: {:?}", result);
        prop_assert!(unique.is_subset(&candidates), "only usable devices: {:?}", result);
        prop_assert_eq!(result.len(), size.min(candidates.len()));
        let usable_must: BTreeSet<&str> = must
            .iter()
            .map(String::as_str)
            .filter(|id| candidates.contains(id))
            .collect();
        if usable_must.len() <= size {
            prop_assert!(usable_must.is_subset(&unique), "must_include kept: {:?}", result);
        }
        prop_assert_eq!(&result, &preferred(&devices, &available, &must, size));
    }

    #[test]
    fn a_request_one_gpu_can_hold_stays_on_one_gpu(
        (devices, available, _, size) in arb_request()
    ) {
        let result = preferred(&devices, &available, &[], size);
        let parent = |d: &PluginDevice| Some(d.parent);
        if size > 0 && one_group_holds(&devices, &available, size, parent) {
            prop_assert_eq!(groups_of(&devices, &result, parent).len(), 1, "{:?}", result);
        }
    }

    #[test]
    fn whole_gpus_one_hive_can_hold_stay_in_that_hive(
        (devices, available, _, size) in arb_request()
    ) {
        let whole: Vec<PluginDevice> = devices
            .into_iter()
            .filter(|d| d.partition.is_none())
            .collect();
        let result = preferred(&whole, &available, &[], size);
        let hive = |d: &PluginDevice| d.hive_id;
        if size > 1 && one_group_holds(&whole, &available, size, hive) {
            let hives = groups_of(&whole, &result, hive);
            prop_assert_eq!(hives.len(), 1, "{:?}", result);
            prop_assert!(!hives.contains(&None), "{:?}", result);
        }
    }
}
