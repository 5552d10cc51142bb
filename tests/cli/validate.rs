//! `amdgpu-cdi validate`: exact output and exit codes on good and broken spec fixtures.

use crate::support::{amdgpu_cdi, repo_root};

/// Runs `amdgpu-cdi ARGS` in the repository root and renders exit code, stdout and stderr.
pub(crate) fn render(args: &[&str]) -> String {
    render_with_stdin(args, None)
}

/// Like [`render`], feeding `stdin`.
pub(crate) fn render_with_stdin(args: &[&str], stdin: Option<Vec<u8>>) -> String {
    let mut cmd = amdgpu_cdi();
    cmd.current_dir(repo_root()).args(args);
    if let Some(stdin) = stdin {
        cmd.write_stdin(stdin);
    }
    let out = cmd.output().expect("run amdgpu-cdi");
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status
            .code()
            .map_or("signal".to_string(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn good_dir_is_ok() {
    insta::assert_snapshot!(render(&[
        "validate",
        "--spec-dir",
        "tests/fixtures/specs/good"
    ]));
}

#[test]
fn broken_dir_lists_every_problem_and_the_conflict() {
    insta::assert_snapshot!(render(&[
        "validate",
        "--spec-dir",
        "tests/fixtures/specs/broken"
    ]));
}

#[test]
fn files_are_checked_one_by_one() {
    insta::assert_snapshot!(render(&[
        "validate",
        "tests/fixtures/specs/good/test.com-dev.json",
        "tests/fixtures/specs/good/example.com-device.yaml",
    ]));
}

#[test]
fn bad_file_fails_and_odd_extension_warns() {
    insta::assert_snapshot!(render(&[
        "validate",
        "tests/fixtures/specs/broken/invalid.yaml",
        "tests/fixtures/specs/broken/ignored.yml",
        "tests/fixtures/specs/broken/missing.json",
    ]));
}

#[test]
fn missing_explicit_dir_warns_but_is_not_a_problem() {
    insta::assert_snapshot!(render(&[
        "validate",
        "--spec-dir",
        "tests/fixtures/specs/nonexistent",
        "--spec-dir",
        "tests/fixtures/specs/good",
    ]));
}
