//! Docker Engine 20.10 (no CDI) with `amdgpu-container-runtime` registered as runtime `amd`:
//! `docker run --runtime amd -e AMD_VISIBLE_DEVICES=0,2` gets fake GPUs 0 and 2 only. The test
//! starts its own dockerd (own data root, exec root, socket) with `AMDGPU_CDI_CONFIG` in its
//! environment, which dockerd passes on to the runtime through containerd.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, busybox_rootfs, fake_gpu_nodes, find_tool, output, prerequisites};

/// What the container prints: its render nodes, then whether kfd and each node are readable.
pub(crate) const LIST: &str = "ls /dev/dri 2>/dev/null | tr '\\n' ' '; head -c 1 /dev/kfd >/dev/null && \
                        echo kfd-readable; for n in /dev/dri/renderD*; do cat $n && echo $n-readable; done";

/// Writes the wrapper's configuration for the three-GPU fixture into `dir`; returns its path.
pub(crate) fn wrapper_config(dir: &Path, dev_root: &Path) -> PathBuf {
    let sysfs =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/three-gpus/sys");
    let path = dir.join("amdgpu-cdi.toml");
    let text = format!(
        "sysfs-root = \"{}\"\ndev-root = \"{}\"\nruntime = \"{}\"\nlog-file = \"{}\"\n",
        sysfs.display(),
        dev_root.display(),
        find_tool("runc").expect("runc").display(),
        dir.join("amdgpu-cdi.log").display()
    );
    fs::write(&path, text).expect("write wrapper config");
    path
}

/// Stops a daemon on drop: SIGTERM, then SIGKILL after a bounded wait; then detaches the mounts
/// it left under its state directory.
pub(crate) struct Daemon {
    child: Child,
    state: PathBuf,
}

impl Daemon {
    /// Wraps a started daemon whose state lives under `state`.
    pub(crate) fn new(child: Child, state: &Path) -> Self {
        Self {
            child,
            state: state.to_path_buf(),
        }
    }

    fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        unmount_under(&self.state);
    }
}

/// Detaches every mount at or below `dir` (deepest first): daemons leave private bind mounts of
/// their state directories behind, which would keep the temp dir from being removed. podman's
/// `container cleanup` (spawned by conmon) and shims may still run with the directory on their
/// command line and mount it again, so this waits for them and repeats (bounded).
pub(crate) fn unmount_under(dir: &Path) {
    for _ in 0..10 {
        let users = wait_until(Duration::from_secs(10), || processes_using(dir) == 0);
        let mounts = mounts_under(dir);
        for point in &mounts {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
        if users && mounts.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Processes other than this one whose command line mentions `dir`.
fn processes_using(dir: &Path) -> usize {
    let needle = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id().to_string();
    let Ok(procs) = fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter(|p| p.file_name() != me.as_str())
        .filter(|p| {
            fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
        .count()
}

/// Mount points at or below `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points
}

/// Polls `ready` every 200 ms until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A running dockerd; fields drop in order, so the daemon stops before its directory goes.
struct Docker {
    _daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Docker {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let dev_root = fake_gpu_nodes(&d.join("devroot"), 3);
        let config = wrapper_config(d, &dev_root);
        let log = fs::File::create(d.join("dockerd.log")).expect("dockerd log");
        let child = Command::new(find_tool("dockerd").expect("dockerd"))
            .env("AMDGPU_CDI_CONFIG", &config)
            .args(["--iptables=false", "--bridge=none", "--storage-driver=vfs"])
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("--add-runtime")
            .arg(format!("amd={}", bin("amdgpu-container-runtime").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let docker = Self {
            _daemon: Daemon::new(child, d),
            dir,
        };
        let up = wait_until(Duration::from_secs(60), || {
            docker
                .cli()
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        assert!(up, "dockerd did not come up: {}", docker.daemon_log());
        let rootfs = busybox_rootfs(docker.dir.path());
        let import = format!(
            "tar -C {} -c . | {} -H unix://{} import - amdgpu-cdi-test",
            rootfs.display(),
            find_tool("docker").expect("docker").display(),
            docker.dir.path().join("docker.sock").display()
        );
        let (ok, _, stderr) = output(Command::new("/bin/sh").args(["-c", &import]));
        assert!(ok, "docker import failed: {stderr}");
        docker
    }

    fn daemon_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    fn cli(&self) -> Command {
        let mut cmd = Command::new(find_tool("docker").expect("docker"));
        cmd.arg("-H").arg(format!(
            "unix://{}",
            self.dir.path().join("docker.sock").display()
        ));
        cmd
    }

    fn run(&self, value: &str, script: &str) -> (bool, String, String) {
        let mut cmd = self.cli();
        cmd.args(["run", "--rm", "--network", "none", "--runtime", "amd", "-e"])
            .arg(format!("AMD_VISIBLE_DEVICES={value}"))
            .args(["amdgpu-cdi-test", "sh", "-c", script]);
        output(&mut cmd)
    }
}

#[test]
fn docker_runtime_wrapper_gives_gpus_0_and_2_only() {
    if !prerequisites(
        "docker_runtime_wrapper_gives_gpus_0_and_2_only",
        &["dockerd", "docker", "runc"],
    ) {
        return;
    }
    let docker = Docker::start();
    let (ok, stdout, stderr) = docker.run("0,2", LIST);
    assert!(ok, "docker run failed: {stderr}\n{}", docker.daemon_log());
    assert_eq!(
        stdout,
        "renderD128 renderD130 kfd-readable\n/dev/dri/renderD128-readable\n/dev/dri/renderD130-readable\n"
    );
    // Nothing requested: no GPU nodes, the container runs.
    let (ok, stdout, stderr) =
        docker.run("void", "ls /dev/dri 2>&1; test -e /dev/kfd || echo no-kfd");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("no-kfd"), "{stdout}");
    // An unknown GPU fails `docker run` with the wrapper's message.
    let (ok, stdout, stderr) = docker.run("0,7", "echo started");
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(
            "OCI runtime create failed: amdgpu-container-runtime: AMD_VISIBLE_DEVICES: no GPU \
             matches \"7\" (valid: all, none, void, indices 0-2,"
        ),
        "{stderr}"
    );
}
