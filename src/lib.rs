//! amdgpu-cdi: AMD GPU discovery, CDI spec generation, engine configuration and diagnostics.
//!
//! The binaries (`amdgpu-cdi`, `amdgpu-container-runtime`) are thin: they parse arguments in
//! [`cli`] and call into the modules here. The vendor-neutral CDI work lives in the `cdi` crate,
//! the container-side mechanics in `amdgpu-cdi-oci`.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod configure;
pub mod discover;
pub mod doctor;
pub mod engines;
pub mod error_text;
pub mod generate;
pub mod inject;
pub mod naming;
pub mod paths;
pub mod request;
pub mod settings;
pub mod wrapper;

#[cfg(test)]
#[path = "../tests/files.rs"]
mod files;
