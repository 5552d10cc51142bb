//! Fuzz target `oci_hook_input`: see `harness::oci_hook_input`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::oci_hook_input(data);
});
