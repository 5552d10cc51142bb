//! `amdgpu-cdi validate`: exact output and exit codes on good and broken spec fixtures.

use crate::support::{amdgpu_cdi, repo_root};

/// The spec fixtures with dangerous edits (issue 12 item 12).
pub(crate) const DANGEROUS: &str = "tests/fixtures/specs/dangerous";

/// What [`render`] shows for a run given the spec dir `tests/fixtures/specs/nonexistent`: an error
/// naming it, exit 2 (issue 14 item 8).
pub(crate) const MISSING_SPEC_DIR: &str = "exit: 2\n--- stdout\n--- stderr\n\
     amdgpu-cdi: spec directory tests/fixtures/specs/nonexistent does not exist\n";

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

/// Issue 14 item 8: a `--spec-dir` that does not exist (most often a typo) is an error naming
/// it, exit 2, instead of a warning followed by "ok: 0 spec files valid".
#[test]
fn missing_named_spec_dir_is_an_error() {
    assert_eq!(
        render(&[
            "validate",
            "--spec-dir",
            "tests/fixtures/specs/nonexistent",
            "--spec-dir",
            "tests/fixtures/specs/good",
        ]),
        MISSING_SPEC_DIR
    );
}

/// Issue 12 item 11: a spec-dir entry linking to a secret file (`/etc/shadow`) made `validate`
/// and `list` print its first line. Parse errors now name positions and fields only, and a FIFO
/// in a spec dir is refused instead of blocking the reader.
#[test]
fn file_contents_in_errors_spec_dir_link_to_a_secret_shows_none_of_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let secret = tmp.path().join("shadow");
    std::fs::write(
        &secret,
        "root:$y$j9T$SECRETHASH:19000:0:99999:7:::\nbin:*:1:0:::\n",
    )
    .expect("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let dir = tmp.path().join("cdi");
    std::fs::create_dir(&dir).expect("spec dir");
    std::os::unix::fs::symlink(&secret, dir.join("shadow.yaml")).expect("symlink");
    nix::unistd::mkfifo(
        &dir.join("stuck.json"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    let dir_arg = dir.to_str().expect("utf-8");
    let shown = |args: &[&str]| render(args).replace(&tmp.path().display().to_string(), "TMP");
    let validate = shown(&["validate", "--spec-dir", dir_arg]);
    let list = shown(&["list", "--spec-dir", dir_arg]);
    assert_eq!(
        validate,
        "exit: 1\n--- stdout\n\
         TMP/cdi/shadow.yaml: line 1 column 1: <key>: unknown field, expected one of cdiVersion, \
         kind, annotations, devices, containerEdits\n\
         TMP/cdi/stuck.json: not read: it is a FIFO, not a regular file\n\
         --- stderr\n2 problems in 2 files (of 2 checked)\n"
    );
    assert_eq!(
        list,
        "exit: 0\n--- stdout\n--- stderr\n\
         warning: TMP/cdi/shadow.yaml: line 1 column 1: <key>: unknown field, expected one of \
         cdiVersion, kind, annotations, devices, containerEdits\n\
         warning: TMP/cdi/stuck.json: not read: it is a FIFO, not a regular file\n\
         no CDI devices in TMP/cdi\n"
    );
}

/// Issue 12 item 12: a spec injecting the host's disk, bind-mounting `/` and the Docker socket,
/// running a relative hook, using `..` and setting LD_PRELOAD validated `ok` without a word.
/// It stays valid, with one warning line per dangerous edit; `--strict` makes them problems.
#[test]
fn dangerous_specs_pass_silently_no_more() {
    insta::assert_snapshot!(
        "dangerous_warns",
        render(&["validate", "--spec-dir", DANGEROUS])
    );
    insta::assert_snapshot!(
        "dangerous_strict",
        render(&[
            "validate",
            "--strict",
            "tests/fixtures/specs/dangerous/example.com-danger.yaml"
        ])
    );
}
