//! The .deb on a real Debian machine: build it from the test's debug binaries, install it with
//! dpkg, use what it installed (`--version`, `doctor` on a GPU-less host, `man`, the systemd unit
//! and udev rule through `systemd-analyze verify` and udevadm), upgrade it, then purge it and check
//! that exactly its own files are gone and other vendors' specs survived.
//!
//! One test, because it changes the machine's package database: steps must run in order.
//! The hooks.d files are checked in the archive but not installed (`--path-exclude`): installed,
//! they would apply to every podman container that other tests start in parallel.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support;

const PACKAGE: &str = "amdgpu-cdi";
const UNIT: &str = "/usr/lib/systemd/system/amdgpu-cdi-refresh.service";
const RULES: &str = "/usr/lib/udev/rules.d/60-amdgpu-cdi.rules";
const OUR_SPEC: &str = "/var/run/cdi/amd.com-gpu.yaml";
const HOOKS_DIR: &str = "/usr/share/containers/oci/hooks.d";
const ENABLED_LINK: &str = "/etc/systemd/system/multi-user.target.wants/amdgpu-cdi-refresh.service";

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let output = run(cmd);
    assert!(
        output.status.success(),
        "{shown} failed with {}:\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Purges the package and removes the planted files even when an assertion fails midway.
struct PurgeOnDrop {
    planted: Vec<PathBuf>,
    /// Spec dirs the test created to plant in, removed again (when empty) so that the host keeps
    /// no trace of the test.
    made_dirs: Vec<PathBuf>,
}

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PACKAGE]).output();
        for path in &self.planted {
            let _ = fs::remove_file(path);
        }
        for dir in &self.made_dirs {
            let _ = fs::remove_dir(dir);
        }
    }
}

