//! `amdgpu-cdi doctor` against fixture roots (tests/fixtures/doctor/<case>) and the example hosts'
//! sysfs trees: one case per failure it detects, each report snapshotted as users see it.
//!
//! Specs that `generate` writes are generated at test time into a copy of the fixture, so the
//! snapshots do not depend on generate's exact output.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{self, assert_contains, assert_lacks, copy_tree, host_sysfs};

/// A copy of a doctor fixture in a temp dir: the root doctor inspects.
struct DoctorRoot {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

/// The workstation's spec where `generate` writes it by default, for [`case`].
const WORKSTATION_SPEC: &[(&str, &str)] = &[("workstation", "var/run/cdi/amd.com-gpu.yaml")];

/// Copies fixture `name` into a temp dir and generates `(example host, spec path)` specs in it.
fn case(name: &str, generated: &[(&str, &str)]) -> DoctorRoot {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("root");
    copy_tree(
        &support::repo_root()
            .join("tests/fixtures/doctor")
            .join(name),
        &root,
    );
    for (host, spec) in generated {
        support::on_sysfs("generate", host_sysfs(host))
            .arg("--output")
            .arg(root.join(spec))
            .assert()
            .success();
    }
    DoctorRoot { _tmp: tmp, root }
}

impl DoctorRoot {
    /// Runs doctor on this root with the sysfs tree of example host `host` (see [`doctor_on`]).
    fn doctor(&self, host: &str, extra: &[&str]) -> (i32, String) {
        doctor_on(&self.root, &host_sysfs(host), extra)
    }

    /// Writes `text` to `path` under the root, creating its directory.
    fn put(&self, path: &str, text: &str) {
        let path = self.root.join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
    }

