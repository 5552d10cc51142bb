//! Docker Engine 20.10 started on a `daemon.json` written by `amdgpu-cdi configure docker` on top
//! of a non-trivial existing file runs a GPU container through the configured runtime entry: the
//! real `amdgpu-container-runtime` (the default `--runtime-path`: the wrapper next to
//! `amdgpu-cdi`) injects the fake GPU nodes of a CDI spec for `AMD_VISIBLE_DEVICES=0`.

use std::fs;
use std::process::Command;

use crate::support::{self, Dockerd, bin, busybox_rootfs, fake_gpu_nodes, output};

/// An existing daemon.json with unrelated settings, another runtime and a `features` object.
const EXISTING: &str = r#"{
  "log-level": "warn",
  "storage-driver": "vfs",
  "features": {"buildkit": false},
  "runtimes": {"plain": {"path": "/usr/sbin/runc"}},
  "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 1024, "Soft": 1024}}
}
"#;

#[test]
fn dockerd_runs_a_gpu_container_through_the_configured_runtime() {
    if !support::prerequisites(
        "dockerd_runs_a_gpu_container_through_the_configured_runtime",
        &["dockerd", "docker", "runc"],
    ) {
        return;
    }
    // Short path: dockerd's containerd socket lives under the exec root (108-byte limit).
    let tmp = support::short_tempdir("acd");
    let dir = tmp.path();
    let config = dir.join("daemon.json");
    fs::write(&config, EXISTING).expect("write daemon.json");

    // Fake GPU nodes, a CDI spec for them, and the wrapper's settings.
    let dev_root = fake_gpu_nodes(&dir.join("host"), 1);
    let (_spec_dir, wrapper_config) = support::wrapper_settings_cdi(dir, &dev_root);

    // configure (default runtime path: the wrapper next to amdgpu-cdi).
    let (ok, stdout, stderr) = output(
        Command::new(bin("amdgpu-cdi"))
            .args(["configure", "docker", "--config"])
            .arg(&config),
    );
    assert!(ok, "configure docker failed: {stderr}");
    assert!(
        stdout.contains("systemctl restart docker"),
        "restart hint: {stdout}"
    );
    let written: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&config).expect("daemon.json")).expect("json");
    let wrapper = bin("amdgpu-container-runtime");
    assert_eq!(
        written["runtimes"]["amd"]["path"],
        wrapper.display().to_string()
    );
    assert_eq!(
        written["features"],
        serde_json::json!({"buildkit": false, "cdi": true})
    );
    assert_eq!(written["runtimes"]["plain"]["path"], "/usr/sbin/runc");

    let config_arg = [std::ffi::OsStr::new("--config-file"), config.as_os_str()];
    let daemon = Dockerd::start(dir, &wrapper_config, &config_arg);
    let (ok, info, stderr) = output(
        daemon
            .cli()
            .args(["info", "--format", "{{json .Runtimes}}"]),
    );
    assert!(
        ok && info.contains("\"amd\"") && info.contains("\"plain\""),
        "{info}{stderr}"
    );

    let rootfs = busybox_rootfs(dir);
    daemon.import(&rootfs, "amdgpu-cdi-busybox");

    let run = |env: &[&str], script: &str| {
        let mut cmd = daemon.cli();
        cmd.args(["run", "--rm", "--network", "none", "--runtime", "amd"]);
        for e in env {
            cmd.args(["-e", e]);
        }
        cmd.args(["amdgpu-cdi-busybox", "sh", "-c", script]);
        output(&mut cmd)
    };
    let (ok, stdout, stderr) = run(&["AMD_VISIBLE_DEVICES=0"], support::CDI_GPU_0_PROBE);
    assert!(ok, "GPU container failed: {stdout}{stderr}");
    support::assert_cdi_gpu_0_injected(&stdout, dir);

    // Without a request the configured runtime changes nothing.
    let (ok, stdout, _) = run(&[], "test -e /dev/kfd && echo present || echo absent");
    assert!(
        ok && stdout.trim() == "absent",
        "no request, no GPU: {stdout}"
    );
}
