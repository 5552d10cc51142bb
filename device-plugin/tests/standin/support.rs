//! The harness: a fake host (an example sysfs tree and a dev root with its nodes), the plugin
//! binary; the kubelet stand-in is in `kubelet.rs`.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the repository")
        .to_path_buf()
}

/// An example host's sysfs tree.
pub fn example_sysfs(name: &str) -> PathBuf {
    repo_root().join("examples/hosts").join(name).join("sys")
}

/// Render node names (`renderD128`, ...) of an example host, placeholders included.
pub fn render_nodes(host: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(example_sysfs(host).join("class/drm"))
        .expect("class/drm of the example")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("renderD"))
        .collect();
    names.sort();
    names
}

/// A node: a temp dir with `sys` (a symlink to an example's tree, switchable), `dev/kfd`,
/// `dev/dri/renderD*`, the kubelet's device plugin directory and the CDI directory.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    /// A node with the nodes of every listed example (a partition switch needs both layouts).
    pub fn new(hosts: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let node = Self { dir };
        fs::create_dir_all(node.path("dev/dri")).expect("dev/dri");
        fs::create_dir_all(node.plugin_dir()).expect("device plugin dir");
        fs::create_dir_all(node.cdi_dir()).expect("cdi dir");
        fs::write(node.path("dev/kfd"), "").expect("kfd");
        for host in hosts {
            for name in render_nodes(host) {
                fs::write(node.path("dev/dri").join(name), "").expect("render node");
            }
        }
        node.use_host(hosts[0]);
        node
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.path("device-plugins")
    }

    pub fn cdi_dir(&self) -> PathBuf {
        self.path("cdi")
    }

    pub fn sysfs(&self) -> PathBuf {
        self.path("sys")
    }

    /// Points `sys` at an example host's tree (atomically, as a partition switch would change
    /// sysfs under a running plugin).
    pub fn use_host(&self, host: &str) {
        let temp = self.path("sys.new");
        let _ = fs::remove_file(&temp);
        symlink(example_sysfs(host), &temp).expect("symlink");
        fs::rename(&temp, self.sysfs()).expect("switch sys");
    }

    /// The render node a device of the spec uses, e.g. `renderD130`.
    pub fn render_node_of(&self, device: &str) -> String {
        let spec = cdi::codec::load(&self.cdi_dir().join("amd.com-gpu.yaml")).expect("spec");
        let edits = spec
            .devices
            .iter()
            .find(|d| d.name == device)
            .unwrap_or_else(|| panic!("no device {device} in the spec"));
        let path = &edits.container_edits.device_nodes[0].path;
        path.rsplit('/').next().expect("node name").to_string()
    }
}

/// The plugin binary, running.
pub struct RunningPlugin {
    child: Child,
    log: PathBuf,
}

impl RunningPlugin {
    /// Starts the plugin on `node` with extra arguments (`--strategy mixed`, ...).
    pub fn start(node: &Node, args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_amdgpu-cdi-device-plugin"));
        command
            .arg("--device-plugin-dir")
            .arg(node.plugin_dir())
            .arg("--cdi-dir")
            .arg(node.cdi_dir())
            .arg("--sysfs-root")
            .arg(node.sysfs())
            .arg("--dev-root")
            .arg(node.dir.path())
            .args(args);
        Self::spawn(command, node)
    }

    /// Starts the plugin on `node` configured by environment variables only (as the DaemonSet
    /// does): `env` first, then the node's directories.
    pub fn start_with_env(node: &Node, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_amdgpu-cdi-device-plugin"));
        command.envs(env.iter().copied());
        command
            .env("AMDGPU_CDI_DEVICE_PLUGIN_DIR", node.plugin_dir())
            .env("AMDGPU_CDI_CDI_DIR", node.cdi_dir())
            .env("AMDGPU_CDI_SYSFS_ROOT", node.sysfs())
            .env("AMDGPU_CDI_DEV_ROOT", node.dir.path());
        Self::spawn(command, node)
    }

    fn spawn(mut command: Command, node: &Node) -> Self {
        let log = node.path(&format!("plugin-{}.log", nanos()));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start the plugin");
        Self { child, log }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"))
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("signal the plugin");
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the plugin to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Waits until the log holds `text`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "the plugin did not log {text:?} within {timeout:?}:\n{}",
            self.log()
        );
    }
}

impl Drop for RunningPlugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Nanoseconds since the epoch (CLOCK_REALTIME, as the stand-in's timestamps).
pub fn nanos() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_nanos()).expect("nanoseconds fit")
}
