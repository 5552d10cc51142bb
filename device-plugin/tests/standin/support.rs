//! The harness: a fake host (an example sysfs tree and a dev root with its nodes), the plugin
//! binary, and the Go kubelet stand-in built from the official API (tests/go/kubelet-standin).

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the repository")
        .to_path_buf()
}

/// True under CI, where the end-to-end tests must run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The stand-in binary, built once per test process; `None` (with the reason printed) when it
/// cannot be built outside CI. Under CI a missing stand-in fails the test.
pub fn standin(test: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(build_standin);
    match built {
        Ok(path) => Some(path.clone()),
        Err(reason) => {
            assert!(
                !in_ci(),
                "{test}: {reason} (CI=true: the device plugin's end-to-end tests must not skip)"
            );
            eprintln!("SKIPPED {test}: {reason}");
            None
        }
    }
}

fn build_standin() -> Result<PathBuf, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root to build the kubelet stand-in in the sid engine root".into());
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kubelet-standin/kubelet-standin");
    let output = Command::new(repo_root().join("tests/go/build-kubelet-standin"))
        .arg(&out)
        .output()
        .map_err(|e| format!("cannot run tests/go/build-kubelet-standin: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cannot build the kubelet stand-in: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(out)
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
pub struct Plugin {
    child: Child,
    log: PathBuf,
}

impl Plugin {
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
    pub fn start_with_env(node: &Node, env: &[(String, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_amdgpu-cdi-device-plugin"));
        command.envs(env.iter().map(|(k, v)| (k, v)));
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

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Go kubelet stand-in, running, driven line by line.
pub struct Standin {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Standin {
    /// Starts the stand-in on `dir` (which it empties, as the kubelet does).
    pub fn start(binary: &Path, dir: &Path) -> Self {
        let mut child = Command::new(binary)
            .arg("-dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the stand-in");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut standin = Self {
            child,
            stdin,
            stdout,
        };
        let ready = standin.read();
        assert_eq!(ready["ready"], true, "{ready}");
        standin
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("stand-in output");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stand-in said {line:?}: {e}"))
    }

    /// Runs one command; panics on `{"error": ...}`.
    pub fn cmd(&mut self, line: &str) -> Value {
        let value = self.try_cmd(line);
        assert!(value.get("error").is_none(), "{line}: {value}");
        value
    }

    /// Runs one command and returns whatever it answered.
    pub fn try_cmd(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").expect("stand-in input");
        self.stdin.flush().expect("stand-in input");
        self.read()
    }

    /// The ids and health of a resource's last list.
    pub fn devices(&mut self, resource: &str) -> Vec<(String, String)> {
        let value = self.cmd(&format!("devices {resource}"));
        value["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().expect("id").to_string(),
                    d["health"].as_str().expect("health").to_string(),
                )
            })
            .collect()
    }

    /// Stops it (its kubelet.sock is removed).
    pub fn quit(mut self) {
        let _ = self.try_cmd("quit");
        let _ = self.child.wait();
    }
}

impl Drop for Standin {
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

/// Strings of a JSON array.
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}
