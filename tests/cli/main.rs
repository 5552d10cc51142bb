//! Integration tests of the `amdgpu-cdi` command line against fixture trees (no root needed).

mod hook_prestart;
mod support;
