//! `amdgpu-cdi check`: is the spec on disk still what `generate` would write now?
//!
//! A spec goes stale when the driver is reloaded, a compute partition switch renumbers the render
//! nodes or a GPU comes or goes; engines then fail with an opaque "unresolvable CDI devices". The
//! comparison is semantic (both sides parsed into the CDI model), so formatting or key order on
//! disk never counts as a change; the diff shows both sides in the same canonical rendering.

use std::io;
use std::path::{Path, PathBuf};

use cdi::codec::{self, Format};
use cdi::spec::Spec;
use similar::TextDiff;

use crate::discover::{self, DiscoverError, DiscoverOptions};
use crate::generate::{self, GenerateError, GenerateOptions};

/// Why the comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The spec file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The spec file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Discovery failed, so there is nothing to compare with.
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    /// The host's spec cannot be generated with these options.
    #[error("cannot generate the spec to compare with: {0}")]
    Generate(#[from] GenerateError),
}

/// How the spec on disk compares with what `generate` would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The same spec.
    Current,
    /// Different (or missing, or unparsable): a unified diff from the file to the wanted spec.
    Stale {
        /// Why, one line: `differs`, `does not exist`, or the parse error.
        reason: String,
        /// Unified diff, old = on disk, new = generated now.
        diff: String,
    },
}

/// Compares `spec_path` with the spec generated now for the host found with `discover_options`.
pub fn check(
    spec_path: &Path,
    discover_options: &DiscoverOptions,
    generate_options: &GenerateOptions,
) -> Result<Outcome, CheckError> {
    let host = discover::discover(discover_options)?;
    let wanted = generate::generate(&host, generate_options)?;
    compare_file(spec_path, &wanted)
}

/// Compares the file at `spec_path` with `wanted`.
pub fn compare_file(spec_path: &Path, wanted: &Spec) -> Result<Outcome, CheckError> {
    let format = Format::from_path(spec_path);
    let shown = spec_path.display().to_string();
    let bytes = match std::fs::read(spec_path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(Outcome::Stale {
                reason: format!("{shown} does not exist"),
                diff: unified_diff("", &codec::to_string(wanted, format), "/dev/null"),
            });
        }
        Err(source) => {
            return Err(CheckError::Read {
                path: spec_path.to_path_buf(),
                source,
            });
        }
    };
    let wanted_text = codec::to_string(wanted, format);
    match codec::parse(&bytes, format) {
        Ok(on_disk) if on_disk == *wanted => Ok(Outcome::Current),
        Ok(on_disk) => Ok(Outcome::Stale {
            reason: format!("{shown} differs from the spec generated now"),
            diff: unified_diff(&codec::to_string(&on_disk, format), &wanted_text, &shown),
        }),
        Err(err) => Ok(Outcome::Stale {
            reason: format!("{shown} is not a valid CDI spec: {err}"),
            diff: unified_diff(&String::from_utf8_lossy(&bytes), &wanted_text, &shown),
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
            Outcome::Current
        );
    }

    #[test]
    fn a_changed_spec_gives_a_unified_diff() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("amd.com-gpu.yaml");
        std::fs::write(&path, codec::to_string(&spec(&["0"]), Format::Yaml)).expect("write");
        let Outcome::Stale { reason, diff } =
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
    fn a_missing_or_broken_file_is_stale_not_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("amd.com-gpu.yaml");
        let outcome = compare_file(&path, &spec(&["0"])).expect("compares");
        assert!(
            matches!(outcome, Outcome::Stale { ref reason, .. } if reason.ends_with("does not exist"))
        );
        std::fs::write(&path, "cdiVersion: [").expect("write");
        let outcome = compare_file(&path, &spec(&["0"])).expect("compares");
        assert!(
            matches!(outcome, Outcome::Stale { ref reason, .. } if reason.contains("is not a valid CDI spec"))
        );
    }
}
