//! podman's `precreate` hook stage: the proposed OCI config arrives on stdin and the config to use
//! leaves on stdout. With nothing requested the input bytes are echoed unchanged.

use std::io::{Read, Write};
use std::path::Path;

use amdgpu_cdi_hooks::bundle::{self, BundleError};
use amdgpu_cdi_hooks::log::DetailLog;

use super::{InjectError, Outcome, inject};
use crate::settings::Settings;

/// Why the precreate hook failed; nothing was written to stdout.
#[derive(Debug, thiserror::Error)]
pub enum PrecreateError {
    /// The config on stdin could not be read.
    #[error(transparent)]
    Read(#[from] BundleError),
    /// The requested GPUs could not be injected.
    #[error(transparent)]
    Inject(#[from] InjectError),
    /// Writing the config to stdout failed.
    #[error("cannot write the OCI config to stdout: {0}")]
    Write(#[source] std::io::Error),
}

/// Reads a config from `input`, injects what it requests, writes the result to `output`.
pub fn run(
    input: impl Read,
    mut output: impl Write,
    settings: &Settings,
    log: &DetailLog,
) -> Result<Outcome, PrecreateError> {
    let (bytes, mut config) = bundle::read_config_from(input, Path::new("stdin"))?;
    let outcome = inject(&mut config, settings, log)?;
    let out = match &outcome {
        Outcome::Unchanged(_) => bytes,
        Outcome::Injected(_) => bundle::to_bytes(&config),
    };
    output
        .write_all(&out)
        .and_then(|()| output.flush())
        .map_err(PrecreateError::Write)?;
    Ok(outcome)
}