fn dpkg_install(deb: &Path) -> Command {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--path-exclude={HOOKS_DIR}/*"))
        .arg("-i")
        .arg(deb);
    cmd
}

fn build_deb(out: &Path, version: &str) -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The debug binaries cargo built for this test run are the package's binaries.
    let bin_dir = support::bin("amdgpu-cdi")
        .parent()
        .expect("binary has a directory")
        .to_path_buf();
    assert_eq!(
        bin_dir,
        repo.join("target/debug"),
        "the packaging test needs the default target dir"
    );
    run_ok(
        Command::new(repo.join("scripts/build-packages"))
            .args([
                "--profile",
                "dev",
                "--no-build",
                "--deb-only",
                "--deb-version",
                version,
            ])
            .arg("--out")
            .arg(out)
            .current_dir(&repo),
    );
    let deb = out.join(format!("{PACKAGE}_{version}_amd64.deb"));
    assert!(deb.is_file(), "{} was not built", deb.display());
    deb
}

/// `udevadm verify` (systemd 253+) when it exists; otherwise `udevadm test`, which loads every
/// rules file and prints `<file>:<line> <error>` for each problem.
fn check_udev_rules() {
    let has_verify = Command::new("udevadm")
        .args(["verify", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_verify {
        run_ok(Command::new("udevadm").args(["verify", RULES]));
        return;
    }
    let output = run(Command::new("udevadm").args([
        "test",
        "--action=add",
        "/sys/devices/virtual/mem/null",
    ]));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        log.contains(&format!("Reading rules file: {RULES}")),
        "udevadm did not load {RULES}:\n{log}"
    );
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with(&format!("{RULES}:")))
        .collect();
    assert!(
        problems.is_empty(),
        "udev rule problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn deb_installs_works_upgrades_and_purges_cleanly() {
    if !support::prerequisites(
        "deb_installs_works_upgrades_and_purges_cleanly",
        &[
            "dpkg",
            "dpkg-deb",
            "dpkg-query",
            "man",
            "systemd-analyze",
            "udevadm",
        ],
    ) {
        return;
    }
    if installed() && !support::in_ci() {
        eprintln!(
            "SKIPPED packaging test: {PACKAGE} is installed on this machine; not touching it"
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let deb = build_deb(tmp.path(), "0.1.0-1");

    // Other vendors' specs that must survive everything we do.
    let id = std::process::id();
    let other_etc = PathBuf::from(format!("/etc/cdi/other-vendor-{id}.yaml"));
    let other_run = PathBuf::from(format!("/var/run/cdi/other-{id}.yaml"));
    let mut made_dirs = Vec::new();
    for path in [&other_etc, &other_run] {
        let dir = path.parent().expect("has parent");
        if !dir.exists() {
            fs::create_dir_all(dir).expect("create spec dir");
            made_dirs.push(dir.to_path_buf());
        }
        fs::write(path, "planted by the packaging test\n").expect("plant spec");
    }
    let _cleanup = PurgeOnDrop {
        planted: vec![other_etc.clone(), other_run.clone()],
        made_dirs,
    };

    let archive = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    assert!(
        archive.contains(&format!(".{HOOKS_DIR}/amdgpu-cdi-precreate.json")),
        "{archive}"
    );

    // Install on a machine without AMD GPU or driver: must succeed.
    run_ok(&mut dpkg_install(&deb));
    assert!(installed());
    let files: Vec<PathBuf> = run_ok(Command::new("dpkg-query").args(["-L", PACKAGE]))
        .lines()
        .map(PathBuf::from)
        .filter(|p| !p.is_dir())
        .collect();
    for wanted in [
        "/usr/bin/amdgpu-cdi",
        "/usr/bin/amdgpu-container-runtime",
        "/usr/bin/amdgpu-cdi-device-plugin",
        UNIT,
        RULES,
        "/usr/share/man/man1/amdgpu-cdi.1.gz",
        "/usr/share/bash-completion/completions/amdgpu-cdi",
    ] {
        assert!(
            files.iter().any(|f| f == Path::new(wanted)),
            "{wanted} is not in the package: {files:?}"
        );
    }
    assert!(
        fs::symlink_metadata(ENABLED_LINK).is_ok(),
        "postinst did not enable the refresh unit"
    );

    let version = run_ok(Command::new("/usr/bin/amdgpu-cdi").arg("--version"));
    assert_eq!(
        version.trim(),
        format!("amdgpu-cdi {}", env!("CARGO_PKG_VERSION"))
    );

    let version = run_ok(Command::new("/usr/bin/amdgpu-cdi-device-plugin").arg("--version"));
    assert_eq!(
        version.trim(),
        format!("amdgpu-cdi-device-plugin {}", env!("CARGO_PKG_VERSION"))
    );

    // doctor runs and reports on this GPU-less host: exit 1 (failures found), never a crash.
    let doctor = run(Command::new("/usr/bin/amdgpu-cdi").arg("doctor"));
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "doctor:\n{report}");
    // Without an AMD GPU on the PCI bus that is the root cause, and the missing driver one of
    // its consequences; with one, the missing driver is the first failure.
    assert!(
        report.contains("amdgpu kernel driver is not loaded"),
        "{report}"
    );
    assert!(
        report
            .lines()
            .last()
            .is_some_and(|l| l.ends_with(" failure") || l.ends_with(" failures")),
        "{report}"
    );

    let page = run_ok(Command::new("man").args(["-P", "cat", "amdgpu-cdi"]));
    assert!(page.contains("amdgpu-cdi"), "{page}");

    // The installed unit, with its binary and man page in place, must verify cleanly.
    let verify = run(Command::new("systemd-analyze").args(["verify", UNIT]));
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify {UNIT}:\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    check_udev_rules();

    // Upgrade: the generated spec and the enabled unit survive.
    fs::write(OUR_SPEC, "kept across upgrades\n").expect("write our spec");
    let newer = build_deb(tmp.path(), "0.1.1-1");
    run_ok(&mut dpkg_install(&newer));
    assert_eq!(
        fs::read_to_string(OUR_SPEC).expect("spec survives the upgrade"),
        "kept across upgrades\n"
    );
    assert!(
        fs::symlink_metadata(ENABLED_LINK).is_ok(),
        "upgrade disabled the unit"
    );

    // Purge: our files and our spec are gone, everything else stays.
    run_ok(Command::new("dpkg").args(["--purge", PACKAGE]));
    assert!(!installed());
    let left: Vec<&PathBuf> = files.iter().filter(|f| f.exists()).collect();
    assert!(left.is_empty(), "left behind after purge: {left:?}");
    assert!(!Path::new(OUR_SPEC).exists(), "purge left {OUR_SPEC}");
    assert!(
        fs::symlink_metadata(ENABLED_LINK).is_err(),
        "purge left {ENABLED_LINK}"
    );
    for path in [&other_etc, &other_run] {
        assert_eq!(
            fs::read_to_string(path).expect("other vendor's spec survives"),
            "planted by the packaging test\n"
        );
    }
}
