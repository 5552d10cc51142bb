//! Shared harness for the command-line tests: the binaries, the fixture directories, and the
//! preamble most tests share (a command on an example host's sysfs tree, run to success).

#![allow(dead_code, unreachable_pub)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `amdgpu-cdi` as an assert_cmd command.
pub fn amdgpu_cdi() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_amdgpu-cdi"));
    cmd.env_remove("AMDGPU_CDI_CONFIG");
    cmd
}

/// The sysfs tree of example host `host` (`examples/hosts/<host>/sys`).
pub fn host_sysfs(host: &str) -> PathBuf {
    repo_root().join("examples/hosts").join(host).join("sys")
}

/// `amdgpu-cdi <command> --sysfs-root <sysfs>`: a command that reads the GPUs of a sysfs tree.
pub fn on_sysfs(command: &str, sysfs: impl AsRef<OsStr>) -> assert_cmd::Command {
    let mut cmd = amdgpu_cdi();
    cmd.arg(command).arg("--sysfs-root").arg(sysfs);
    cmd
}

/// Runs `cmd`, which must succeed (a failure shows the command and its output), and returns its
/// output.
pub fn run_ok(cmd: &mut assert_cmd::Command) -> Output {
    cmd.assert().success().get_output().clone()
}

/// Runs `cmd`, which must succeed, and returns its standard output.
pub fn stdout_of(cmd: &mut assert_cmd::Command) -> String {
    String::from_utf8(run_ok(cmd).stdout).expect("utf-8 on stdout")
}

/// What `amdgpu-cdi <command> --format json <extra>` prints for example host `host` (`gpus`, or
/// `generate` for the spec); the command must succeed.
pub fn json_of_host(command: &str, host: &str, extra: &[&str]) -> serde_json::Value {
    let out = run_ok(
        on_sysfs(command, host_sysfs(host))
            .args(["--format", "json"])
            .args(extra),
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Fails the test, showing `text`, unless `text` contains `part`.
#[track_caller]
pub fn assert_contains(text: &str, part: &str) {
    assert!(text.contains(part), "{text}");
}

/// Fails the test, showing `text`, if `text` contains `part`.
#[track_caller]
pub fn assert_lacks(text: &str, part: &str) {
    assert!(!text.contains(part), "{text}");
}

/// Copies a tree, keeping symlinks as symlinks (sysfs trees are made of relative links).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            let link = fs::read_link(entry.path()).expect("read link");
            std::os::unix::fs::symlink(link, &target).expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}
