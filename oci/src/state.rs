//! The OCI container state a runtime writes to a hook's stdin (`ociVersion`, `id`, `status`, `pid`,
//! `bundle`, `annotations`), read with a size cap so a hook never blocks or balloons on bad input.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;

/// The most a hook reads from stdin: a state or an OCI config is a few KiB; 16 MiB is generous.
pub const STDIN_LIMIT: u64 = 16 * 1024 * 1024;

/// Errors reading the container state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading the input failed.
    #[error("cannot read the container state from {what}")]
    Read {
        /// Where it was read from, e.g. `stdin`.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input was larger than the cap.
    #[error(
        "the container state on {what} is larger than {limit} bytes (is the hook wired to the right stage?)"
    )]
    TooLarge {
        /// Where it was read from.
        what: String,
        /// The cap in bytes.
        limit: u64,
    },
    /// The input was not a valid state document.
    #[error("cannot parse the container state from {what}")]
    Parse {
        /// Where it was read from.
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// The state of a container as defined by the OCI runtime specification. Unknown fields are
/// ignored so states from newer runtimes still parse.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The OCI runtime spec version of the state, e.g. `1.0.2`.
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// `creating`, `created`, `running` or `stopped`.
    pub status: String,
    /// The container's init process on the host, when it exists.
    #[serde(default)]
    pub pid: Option<i32>,
    /// Absolute path of the container's bundle directory.
    pub bundle: PathBuf,
    /// The container's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl State {
    /// Parses a state from JSON bytes; `what` names the source in errors.
    pub fn from_slice(bytes: &[u8], what: &str) -> Result<Self, StateError> {
        serde_json::from_slice(bytes).map_err(|source| StateError::Parse {
            what: what.to_string(),
            source,
        })
    }

    /// Reads and parses a state from `reader` (usually stdin), at most [`STDIN_LIMIT`] bytes.
    pub fn read(reader: impl Read, what: &str) -> Result<Self, StateError> {
        let bytes = read_capped(reader, STDIN_LIMIT).map_err(|e| match e {
            CappedReadError::Io(source) => StateError::Read {
                what: what.to_string(),
                source,
            },
            CappedReadError::TooLarge(limit) => StateError::TooLarge {
                what: what.to_string(),
                limit,
            },
        })?;
        Self::from_slice(&bytes, what)
    }
}

/// Why [`read_capped`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CappedReadError {
    /// The reader failed.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// The input had more than this many bytes.
    #[error("input larger than {0} bytes")]
    TooLarge(u64),
}

/// Reads all of `reader` but at most `limit` bytes; more is an error, not a truncation.
pub fn read_capped(reader: impl Read, limit: u64) -> Result<Vec<u8>, CappedReadError> {
    // Room for a typical OCI config (10-30 kB) from the start: `Take` hides a file's size, and
    // without room `read_to_end` probes with 32-byte reads, a system call each.
    let room = usize::try_from(limit.min(64 * 1024)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(room);
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(CappedReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(CappedReadError::TooLarge(limit));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_runc_state_and_ignores_unknown_fields() {
        let json = br#"{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":4242,
            "bundle":"/run/b","annotations":{"a":"b"},"future":1}"#;
        let state = State::from_slice(json, "stdin").expect("valid state");
        assert_eq!(state.id, "c1");
        assert_eq!(state.pid, Some(4242));
        assert_eq!(state.bundle, PathBuf::from("/run/b"));
        assert_eq!(state.annotations.get("a").map(String::as_str), Some("b"));
    }

    #[test]
    fn a_state_without_pid_or_annotations_parses() {
        let json = br#"{"ociVersion":"1.0.2","id":"c","status":"stopped","bundle":"/b"}"#;
        let state = State::from_slice(json, "stdin").expect("valid state");
        assert_eq!(state.pid, None);
        assert!(state.annotations.is_empty());
    }

    #[test]
    fn a_missing_bundle_is_an_error_naming_the_source() {
        let err = State::from_slice(br#"{"ociVersion":"1","id":"c","status":"x"}"#, "stdin")
            .expect_err("bundle is required");
        assert!(
            err.to_string()
                .starts_with("cannot parse the container state from stdin")
        );
    }

    #[test]
    fn read_capped_refuses_oversized_input() {
        let input = [b' '; 11];
        assert!(matches!(
            read_capped(&input[..], 10),
            Err(CappedReadError::TooLarge(10))
        ));
        assert_eq!(read_capped(&input[..], 11).expect("fits").len(), 11);
    }
}
