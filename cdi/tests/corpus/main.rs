//! Integration tests of the `cdi` crate's public API against files: the spec corpus under
//! `tests/fixtures/corpus` with its `EXPECTED` manifest, exact output snapshots, and round trips.

mod roundtrip;
mod snapshots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cdi::codec::{self, LoadError};
use cdi::validate::{self, Problem};
use cdi::version::{self, Version};

/// The corpus directory.
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
}

/// One line of the `EXPECTED` manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Valid(Version),
    Invalid(String),
}

fn manifest() -> BTreeMap<String, Expected> {
    let text =
        std::fs::read_to_string(corpus_dir().join("EXPECTED")).expect("EXPECTED is readable");
    let mut entries = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [file, verdict, rest] = fields[..] else {
            panic!(
                "EXPECTED line {}: want `<file> valid|invalid <word>`: {line}",
                number + 1
            );
        };
        let expected = match verdict {
            "valid" => Expected::Valid(rest.parse().expect("a version after `valid`")),
            "invalid" => Expected::Invalid(rest.to_owned()),
            other => panic!("EXPECTED line {}: unknown verdict {other}", number + 1),
        };
        assert!(
            entries.insert(file.to_owned(), expected).is_none(),
            "EXPECTED lists {file} twice"
        );
    }
    entries
}

/// Our verdict on one file: the parse error, or the validation problems and minimum version.
enum Verdict {
    ParseError(LoadError),
    Checked {
        problems: Vec<Problem>,
        minimum: Version,
    },
}

fn judge(path: &Path) -> Verdict {
    match codec::load(path) {
        Err(error) => Verdict::ParseError(error),
        Ok(spec) => Verdict::Checked {
            problems: validate::validate(&spec),
            minimum: version::minimum_required_version(&spec),
        },
    }
}

/// What each reason keyword means, as the stage that must fail and text its message must hold.
fn keyword_matches(keyword: &str, verdict: &Verdict) -> bool {
    let parse = |needle: &str| match verdict {
        Verdict::ParseError(error) => error.to_string().contains(needle),
        Verdict::Checked { .. } => false,
    };
    let problem = |field: &str, needle: &str| match verdict {
        Verdict::Checked { problems, .. } => problems
            .iter()
            .any(|p| p.field.contains(field) && p.message.contains(needle)),
        Verdict::ParseError(_) => false,
    };
    match keyword {
        "unknown-field" => parse("unknown field"),
        "duplicate-key" => parse("duplicate"),
        "wrong-type" => parse("invalid type") || parse("invalid value"),
        "yaml11-ambiguous" => parse("YAML 1.1 reader takes"),
        "syntax" => parse("unclosed") || parse("EOF while parsing"),
        "missing-field" => parse("missing field"),
        "empty-file" => parse("unexpected end of input"),
        "no-devices" => parse("missing field `devices`") || problem("devices", "at least one"),
        "empty-edits" => problem("containerEdits", "must not be empty"),
        "one-char-name" => problem("kind", "at least 2 characters"),
        "vendor" => problem("kind", "invalid vendor"),
        "class" => problem("kind", "invalid class"),
        "kind" => problem("kind", "vendor/class"),
        "device-name" => problem("name", "invalid device name"),
        "duplicate-device" => problem("name", "same name"),
        "env" => problem("env[", "NAME=VALUE"),
        "annotation-key" => problem("annotations[", "key"),
        "annotation-size" => problem("annotations", "limit"),
        "node-type" => problem(".type", "not one of"),
        "node-path" => problem("deviceNodes[", "required"),
        "permissions" => problem(".permissions", "may only contain"),
        "negative-number" => problem(".major", "negative") || problem(".minor", "negative"),
        "hook-name" => problem(".hookName", "not one of"),
        "hook-path" => problem("hooks[", "required"),
        "mount-path" => problem("mounts[", "required"),
        "intel-rdt" => problem("intelRdt.closID", "resctrl"),
        "net-device" => problem("netDevices[", ""),
        "version-unknown" => {
            problem("cdiVersion", "unknown version") || problem("cdiVersion", "leading v")
        }
        "version-too-old" => problem("cdiVersion", "older than 0.3.0"),
        "version-too-low" => problem("cdiVersion", "too old"),
        "many-problems" => {
            matches!(verdict, Verdict::Checked { problems, .. } if problems.len() >= 5)
        }
        other => panic!("EXPECTED uses reason keyword {other:?}, which this test does not know"),
    }
}

