//! `amdgpu-cdi hook prestart` / `createRuntime` as a process: the fast exit when nothing is
//! requested, tolerance of newer arguments, and one clear line on bad input.

use std::fs;
use std::path::{Path, PathBuf};

use predicates::prelude::*;

use crate::support::amdgpu_cdi;

/// Writes the bundle's `config.json` in `dir` with these `process.env` entries after `PATH`;
/// returns the container state naming the bundle.
fn bundle_with(dir: &Path, env: &str) -> String {
    let config = format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"env":["PATH=/bin"{env}]}}}}"#
    );
    fs::write(dir.join("config.json"), config).expect("write config.json");
    format!(
        r#"{{"ociVersion":"1.0.2","id":"c","status":"created","pid":1,"bundle":"{}"}}"#,
        dir.display()
    )
}

/// Writes the hook settings file `config.toml` in `dir`, logging to `log` if given; returns its
/// path.
fn write_settings(dir: &Path, log: Option<&Path>) -> PathBuf {
    let path = dir.join("config.toml");
    let text = log.map_or(String::new(), |log| {
        format!("log-file = \"{}\"\n", log.display())
    });
    fs::write(&path, text).expect("write config.toml");
    path
}

#[test]
fn prestart_with_nothing_requested_exits_0_silently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = bundle_with(tmp.path(), "");
    let settings = write_settings(tmp.path(), None);
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

/// Issue 12 item 4: a newline in `AMD_VISIBLE_DEVICES` forged a second line in the detail log.
/// Both hook stages that read the request must log exactly one line, with the newline escaped,
/// and print one stderr line.
#[test]
fn log_forging_newline_in_request_stays_one_detail_log_line() {
    const FORGED: &str = "2026-01-01T00:00:00Z info prestart[1]: FORGED";
    let tmp = tempfile::tempdir().expect("tempdir");
    let env = format!(r#","AMD_VISIBLE_DEVICES=1\n{FORGED}""#);
    let state = bundle_with(tmp.path(), &env);
    let config = fs::read_to_string(tmp.path().join("config.json")).expect("config.json");
    let log = tmp.path().join("detail.log");
    let settings = write_settings(tmp.path(), Some(&log));
    for (stage, stdin) in [("prestart", state), ("precreate", config)] {
        let _ = fs::remove_file(&log);
        let out = amdgpu_cdi()
            .args(["hook", stage, "--config"])
            .arg(&settings)
            .write_stdin(stdin)
            .output()
            .expect("run hook");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stage}: {stderr}");
        assert!(
            stderr.contains(&format!("AMD_VISIBLE_DEVICES=1\\n{FORGED}: invalid entry")),
            "{stage}: {stderr}"
        );
        let text = fs::read_to_string(&log).expect("detail log");
        assert_eq!(text.lines().count(), 1, "{stage}: {text}");
        assert!(
            !text
                .lines()
                .any(|line| line.starts_with("2026-01-01T00:00:00Z")),
            "{stage}: forged line in {text}"
        );
        assert!(
            text.contains(&format!(" error {stage}[")) && text.contains(&format!("=1\\n{FORGED}")),
            "{stage}: {text}"
        );
    }
}

/// Issue 12 item 5: `log-file` is opened only as a regular file, never through a symlink (which
/// let root append to any file), never a FIFO (which would block the hook), and never in a
/// directory others can write to without the sticky bit. The hook still does its work and exits
/// 0: a log it cannot write costs one stderr warning, not the container.
#[test]
fn log_file_symlink_fifo_and_unsafe_directory_are_refused_without_failing_the_hook() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = bundle_with(tmp.path(), "");
    let target = tmp.path().join("crontab");
    fs::write(&target, "# precious\n").expect("target");
    let link = tmp.path().join("link.log");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let fifo = tmp.path().join("fifo.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let open_dir = tmp.path().join("world-writable");
    fs::create_dir(&open_dir).expect("mkdir");
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    let in_open_dir = open_dir.join("detail.log");
    for (log, why) in [
        (
            &link,
            "it is a symbolic link (the log is never written through a link; name the real file)",
        ),
        (&fifo, "it is a FIFO, not a regular file"),
        (
            &in_open_dir,
            "its directory is writable by others without the sticky bit (mode 0777; use a \
             directory only root can write to)",
        ),
    ] {
        let settings = write_settings(tmp.path(), Some(log));
        amdgpu_cdi()
            .args(["hook", "prestart", "--config"])
            .arg(&settings)
            .write_stdin(state.clone())
            .timeout(std::time::Duration::from_secs(20))
            .assert()
            .success()
            .stdout("")
            .stderr(format!(
                "amdgpu-cdi hook prestart: warning: refusing to write the detail log {}: {why}\n",
                log.display()
            ));
    }
    assert_eq!(fs::read_to_string(&target).expect("target"), "# precious\n");
    assert!(
        !in_open_dir.exists(),
        "nothing created in the unsafe directory"
    );
}
