//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`, seeds plus every finding) through
//! the same entry points the fuzz targets call (`fuzz/harness.rs`), without a fuzzer: a plain
//! test, so CI needs neither cargo-fuzz nor a nightly compiler. See docs/fuzzing.md.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::support::repo_root;

#[path = "../../fuzz/harness.rs"]
mod harness;

/// A fuzz target's entry point (`fuzz/harness.rs`): true where the input reached the deep code.
type FuzzEntry = fn(&[u8]) -> bool;

/// The fuzz targets: each one's corpus (`fuzz/corpus/<target>`) and the entry point it calls.
const TARGETS: [(&str, FuzzEntry); 4] = [
    ("cdi_spec", harness::cdi_spec),
    ("visible_devices", harness::visible_devices),
    ("oci_hook_input", harness::oci_hook_input),
    ("kfd_properties", harness::kfd_properties),
];

/// Feeds every file of `fuzz/corpus/<target>` to `entry`; returns the inputs that panic.
fn panicking_inputs(target: &str, entry: FuzzEntry) -> Vec<String> {
    let dir = repo_root().join("fuzz/corpus").join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .iter()
        .filter(|path| {
            let data = fs::read(path).expect("read corpus file");
            catch_unwind(AssertUnwindSafe(|| entry(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect()
}

#[test]
fn every_corpus_replays_without_a_panic() {
    let failed: Vec<String> = TARGETS
        .iter()
        .flat_map(|(target, entry)| panicking_inputs(target, *entry))
        .collect();
    assert!(failed.is_empty(), "inputs that panic: {failed:#?}");
}

/// The good seeds reach the deep code (an entry point that rejects everything fuzzes nothing).
#[test]
fn good_seeds_are_accepted_all_the_way() {
    let corpus = repo_root().join("fuzz/corpus");
    let read = |path: &str| fs::read(corpus.join(path)).expect("seed");
    assert!(harness::cdi_spec(&read("cdi_spec/seed-amd.com-gpu.json")));
    assert!(harness::visible_devices(&read("visible_devices/seed-3")));
    assert!(harness::oci_hook_input(&read(
        "oci_hook_input/seed-request-0-2.json"
    )));
    assert!(harness::oci_hook_input(&read(
        "oci_hook_input/seed-state-bundle.json"
    )));
    assert!(harness::kfd_properties(&read(
        "kfd_properties/seed-three-gpus-1"
    )));
}
