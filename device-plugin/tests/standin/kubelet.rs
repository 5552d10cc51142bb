//! The kubelet side of the device plugin's end-to-end tests: the Go kubelet stand-in
//! (`tests/go/kubelet-standin`, built from the official `k8s.io/kubelet` device plugin API in the
//! sid engine root) and a line-by-line driver for it. Shared by the plugin's own tests and the
//! workspace's end-to-end tests (`#[path]`), so it depends on nothing but std, nix and serde_json.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The repository: the nearest ancestor of the including crate holding the stand-in's build
/// script.
fn repository() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|dir| dir.join("tests/go/build-kubelet-standin").is_file())
        .unwrap_or(here)
        .to_path_buf()
}

/// The stand-in binary, built once per test process; `None` (with the reason printed) when it
/// cannot be built outside CI. Under CI a missing stand-in fails the test.
pub fn standin(test: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(build_standin);
    match built {
        Ok(path) => Some(path.clone()),
        Err(reason) => {
            crate::skip::unavailable(test, reason);
            None
        }
    }
}

fn build_standin() -> Result<PathBuf, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root to build the kubelet stand-in in the sid engine root".into());
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kubelet-standin/kubelet-standin");
    let output = Command::new(repository().join("tests/go/build-kubelet-standin"))
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

    /// A resource's last list: each device's `id`, `health` and `numa`.
    pub fn list(&mut self, resource: &str) -> Vec<Value> {
        match self.cmd(&format!("devices {resource}"))["devices"].take() {
            Value::Array(devices) => devices,
            other => panic!("devices of {resource}: {other}"),
        }
    }

    /// The ids and health of a resource's last list.
    pub fn devices(&mut self, resource: &str) -> Vec<(String, String)> {
        let string = |device: &Value, key: &str| device[key].as_str().expect(key).to_string();
        self.list(resource)
            .iter()
            .map(|d| (string(d, "id"), string(d, "health")))
            .collect()
    }

    /// The device ids `GetPreferredAllocation` prefers for `request`, `RESOURCE SIZE AVAILABLE
    /// MUST` as the `preferred` command takes them.
    pub fn preferred(&mut self, request: &str) -> Vec<String> {
        strings(&self.cmd(&format!("preferred {request}"))["device_ids"])
    }

    /// The CDI device names `Allocate` returns for `request`, `RESOURCE IDS` as the `allocate`
    /// command takes them.
    pub fn cdi_devices(&mut self, request: &str) -> Vec<String> {
        strings(&self.cmd(&format!("allocate {request}"))["cdi_devices"])
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

/// Strings of a JSON array.
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}
