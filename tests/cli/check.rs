//! `amdgpu-cdi check` against the example hosts after simulated hardware changes: a GPU removed,
//! a compute partition switch, a new kfd major. Exit 0 current, 1 stale with a diff, 2 on error.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{self, assert_contains, copy_tree, host_sysfs};

/// Example hosts that have AMD GPUs.
fn gpu_hosts() -> Vec<PathBuf> {
    let mut hosts: Vec<PathBuf> = fs::read_dir(support::repo_root().join("examples/hosts"))
        .expect("examples/hosts exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("sys/class/kfd/kfd").is_dir())
        .collect();
    hosts.sort();
    assert!(
        hosts.len() >= 5,
        "expected the example hosts, found {hosts:?}"
    );
    hosts
}

/// A temp dir and the spec path in it (not written yet).
fn temp_spec() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let spec = tmp.path().join("amd.com-gpu.yaml");
    (tmp, spec)
}

/// `generate --output <out> <extra>` on `sysfs`, which must succeed.
fn generate(sysfs: &Path, out: &Path, extra: &[&str]) {
    support::on_sysfs("generate", sysfs)
        .arg("--output")
        .arg(out)
        .args(extra)
        .assert()
        .success();
}

/// `check --spec <spec> <extra>` on `sysfs`: its exit code, stdout and stderr.
fn check(sysfs: &Path, spec: &Path, extra: &[&str]) -> (i32, String, String) {
    let output = support::on_sysfs("check", sysfs)
        .arg("--spec")
        .arg(spec)
        .args(extra)
        .output()
        .expect("run check");
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// KFD topology nodes that are GPUs (`simd_count` > 0).
fn gpu_nodes(sysfs: &Path) -> Vec<PathBuf> {
    let nodes = sysfs.join("class/kfd/kfd/topology/nodes");
    let mut gpus: Vec<PathBuf> = fs::read_dir(&nodes)
        .expect("topology nodes")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            fs::read_to_string(p.join("properties"))
                .expect("properties")
                .lines()
                .any(|l| l.starts_with("simd_count ") && l != "simd_count 0")
        })
        .collect();
    gpus.sort();
    gpus
}

#[test]
fn every_example_host_is_current_right_after_generate() {
    for host in gpu_hosts() {
        let (_tmp, spec) = temp_spec();
        let sysfs = host.join("sys");
        generate(&sysfs, &spec, &[]);
        let (code, stdout, stderr) = check(&sysfs, &spec, &[]);
        assert_eq!(code, 0, "{}: {stdout}{stderr}", host.display());
        assert_eq!(stdout, format!("{} is current\n", spec.display()));
    }
}

#[test]
fn every_example_host_is_stale_after_a_gpu_is_removed() {
    for host in gpu_hosts() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let sysfs = tmp.path().join("sys");
        copy_tree(&host.join("sys"), &sysfs);
        let spec = tmp.path().join("amd.com-gpu.yaml");
        generate(&sysfs, &spec, &[]);
        let mut gpus = gpu_nodes(&sysfs);
        let last = gpus.pop().expect("a GPU node");
        fs::remove_dir_all(&last).expect("remove a GPU from the topology");
        let (code, stdout, stderr) = check(&sysfs, &spec, &[]);
        if gpus.is_empty() {
            // The only GPU is gone: nothing to compare with, an error with a hint.
            assert_eq!(code, 2, "{}: {stdout}{stderr}", host.display());
            assert!(
                stderr.starts_with("amdgpu-cdi: no AMD GPU found"),
                "{stderr}"
            );
            continue;
        }
        assert_eq!(code, 1, "{}: {stdout}{stderr}", host.display());
        assert!(
            stdout.starts_with(&format!(
                "{} differs from the spec generated now",
                spec.display()
            )),
            "{stdout}"
        );
        assert_contains(&stdout, "+++ generated now\n");
        assert!(
            stdout.lines().any(|l| l.starts_with("-- name: ")),
            "a device must disappear: {stdout}"
        );
    }
}

