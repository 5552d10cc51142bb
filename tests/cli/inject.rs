//! `amdgpu-cdi inject`: the exact config printed, and clean failures.

use crate::support::repo_root;
use crate::validate::{DANGEROUS, render_with_stdin};

const GOOD: &str = "tests/fixtures/specs/good";
const CONFIG: &str = "tests/fixtures/oci/config.json";

/// `inject` of `devices` with the specs in `spec_dir` into the OCI config fixture, rendered.
fn inject(spec_dir: &str, devices: &[&str]) -> String {
    inject_into(spec_dir, CONFIG, devices, None)
}

/// `inject` of `devices` with the specs in `spec_dir` into the OCI config `config` (`-`: read
/// from `stdin`), rendered.
fn inject_into(spec_dir: &str, config: &str, devices: &[&str], stdin: Option<Vec<u8>>) -> String {
    let mut args = vec!["inject", "--spec-dir", spec_dir, "--config", config];
    args.extend(devices);
    render_with_stdin(&args, stdin)
}

#[test]
fn injects_devices_keeping_order_and_unknown_fields() {
    insta::assert_snapshot!(inject(
        GOOD,
        &["example.com/device=0", "example.com/device=fixed"]
    ));
}

#[test]
fn non_root_user_config_from_stdin() {
    let stdin =
        std::fs::read(repo_root().join("tests/fixtures/oci/config-user.json")).expect("fixture");
    insta::assert_snapshot!(inject_into(
        GOOD,
        "-",
        &["example.com/device=null0", "test.com/dev=full"],
        Some(stdin),
    ));
}

#[test]
fn unknown_device_is_one_line_and_prints_nothing() {
    insta::assert_snapshot!(inject(
        GOOD,
        &["example.com/device=0", "example.com/device=7"]
    ));
}

#[test]
fn unknown_device_mentions_load_errors() {
    insta::assert_snapshot!(inject(
        "tests/fixtures/specs/broken",
        &["test.com/dev=twice"]
    ));
}

#[test]
fn config_that_is_not_json_fails() {
    insta::assert_snapshot!(inject_into(
        GOOD,
        "-",
        &["test.com/dev=full"],
        Some(b"[1, 2".to_vec()),
    ));
}

#[test]
fn host_node_problems_fail_cleanly() {
    let mismatch = "tests/fixtures/specs/mismatch";
    let block = inject(mismatch, &["test.com/bad=block"]);
    let missing = inject(mismatch, &["test.com/bad=missing"]);
    insta::assert_snapshot!(format!("{block}\n{missing}"));
}

/// Issue 12 item 12: `inject` names on stderr the dangerous edits it applied (the spec-wide ones
/// once, and those of the requested devices only); the printed config and exit status are what an
/// engine would produce.
#[test]
fn dangerous_edits_it_applies_are_named_on_stderr() {
    let out = inject(
        DANGEROUS,
        &["example.com/danger=paths", "example.com/danger=host"],
    );
    let stderr = out.split("--- stderr\n").nth(1).expect("stderr");
    insta::assert_snapshot!("dangerous_inject_stderr", stderr);
    assert!(out.starts_with("exit: 0\n"), "{out}");
}