#[test]
fn every_corpus_file_is_listed_in_expected_and_every_entry_exists() {
    let listed = manifest();
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus dir is readable") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != "EXPECTED" && name != "GO-VERDICTS" {
            on_disk.push(name);
        }
    }
    on_disk.sort();
    let missing: Vec<_> = on_disk
        .iter()
        .filter(|f| !listed.contains_key(*f))
        .collect();
    assert!(missing.is_empty(), "files not in EXPECTED: {missing:?}");
    let stale: Vec<_> = listed.keys().filter(|f| !on_disk.contains(f)).collect();
    assert!(stale.is_empty(), "EXPECTED lists missing files: {stale:?}");
    assert!(
        on_disk.len() >= 45,
        "the corpus must hold at least 45 specs"
    );
    let valid = listed
        .values()
        .filter(|e| matches!(e, Expected::Valid(_)))
        .count();
    assert!(
        valid >= 20 && listed.len() - valid >= 20,
        "want both good and bad specs"
    );
}

#[test]
fn corpus_verdicts_and_minimum_versions_match_expected() {
    let mut failures = Vec::new();
    for (file, expected) in manifest() {
        let verdict = judge(&corpus_dir().join(&file));
        match (&expected, &verdict) {
            (Expected::Valid(want), Verdict::Checked { problems, minimum }) => {
                if !problems.is_empty() {
                    failures.push(format!("{file}: expected valid, got {problems:?}"));
                } else if minimum != want {
                    failures.push(format!(
                        "{file}: minimum version {minimum}, expected {want}"
                    ));
                }
            }
            (Expected::Valid(_), Verdict::ParseError(error)) => {
                failures.push(format!("{file}: expected valid, got {error}"));
            }
            (Expected::Invalid(keyword), _) => {
                if let Verdict::Checked { problems, .. } = &verdict
                    && problems.is_empty()
                {
                    failures.push(format!("{file}: expected invalid ({keyword}), got valid"));
                } else if !keyword_matches(keyword, &verdict) {
                    let got = match &verdict {
                        Verdict::ParseError(error) => error.to_string(),
                        Verdict::Checked { problems, .. } => format!("{problems:?}"),
                    };
                    failures.push(format!("{file}: not a {keyword} error: {got}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_edit_kind_and_version_is_covered_by_a_valid_spec() {
    let mut minimums = std::collections::BTreeSet::new();
    let mut kinds = std::collections::BTreeSet::new();
    for (file, expected) in manifest() {
        let Expected::Valid(minimum) = expected else {
            continue;
        };
        minimums.insert(minimum);
        let spec = codec::load(&corpus_dir().join(&file)).expect("valid spec loads");
        let edits = std::iter::once(&spec.container_edits)
            .chain(spec.devices.iter().map(|d| &d.container_edits));
        for e in edits {
            for (kind, present) in [
                ("env", !e.env.is_empty()),
                ("deviceNodes", !e.device_nodes.is_empty()),
                ("mounts", !e.mounts.is_empty()),
                ("hooks", !e.hooks.is_empty()),
                ("additionalGids", !e.additional_gids.is_empty()),
                ("intelRdt", e.intel_rdt.is_some()),
                ("netDevices", !e.net_devices.is_empty()),
            ] {
                if present {
                    kinds.insert(kind);
                }
            }
        }
    }
    assert_eq!(kinds.len(), 7, "edit kinds covered: {kinds:?}");
    let required: Vec<Version> = ["0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "1.1.0"]
        .iter()
        .map(|v| v.parse().expect("version"))
        .collect();
    for version in required {
        assert!(minimums.contains(&version), "no valid spec needs {version}");
    }
}

#[test]
fn invalid_specs_never_panic_and_errors_are_one_line() {
    for file in manifest().keys() {
        match judge(&corpus_dir().join(file)) {
            Verdict::ParseError(error) => {
                let text = error.to_string();
                assert!(!text.contains('\n'), "{file}: multi-line error: {text}");
                assert!(
                    text.contains(file.as_str()),
                    "{file}: error does not name the file"
                );
            }
            Verdict::Checked { problems, .. } => {
                for problem in problems {
                    assert!(!problem.to_string().contains('\n'), "{file}: {problem}");
                }
            }
        }
    }
}
