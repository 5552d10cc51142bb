//! Resolution of parsed request entries against the devices that exist right now: each entry must
//! match at least one device, or the request fails naming the entry and listing what is valid.
//!
//! Semantics (documented in docs/requests.md): an index is amdgpu-cdi's index (the CDI name `N`);
//! a unique id selects every device reporting it (all partitions of a GPU on systems where they
//! share it); a PCI address selects the physical GPU, i.e. all of its partitions; a CDI name selects
//! the device that has that name under any naming strategy; `all` selects every device.

use cdi::text::escape;

use crate::discover::PciAddress;

use super::grammar::{Entry, Selector};
use crate::naming::KIND;

/// One device a request can select, with what it can be selected by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The CDI device name injected when this device is selected.
    pub name: String,
    /// amdgpu-cdi's index, when known.
    pub index: Option<usize>,
    /// The ROCm unique id, when known.
    pub unique_id: Option<u64>,
    /// The physical GPU's PCI address, when known.
    pub pci_address: Option<PciAddress>,
    /// Every CDI name of the device (all naming strategies), including `name`.
    pub names: Vec<String>,
}

/// The devices a request is resolved against, in injection order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    /// The selectable devices.
    pub candidates: Vec<Candidate>,
}

/// A request entry that matches no device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no GPU matches \"{}\" ({valid})", escape(entry))]
pub struct UnknownEntry {
    /// The entry as written.
    pub entry: String,
    /// What this host offers.
    pub valid: String,
}

impl Candidate {
    fn matches(&self, selector: &Selector) -> bool {
        match selector {
            Selector::All => true,
            Selector::Index(i) => self.index == Some(*i),
            Selector::Range(a, b) => self.index.is_some_and(|i| (*a..=*b).contains(&i)),
            Selector::UniqueId(id) => self.unique_id == Some(*id),
            Selector::Pci(pci) => self.pci_address.is_some_and(|p| pci.matches(&p)),
            Selector::CdiName(name) => self.names.iter().any(|n| n == name),
        }
    }
}

impl Candidates {
    /// The names of the devices `entries` select, deduplicated, in inventory order. A range must
    /// be covered completely; every other entry must match at least one device.
    pub fn resolve(&self, entries: &[Entry]) -> Result<Vec<String>, UnknownEntry> {
        let mut selected = vec![false; self.candidates.len()];
        for entry in entries {
            let unknown = || UnknownEntry {
                entry: entry.text.clone(),
                valid: self.describe(),
            };
            if let Selector::Range(a, b) = entry.selector {
                // Covered completely iff it holds as many distinct indices as it is long (no
                // loop over the range: `0-99999999` must stay cheap).
                let mut inside: Vec<usize> = self
                    .candidates
                    .iter()
                    .filter_map(|c| c.index)
                    .filter(|i| (a..=b).contains(i))
                    .collect();
                inside.sort_unstable();
                inside.dedup();
                if inside.len() != b - a + 1 {
                    return Err(unknown());
                }
            }
            let mut any = false;
            for (slot, candidate) in selected.iter_mut().zip(&self.candidates) {
                if candidate.matches(&entry.selector) {
                    *slot = true;
                    any = true;
                }
            }
            if !any {
                return Err(unknown());
            }
        }
        Ok(self
            .candidates
            .iter()
            .zip(selected)
            .filter(|(_, s)| *s)
            .map(|(c, _)| c.name.clone())
            .collect())
    }

    /// A short description of what can be selected on this host, for error messages.
    pub fn describe(&self) -> String {
        if self.candidates.is_empty() {
            return "this host has no AMD GPUs".to_string();
        }
        let mut parts = vec!["valid: all, none, void".to_string()];
        let indices: Vec<usize> = self.candidates.iter().filter_map(|c| c.index).collect();
        if let (Some(min), Some(max)) = (indices.iter().min(), indices.iter().max()) {
            if min == max {
                parts.push(format!("index {min}"));
            } else {
                parts.push(format!("indices {min}-{max}"));
            }
        }
        let ids = distinct(self.candidates.iter().filter_map(|c| c.unique_id));
        if !ids.is_empty() {
            parts.push(format!(
                "unique ids {}",
                abbreviate(ids.iter().map(|id| format!("GPU-{id:x}")))
            ));
        }
        let pcis = distinct(self.candidates.iter().filter_map(|c| c.pci_address));
        if !pcis.is_empty() {
            parts.push(format!(
                "PCI addresses {}",
                abbreviate(pcis.iter().map(ToString::to_string))
            ));
        }
        let names = distinct(self.candidates.iter().flat_map(|c| c.names.iter().cloned()));
        parts.push(format!(
            "CDI names {}",
            abbreviate(names.iter().map(|n| format!("{KIND}={n}")))
        ));
        parts.join(", ")
    }
}

