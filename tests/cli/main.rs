//! Integration tests of the `amdgpu-cdi` command line against fixture trees (no root needed).

mod check;
mod differential;
mod doctor;
mod inject;
mod list;
mod support;
mod validate;
