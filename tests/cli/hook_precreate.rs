//! `amdgpu-cdi hook precreate` against CDI spec fixtures (`device-source = "cdi"`, nodes backed by
//! /dev/null so no root is needed): stdin config in, edited config out.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{amdgpu_cdi, assert_contains, assert_lacks, repo_root};

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/requests").join(name)
}

/// A temp dir with a config file using the fixture CDI specs and logging to `detail.log` beside
/// it; returns the dir and the file.
fn cdi_config() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    let text = format!(
        "device-source = \"cdi\"\nspec-dirs = [\"{}\"]\nlog-file = \"{}\"\n",
        fixture("cdi").display(),
        dir.path().join("detail.log").display()
    );
    fs::write(&path, text).expect("write config");
    (dir, path)
}

fn request(value: &str) -> String {
    fs::read_to_string(fixture("config-request.json"))
        .expect("fixture")
        .replace(
            "AMD_VISIBLE_DEVICES=REQUEST",
            &format!("AMD_VISIBLE_DEVICES={value}"),
        )
}

fn precreate(config: &Path, stdin: String) -> assert_cmd::assert::Assert {
    amdgpu_cdi()
        .env_clear()
        .args(["hook", "precreate", "--config"])
        .arg(config)
        .write_stdin(stdin)
        .assert()
}

/// The config `hook precreate` prints for `stdin` (it must succeed).
fn precreated(config: &Path, stdin: String) -> Vec<u8> {
    precreate(config, stdin)
        .success()
        .get_output()
        .stdout
        .clone()
}

fn pretty(stdout: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(stdout).expect("JSON on stdout");
    serde_json::to_string_pretty(&value).expect("render")
}

#[test]
fn nothing_requested_echoes_the_exact_bytes() {
    let (_dir, config) = cdi_config();
    let input = fs::read_to_string(fixture("config-plain.json")).expect("fixture");
    precreate(&config, input.clone()).success().stdout(input);
    for value in ["void", "", "none"] {
        let input = request(value);
        precreate(&config, input.clone()).success().stdout(input);
    }
}

#[test]
fn selected_gpus_and_kfd_are_injected_once() {
    let (dir, config) = cdi_config();
    let out = precreated(&config, request(" 2 ,0,0"));
    insta::assert_snapshot!("precreate_0_2", pretty(&out));
    // A second pass (hook and wrapper both configured) changes nothing.
    let again = String::from_utf8(out.clone()).expect("utf-8");
    precreate(&config, again).success().stdout(out);
    let log = fs::read_to_string(dir.path().join("detail.log")).expect("detail log");
    assert_contains(&log, "injected 0,2");
    assert_contains(&log, "unchanged: already injected");
}

#[test]
fn unique_ids_and_all_resolve_against_spec_names() {
    let (_dir, config) = cdi_config();
    let out = precreated(&config, request("0x4a1f2b3c4d5e6f70"));
    assert!(pretty(&out).contains("\"amd.com/gpu.injected\": \"GPU-4a1f2b3c4d5e6f70\""));
    let out = precreated(&config, request("all"));
    let text = pretty(&out);
    for node in [
        "/dev/dri/renderD128",
        "/dev/dri/renderD129",
        "/dev/dri/renderD130",
        "/dev/kfd",
    ] {
        assert_eq!(
            text.matches(&format!("\"path\": \"{node}\"")).count(),
            1,
            "{node}"
        );
    }
}

#[test]
fn an_annotation_request_is_honoured() {
    let (_dir, config) = cdi_config();
    let mut input: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixture("config-plain.json")).expect("fixture"))
            .expect("json");
    input["annotations"] = serde_json::json!({
        "io.kubernetes.cri.container-type": "container",
        "cdi.k8s.io/amd-device-plugin_c1": "amd.com/gpu=1"
    });
    let out = precreated(&config, input.to_string());
    let text = pretty(&out);
    assert_contains(&text, "/dev/dri/renderD129");
    assert_lacks(&text, "/dev/dri/renderD128");
}

/// podman discards a precreate hook's stderr, so an unmet request prints a config whose process
/// cannot start, named after the error; the message also goes to stderr.
#[test]
fn invalid_and_unknown_requests_print_an_unstartable_config() {
    let (_dir, config) = cdi_config();
    for (value, name) in [("0,zz", "precreate_invalid"), ("0,7", "precreate_unknown")] {
        let out = precreate(&config, request(value))
            .success()
            .get_output()
            .clone();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        insta::assert_snapshot!(name, stderr);
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let message = stderr.trim_end().trim_start_matches("amdgpu-cdi: ");
        assert_eq!(
            printed["process"]["args"],
            serde_json::json!([format!("/proc/amdgpu-cdi: {message}")])
        );
        assert!(printed["linux"].get("devices").is_none(), "no GPU injected");
    }
}

