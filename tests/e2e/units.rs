//! The shipped service files against the real command line: the refresh unit's `ExecStart`, the
//! udev rule's unit references, and the spec-only Kubernetes DaemonSet (parsed as YAML, its
//! generate command run against an example host). `systemd-analyze verify` and the udev rule syntax check run on
//! the installed files in `packaging.rs`, where the binary and man pages the unit names exist.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::support;

#[path = "../../device-plugin/tests/standin/manifest.rs"]
mod manifest;

use manifest::DaemonSet;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const UNIT_NAME: &str = "amdgpu-cdi-refresh.service";

fn exec_start() -> Vec<String> {
    let unit = fs::read_to_string(repo().join("packaging/systemd").join(UNIT_NAME))
        .expect("read the unit");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart line");
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn refresh_unit_runs_a_generate_command_the_cli_accepts() {
    let argv = exec_start();
    assert_eq!(argv[0], "/usr/bin/amdgpu-cdi");
    assert!(
        argv.ends_with(&["$AMDGPU_CDI_GENERATE_ARGS".to_string()]),
        "{argv:?}"
    );
    let output_at = argv
        .iter()
        .position(|a| a == "--output")
        .expect("--output in ExecStart");
    assert_eq!(argv[output_at + 1], "/var/run/cdi/amd.com-gpu.yaml");

    // The same arguments, with the output redirected and an example host as sysfs.
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("amd.com-gpu.yaml");
    let mut args: Vec<String> = argv[1..argv.len() - 1].to_vec();
    args[output_at] = out.display().to_string();
    let sysfs = repo().join("examples/hosts/workstation/sys");
    let status = Command::new(support::bin("amdgpu-cdi"))
        .args(&args)
        .arg("--sysfs-root")
        .arg(&sysfs)
        .status()
        .expect("run generate");
    assert!(status.success(), "{args:?} failed");
    // A second run leaves the file alone: same bytes, same inode.
    use std::os::unix::fs::MetadataExt;
    let first = fs::metadata(&out).expect("spec written").ino();
    let status = Command::new(support::bin("amdgpu-cdi"))
        .args(&args)
        .arg("--sysfs-root")
        .arg(&sysfs)
        .status()
        .expect("run generate again");
    assert!(status.success());
    assert_eq!(
        fs::metadata(&out).expect("spec").ino(),
        first,
        "unchanged spec was rewritten"
    );
    // And `check` agrees it is current.
    let check = Command::new(support::bin("amdgpu-cdi"))
        .arg("check")
        .arg("--spec")
        .arg(&out)
        .arg("--sysfs-root")
        .arg(&sysfs)
        .output()
        .expect("run check");
    assert_eq!(check.status.code(), Some(0));
}

#[test]
fn refresh_unit_is_skipped_without_kfd_and_never_removes_the_spec_dir() {
    let unit = fs::read_to_string(repo().join("packaging/systemd").join(UNIT_NAME))
        .expect("read the unit");
    let lines: Vec<&str> = unit.lines().collect();
    for wanted in [
        "Type=oneshot",
        "ConditionPathExists=|/dev/kfd",
        "ConditionPathExists=|/dev/dxg",
        "RuntimeDirectory=cdi",
        "RuntimeDirectoryPreserve=yes",
        "WantedBy=multi-user.target",
    ] {
        assert!(lines.contains(&wanted), "{UNIT_NAME} lacks {wanted}");
    }
}

#[test]
fn udev_rule_starts_the_refresh_unit_on_add_and_remove() {
    let rules = fs::read_to_string(repo().join("packaging/udev/60-amdgpu-cdi.rules"))
        .expect("read the rule");
    let rules: Vec<&str> = rules
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let run = format!("RUN+=\"/usr/bin/systemctl --no-block start {UNIT_NAME}\"");
    let wants = format!("ENV{{SYSTEMD_WANTS}}+=\"{UNIT_NAME}\"");
    let find = |action: &str, subsystem: &str| {
        rules
            .iter()
            .find(|r| {
                r.contains(&format!("ACTION==\"{action}\""))
                    && r.contains(&format!("SUBSYSTEM==\"{subsystem}\""))
            })
            .unwrap_or_else(|| panic!("no {action} rule for {subsystem}"))
    };
    // SYSTEMD_WANTS only acts when a tagged device appears; removals need RUN.
    for subsystem in ["kfd", "drm"] {
        let add = find("add", subsystem);
        assert!(
            add.contains("TAG+=\"systemd\"") && add.contains(&wants),
            "{add}"
        );
        assert!(find("remove", subsystem).contains(&run));
    }
    assert!(find("add", "module").contains("KERNEL==\"amdgpu\""));
    assert!(find("add", "module").contains(&run));
    assert!(find("add", "drm").contains("KERNEL==\"renderD*\""));
}

#[test]
fn daemonset_manifest_parses_and_its_command_works() {
    let manifest =
        DaemonSet::load(&repo().join("packaging/kubernetes/amdgpu-cdi-spec-daemonset.yaml"));
    let ds = &manifest.doc;
    assert_eq!(ds["apiVersion"], "apps/v1");
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        ds["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
            .as_str()
            .map(|name| serde_json::json!({ "app.kubernetes.io/name": name }))
            .expect("pod label")
    );
    assert_eq!(
        manifest.mounts(),
        [("/host/sys", true), ("/dev", true), ("/var/run/cdi", false)]
    );
    assert_eq!(manifest.host_paths(), ["/sys", "/dev", "/var/run/cdi"]);
    let container = manifest.container();
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    // The loop's generate command, run once against an example host instead of /host/sys.
    let script = container["args"][0].as_str().expect("loop script");
    let generate = script
        .split("/usr/bin/amdgpu-cdi ")
        .nth(1)
        .and_then(|rest| rest.split("||").next())
        .expect("generate command in the loop")
        .replace("\\\n", " ");
    let mut args: Vec<String> = generate.split_whitespace().map(str::to_string).collect();
    let tmp = tempfile::tempdir().expect("temp dir");
    for (flag, value) in [
        ("--sysfs-root", repo().join("examples/hosts/mi300x-cpx/sys")),
        ("--output", tmp.path().join("amd.com-gpu.yaml")),
    ] {
        let at = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} in the DaemonSet command"));
        args[at + 1] = value.display().to_string();
    }
    assert_eq!(args[0], "generate");
    let status = Command::new(support::bin("amdgpu-cdi"))
        .args(&args)
        .status()
        .expect("run the DaemonSet's generate");
    assert!(status.success(), "{args:?}");
    assert!(tmp.path().join("amd.com-gpu.yaml").is_file());
}
