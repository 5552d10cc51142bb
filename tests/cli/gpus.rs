//! `amdgpu-cdi gpus` on the example hosts: the exact table (insta snapshots) and the JSON form.

use crate::generate::HOSTS;
use crate::support::{assert_contains, host_sysfs, json_of_host, on_sysfs, run_ok, stdout_of};

/// What `gpus --format <format>` prints for example host `host`.
fn gpus(host: &str, format: &str) -> String {
    stdout_of(on_sysfs("gpus", host_sysfs(host)).args(["--format", format]))
}

#[test]
fn table_of_every_example_host() {
    for host in HOSTS {
        insta::assert_snapshot!(format!("gpus-{host}"), gpus(host, "text"));
    }
}

#[test]
fn json_of_a_partitioned_host() {
    let value = json_of_host("gpus", "mi300a-tpx", &[]);
    let gpus = value.as_array().expect("array");
    assert_eq!(gpus.len(), 12);
    assert_eq!(
        gpus[4]["names"],
        serde_json::json!(["4", "GPU-225fe30b05b106cb-p1"])
    );
    assert_eq!(
        gpus[4]["variable_only_names"],
        serde_json::json!(["0001:02:00.0-p1"])
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
    let out = run_ok(&mut on_sysfs("gpus", host_sysfs("mi300x-cpx-dot")));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "amdgpu-cdi: warning: 0000:18:00.0 is in CPX mode but KFD lists only 7 of its 8 \
         partitions (the kernel may have run out of DRM minors; see `dmesg | grep xcp`)\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .take_while(|line| !line.is_empty())
            .count(),
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
        run_ok(on_sysfs("gpus", host_sysfs("workstation")).args([
            "--dev-root",
            root,
            "--format",
            format,
        ]))
    };
    let note = format!(
        "device nodes that do not exist: {root}/dev/kfd, {root}/dev/dri/renderD128, \
         {root}/dev/dri/card0, {root}/dev/dri/renderD129 and 1 more"
    );
    let out = run("text");
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
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("amdgpu-cdi: warning: {note}\n")
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("stdout is JSON alone");
}

/// The device names of the spec `generate` writes for `host` with `extra` options.
fn spec_names(host: &str, extra: &[&str]) -> Vec<String> {
    json_of_host("generate", host, extra)["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["name"].as_str().expect("name").to_string())
        .collect()
}

/// Issue 14 item 1: every name `gpus` lists as a CDI name is a device of the spec `generate`
/// writes with the same options, and the names only `AMD_VISIBLE_DEVICES` accepts are marked and
/// explained, never listed as CDI names.
#[test]
fn cdi_names_are_exactly_the_devices_of_the_spec() {
    for options in [&[][..], &["--device-name-strategy", "pci"][..]] {
        for host in HOSTS {
            let gpus = json_of_host("gpus", host, options);
            let names = |key: &str| -> Vec<String> {
                gpus.as_array()
                    .expect("array")
                    .iter()
                    .flat_map(|gpu| gpu[key].as_array().expect(key).clone())
                    .map(|n| n.as_str().expect("name").to_string())
                    .collect()
            };
            let mut listed = names("names");
            listed.push("all".into());
            let mut in_spec = spec_names(host, options);
            listed.sort();
            in_spec.sort();
            assert_eq!(listed, in_spec, "{host} {options:?}");
            for name in names("variable_only_names") {
                assert!(!in_spec.contains(&name), "{host}: {name}");
            }
        }
    }
    let table = gpus("workstation", "text");
    assert_contains(&table, "  0,GPU-3a75ef3dce15c486,0000:03:00.0*  ");
    assert!(
        table.ends_with(
            "\n* only AMD_VISIBLE_DEVICES accepts this name; the spec has it with `generate \
             --device-name-strategy index --device-name-strategy uuid --device-name-strategy pci` \
             (pass the same options here)\n"
        ),
        "{table}"
    );
}
