//! `amdgpu-cdi hook prestart` / `createRuntime` as a process: the fast exit when nothing is
//! requested, tolerance of newer arguments, and one clear line on bad input.

use std::fs;

use predicates::prelude::*;

use crate::support::amdgpu_cdi;

fn bundle_with(dir: &std::path::Path, env: &str) -> String {
    let config = format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"env":["PATH=/bin"{env}]}}}}"#
    );
    fs::write(dir.join("config.json"), config).expect("write config.json");
    format!(
        r#"{{"ociVersion":"1.0.2","id":"c","status":"created","pid":1,"bundle":"{}"}}"#,
        dir.display()
    )
}

#[test]
fn prestart_with_nothing_requested_exits_0_silently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = bundle_with(tmp.path(), "");
    let settings = tmp.path().join("config.toml");
    fs::write(&settings, "").expect("write config.toml");
    for stage in ["prestart", "createRuntime"] {
        amdgpu_cdi()
            .args(["hook", stage, "--config"])
            .arg(&settings)
            .write_stdin(state.clone())
            .assert()
            .success()
            .stdout("")
            .stderr("");
    }
}

#[test]
fn prestart_ignores_arguments_of_a_newer_version_with_a_warning() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = bundle_with(tmp.path(), "");
    amdgpu_cdi()
        .args(["hook", "prestart", "--from-the-future", "x"])
        .write_stdin(state)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: ignoring unknown arguments --from-the-future x",
        ));
}

#[test]
fn prestart_with_a_bad_state_fails_with_one_line() {
    amdgpu_cdi()
        .args(["hook", "prestart"])
        .write_stdin("not a state")
        .assert()
        .failure()
        .stdout("")
        .stderr(predicate::str::starts_with(
            "amdgpu-cdi: cannot parse the container state from stdin",
        ))
        .stderr(predicate::function(|s: &str| s.lines().count() == 1));
}

#[test]
fn prestart_with_a_missing_bundle_names_the_config_path() {
    amdgpu_cdi()
        .args(["hook", "prestart"])
        .write_stdin(r#"{"ociVersion":"1.0.2","id":"c","status":"created","pid":1,"bundle":"/nonexistent/b"}"#)
        .assert()
        .failure()
        .stderr(predicate::str::contains("/nonexistent/b/config.json"));
}