    /// An executable `usr/bin/<name>` under the root that prints `version` for `--version`.
    fn fake_binary(&self, name: &str, version: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = format!("usr/bin/{name}");
        self.put(&path, &format!("#!/bin/sh\necho \"{version}\"\n"));
        fs::set_permissions(self.root.join(path), fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
}

/// Doctor's report on fixture `name` (with the `generated` specs) and example host `host`, which
/// must fail (exit 1).
fn failing_report(name: &str, generated: &[(&str, &str)], host: &str, extra: &[&str]) -> String {
    let (code, report) = case(name, generated).doctor(host, extra);
    assert_eq!(code, 1);
    report
}

/// Runs doctor on fixture `root` with the sysfs tree `sysfs` (as user alice unless `--user` is
/// in `extra`); returns the exit code and the report with the fixture root shown as `<root>` and
/// the checkout as `<repo>` (suggested commands name real paths).
fn doctor_on(root: &Path, sysfs: &Path, extra: &[&str]) -> (i32, String) {
    let output = support::on_sysfs("doctor", sysfs)
        .arg("--root")
        .arg(root)
        .arg("--path")
        .arg(root.join("usr/bin"))
        .args(if extra.contains(&"--user") {
            &[][..]
        } else {
            &["--user", "alice"][..]
        })
        .args(extra)
        .assert()
        .stderr("")
        .get_output()
        .clone();
    let report = String::from_utf8_lossy(&output.stdout)
        .replace(&root.display().to_string(), "<root>")
        .replace(&support::repo_root().display().to_string(), "<repo>");
    (output.status.code().expect("exit code"), report)
}

/// The section of a text report titled `title`, without the blank line after it.
fn section(report: &str, title: &str) -> String {
    report
        .split("\n\n")
        .find(|s| s.starts_with(&format!("{title}\n")))
        .unwrap_or_else(|| panic!("no {title} section in {report}"))
        .to_owned()
}

/// The fixtures whose whole report is the point: doctor fails on each (exit 1) and the report is
/// snapshotted as users see it. A row: what it shows, the snapshot, the fixture, the specs
/// generated into it, the example host and doctor's extra arguments.
#[test]
fn each_failing_fixture_reports_as_snapshotted() {
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a [&'a str],
    );
    let rows: &[Row<'_>] = &[
        (
            "a host without GPUs or engines reports and fails",
            "no_gpu",
            "no-gpu",
            &[],
            "no-amd",
            &[],
        ),
        (
            "device nodes that are missing or not devices fail",
            "bad_nodes",
            "bad-nodes",
            &[],
            "workstation",
            &[],
        ),
        (
            "two specs defining the same devices in one dir fail",
            "spec_conflict",
            "spec-conflict",
            &[("workstation", "etc/cdi/amd.com-gpu.yaml")],
            "workstation",
            &[],
        ),
        (
            "engines without CDI and missing wrapper and hook binaries fail",
            "engines_old",
            "engines-old",
            WORKSTATION_SPEC,
            "workstation",
            &[],
        ),
        (
            "engine CDI switches, versions and spec dirs are checked",
            "engines_cdi",
            "engines-cdi",
            &[],
            "workstation",
            &[],
        ),
        (
            "broken configs and odd engine binaries are reported, not fatal",
            "broken_configs",
            "broken-configs",
            WORKSTATION_SPEC,
            "workstation",
            &["--version-timeout", "2000"],
        ),
    ];
    for (what, snapshot, fixture, generated, host, extra) in rows {
        eprintln!("{snapshot}: {what}");
        let report = failing_report(fixture, generated, host, extra);
        insta::assert_snapshot!(*snapshot, report);
    }
}

/// Issue 14 item 5: on a host with AMD GPUs but no amdgpu driver, the driver is the root cause;
/// no KFD, no /dev/kfd and no spec follow from it and are folded under it, uncounted and without
/// fixes that cannot work yet.
#[test]
fn a_missing_driver_is_the_root_cause_of_what_follows() {
    let case = case("no-gpu", &[]);
    let no_driver = support::repo_root().join("tests/fixtures/hosts/no-driver/sys");
    let (code, report) = doctor_on(&case.root, &no_driver, &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        section(&report, "driver"),
        "driver\n  \
         [ok  ] 1 AMD GPU(s) on the PCI bus: 0000:03:00.0\n  \
         [FAIL] amdgpu kernel driver is not loaded (/sys/module/amdgpu is missing)\n         \
         fix: install the amdgpu driver (distribution kernel or amdgpu-dkms) and run `modprobe \
         amdgpu`\n         \
         because of this (not counted separately):\n           \
         [FAIL] KFD compute interface is missing (/sys/class/kfd/kfd does not exist)\n           \
         [info] render nodes not checked: KFD topology is unavailable\n           \
         [FAIL] /dev/kfd does not exist\n           \
         [FAIL] no spec defines amd.com/gpu devices in /etc/cdi, /var/run/cdi"
    );
    assert_lacks(&report, "device nodes\n");
    assert_lacks(&report, "cdi specs\n");
    assert!(
        report.ends_with("\n1 ok, 0 warnings, 1 failure\n"),
        "{report}"
    );
}

/// Issue 14 item 5: the fix for a missing spec runs `generate` on the roots doctor was given
/// (it dropped `--sysfs-root` and `--dev-root`), and suggests the refresh service only where
/// its unit is installed (a source build has none).
#[test]
fn the_missing_spec_fix_carries_the_roots_and_needs_the_unit() {
    let case = case("no-gpu", &[]);
    let fix = |report: &str| {
        let specs = section(report, "cdi specs");
        specs
            .lines()
            .find_map(|line| line.trim_start().strip_prefix("fix: "))
            .unwrap_or_else(|| panic!("no fix in {specs}"))
            .to_owned()
    };
    let (_, report) = case.doctor("workstation", &["--dev-root", "/opt/fake-dev"]);
    assert_eq!(
        fix(&report),
        "`amdgpu-cdi generate --sysfs-root <repo>/examples/hosts/workstation/sys --dev-root \
         /opt/fake-dev --output <root>/var/run/cdi/amd.com-gpu.yaml`; to keep it current across \
         reboots and GPU changes, install the package or \
         packaging/systemd/amdgpu-cdi-refresh.service (docs/packaging.md)"
    );
    // The host's own sysfs and the unit installed: the service is the fix.
    copy_tree(&host_sysfs("workstation"), &case.root.join("sys"));
    let units = case.root.join("usr/lib/systemd/system");
    fs::create_dir_all(&units).expect("unit dir");
    fs::copy(
        support::repo_root().join("packaging/systemd/amdgpu-cdi-refresh.service"),
        units.join("amdgpu-cdi-refresh.service"),
    )
    .expect("install the unit");
    let (_, report) = doctor_on(&case.root, &case.root.join("sys"), &[]);
    assert_eq!(
        fix(&report),
        "`systemctl enable --now amdgpu-cdi-refresh.service` or once: `amdgpu-cdi generate \
         --sysfs-root <root>/sys --output <root>/var/run/cdi/amd.com-gpu.yaml`"
    );
}

#[test]
fn a_spec_shadowed_by_a_higher_priority_dir_warns() {
    let case = case("spec-shadowed", WORKSTATION_SPEC);
    let (_, report) = case.doctor("workstation", &[]);
    assert_contains(
        &report,
        "[warn] amd.com/gpu=0, amd.com/gpu=1, amd.com/gpu=all defined in /etc/cdi/amd.json and /var/run/cdi/amd.com-gpu.yaml: only /var/run/cdi/amd.com-gpu.yaml is used",
    );
    assert_contains(
        &report,
        "[ok  ] /var/run/cdi/amd.com-gpu.yaml matches the GPUs present now",
    );
    insta::assert_snapshot!("spec_shadowed", report);
}

#[test]
fn invalid_and_stale_specs_fail_and_other_vendors_are_ignored() {
    // The spec on disk was generated on the 4x MI210 host; the hardware now is the workstation.
    let report = failing_report(
        "spec-invalid-stale",
        &[("mi210x4", "var/run/cdi/amd.com-gpu.yaml")],
        "workstation",
        &[],
    );
    assert_lacks(&report, "other-vendor");
    insta::assert_snapshot!("spec_invalid_stale", report);
}

#[test]
fn json_report_has_the_same_findings() {
    let json = failing_report("engines-old", &[], "workstation", &["--format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("doctor --format json");
    let sections = value["sections"].as_array().expect("sections");
    let titles: Vec<&str> = sections
        .iter()
        .map(|s| s["title"].as_str().expect("title"))
        .collect();
    assert_eq!(
        titles,
        [
            "driver",
            "device nodes",
            "cdi specs",
            "docker",
            "containerd",
            "podman",
            "crio",
            "hooks and runtime wrapper"
        ]
    );
    for finding in sections
        .iter()
        .flat_map(|s| s["findings"].as_array().expect("findings"))
    {
        let status = finding["status"].as_str().expect("status");
        assert!(
            ["ok", "info", "warn", "fail"].contains(&status),
            "{finding}"
        );
        if status == "warn" || status == "fail" {
            assert!(finding["remedy"].is_string(), "no remedy: {finding}");
        }
    }
}

#[test]
fn every_warning_and_failure_in_the_text_report_has_a_fix() {
    for name in [
        "no-gpu",
        "bad-nodes",
        "spec-invalid-stale",
        "engines-old",
        "engines-cdi",
    ] {
        let case = case(name, &[]);
        let (_, report) = case.doctor("workstation", &[]);
        let lines: Vec<&str> = report.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("  [FAIL]") || line.starts_with("  [warn]") {
                assert!(
                    lines
                        .get(i + 1)
                        .is_some_and(|next| next.starts_with("         fix: ")),
                    "{name}: no fix after {line:?}"
                );
            }
        }
    }
}

/// Real character devices need root: mknod and chown. Under CI the test must run.
fn can_make_devices(test: &str) -> bool {
    crate::skip::as_root(test, "to create device nodes")
}

fn make_nodes(root: &Path, render_gid: u32) {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(root.join("dev/dri")).expect("dev/dri");
    for (path, minor) in [
        ("dev/kfd", 5),
        ("dev/dri/renderD128", 3),
        ("dev/dri/renderD129", 3),
    ] {
        let node = root.join(path);
        mknod(
            &node,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o660),
            makedev(1, minor),
        )
        .expect("mknod");
        std::os::unix::fs::chown(&node, Some(0), Some(render_gid)).expect("chown");
        fs::set_permissions(&node, fs::Permissions::from_mode(0o660)).expect("chmod");
    }
}

#[test]
fn a_healthy_host_passes_and_group_membership_is_checked() {
    if !can_make_devices("a_healthy_host_passes_and_group_membership_is_checked") {
        return;
    }
    let case = case("healthy", WORKSTATION_SPEC);
    make_nodes(&case.root, 993);
    let (code, report) = case.doctor("workstation", &[]);
    assert_eq!(code, 0, "{report}");
    insta::assert_snapshot!("healthy", report);

    // bob is not in the render group: a warning with the usermod fix, not a failure.
    let (code, report) = case.doctor("workstation", &["--user", "bob"]);
    assert_eq!(code, 0, "{report}");
    assert_contains(
        &report,
        "[warn] /dev/kfd (1:5, mode 0660, group render): bob is not in group render, so it cannot open it",
    );
    assert_contains(&report, "fix: `usermod -aG render bob` and log in again");

    // An unknown user is a failure of its own.
    let (code, report) = case.doctor("workstation", &["--user", "nobody-here"]);
    assert_eq!(code, 1, "{report}");
    assert_contains(&report, "[FAIL] user nobody-here is not in /etc/passwd");
}

/// Issue 14 item 2: a spec generated with extra names is current by the options recorded on its
/// first line; a stale one gets a fix that regenerates it with those options and names the file
/// holding them. A spec without the record is judged by the refresh service's options.
#[test]
fn currentness_uses_the_options_recorded_in_the_spec() {
    let case = case("no-gpu", &[]);
    let spec = case.root.join("var/run/cdi/amd.com-gpu.yaml");
    support::on_sysfs("generate", host_sysfs("workstation"))
        .args([
            "--device-name-strategy",
            "index",
            "--device-name-strategy",
            "pci",
        ])
        .arg("--output")
        .arg(&spec)
        .assert()
        .success();
    let current = "[ok  ] /var/run/cdi/amd.com-gpu.yaml matches the GPUs present now\n";
    let (_, report) = case.doctor("workstation", &[]);
    assert_contains(&report, current);
    // On other hardware it is stale, and the fix keeps the recorded names.
    let (_, report) = case.doctor("mi210x4", &[]);
    assert_contains(
        &report,
        "  [FAIL] /var/run/cdi/amd.com-gpu.yaml is stale: it differs from what `amdgpu-cdi generate` writes now\n\
             \x20        fix: `amdgpu-cdi generate --output /var/run/cdi/amd.com-gpu.yaml --device-name-strategy index --device-name-strategy pci` (the options recorded on line 1 of /var/run/cdi/amd.com-gpu.yaml); `amdgpu-cdi check --spec /var/run/cdi/amd.com-gpu.yaml` shows the difference\n",
    );
    // Without the record, the refresh service's options decide.
    let text = fs::read_to_string(&spec).expect("read spec");
    let (first, rest) = text.split_once('\n').expect("a first line");
    assert!(
        first.starts_with("# generated by: amdgpu-cdi generate "),
        "{first}"
    );
    fs::write(&spec, rest).expect("write spec without its record");
    let (_, report) = case.doctor("workstation", &[]);
    assert_contains(
        &report,
        "fix: `amdgpu-cdi generate --output /var/run/cdi/amd.com-gpu.yaml --device-name-strategy index --device-name-strategy uuid` (the options of AMDGPU_CDI_GENERATE_ARGS in /etc/default/amdgpu-cdi, if any; the spec records none)",
    );
    let defaults = "etc/default/amdgpu-cdi";
    case.put(
        defaults,
        "# options for amdgpu-cdi-refresh.service\nAMDGPU_CDI_GENERATE_ARGS=\"--device-name-strategy index --device-name-strategy pci\"\n",
    );
    let (_, report) = case.doctor("workstation", &[]);
    assert_contains(&report, current);
    // Options the service cannot use are a failure of their own.
    case.put(
        defaults,
        "AMDGPU_CDI_GENERATE_ARGS=--device-name-strategy bogus\n",
    );
    let (code, report) = case.doctor("workstation", &[]);
    assert_eq!(code, 1);
    assert_contains(
        &report,
        "[FAIL] AMDGPU_CDI_GENERATE_ARGS in /etc/default/amdgpu-cdi is not usable: invalid value 'bogus' for '--device-name-strategy <STRATEGY>'",
    );
}

/// Issue 12 item 12: doctor names each dangerous edit of an `amd.com/gpu` spec as a warning
/// (`specs.safe`), a failure with `--strict`. Host nodes without a type are looked up under the
/// inspected root (root only: it needs mknod).
#[test]
fn dangerous_gpu_specs_warn_and_fail_with_strict() {
    let case = case("no-gpu", &[]);
    case.put(
        "etc/cdi/amd-danger.yaml",
        "cdiVersion: \"0.5.0\"\nkind: amd.com/gpu\ndevices:\n- name: disk\n  containerEdits:\n    \
         deviceNodes: [{path: /dev/sda, type: b}, {path: /dev/vdz}]\n    env: [LD_PRELOAD=/x.so]\n",
    );
    let (_, report) = case.doctor("no-amd", &[]);
    assert_eq!(
        section(&report, "cdi specs"),
        "cdi specs\n  \
         [ok  ] /etc/cdi/amd-danger.yaml is valid: cdiVersion 0.5.0, devices disk\n  \
         [warn] /etc/cdi/amd-danger.yaml: device \"disk\": containerEdits.env[0]: sets LD_PRELOAD: \
         the dynamic loader loads the code it names into every process of the container\n         \
         fix: remove this edit unless every container given these GPUs may have that host access \
         (`amdgpu-cdi generate` never writes it)\n  \
         [warn] /etc/cdi/amd-danger.yaml: device \"disk\": containerEdits.deviceNodes[0]: injects \
         the host block device /dev/sda with access rwm: the container can read and write the \
         host disk behind it\n         \
         fix: remove this edit unless every container given these GPUs may have that host access \
         (`amdgpu-cdi generate` never writes it)"
    );
    let (code, report) = case.doctor("no-amd", &["--strict"]);
    assert_eq!(code, 1);
    let strict = section(&report, "cdi specs");
    assert_eq!(
        strict
            .matches("[FAIL] /etc/cdi/amd-danger.yaml: device")
            .count(),
        2,
        "{strict}"
    );
    assert_lacks(&strict, "[warn]");

    if nix::unistd::geteuid().is_root() {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        fs::create_dir_all(case.root.join("dev")).expect("dev");
        mknod(
            &case.root.join("dev/vdz"),
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o600),
            makedev(7, 250),
        )
        .expect("mknod block device");
        let (_, report) = case.doctor("no-amd", &[]);
        assert_contains(
            &report,
            "[warn] /etc/cdi/amd-danger.yaml: device \"disk\": containerEdits.deviceNodes[1]: \
                 injects the host block device /dev/vdz with access rwm",
        );
    }
}

/// Issue 13: containerd 2.x still reads a `version = 2` config.toml, where `configure containerd`
/// writes its keys in the version 2 plugin table; doctor must read that table too, not the one the
/// binary's major version would use for a file without `version` (the CDI switch and the one spec
/// dir configure set are what show it).
#[test]
fn doctor_finds_what_configure_wrote_in_a_version_2_file_on_containerd_2() {
    let case = case("containerd-2-version-2", WORKSTATION_SPEC);
    let config = case.root.join("etc/containerd/config.toml");
    support::amdgpu_cdi()
        .args(["configure", "containerd", "--config"])
        .arg(&config)
        .args(["--runtime-path", "/usr/bin/amdgpu-container-runtime"])
        .args(["--cdi-spec-dir", "/var/run/cdi"])
        .assert()
        .success();
    let written = fs::read_to_string(&config).expect("config.toml");
    assert!(
        written.starts_with("# Written for containerd 1.7") && written.contains("version = 2\n"),
        "{written}"
    );
    let (_, report) = case.doctor("workstation", &[]);
    assert_eq!(
        section(&report, "containerd"),
        "containerd\n  \
         [ok  ] containerd 2.1.9 (/usr/bin/containerd)\n  \
         [ok  ] CDI is enabled (enable_cdi in the CRI plugin section)\n  \
         [info] reads CDI specs from /var/run/cdi\n  \
         [info] containerd 2.1.9 is known to accept cdiVersion up to 1.0.0\n  \
         [ok  ] containerd 2.1.9 accepts cdiVersion 0.5.0 of /var/run/cdi/amd.com-gpu.yaml\n  \
         [ok  ] runtime `amd` is the wrapper /usr/bin/amdgpu-container-runtime"
    );
}

/// Issue 18: on a WSL2 host the WSL checks replace the driver and device node sections (here
/// `/dev/dxg` is missing, everything else is there), and the spec generate wrote for the host is
/// judged current.
#[test]
fn a_wsl2_host_gets_the_wsl_checks_and_its_spec_is_current() {
    let case = case("no-gpu", &[]);
    copy_tree(
        &support::repo_root().join("examples/hosts/wsl2"),
        &case.root,
    );
    support::on_sysfs("generate", case.root.join("sys"))
        .arg("--proc-root")
        .arg(case.root.join("proc"))
        .arg("--output")
        .arg(case.root.join("var/run/cdi/amd.com-gpu.yaml"))
        .assert()
        .success();
    let (code, report) = doctor_on(&case.root, &case.root.join("sys"), &[]);
    assert_eq!(code, 1, "{report}");
    assert_lacks(&report, "driver\n");
    assert_lacks(&report, "device nodes\n");
    assert_contains(
        &report,
        "[ok  ] /var/run/cdi/amd.com-gpu.yaml matches the GPUs present now",
    );
    insta::assert_snapshot!("wsl2", section(&report, "WSL2 (DirectX GPU)"));
}

/// Issue 17: SELinux enforcing with `container_use_devices` off denies confined containers their
/// nodes; doctor reads selinuxfs under `--root` and says nothing where there is none.
#[test]
fn selinux_enforcing_without_container_use_devices_fails_with_setsebool() {
    let case = case("no-gpu", &[]);
    let (_, report) = case.doctor("no-amd", &[]);
    assert_lacks(&report, "container access");
    case.put("sys/fs/selinux/enforce", "1");
    case.put("sys/fs/selinux/booleans/container_use_devices", "0 0");
    let (code, report) = case.doctor("no-amd", &[]);
    assert_eq!(code, 1);
    assert_eq!(
        section(&report, "container access"),
        "container access\n  \
         [FAIL] SELinux is enforcing and container_use_devices is off: confined containers \
         (podman, CRI-O, Docker with selinux-enabled) are denied /dev/kfd and the render nodes \
         they are given\n         \
         fix: `setsebool -P container_use_devices=1` (or, per container, `--security-opt \
         label=disable`)"
    );
    case.put("sys/fs/selinux/booleans/container_use_devices", "1 1");
    assert_eq!(
        access_section(&case),
        "container access\n  \
         [ok  ] SELinux is enforcing and container_use_devices is on: confined containers may \
         use the GPU nodes"
    );
    case.put("sys/fs/selinux/enforce", "0");
    assert_eq!(
        access_section(&case),
        "container access\n  \
         [info] SELinux is permissive: it logs containers' use of the GPU nodes but does not \
         deny it"
    );
}

/// `container_use_devices` off matters only to containers an engine labels: Docker without
/// `selinux-enabled` leaves them unconfined (a note), with it they are denied (a failure naming it).
#[test]
fn selinux_use_devices_off_fails_only_for_an_engine_that_labels() {
    let case = case("no-gpu", &[]);
    case.put("sys/fs/selinux/enforce", "1");
    case.put("sys/fs/selinux/booleans/container_use_devices", "0 0");
    case.fake_binary("dockerd", "Docker version 28.5.2, build ecc6942");
    assert_eq!(
        access_section(&case),
        "container access\n  \
         [info] SELinux is enforcing and container_use_devices is off, but no engine here is \
         configured to label its containers (docker), so none is denied its GPU nodes; one that \
         labels them (dockerd started with --selinux-enabled too) would need `setsebool -P \
         container_use_devices=1`"
    );
    case.put("etc/docker/daemon.json", "{\"selinux-enabled\": true}\n");
    assert_eq!(
        access_section(&case),
        "container access\n  \
         [FAIL] SELinux is enforcing and container_use_devices is off: the containers docker \
         labels are denied /dev/kfd and the render nodes they are given\n         \
         fix: `setsebool -P container_use_devices=1` (or, per container, `--security-opt \
         label=disable`)"
    );
}

/// The container access section of doctor's report on `case` with example host `no-amd`.
fn access_section(case: &DoctorRoot) -> String {
    let (_, report) = case.doctor("no-amd", &[]);
    section(&report, "container access")
}

/// Issue 17: with NVIDIA's container toolkit set up for Docker (its hook on dockerd's PATH, its
/// runtime in daemon.json, its CDI spec), `--gpus` is NVIDIA's; doctor says what to use instead.
#[test]
fn nvidia_for_docker_makes_gpus_nvidia_and_doctor_says_what_to_use() {
    let case = case("no-gpu", WORKSTATION_SPEC);
    case.fake_binary("dockerd", "Docker version 28.5.2, build ecc6942");
    case.fake_binary(
        "nvidia-container-runtime-hook",
        "NVIDIA Container Runtime Hook version 1.17.8",
    );
    case.put(
        "etc/docker/daemon.json",
        "{\"runtimes\": {\"nvidia\": {\"path\": \"nvidia-container-runtime\", \"args\": []}}}\n",
    );
    case.put(
        "etc/cdi/nvidia.yaml",
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n  containerEdits:\n    \
         deviceNodes:\n    - path: /dev/nvidia0\ncontainerEdits:\n  deviceNodes:\n  - path: /dev/nvidiactl\n",
    );
    let (_, report) = case.doctor("workstation", &[]);
    assert_eq!(
        section(&report, "docker"),
        "docker\n  \
         [ok  ] docker 28.5.2 (/usr/bin/dockerd)\n  \
         [ok  ] CDI is enabled (on by default)\n  \
         [info] reads CDI specs from /etc/cdi, /var/run/cdi\n  \
         [info] docker 28.5.2 is known to accept cdiVersion up to 1.0.0\n  \
         [ok  ] docker 28.5.2 accepts cdiVersion 0.5.0 of /var/run/cdi/amd.com-gpu.yaml\n  \
         [warn] `docker run --gpus` is NVIDIA's on this host: dockerd registers its AMD `--gpus` \
         driver only where NVIDIA's nvidia-container-runtime-hook is not on its PATH, and NVIDIA's \
         container toolkit is set up here: /usr/bin/nvidia-container-runtime-hook is on dockerd's \
         PATH; daemon.json has NVIDIA's runtime nvidia-container-runtime as `nvidia`; \
         /etc/cdi/nvidia.yaml defines NVIDIA CDI devices\n         \
         fix: for AMD GPUs, use `docker run --device amd.com/gpu=N` (CDI) instead\n  \
         [info] runtime wrapper not configured (only needed for AMD_VISIBLE_DEVICES requests)"
    );
    // The spec alone is enough to say so.
    fs::remove_file(case.root.join("usr/bin/nvidia-container-runtime-hook")).expect("rm hook");
    fs::remove_file(case.root.join("etc/docker/daemon.json")).expect("rm daemon.json");
    let (_, report) = case.doctor("workstation", &[]);
    assert_contains(
        &report,
        "NVIDIA's container toolkit is set up here: /etc/cdi/nvidia.yaml defines NVIDIA CDI \
             devices\n",
    );
    fs::remove_file(case.root.join("etc/cdi/nvidia.yaml")).expect("rm spec");
    let (_, report) = case.doctor("workstation", &[]);
    assert_lacks(&report, "NVIDIA");
}

/// Issue 17: containerd 1.7 with CDI switched off in the CRI plugin table fails with
/// `configure containerd` as its fix, and that fix turns it on.
#[test]
fn containerd_1_7_with_cdi_off_fails_and_configure_fixes_it() {
    let case = case("no-gpu", WORKSTATION_SPEC);
    case.fake_binary(
        "containerd",
        "containerd containerd.io 1.7.20 8fc6bcff51318944179630522a095cc9dbf9f353",
    );
    let config = "etc/containerd/config.toml";
    case.put(
        config,
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  enable_cdi = false\n",
    );
    let (code, report) = case.doctor("workstation", &[]);
    assert_eq!(code, 1);
    assert_eq!(
        section(&report, "containerd"),
        "containerd\n  \
         [ok  ] containerd 1.7.20 (/usr/bin/containerd)\n  \
         [FAIL] CDI is switched off (enable_cdi in the CRI plugin section is false)\n         \
         fix: `amdgpu-cdi configure containerd` (sets enable_cdi) and restart containerd\n  \
         [info] runtime wrapper not configured (only needed for AMD_VISIBLE_DEVICES requests)"
    );
    support::amdgpu_cdi()
        .args(["configure", "containerd", "--config"])
        .arg(case.root.join(config))
        .assert()
        .success();
    let (_, report) = case.doctor("workstation", &[]);
    assert!(
        section(&report, "containerd")
            .contains("\n  [ok  ] CDI is enabled (enable_cdi in the CRI plugin section)\n"),
        "{report}"
    );
}

/// Issue 17: a spec with groups needs cdiVersion 0.7.0; engines older than that skip it whole.
/// The groups are named as the cause, the engines' refusals fold under it, and the fix
/// regenerates with the recorded options but without `--additional-gids`.
#[test]
fn a_spec_with_groups_read_by_engines_too_old_for_0_7_0_fails_with_its_cause() {
    let case = case("no-gpu", &[]);
    case.fake_binary("dockerd", "Docker version 25.0.5, build 5dc9bcc");
    case.fake_binary("podman", "podman version 4.3.1");
    case.put(
        "etc/docker/daemon.json",
        "{\"features\": {\"cdi\": true}}\n",
    );
    case.put(
        "etc/cdi/amd-groups.yaml",
        "# generated by: amdgpu-cdi generate --device-name-strategy index --additional-gids\n\
         cdiVersion: \"0.7.0\"\nkind: amd.com/gpu\ncontainerEdits:\n  additionalGids: [993]\n  \
         deviceNodes: [{path: /dev/kfd}]\ndevices:\n- name: \"0\"\n  containerEdits:\n    \
         deviceNodes: [{path: /dev/dri/renderD128}]\n",
    );
    let (code, report) = case.doctor("workstation", &[]);
    assert_eq!(code, 1);
    assert_eq!(
        section(&report, "container access"),
        "container access\n  \
         [FAIL] /etc/cdi/amd-groups.yaml gives containers the nodes' groups (additionalGids), \
         which need cdiVersion 0.7.0: docker 25.0.5 (needs 26.1.0) and podman 4.3.1 (needs 5.1.0) \
         reject it and skip the whole spec\n         \
         fix: regenerate it without groups: `amdgpu-cdi generate --sysfs-root \
         <repo>/examples/hosts/workstation/sys --output <root>/etc/cdi/amd-groups.yaml \
         --device-name-strategy index` (root engines give a non-root container its nodes without \
         them, docs/requests.md), or upgrade docker to 26.1.0 and podman to 5.1.0\n         \
         because of this (not counted separately):\n           \
         [FAIL] docker 25.0.5 rejects cdiVersion 0.7.0 of /etc/cdi/amd-groups.yaml (needs docker \
         26.1.0)\n           \
         [FAIL] podman 4.3.1 rejects cdiVersion 0.7.0 of /etc/cdi/amd-groups.yaml (needs podman \
         5.1.0)"
    );
    assert!(!section(&report, "docker").contains("rejects"), "{report}");
    // A Docker that accepts 0.7.0 reads it: only podman is left.
    case.fake_binary("dockerd", "Docker version 26.1.5, build a72d7cd");
    let (_, report) = case.doctor("workstation", &[]);
    assert!(
        section(&report, "container access").contains(
            "which need cdiVersion 0.7.0: podman 4.3.1 (needs 5.1.0) rejects it and skips the \
             whole spec\n"
        ),
        "{report}"
    );
}

/// Issue 17 (docs/requests.md): Docker's CDI leaves nodes root:root with the spec's `fileMode`,
/// so a pinned 0660 locks non-root containers out; 0666, or a Docker without CDI, is fine.
#[test]
fn a_pinned_file_mode_under_docker_cdi_warns_for_non_root_containers() {
    let case = case("no-gpu", &[]);
    case.fake_binary("dockerd", "Docker version 28.5.2, build ecc6942");
    let spec = |mode: u32| {
        format!(
            "# generated by: amdgpu-cdi generate --device-name-strategy index --pin-device-numbers\n\
             cdiVersion: \"0.5.0\"\nkind: amd.com/gpu\ncontainerEdits:\n  deviceNodes:\n  \
             - {{path: /dev/kfd, type: c, major: 511, minor: 0, fileMode: {mode}}}\ndevices:\n\
             - name: \"0\"\n  containerEdits:\n    deviceNodes:\n    \
             - {{path: /dev/dri/renderD128, type: c, major: 226, minor: 128, fileMode: {mode}}}\n"
        )
    };
    case.put("var/run/cdi/amd-pinned.yaml", &spec(0o660));
    let (code, report) = case.doctor("workstation", &[]);
    assert_eq!(code, 1, "the device nodes are missing");
    assert_eq!(
        section(&report, "container access"),
        "container access\n  \
         [warn] /var/run/cdi/amd-pinned.yaml sets fileMode 0660 on 2 device node(s): docker 28.5.2 \
         creates them root:root with that mode, so a container running as a non-root user cannot \
         open them\n         \
         fix: regenerate it without pinned numbers and modes: `amdgpu-cdi generate --sysfs-root \
         <repo>/examples/hosts/workstation/sys --output <root>/var/run/cdi/amd-pinned.yaml \
         --device-name-strategy index`"
    );
    case.put("var/run/cdi/amd-pinned.yaml", &spec(0o666));
    let (_, report) = case.doctor("workstation", &[]);
    assert_lacks(&report, "container access");
    // Docker 26.1 without features.cdi does not read specs.
    case.put("var/run/cdi/amd-pinned.yaml", &spec(0o660));
    case.fake_binary("dockerd", "Docker version 26.1.5, build a72d7cd");
    let (_, report) = case.doctor("workstation", &[]);
    assert_lacks(&report, "container access");
}

/// Issue 17: a user with subordinate ids (rootless podman) gets the host's nodes with their group;
/// outside it, doctor warns with `usermod`. The nodes here are plain files with the test's own
/// group, named `render` in the fixture's /etc/group (no root needed).
#[test]
fn rootless_users_outside_the_nodes_group_are_warned() {
    use std::os::unix::fs::PermissionsExt;
    let case = case("no-gpu", &[]);
    let gid = nix::unistd::getegid().as_raw();
    // Primary groups that are not the nodes' group, whatever group the test runs with.
    let (alice, bob) = (gid.wrapping_add(1), gid.wrapping_add(2));
    case.put(
        "etc/passwd",
        &format!(
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:{alice}::/home/alice:/bin/bash\n\
             bob:x:1001:{bob}::/home/bob:/bin/bash\n"
        ),
    );
    case.put(
        "etc/group",
        &format!("render:x:{gid}:alice\nalice:x:{alice}:\nbob:x:{bob}:\n"),
    );
    case.put("etc/subuid", "alice:100000:65536\nbob:165536:65536\n");
    for node in ["dev/kfd", "dev/dri/renderD128", "dev/dri/renderD129"] {
        case.put(node, "");
        fs::set_permissions(case.root.join(node), fs::Permissions::from_mode(0o660))
            .expect("chmod");
    }
    let (_, report) = case.doctor("workstation", &["--user", "alice"]);
    assert_eq!(
        section(&report, "container access"),
        "container access\n  \
         [warn] bob has subordinate ids in /etc/subuid (rootless podman) but is not in group \
         render, which owns /dev/kfd, /dev/dri/renderD128 and /dev/dri/renderD129: its rootless \
         containers get the host's nodes with that group and cannot open them\n         \
         fix: `usermod -aG render bob`, log in again, and run rootless containers with \
         `--group-add keep-groups` (crun)"
    );
    // The user doctor checks the nodes for is the device node section's.
    let (_, report) = case.doctor("workstation", &["--user", "bob"]);
    assert_lacks(&report, "container access");
    case.put(
        "etc/group",
        &format!("render:x:{gid}:alice,bob\nalice:x:{alice}:\nbob:x:{bob}:\n"),
    );
    let (_, report) = case.doctor("workstation", &["--user", "alice"]);
    assert_eq!(
        section(&report, "container access"),
        "container access\n  \
         [ok  ] the rootless users in /etc/subuid (alice, bob) are in group render, which owns the \
         GPU nodes"
    );
}
