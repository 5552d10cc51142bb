//! `amdgpu-cdi list`: devices with their files, broken files as warnings.

use crate::validate::{DANGEROUS, MISSING_SPEC_DIR, render};

#[test]
fn text_lists_devices_with_files() {
    insta::assert_snapshot!(render(&["list", "--spec-dir", "tests/fixtures/specs/good"]));
}

#[test]
fn json_lists_devices_with_files() {
    insta::assert_snapshot!(render(&[
        "list",
        "--spec-dir",
        "tests/fixtures/specs/good",
        "--format",
        "json"
    ]));
}

#[test]
fn broken_files_are_warnings_and_good_devices_still_listed() {
    insta::assert_snapshot!(render(&[
        "list",
        "--spec-dir",
        "tests/fixtures/specs/broken"
    ]));
}

#[test]
fn later_dir_has_priority() {
    // test.com/dev=full is in both dirs: the later one provides it.
    insta::assert_snapshot!(render(&[
        "list",
        "--spec-dir",
        "tests/fixtures/specs/good",
        "--spec-dir",
        "tests/fixtures/specs/broken",
    ]));
}

#[test]
fn empty_dirs_say_so_on_stderr() {
    // A directory holding no spec files (only the fixture subdirectories).
    assert_eq!(
        render(&["list", "--spec-dir", "tests/fixtures/specs"]),
        "exit: 0\n--- stdout\n--- stderr\nno CDI devices in tests/fixtures/specs\n"
    );
}

/// Issue 14 item 8: a `--spec-dir` that does not exist (most often a typo) is an error naming
/// it, exit 2, instead of "no CDI devices" and exit 0.
#[test]
fn missing_named_spec_dir_is_an_error() {
    assert_eq!(
        render(&[
            "list",
            "--spec-dir",
            "tests/fixtures/specs/good",
            "--spec-dir",
            "tests/fixtures/specs/nonexistent",
        ]),
        MISSING_SPEC_DIR
    );
}

/// Issue 12 item 12: `list` names dangerous edits as warnings, and as errors with `--strict`
/// (exit 1); the devices are listed either way, as engines resolve them.
#[test]
fn dangerous_specs_are_warnings_or_strict_errors() {
    insta::assert_snapshot!("dangerous_list", render(&["list", "--spec-dir", DANGEROUS]));
    insta::assert_snapshot!(
        "dangerous_list_strict",
        render(&["list", "--strict", "--spec-dir", DANGEROUS])
    );
}
