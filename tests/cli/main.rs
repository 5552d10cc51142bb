//! Integration tests of the `amdgpu-cdi` command line against fixture trees (no root needed).

mod bad_input;
mod check;
mod configure;
mod crash_safety;
mod device_plugin;
mod differential;
mod doctor;
#[path = "../files.rs"]
mod files;
mod fuzz_replay;
mod generate;
mod gpus;
mod hook_precreate;
mod hook_prestart;
mod inject;
mod install;
mod list;
mod readme;
mod roots;
mod runtime;
#[path = "../skip.rs"]
mod skip;
mod support;
mod usage;
mod validate;
mod wsl;
