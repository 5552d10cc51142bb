//! Fuzz target `cdi_spec`: see `harness::cdi_spec`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::cdi_spec(data);
});