fn distinct<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Joins at most 4 items with spaces, adding `...` when there are more.
fn abbreviate(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    let mut text = items.iter().take(4).cloned().collect::<Vec<_>>().join(" ");
    if items.len() > 4 {
        text.push_str(&format!(" ... ({} in all)", items.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::request::grammar::{Selection, parse};

    fn pci(bus: u8) -> PciAddress {
        PciAddress {
            domain: 0,
            bus,
            device: 0,
            function: 0,
        }
    }

    /// Four devices: GPUs 0 and 1 are whole GPUs, 2 and 3 are two partitions of one GPU sharing
    /// its unique id.
    fn inventory() -> Candidates {
        let gpu = |index: usize, id: u64, bus: u8| Candidate {
            name: index.to_string(),
            index: Some(index),
            unique_id: Some(id),
            pci_address: Some(pci(bus)),
            names: vec![index.to_string(), format!("GPU-{id:x}")],
        };
        Candidates {
            candidates: vec![
                gpu(0, 0xaaaa_0000_0000, 0x03),
                gpu(1, 0xbbbb_0000_0000, 0x43),
                gpu(2, 0xcccc_0000_0000, 0x83),
                gpu(3, 0xcccc_0000_0000, 0x83),
            ],
        }
    }

    fn resolve(value: &str) -> Result<Vec<String>, UnknownEntry> {
        match parse(value).expect("valid grammar") {
            Selection::Devices(entries) => inventory().resolve(&entries),
            other => panic!("{other:?}"),
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn forms_select_the_right_devices() {
        assert_eq!(resolve("all"), Ok(names(&["0", "1", "2", "3"])));
        assert_eq!(resolve("2,0"), Ok(names(&["0", "2"])));
        assert_eq!(resolve("1-2"), Ok(names(&["1", "2"])));
        assert_eq!(resolve("GPU-bbbb00000000"), Ok(names(&["1"])));
        assert_eq!(resolve("0xcccc00000000"), Ok(names(&["2", "3"])));
        assert_eq!(resolve("0000:83:00.0"), Ok(names(&["2", "3"])));
        assert_eq!(resolve("43:00.0"), Ok(names(&["1"])));
        assert_eq!(resolve("amd.com/gpu=GPU-aaaa00000000"), Ok(names(&["0"])));
        assert_eq!(resolve("amd.com/gpu=3, 3, 0-0"), Ok(names(&["0", "3"])));
    }

    #[test]
    fn unknown_entries_fail_with_what_is_valid() {
        let err = resolve("0,4").expect_err("no GPU 4");
        assert_eq!(err.entry, "4");
        assert_eq!(
            err.to_string(),
            "no GPU matches \"4\" (valid: all, none, void, indices 0-3, unique ids GPU-aaaa00000000 \
             GPU-bbbb00000000 GPU-cccc00000000, PCI addresses 0000:03:00.0 0000:43:00.0 \
             0000:83:00.0, CDI names amd.com/gpu=0 amd.com/gpu=GPU-aaaa00000000 amd.com/gpu=1 \
             amd.com/gpu=GPU-bbbb00000000 ... (7 in all))"
        );
        assert_eq!(resolve("2-4").expect_err("partly outside").entry, "2-4");
        assert_eq!(resolve("0-99999999").expect_err("huge").entry, "0-99999999");
        assert_eq!(resolve("GPU-1").expect_err("unknown id").entry, "GPU-1");
        assert_eq!(
            resolve("0001:03:00.0").expect_err("domain").entry,
            "0001:03:00.0"
        );
        assert_eq!(
            resolve("amd.com/gpu=9").expect_err("name").entry,
            "amd.com/gpu=9"
        );
    }

    #[test]
    fn an_empty_host_says_so() {
        let err = Candidates::default()
            .resolve(&[Entry {
                text: "all".to_string(),
                selector: Selector::All,
            }])
            .expect_err("no GPUs");
        assert_eq!(
            err.to_string(),
            "no GPU matches \"all\" (this host has no AMD GPUs)"
        );
    }

    proptest! {
        /// Any list of valid indices resolves to exactly those devices, sorted and deduplicated:
        /// never fewer than asked for.
        #[test]
        fn indices_resolve_exactly(list in proptest::collection::vec(0usize..4, 1..10)) {
            let value = list.iter().map(ToString::to_string).collect::<Vec<_>>().join(" , ");
            let mut expected: Vec<usize> = list.clone();
            expected.sort_unstable();
            expected.dedup();
            let expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
            prop_assert_eq!(resolve(&value), Ok(expected));
        }

        /// A list with any index outside the host fails, whatever else it holds.
        #[test]
        fn any_unknown_index_fails(list in proptest::collection::vec(0usize..4, 0..5),
                                   bad in 4usize..1000) {
            let mut all: Vec<String> = list.iter().map(ToString::to_string).collect();
            all.push(bad.to_string());
            prop_assert!(resolve(&all.join(",")).is_err());
        }
    }
}
