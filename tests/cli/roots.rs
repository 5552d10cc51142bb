//! Issue 12, item 10: relative roots on the command line. `generate --dev-root ../x` wrote
//! relative hostPaths that engines resolve from their own directory, and the hooks took relative
//! roots that their configuration file refuses. A root whose value leaves the command is refused
//! with one line when relative (see `amdgpu_cdi::cli::RelativeRoot`); paths only the command
//! itself uses stay relative to the current directory.

use crate::files::names;
use crate::support::{amdgpu_cdi, assert_contains, on_sysfs, repo_root, run_ok};

const DEV_ROOT: &str = "specs name the device nodes under it, and engines resolve a relative \
                        path from their own directory";
const HOOK: &str = "the engine runs the hook from its own directory, not from yours";

#[test]
fn relative_roots_are_refused_on_every_command_line() {
    let sysfs = repo_root().join("tests/fixtures/hosts/three-gpus/sys");
    let sysfs = sysfs.to_str().expect("utf-8 path");
    let cases: &[(&[&str], String)] = &[
        (
            &["generate", "--sysfs-root", sysfs, "--dev-root", "../x"],
            format!("--dev-root ../x is not absolute ({DEV_ROOT})"),
        ),
        (
            &["check", "--sysfs-root", sysfs, "--dev-root", "host"],
            format!("--dev-root host is not absolute ({DEV_ROOT})"),
        ),
        (
            &["gpus", "--sysfs-root", sysfs, "--dev-root", "./"],
            format!("--dev-root ./ is not absolute ({DEV_ROOT})"),
        ),
        (
            &["doctor", "--root", "/nonexistent", "--dev-root", "dev"],
            format!("--dev-root dev is not absolute ({DEV_ROOT})"),
        ),
        (
            &["hook", "precreate", "--dev-root", "../x"],
            format!("--dev-root ../x is not absolute ({HOOK})"),
        ),
        (
            &["hook", "prestart", "--sysfs-root", "sys"],
            format!("--sysfs-root sys is not absolute ({HOOK})"),
        ),
        // After an argument this version does not know, hooks parse the roots themselves.
        (
            &["hook", "createRuntime", "--newer-option", "--dev-root=d"],
            format!("--dev-root d is not absolute ({HOOK})"),
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hook.toml");
    std::fs::write(&config, "").expect("empty hook settings");
    for (args, message) in cases {
        let mut cmd = amdgpu_cdi();
        cmd.current_dir(dir.path())
            .env("AMDGPU_CDI_CONFIG", &config)
            .args(*args)
            .write_stdin("{}");
        let out = cmd.output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr
            .lines()
            .filter(|line| !line.contains("warning: ignoring unknown arguments"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            (out.status.code(), stderr.as_str()),
            (Some(2), format!("amdgpu-cdi: {message}").as_str()),
            "{args:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    assert_eq!(names(dir.path()), ["hook.toml"], "nothing written");
}

/// Paths the command only uses itself stay relative to the current directory: `--output`, the
/// `--sysfs-root` of `generate`, and an absolute `--dev-root`.
#[test]
fn relative_paths_the_command_only_uses_itself_are_fine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = repo_root().join("examples/hosts");
    run_ok(
        on_sysfs("generate", "workstation/sys")
            .current_dir(&hosts)
            .args(["--dev-root", "/run/host", "--output"])
            .arg(dir.path().join("amd.com-gpu.yaml")),
    );
    let spec = std::fs::read_to_string(dir.path().join("amd.com-gpu.yaml")).expect("spec");
    assert_contains(&spec, "hostPath: '/run/host/dev/kfd'");
    run_ok(
        on_sysfs("generate", hosts.join("workstation/sys"))
            .current_dir(dir.path())
            .args(["--output", "relative.yaml"]),
    );
    assert!(dir.path().join("relative.yaml").is_file());
}
