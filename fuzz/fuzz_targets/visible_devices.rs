//! Fuzz target `visible_devices`: see `harness::visible_devices`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::visible_devices(data);
});