#[test]
fn a_compute_partition_switch_makes_the_spec_stale() {
    let (_tmp, spec) = temp_spec();
    // The same 8x MI300X machine in SPX mode, then switched to CPX (64 partitions).
    generate(&host_sysfs("mi300x-spx"), &spec, &[]);
    let (code, stdout, _) = check(&host_sysfs("mi300x-cpx"), &spec, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_contains(&stdout, "+- name: '63'");
    // And back: the CPX spec is stale on the SPX host.
    generate(&host_sysfs("mi300x-cpx"), &spec, &[]);
    let (code, stdout, _) = check(&host_sysfs("mi300x-spx"), &spec, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_contains(&stdout, "-- name: '63'");
}

#[test]
fn a_new_kfd_major_only_matters_when_numbers_are_pinned() {
    let host = host_sysfs("workstation");
    let tmp = tempfile::tempdir().expect("temp dir");
    let sysfs = tmp.path().join("sys");
    copy_tree(&host, &sysfs);
    let unpinned = tmp.path().join("unpinned.yaml");
    let pinned = tmp.path().join("pinned.yaml");
    generate(&sysfs, &unpinned, &[]);
    generate(&sysfs, &pinned, &["--pin-device-numbers"]);
    let dev = sysfs.join("class/kfd/kfd/dev");
    let old = fs::read_to_string(&dev).expect("kfd dev");
    let (major, minor) = old.trim().split_once(':').expect("MAJ:MIN");
    assert_ne!(major, "498");
    fs::write(&dev, format!("498:{minor}\n")).expect("new major");
    // The default spec has no device numbers: a driver reload does not make it stale.
    let (code, stdout, _) = check(&sysfs, &unpinned, &[]);
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = check(&sysfs, &pinned, &["--pin-device-numbers"]);
    assert_eq!(code, 1, "{stdout}");
    assert_contains(
        &stdout,
        &format!("\n-    major: {major}\n+    major: 498\n"),
    );
}

#[test]
fn formatting_is_not_a_change() {
    let host = host_sysfs("mi210x4");
    let tmp = tempfile::tempdir().expect("temp dir");
    let yaml = tmp.path().join("a.yaml");
    generate(&host, &yaml, &[]);
    // The same spec as JSON, written by hand into a .json file: still current.
    let json = tmp.path().join("a.json");
    generate(&host, &json, &[]);
    let pretty = fs::read_to_string(&json).expect("json spec");
    let compact: serde_json::Value = serde_json::from_str(&pretty).expect("parse json");
    fs::write(&json, compact.to_string()).expect("rewrite compact");
    for spec in [&yaml, &json] {
        let (code, stdout, _) = check(&host, spec, &[]);
        assert_eq!(code, 0, "{stdout}");
    }
}

#[test]
fn a_missing_spec_is_stale_and_a_host_without_gpus_is_an_error() {
    let (_tmp, spec) = temp_spec();
    let (code, stdout, _) = check(&host_sysfs("workstation"), &spec, &[]);
    assert_eq!(code, 1);
    assert!(
        stdout.starts_with(&format!("{} does not exist", spec.display())),
        "{stdout}"
    );
    assert_contains(&stdout, "--- /dev/null\n+++ generated now\n");
    let (code, stdout, stderr) = check(&host_sysfs("no-amd"), &spec, &[]);
    assert_eq!(code, 2, "{stdout}");
    assert!(
        stderr.starts_with("amdgpu-cdi: no AMD GPU on this machine"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let (code, _, stderr) = check(&host_sysfs("workstation"), &spec, &["--cdi-version", "x"]);
    assert_eq!(code, 2);
    assert_contains(&stderr, "invalid --cdi-version");
}

#[test]
fn a_spec_that_does_not_parse_is_an_error_naming_file_and_line_not_stale() {
    let host = host_sysfs("workstation");
    let (_tmp, spec) = temp_spec();
    generate(&host, &spec, &[]);
    // A hand edit gone wrong: a misspelt field on line 2 (strict parsing refuses it).
    let text = fs::read_to_string(&spec).expect("spec");
    let (first, rest) = text.split_once('\n').expect("more than one line");
    fs::write(&spec, format!("{first}\nkinds: 'amd.com/gpu'\n{rest}")).expect("break the spec");
    let (code, stdout, stderr) = check(&host, &spec, &[]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert_eq!(stdout, "", "no diff against text that is not a spec");
    let line = stderr
        .strip_suffix('\n')
        .filter(|line| !line.contains('\n'))
        .unwrap_or_else(|| panic!("one line on stderr: {stderr:?}"));
    assert!(
        line.starts_with(&format!(
            "amdgpu-cdi: cannot parse {}: line 2 column 1: kinds: unknown field `kinds`",
            spec.display()
        )),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(
            "`amdgpu-cdi generate --output {}`)",
            spec.display()
        )),
        "{line}"
    );
    // The same file fixed but outdated is stale again (exit 1 with a diff).
    fs::write(&spec, text.replace("- name: '0'", "- name: '9'")).expect("outdated spec");
    let (code, stdout, _) = check(&host, &spec, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_contains(&stdout, "\n-- name: '9'\n+- name: '0'\n");
}

/// Issue 14 item 2: the README's spec with extra names, checked without repeating the options,
/// is current (generate recorded its options on the spec's first line); a real change is still
/// stale, and the diff's header names the recorded options.
#[test]
fn a_spec_is_judged_against_the_options_recorded_in_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let sysfs = tmp.path().join("sys");
    copy_tree(&host_sysfs("mi210x4"), &sysfs);
    let spec = tmp.path().join("amd.com-gpu.yaml");
    let readme = [
        "--device-name-strategy",
        "index",
        "--device-name-strategy",
        "uuid",
        "--device-name-strategy",
        "pci",
    ];
    generate(&sysfs, &spec, &readme);
    let text = fs::read_to_string(&spec).expect("read spec");
    assert_eq!(
        text.lines().next(),
        Some(
            "# generated by: amdgpu-cdi generate --device-name-strategy index \
             --device-name-strategy uuid --device-name-strategy pci"
        )
    );
    assert_eq!(
        check(&sysfs, &spec, &[]),
        (0, format!("{} is current\n", spec.display()), String::new())
    );
    // Options given to check that contradict the record are named as ignored.
    let (code, stdout, stderr) = check(&sysfs, &spec, &["--device-name-strategy", "index"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, format!("{} is current\n", spec.display()).as_str())
    );
    assert_eq!(
        stderr,
        format!(
            "amdgpu-cdi: warning: {} records the options it was generated with; comparing with \
             those, not the ones given\n",
            spec.display()
        )
    );
    // A GPU gone: stale, compared with the recorded options.
    fs::remove_dir_all(gpu_nodes(&sysfs).pop().expect("a GPU node")).expect("remove a GPU");
    let (code, stdout, _) = check(&sysfs, &spec, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stdout.lines().next(),
        Some(
            format!(
                "{} differs from the spec generated now; `amdgpu-cdi generate \
                 --device-name-strategy index --device-name-strategy uuid --device-name-strategy \
                 pci` would write:",
                spec.display()
            )
            .as_str()
        )
    );
    // A record check cannot read back is an error naming the file and the option.
    fs::write(
        &spec,
        text.replacen(" --device-name-strategy pci", " --frob", 1),
    )
    .expect("write");
    let (code, stdout, stderr) = check(&sysfs, &spec, &[]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        format!(
            "amdgpu-cdi: cannot read the generate options recorded on line 1 of {0}: unknown \
             option \"--frob\" (rewrite it with `amdgpu-cdi generate --output {0}` and the options \
             you want)\n",
            spec.display()
        )
    );
}

/// Every content option `generate` records reads back in `check` as the same option: a spec
/// generated with them is current without repeating them.
#[test]
fn every_recorded_content_option_reads_back() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let sysfs = host_sysfs("mi300a-tpx");
    let spec = tmp.path().join("example.com-accel.yaml");
    generate(
        &sysfs,
        &spec,
        &[
            "--vendor=example.com",
            "--class=accel",
            "--device-name-strategy=pci",
            "--device-name-strategy=uuid",
            "--no-all-device",
            "--cdi-version=0.6.0",
            "--annotations",
            "--pin-device-numbers",
            "--include-card-nodes",
        ],
    );
    assert_eq!(
        check(&sysfs, &spec, &[]),
        (0, format!("{} is current\n", spec.display()), String::new())
    );
}
