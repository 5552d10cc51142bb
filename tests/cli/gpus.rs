//! `amdgpu-cdi gpus` on the example hosts: the exact table (insta snapshots) and the JSON form.

use crate::generate::{HOSTS, host_sysfs};
use crate::support::amdgpu_cdi;

fn gpus(host: &str, format: &str) -> String {
    let out = amdgpu_cdi()
        .arg("gpus")
        .arg("--sysfs-root")
        .arg(host_sysfs(host))
        .args(["--format", format])
        .output()
        .expect("run amdgpu-cdi gpus");
    assert!(
        out.status.success(),
        "gpus {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn table_of_every_example_host() {
    for host in HOSTS {
        insta::assert_snapshot!(format!("gpus-{host}"), gpus(host, "text"));
    }
}

#[test]
fn json_of_a_partitioned_host() {
    let value: serde_json::Value =
        serde_json::from_str(&gpus("mi300a-tpx", "json")).expect("json output");
    let gpus = value.as_array().expect("array");
    assert_eq!(gpus.len(), 12);
    assert_eq!(
        gpus[4]["names"],
        serde_json::json!(["4", "GPU-225fe30b05b106cb-p1", "0001:02:00.0-p1"])
    );
    assert_eq!(gpus[4]["partition"]["compute_mode"], "TPX");
    assert_eq!(gpus[4]["partition"]["count"], 3);
    assert_eq!(gpus[4]["gfx_target"], "gfx942");
    assert_eq!(gpus[4]["integrated"], true);
    insta::assert_snapshot!("gpus-workstation-json", gpus_json_workstation());
}

fn gpus_json_workstation() -> String {
    gpus("workstation", "json")
}

#[test]
fn warns_about_partitions_missing_from_kfd() {
    let out = amdgpu_cdi()
        .arg("gpus")
        .arg("--sysfs-root")
        .arg(host_sysfs("mi300x-cpx-dot"))
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "amdgpu-cdi: warning: 0000:18:00.0 is in CPX mode but KFD lists only 7 of its 8 \
         partitions (the kernel may have run out of DRM minors; see `dmesg | grep xcp`)\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        64,
        "header + 63 partitions"
    );
}

/// Issue 14 item 9: `gpus --dev-root D` says which of the nodes it shows do not exist under D: a
/// note below the table, or a warning on stderr beside the JSON.
#[test]
fn notes_nodes_missing_under_the_dev_root() {
    let dev = tempfile::tempdir().expect("tempdir");
    let root = dev.path().to_str().expect("utf-8 temp dir");
    let run = |format: &str| {
        amdgpu_cdi()
            .arg("gpus")
            .arg("--sysfs-root")
            .arg(host_sysfs("workstation"))
            .args(["--dev-root", root, "--format", format])
            .output()
            .expect("run amdgpu-cdi gpus")
    };
    let note = format!(
        "device nodes that do not exist: {root}/dev/kfd, {root}/dev/dri/renderD128, \
         {root}/dev/dri/card0, {root}/dev/dri/renderD129 and 1 more"
    );
    let out = run("text");
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        stdout,
        format!("{}note: {note}\n", gpus("workstation", "text"))
    );
    let out = run("json");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("amdgpu-cdi: warning: {note}\n")
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("stdout is JSON alone");
}
