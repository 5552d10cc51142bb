//! Integration tests of the `amdgpu-cdi` command line against fixture trees (no root needed).

mod configure;
mod hook_precreate;
mod runtime;
mod support;