#[test]
fn configuration_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    fs::write(&config, "sysfs-root = \"/sys\"\nlog-level = \"debug\"\n").expect("write");
    let out = precreate(&config, request("0"))
        .failure()
        .get_output()
        .clone();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "DIR");
    insta::assert_snapshot!("precreate_bad_config", stderr);
    // AMDGPU_CDI_CONFIG naming a missing file is an error too.
    amdgpu_cdi()
        .env_clear()
        .env("AMDGPU_CDI_CONFIG", dir.path().join("missing.toml"))
        .args(["hook", "precreate"])
        .write_stdin(request("0"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("cannot read configuration"));
}

#[test]
fn unknown_stages_and_arguments_exit_zero_with_a_warning() {
    amdgpu_cdi()
        .env_clear()
        .args(["hook", "poststop", "--future-flag", "x"])
        .assert()
        .success()
        .stderr("amdgpu-cdi hook: warning: unknown hook stage \"poststop\", doing nothing\n");
    let (_dir, config) = cdi_config();
    let input = fs::read_to_string(fixture("config-plain.json")).expect("fixture");
    amdgpu_cdi()
        .env_clear()
        .args(["hook", "precreate", "--future-flag", "--config"])
        .arg(&config)
        .write_stdin(input.clone())
        .assert()
        .success()
        .stdout(input)
        .stderr("amdgpu-cdi hook precreate: warning: ignoring unknown arguments --future-flag\n");
}

#[test]
fn oversized_or_broken_input_is_refused() {
    let (_dir, config) = cdi_config();
    precreate(&config, "{not json".to_string())
        .failure()
        .stdout("")
        .stderr(predicates::str::starts_with(
            "amdgpu-cdi: cannot parse stdin as an OCI runtime config",
        ));
}

/// Issue 12 item 1, through the hook binary: with `accept-env-from-unprivileged = false`, a
/// Kubernetes container holding `CAP_SYS_ADMIN` under a deny-all device cgroup gets nothing
/// (the config passes unchanged and the variable is logged as ignored); the privileged pod's
/// allow-all device rule still gets its variable honoured.
#[test]
fn cap_sys_admin_without_allow_all_device_rule_is_not_privileged() {
    let (dir, config) = cdi_config();
    let mut text = fs::read_to_string(&config).expect("config");
    text.push_str("accept-env-from-unprivileged = false\n");
    fs::write(&config, text).expect("write config");
    let mut oci: serde_json::Value = serde_json::from_str(&request("all")).expect("fixture");
    oci["annotations"] = serde_json::json!({"io.kubernetes.cri.container-type": "container"});
    oci["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_SYS_ADMIN"]);
    let input = oci.to_string();
    precreate(&config, input.clone()).success().stdout(input);
    let log = fs::read_to_string(dir.path().join("detail.log")).expect("detail log");
    assert_contains(
        &log,
        "ignoring AMD_VISIBLE_DEVICES of an unprivileged container",
    );

    oci["linux"]["resources"]["devices"]
        .as_array_mut()
        .expect("rules")
        .push(serde_json::json!({"allow": true, "access": "rwm"}));
    let out = precreated(&config, oci.to_string());
    let injected: serde_json::Value = serde_json::from_slice(&out).expect("JSON on stdout");
    assert_eq!(
        injected["annotations"]["amd.com/gpu.injected"], "0,1,2,GPU-4a1f2b3c4d5e6f70",
        "every device of the fixture specs"
    );
}

/// Issue 12 item 6: runc's Go decoder reads `DEVICES` as `devices` (the last one wins: deny
/// all), an exact reader would see the allow-all `devices`. Such a config is refused, not read
/// one way while the runtime reads it another.
#[test]
fn a_key_differing_from_an_oci_field_only_in_case_is_refused() {
    let (_dir, config) = cdi_config();
    let input = fs::read_to_string(fixture("config-case-variant.json")).expect("fixture");
    precreate(&config, input)
        .failure()
        .stdout("")
        .stderr(predicates::str::starts_with(
            "amdgpu-cdi: cannot parse stdin as an OCI runtime config: key \"DEVICES\" in \
             linux.resources is the OCI field \"devices\" spelled in another case",
        ))
        .stderr(predicates::function::function(|s: &str| {
            s.lines().count() == 1
        }));
}

#[test]
fn the_shipped_hooks_d_file_is_valid() {
    let text = fs::read_to_string(repo_root().join("packaging/hooks.d/amdgpu-cdi-precreate.json"))
        .expect("hooks.d file");
    let hook: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(hook["version"], "1.0.0");
    assert_eq!(hook["hook"]["path"], "/usr/bin/amdgpu-cdi");
    assert_eq!(
        hook["hook"]["args"],
        serde_json::json!(["amdgpu-cdi", "hook", "precreate"])
    );
    assert_eq!(hook["when"]["always"], true);
    assert_eq!(hook["stages"], serde_json::json!(["precreate"]));
}

#[test]
fn hook_help() {
    let out = amdgpu_cdi()
        .args(["hook", "--help"])
        .assert()
        .success()
        .get_output()
        .clone();
    insta::assert_snapshot!("hook_help", String::from_utf8_lossy(&out.stdout));
}
