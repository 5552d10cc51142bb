//! Shared harness for the end-to-end tests: prerequisites, a busybox rootfs, fake GPU nodes, and
//! preconfigured engine commands.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// True when running under CI, where every prerequisite must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Returns true when the test can run. Without root or with a missing tool it panics under CI
/// (end-to-end tests must never skip there) and otherwise prints why it skips.
#[must_use]
pub fn prerequisites(test: &str, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    for tool in tools {
        if find_tool(tool).is_none() {
            missing.push((*tool).to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("{test}: needs {}", missing.join(", "));
    assert!(
        !in_ci(),
        "{reason} (CI=true: end-to-end tests must not skip)"
    );
    eprintln!("SKIPPED {reason}");
    false
}

/// Finds an executable in the usual system directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|dir| Path::new(dir).join(name))
    .find(|p| p.is_file())
}

/// Path of a binary built from this package.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "amdgpu-cdi" => PathBuf::from(env!("CARGO_BIN_EXE_amdgpu-cdi")),
        "amdgpu-container-runtime" => PathBuf::from(env!("CARGO_BIN_EXE_amdgpu-container-runtime")),
        other => panic!("unknown binary {other}"),
    }
}

/// Builds a minimal busybox rootfs in `dir` (busybox-static from Debian).
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).expect("create rootfs/bin");
    for sub in ["dev", "proc", "sys", "tmp", "etc", "root"] {
        fs::create_dir_all(rootfs.join(sub)).expect("create rootfs dir");
    }
    fs::copy("/bin/busybox", bin.join("busybox")).expect("copy /bin/busybox (busybox-static)");
    for applet in [
        "sh", "ls", "cat", "test", "echo", "head", "stat", "sleep", "id", "true",
    ] {
        symlink("busybox", bin.join(applet)).expect("symlink applet");
    }
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    fs::write(rootfs.join("etc/group"), "root:x:0:\n").expect("group");
    rootfs
}

/// Creates fake GPU nodes under `dev_root/dev`: `kfd` (1:5, like /dev/zero) and `gpus` render
/// nodes `dri/renderD128..` (1:3, like /dev/null) that really open inside a container whose device
/// cgroup allows them. Returns the dev root.
pub fn fake_gpu_nodes(dev_root: &Path, gpus: u32) -> PathBuf {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let dri = dev_root.join("dev/dri");
    fs::create_dir_all(&dri).expect("create dev/dri");
    let mode = Mode::from_bits_truncate(0o666);
    mknod(
        &dev_root.join("dev/kfd"),
        SFlag::S_IFCHR,
        mode,
        makedev(1, 5),
    )
    .expect("mknod kfd");
    for i in 0..gpus {
        let path = dri.join(format!("renderD{}", 128 + i));
        mknod(&path, SFlag::S_IFCHR, mode, makedev(1, 3)).expect("mknod render node");
    }
    dev_root.to_path_buf()
}

/// `podman` as root with the flags these machines need (runc, cgroupfs, no network, ulimits).
/// The caller adds `--device`, `--hooks-dir`, `--rootfs DIR` and the command.
pub fn podman(state: &Path) -> Command {
    let mut cmd = Command::new(find_tool("podman").expect("podman"));
    cmd.arg("--root")
        .arg(state.join("storage"))
        .arg("--runroot")
        .arg(state.join("run"))
        .args([
            "--runtime",
            "runc",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ])
        .arg("run")
        .args(["--rm", "--network", "none"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]);
    cmd
}

/// Runs a command and returns (success, stdout, stderr), with a readable panic on spawn failure.
pub fn output(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `podman run` (from [`podman`]) seeing only `spec_dir`, within 120 s.
///
/// Podman 4.3 reads only the default spec dirs (`cdi_spec_dirs` arrived in later releases), so
/// podman runs in a private mount namespace where `spec_dir` is bind-mounted over `/var/run/cdi`
/// and an empty dir over `/etc/cdi`: the host's specs are neither seen nor touched.
pub fn podman_with_spec_dir(state: &Path, spec_dir: &Path, args: &[&str]) -> Command {
    let empty = state.join("empty-etc-cdi");
    std::fs::create_dir_all(&empty).expect("create empty dir");
    let podman = podman(state);
    let mut cmd = Command::new("timeout");
    cmd.args([
        "120",
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
    ])
    .arg(concat!(
        "set -e; etc=$1; run=$2; shift 2; ",
        "mkdir -p /etc/cdi /var/run/cdi; ",
        "mount --bind \"$etc\" /etc/cdi; mount --bind \"$run\" /var/run/cdi; ",
        "exec \"$@\""
    ))
    .arg("sh")
    .arg(&empty)
    .arg(spec_dir)
    .arg(podman.get_program())
    .args(podman.get_args())
    .args(args);
    cmd
}
