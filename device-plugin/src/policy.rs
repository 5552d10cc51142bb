//! `GetPreferredAllocation`: which devices of a resource the plugin prefers for a container.
//!
//! The candidates are the requested `available` devices that the plugin knows and that are
//! healthy; the `must_include` devices among them come first. The rest is chosen by walking the
//! topology from the outside in, XGMI hive, then NUMA node, then physical GPU, then partition,
//! and at each level filling the groups in this order:
//!
//! 1. groups that already hold chosen devices (next to the `must_include` devices);
//! 2. groups that can hold everything still needed, the one needing the fewest physical GPUs
//!    first (partitions of one GPU together), then, when more than one GPU is needed, a real
//!    XGMI hive before the GPUs in none, then the group with the fewest free devices (best fit:
//!    a small request goes to an already used GPU, hive or NUMA node and leaves whole ones free
//!    for large requests);
//! 3. when no group can hold everything, the largest group first, then again from 2.
//!
//! Inside a physical GPU, partitions are taken in index order. Ties go to the group that comes
//! first in the inventory (PCI address order). The answer never holds a device that is
//! unknown, unhealthy or not available, never more than the size asked for, and exactly that
//! size whenever enough candidates exist; otherwise every candidate (the kubelet completes the
//! allocation from its own list).

use std::collections::HashMap;

use amdgpu_cdi::discover::PciAddress;

use crate::inventory::PluginDevice;

/// The topology levels, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Hive,
    Numa,
    Parent,
    Partition,
}

impl Level {
    fn inner(self) -> Self {
        match self {
            Self::Hive => Self::Numa,
            Self::Numa => Self::Parent,
            Self::Parent | Self::Partition => Self::Partition,
        }
    }
}

/// A device's group at one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Hive(Option<u64>),
    Numa(Option<i32>),
    Parent(PciAddress),
}

fn key(device: &PluginDevice, level: Level) -> Option<Key> {
    match level {
        Level::Hive => Some(Key::Hive(device.hive_id)),
        Level::Numa => Some(Key::Numa(device.numa_node)),
        Level::Parent => Some(Key::Parent(device.parent)),
        Level::Partition => None,
    }
}

/// The device ids to prefer for one container: `size` of the `available` devices (fewer when
/// fewer are usable), including the usable `must_include` ones. `devices` are the resource's
/// devices in inventory order.
pub fn preferred<'a>(
    devices: impl IntoIterator<Item = &'a PluginDevice>,
    available: &[String],
    must_include: &[String],
    size: usize,
) -> Vec<String> {
    let devices: Vec<&PluginDevice> = devices.into_iter().collect();
    let position: HashMap<&str, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let usable = |id: &String| {
        position
            .get(id.as_str())
            .map(|&i| devices[i])
            .filter(|d| d.healthy)
    };
    let mut candidates: Vec<&PluginDevice> = available.iter().filter_map(usable).collect();
    candidates.sort_by_key(|d| position[d.id.as_str()]);
    candidates.dedup_by(|a, b| a.id == b.id);
    let mut chosen: Vec<&PluginDevice> = Vec::new();
    for device in must_include.iter().filter_map(usable) {
        if chosen.len() < size
            && candidates.iter().any(|c| c.id == device.id)
            && !chosen.iter().any(|c| c.id == device.id)
        {
            chosen.push(device);
        }
    }
    let rest: Vec<&PluginDevice> = candidates
        .into_iter()
        .filter(|c| !chosen.iter().any(|m| m.id == c.id))
        .collect();
    let wanted = size.saturating_sub(chosen.len()).min(rest.len());
    let anchors = chosen.clone();
    take(Level::Hive, &rest, wanted, &anchors, &mut chosen);
    chosen.sort_by_key(|d| position[d.id.as_str()]);
    chosen.into_iter().map(|d| d.id.clone()).collect()
}

/// One group of candidates at a level.
struct Group<'a> {
    key: Key,
    devices: Vec<&'a PluginDevice>,
}

impl Group<'_> {
    /// Chosen devices (the `must_include` ones) in this group.
    fn anchored(&self, anchors: &[&PluginDevice], level: Level) -> usize {
        anchors
            .iter()
            .filter(|a| key(a, level) == Some(self.key))
            .count()
    }

    /// How many physical GPUs `wanted` devices from this group need at least.
    fn parents_needed(&self, wanted: usize) -> usize {
        let mut free: Vec<usize> = Vec::new();
        let mut parents: Vec<PciAddress> = Vec::new();
        for device in &self.devices {
            match parents.iter().position(|p| *p == device.parent) {
                Some(i) => free[i] += 1,
                None => {
                    parents.push(device.parent);
                    free.push(1);
                }
            }
        }
        free.sort_unstable_by(|a, b| b.cmp(a));
        let mut sum = 0;
        for (count, f) in free.iter().enumerate() {
            sum += f;
            if sum >= wanted {
                return count + 1;
            }
        }
        free.len()
    }

    /// A group of GPUs in no XGMI hive.
    fn unlinked(&self) -> bool {
        self.key == Key::Hive(None)
    }
}

/// Splits `devices` into groups by their key at `level`, in order of first appearance.
fn groups<'a>(devices: &[&'a PluginDevice], level: Level) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for device in devices {
        let Some(k) = key(device, level) else {
            continue;
        };
        match groups.iter_mut().find(|g| g.key == k) {
            Some(group) => group.devices.push(device),
            None => groups.push(Group {
                key: k,
                devices: vec![device],
            }),
        }
    }
    groups
}

/// Picks the next group to fill (see the module documentation).
fn next_group(
    groups: &[Group<'_>],
    wanted: usize,
    anchors: &[&PluginDevice],
    level: Level,
) -> usize {
    let anchored = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.anchored(anchors, level), i))
        .filter(|&(count, _)| count > 0)
        .max_by_key(|&(count, i)| (count, std::cmp::Reverse(i)));
    if let Some((_, i)) = anchored {
        return i;
    }
    let fitting = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.devices.len() >= wanted)
        .min_by_key(|(i, g)| {
            let parents = g.parents_needed(wanted);
            (parents, parents > 1 && g.unlinked(), g.devices.len(), *i)
        });
    if let Some((i, _)) = fitting {
        return i;
    }
    groups
        .iter()
        .enumerate()
        .max_by_key(|(i, g)| (g.devices.len(), std::cmp::Reverse(*i)))
        .map_or(0, |(i, _)| i)
}

/// Adds `wanted` of `devices` (at most all of them) to `chosen`.
fn take<'a>(
    level: Level,
    devices: &[&'a PluginDevice],
    wanted: usize,
    anchors: &[&PluginDevice],
    chosen: &mut Vec<&'a PluginDevice>,
) {
    if wanted == 0 {
        return;
    }
    if level == Level::Partition {
        let mut in_order = devices.to_vec();
        in_order.sort_by_key(|d| d.partition);
        chosen.extend(in_order.into_iter().take(wanted));
        return;
    }
    let mut groups = groups(devices, level);
    let mut wanted = wanted;
    while wanted > 0 && !groups.is_empty() {
        let group = groups.remove(next_group(&groups, wanted, anchors, level));
        let count = wanted.min(group.devices.len());
        take(level.inner(), &group.devices, count, anchors, chosen);
        wanted -= count;
    }
}

#[cfg(test)]
mod tests;
