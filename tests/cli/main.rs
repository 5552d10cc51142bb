//! Integration tests of the `amdgpu-cdi` command line against fixture trees (no root needed).

mod differential;
mod inject;
mod list;
mod configure;
mod hook_precreate;
mod runtime;
mod support;
mod validate;
