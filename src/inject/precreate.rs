//! podman's `precreate` hook stage: the proposed OCI config arrives on stdin and the config to use
//! leaves on stdout. With nothing requested the input bytes are echoed unchanged.
//!
//! podman (4.3 at least) discards a precreate hook's stderr and reports only "exit status N". So
//! that `podman run` shows why GPUs could not be given, a request that cannot be met does not
//! fail the hook: it prints a config whose process cannot start, named after the error under
//! `/proc` (a fresh procfs in every container, so no image can provide such a file). The runtime
//! then fails the container with the message, and nothing runs with fewer GPUs than asked for.

use std::io::{Read, Write};
use std::path::Path;

use amdgpu_cdi_oci::bundle::{self, BundleError};
use amdgpu_cdi_oci::log::DetailLog;
use serde_json::{Value, json};

use super::{Outcome, inject, parse_if_requesting};
use crate::request;
use crate::settings::Settings;

/// The prefix of the unstartable process of a refused config.
pub const REFUSED_PROCESS_PREFIX: &str = "/proc/amdgpu-cdi: ";

/// What the precreate hook did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrecreateOutcome {
    /// The config was passed on, changed or not.
    Done(Outcome),
    /// The request could not be met: an unstartable config carrying this message was printed.
    Refused(String),
}

/// Why the precreate hook failed; nothing was written to stdout.
#[derive(Debug, thiserror::Error)]
pub enum PrecreateError {
    /// The config on stdin could not be read.
    #[error(transparent)]
    Read(#[from] BundleError),
    /// Writing the config to stdout failed.
    #[error("cannot write the OCI config to stdout")]
    Write(#[source] std::io::Error),
}

/// Makes `config` fail to start with `message`: its process becomes a path that cannot exist.
pub fn refuse(config: &mut Value, message: &str) {
    let args = json!([format!("{REFUSED_PROCESS_PREFIX}{message}")]);
    match config.get_mut("process").and_then(Value::as_object_mut) {
        Some(process) => {
            process.insert("args".to_string(), args);
        }
        None => config["process"] = json!({"args": args, "cwd": "/"}),
    }
}

/// Reads a config from `input`, injects what it requests, writes the result to `output`.
pub fn run(
    input: impl Read,
    mut output: impl Write,
    settings: &Settings,
    log: &DetailLog,
) -> Result<PrecreateOutcome, PrecreateError> {
    let stdin = Path::new("stdin");
    let bytes = bundle::read_bytes_from(input, stdin)?;
    let Some(mut config) = parse_if_requesting(&bytes, stdin)? else {
        write_out(&mut output, &bytes)?;
        return Ok(PrecreateOutcome::Done(Outcome::Unchanged(
            request::NOTHING_REQUESTED,
        )));
    };
    let (outcome, out) = match inject(&mut config, settings, log) {
        Ok(outcome @ Outcome::Unchanged(_)) => (PrecreateOutcome::Done(outcome), bytes),
        Ok(outcome @ Outcome::Injected(_)) => {
            (PrecreateOutcome::Done(outcome), bundle::to_bytes(&config))
        }
        Err(err) => {
            let message = crate::error_text::error_line(&err);
            refuse(&mut config, &message);
            (
                PrecreateOutcome::Refused(message),
                bundle::to_bytes(&config),
            )
        }
    };
    write_out(&mut output, &out)?;
    Ok(outcome)
}

fn write_out(output: &mut impl Write, bytes: &[u8]) -> Result<(), PrecreateError> {
    output
        .write_all(bytes)
        .and_then(|()| output.flush())
        .map_err(PrecreateError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusing_replaces_only_the_process_args() {
        let mut config = json!({"process": {"args": ["sh"], "env": ["A=1"]}, "root": {}});
        refuse(&mut config, "no GPU matches \"9\"");
        assert_eq!(
            config,
            json!({"process": {"args": ["/proc/amdgpu-cdi: no GPU matches \"9\""], "env": ["A=1"]},
                   "root": {}})
        );
        let mut bare = json!({});
        refuse(&mut bare, "x");
        assert_eq!(bare["process"]["args"][0], "/proc/amdgpu-cdi: x");
    }
}
