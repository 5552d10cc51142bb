//! `amdgpu-cdi check`: is the spec on disk still what `generate` would write now?
//!
//! A spec goes stale when the driver is reloaded, a compute partition switch renumbers the render
//! nodes or a GPU comes or goes; engines then fail with an opaque "unresolvable CDI devices". The
//! comparison is semantic (both sides parsed into the CDI model), so formatting or key order on
//! disk never counts as a change; the diff shows both sides in the same canonical rendering. A file
//! that cannot be read or parsed is an error naming the file and the problem, not staleness: a diff
//! against text that is not a spec would only hide the line that is wrong.
//!
//! The spec is judged against the options it was generated with, read from its first line
//! ([`crate::generate::record`]); only a spec that records none (JSON, or written by hand or by an
//! older amdgpu-cdi) is judged against the options given to `check`.

use std::io;
use std::path::{Path, PathBuf};

use cdi::codec::{self, CodecError, Format};
use cdi::spec::Spec;
use similar::TextDiff;

use crate::discover::wsl::{WslError, WslOptions};
use crate::discover::{self, DiscoverError, DiscoverOptions};
use crate::generate::record::{self, RecordError};
use crate::generate::{self, GenerateError, GenerateOptions};

/// Why the comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The spec file exists but cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The spec file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The spec file is not a CDI spec (the problem names its line and field).
    #[error(
        "cannot parse {}: {problem} (fix or delete it, or rewrite it with `amdgpu-cdi generate --output {}`)",
        path.display(),
        path.display()
    )]
    Parse {
        /// The spec file.
        path: PathBuf,
        /// What is wrong with it.
        problem: CodecError,
    },
    /// The first line records generate options that cannot be read back.
    #[error(
        "cannot read the generate options recorded on line 1 of {}: {problem} (rewrite it with `amdgpu-cdi generate --output {}` and the options you want)",
        path.display(),
        path.display()
    )]
    Record {
        /// The spec file.
        path: PathBuf,
        /// What is wrong with the record.
        problem: RecordError,
    },
    /// Discovery failed, so there is nothing to compare with.
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    /// WSL discovery failed.
    #[error(transparent)]
    Wsl(#[from] WslError),
    /// The host's spec cannot be generated with these options.
    #[error("cannot generate the spec to compare with: {0}")]
    Generate(#[from] GenerateError),
}

/// How the spec on disk compares with what `generate` would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Currentness {
    /// The same spec.
    Current,
    /// Different or missing: a unified diff from the file to the wanted spec.
    Stale {
        /// Why, one line: the file differs or does not exist.
        reason: String,
        /// Unified diff, old = on disk, new = generated now.
        diff: String,
    },
}

/// What `check` found, and the options it compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Current or stale.
    pub outcome: Currentness,
    /// The options the wanted spec was generated with.
    pub options: GenerateOptions,
    /// Whether those options were read from the spec's first line (else they were given).
    pub recorded: bool,
}

/// Compares `spec_path` with the spec generated now for the host found with `discover_options`,
/// with the options the spec records, else with `given`.
pub fn check(
    spec_path: &Path,
    discover_options: &DiscoverOptions,
    given: &GenerateOptions,
) -> Result<Checked, CheckError> {
    check_against(spec_path, given, |options| {
        let host = discover::discover(discover_options)?;
        Ok(generate::generate(&host, options)?)
    })
}

/// [`check`] for a WSL2 host (docs/wsl.md), discovered with `discover_options` and `wsl`.
pub fn check_wsl(
    spec_path: &Path,
    discover_options: &DiscoverOptions,
    wsl: &WslOptions,
    given: &GenerateOptions,
) -> Result<Checked, CheckError> {
    check_against(spec_path, given, |options| {
        let host = discover::wsl::discover_wsl(discover_options, wsl)?.host;
        Ok(generate::wsl::generate_wsl(&host, options)?)
    })
}

/// Compares `spec_path` with what `wanted` generates with the options the spec records, else
/// with `given`.
fn check_against(
    spec_path: &Path,
    given: &GenerateOptions,
    wanted: impl FnOnce(&GenerateOptions) -> Result<Spec, CheckError>,
) -> Result<Checked, CheckError> {
    let on_disk = read_spec(spec_path)?;
    let (options, recorded) =
        match recorded_options(spec_path, on_disk.as_deref(), &given.dev_root)? {
            Some(options) => (options, true),
            None => (given.clone(), false),
        };
    let wanted = wanted(&options)?;
    Ok(Checked {
        outcome: compare(spec_path, on_disk.as_deref(), &wanted)?,
        options,
        recorded,
    })
}

/// The options recorded on the first line of the spec `bytes` read from `spec_path`, with nodes
/// under `dev_root`; `None` when it records none.
pub fn recorded_options(
    spec_path: &Path,
    bytes: Option<&[u8]>,
    dev_root: &Path,
) -> Result<Option<GenerateOptions>, CheckError> {
    match bytes.and_then(|bytes| record::read(bytes, dev_root)) {
        None => Ok(None),
        Some(Ok(options)) => Ok(Some(options)),
        Some(Err(problem)) => Err(CheckError::Record {
            path: spec_path.to_path_buf(),
            problem,
        }),
    }
}

