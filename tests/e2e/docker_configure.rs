//! Docker Engine 20.10 started on a `daemon.json` written by `amdgpu-cdi configure docker` on top
//! of a non-trivial existing file runs a GPU container through the configured runtime entry: the
//! real `amdgpu-container-runtime` (the default `--runtime-path`: the wrapper next to
//! `amdgpu-cdi`) injects the fake GPU nodes of a CDI spec for `AMD_VISIBLE_DEVICES=0`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, bin, busybox_rootfs, fake_gpu_nodes, find_tool, output};

/// A dockerd with its own sockets and directories, stopped (SIGTERM, then SIGKILL) on drop.
struct Dockerd {
    child: Child,
    socket: PathBuf,
}

impl Dockerd {
    fn start(dir: &Path, config: &Path, wrapper_config: &Path) -> Self {
        let socket = dir.join("docker.sock");
        let log = fs::File::create(dir.join("dockerd.log")).expect("dockerd log");
        let child = Command::new(find_tool("dockerd").expect("dockerd"))
            .args(["--iptables=false", "--bridge=none"])
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--config-file")
            .arg(config)
            // dockerd -> containerd -> shim -> wrapper: the wrapper finds its settings here.
            .env("AMDGPU_CDI_CONFIG", wrapper_config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut daemon = Dockerd { child, socket };
        daemon.wait_ready(dir);
        daemon
    }

    fn wait_ready(&mut self, dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
                panic!("dockerd exited with {status} on the configured daemon.json:\n{log}");
            }
            if self.socket.exists() && output(self.docker().arg("version")).0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "dockerd did not answer on {} within 60s",
            self.socket.display()
        );
    }

    fn docker(&self) -> Command {
        let mut cmd = Command::new(find_tool("docker").expect("docker"));
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket.display()));
        cmd
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An existing daemon.json with unrelated settings, another runtime and a `features` object.
const EXISTING: &str = r#"{
  "log-level": "warn",
  "storage-driver": "vfs",
  "features": {"buildkit": false},
  "runtimes": {"plain": {"path": "/usr/sbin/runc"}},
  "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 1024, "Soft": 1024}}
}
"#;

fn runc() -> PathBuf {
    find_tool("runc").expect("runc")
}

#[test]
fn dockerd_runs_a_gpu_container_through_the_configured_runtime() {
    if !support::prerequisites(
        "dockerd_runs_a_gpu_container_through_the_configured_runtime",
        &["dockerd", "docker", "runc"],
    ) {
        return;
    }
    // Short path: dockerd's containerd socket lives under the exec root (108-byte limit).
    let tmp = tempfile::Builder::new()
        .prefix("acd")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let dir = tmp.path();
    let config = dir.join("daemon.json");
    fs::write(&config, EXISTING).expect("write daemon.json");

    // Fake GPU nodes, a CDI spec for them, and the wrapper's settings.
    let dev_root = fake_gpu_nodes(&dir.join("host"), 1);
    let spec_dir = dir.join("cdi");
    fs::create_dir_all(&spec_dir).expect("spec dir");
    let spec = serde_json::json!({
        "cdiVersion": "0.5.0",
        "kind": "amd.com/gpu",
        "devices": [{"name": "0", "containerEdits": {"deviceNodes": [
            {"path": "/dev/dri/renderD128", "hostPath": dev_root.join("dev/dri/renderD128")}
        ]}}],
        "containerEdits": {"deviceNodes": [
            {"path": "/dev/kfd", "hostPath": dev_root.join("dev/kfd")}
        ]}
    });
    fs::write(spec_dir.join("amd.com-gpu.json"), spec.to_string()).expect("write spec");
    let wrapper_log = dir.join("wrapper.log");
    let wrapper_config = dir.join("amdgpu-cdi.toml");
    fs::write(
        &wrapper_config,
        format!(
            "runtime = \"{}\"\ndevice-source = \"cdi\"\nspec-dirs = [\"{}\"]\nlog-file = \"{}\"\n",
            runc().display(),
            spec_dir.display(),
            wrapper_log.display()
        ),
    )
    .expect("write wrapper settings");

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

    let daemon = Dockerd::start(dir, &config, &wrapper_config);
    let (ok, info, stderr) =
        output(
            daemon
                .docker()
                .args(["info", "--format", "{{json .Runtimes}}"]),
        );
    assert!(
        ok && info.contains("\"amd\"") && info.contains("\"plain\""),
        "{info}{stderr}"
    );

    let rootfs = busybox_rootfs(dir);
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let pipe = tar.stdout.take().expect("tar stdout");
    let (ok, _, stderr) = output(
        daemon
            .docker()
            .args(["import", "-", "amdgpu-cdi-busybox"])
            .stdin(pipe),
    );
    assert!(
        tar.wait().expect("wait for tar").success(),
        "tar of the rootfs failed"
    );
    assert!(ok, "docker import: {stderr}");

    let run = |env: &[&str], script: &str| {
        let mut cmd = daemon.docker();
        cmd.args(["run", "--rm", "--network", "none", "--runtime", "amd"]);
        for e in env {
            cmd.args(["-e", e]);
        }
        cmd.args(["amdgpu-cdi-busybox", "sh", "-c", script]);
        output(&mut cmd)
    };
    let (ok, stdout, stderr) = run(
        &["AMD_VISIBLE_DEVICES=0"],
        "stat -c '%n %t:%T' /dev/kfd /dev/dri/renderD128 && head -c 4 /dev/kfd >/dev/null && cat /dev/dri/renderD128 && echo opened",
    );
    assert!(ok, "GPU container failed: {stdout}{stderr}");
    assert!(stdout.contains("/dev/kfd 1:5"), "kfd injected: {stdout}");
    assert!(
        stdout.contains("/dev/dri/renderD128 1:3"),
        "render node injected: {stdout}"
    );
    assert!(
        stdout.contains("opened"),
        "nodes open inside the container: {stdout}"
    );
    let log = fs::read_to_string(&wrapper_log).expect("wrapper log: the wrapper ran");
    assert!(log.contains("injected amd.com/gpu=0"), "wrapper log: {log}");

    // Without a request the configured runtime changes nothing.
    let (ok, stdout, _) = run(&[], "test -e /dev/kfd && echo present || echo absent");
    assert!(
        ok && stdout.trim() == "absent",
        "no request, no GPU: {stdout}"
    );
}
