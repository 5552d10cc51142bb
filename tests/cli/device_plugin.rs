//! `amdgpu-cdi device-plugin`: arguments and environment are checked here and handed, spelled
//! out, to the `amdgpu-cdi-device-plugin` binary beside `amdgpu-cdi` (stood in for by a script
//! that prints what it was given; the plugin itself is tested in device-plugin/tests).

use std::fs;
use std::path::{Path, PathBuf};

/// A copy of `amdgpu-cdi` in a temp dir, optionally with a fake plugin binary beside it.
fn installed(with_plugin: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = dir.path().join("amdgpu-cdi");
    fs::copy(env!("CARGO_BIN_EXE_amdgpu-cdi"), &binary).expect("copy amdgpu-cdi");
    if with_plugin {
        let plugin = dir.path().join("amdgpu-cdi-device-plugin");
        crate::files::executable(&plugin, "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\"\nexit 7\n");
    }
    (dir, binary)
}

fn command(binary: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(binary);
    for var in [
        "AMDGPU_CDI_DEVICE_PLUGIN_DIR",
        "AMDGPU_CDI_CDI_DIR",
        "AMDGPU_CDI_SYSFS_ROOT",
        "AMDGPU_CDI_DEV_ROOT",
        "AMDGPU_CDI_RESOURCE_STRATEGY",
        "AMDGPU_CDI_ALLOCATION",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn device_plugin_execs_the_plugin_beside_amdgpu_cdi_with_every_setting_spelled_out() {
    let (dir, binary) = installed(true);
    let out = command(&binary)
        .args(["device-plugin", "--strategy", "mixed", "--dev-root=/host"])
        .env("AMDGPU_CDI_CDI_DIR", "/run/cdi")
        .env("AMDGPU_CDI_ALLOCATION", "device-specs")
        .output()
        .expect("run");
    // The script's exit status is the command's: amdgpu-cdi was replaced by it.
    assert_eq!(out.status.code(), Some(7));
    let printed = String::from_utf8(out.stdout).expect("utf-8");
    let expected = format!(
        "{}\n--device-plugin-dir\n/var/lib/kubelet/device-plugins\n--cdi-dir\n/run/cdi\n\
         --sysfs-root\n/sys\n--dev-root\n/host\n--strategy\nmixed\n--allocation\ndevice-specs\n",
        dir.path().join("amdgpu-cdi-device-plugin").display()
    );
    assert_eq!(printed, expected);
}

#[test]
fn device_plugin_without_the_plugin_binary_says_where_it_should_be() {
    let (dir, binary) = installed(false);
    let out = command(&binary).arg("device-plugin").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).expect("utf-8"),
        format!(
            "amdgpu-cdi: cannot run the device plugin: {}/amdgpu-cdi-device-plugin does not \
             exist (install it beside {}, or build it with `cargo build -p \
             amdgpu-cdi-device-plugin`)\n",
            dir.path().display(),
            binary.display()
        )
    );
}

#[test]
fn device_plugin_refuses_bad_settings_before_running_anything() {
    let (_dir, binary) = installed(true);
    let out = command(&binary)
        .arg("device-plugin")
        .env("AMDGPU_CDI_RESOURCE_STRATEGY", "all")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        stderr.starts_with("error: invalid value 'all' for '--strategy <STRATEGY>'"),
        "{stderr}"
    );
}

#[test]
fn device_plugin_help() {
    let out = command(Path::new(env!("CARGO_BIN_EXE_amdgpu-cdi")))
        .args(["device-plugin", "--help"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    insta::assert_snapshot!("help-device-plugin", text);
}