/// The bytes of the spec file, `None` when it does not exist.
pub fn read_spec(spec_path: &Path) -> Result<Option<Vec<u8>>, CheckError> {
    match std::fs::read(spec_path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckError::Read {
            path: spec_path.to_path_buf(),
            source,
        }),
    }
}

/// Compares the file at `spec_path` with `wanted`. A missing file is stale; one that cannot be read
/// or is not a CDI spec is an error.
pub fn compare_file(spec_path: &Path, wanted: &Spec) -> Result<Currentness, CheckError> {
    compare(spec_path, read_spec(spec_path)?.as_deref(), wanted)
}

/// Compares the spec `bytes` read from `spec_path` (`None`: it does not exist) with `wanted`.
fn compare(
    spec_path: &Path,
    bytes: Option<&[u8]>,
    wanted: &Spec,
) -> Result<Currentness, CheckError> {
    let format = Format::from_path(spec_path);
    let shown = spec_path.display().to_string();
    let Some(bytes) = bytes else {
        return Ok(Currentness::Stale {
            reason: format!("{shown} does not exist"),
            diff: unified_diff("", &codec::to_string(wanted, format), "/dev/null"),
        });
    };
    match codec::parse(bytes, format) {
        Ok(on_disk) if on_disk == *wanted => Ok(Currentness::Current),
        Ok(on_disk) => Ok(Currentness::Stale {
            reason: format!("{shown} differs from the spec generated now"),
            diff: unified_diff(
                &codec::to_string(&on_disk, format),
                &codec::to_string(wanted, format),
                &shown,
            ),
        }),
        Err(problem) => Err(CheckError::Parse {
            path: spec_path.to_path_buf(),
            problem,
        }),
    }
}

fn unified_diff(old: &str, new: &str, old_name: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, "generated now")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(names: &[&str]) -> Spec {
        let yaml = format!(
            "cdiVersion: \"0.5.0\"\nkind: \"amd.com/gpu\"\ndevices:\n{}",
            names
                .iter()
                .map(|n| format!(
                    "- name: \"{n}\"\n  containerEdits:\n    deviceNodes:\n    - path: \"/dev/dri/renderD{}\"\n",
                    128 + n.len()
                ))
                .collect::<String>()
        );
        codec::parse(yaml.as_bytes(), Format::Yaml).expect("test spec parses")
    }

    #[test]
    fn formatting_differences_are_not_staleness() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("amd.com-gpu.yaml");
        // Unquoted, differently indented, different key order: the same spec.
        std::fs::write(
            &path,
            "kind: amd.com/gpu\ncdiVersion: 0.5.0\ndevices:\n  - containerEdits:\n      deviceNodes:\n        - path: /dev/dri/renderD129\n    name: \"0\"\n",
        )
        .expect("write spec");
        assert_eq!(
            compare_file(&path, &spec(&["0"])).expect("compares"),
            Currentness::Current
        );
    }

    #[test]
    fn a_changed_spec_gives_a_unified_diff() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("amd.com-gpu.yaml");
        std::fs::write(&path, codec::to_string(&spec(&["0"]), Format::Yaml)).expect("write");
        let Currentness::Stale { reason, diff } =
            compare_file(&path, &spec(&["0", "11"])).expect("compares")
        else {
            panic!("expected stale");
        };
        assert!(
            reason.ends_with("differs from the spec generated now"),
            "{reason}"
        );
        assert!(diff.contains("+++ generated now"), "{diff}");
        assert!(diff.contains("+- name: '11'"), "{diff}");
    }

    #[test]
    fn a_missing_file_is_stale() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("amd.com-gpu.yaml");
        let outcome = compare_file(&path, &spec(&["0"])).expect("compares");
        assert!(
            matches!(outcome, Currentness::Stale { ref reason, .. } if reason.ends_with("does not exist"))
        );
    }

    #[test]
    fn a_file_that_is_not_a_spec_is_an_error_naming_file_and_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("amd.com-gpu.yaml");
        std::fs::write(&path, "cdiVersion: \"0.5.0\"\nkind: [\n").expect("write");
        let err = compare_file(&path, &spec(&["0"])).expect_err("an unparsable spec is an error");
        assert!(matches!(err, CheckError::Parse { .. }), "{err:?}");
        let line = err.to_string();
        assert!(
            line.starts_with(&format!("cannot parse {}: line 2 ", path.display())),
            "{line}"
        );
        assert!(
            line.ends_with(&format!("--output {}`)", path.display())),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A directory where the spec should be: reading it fails whoever runs the test.
        let err = compare_file(dir.path(), &spec(&["0"])).expect_err("a directory is unreadable");
        assert_eq!(
            err.to_string(),
            format!("cannot read {}", dir.path().display())
        );
        let source = std::error::Error::source(&err).expect("the I/O error is the source");
        assert_eq!(
            source.downcast_ref::<io::Error>().map(io::Error::kind),
            Some(io::ErrorKind::IsADirectory)
        );
    }
}
