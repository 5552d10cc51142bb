//! Fuzz target `kfd_properties`: see `harness::kfd_properties`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::kfd_properties(data);
});
