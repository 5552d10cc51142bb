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
