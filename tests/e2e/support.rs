//! Shared harness for the end-to-end tests: prerequisites, a busybox rootfs, fake GPU nodes, and
//! preconfigured engine commands.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::skip::in_ci;

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
    crate::skip::unavailable(test, &format!("needs {}", missing.join(", ")));
    false
}

/// Finds an executable among the repository's own tools (`target/tools/bin`, filled by
/// `scripts/install-youki`), then in the usual system directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let repo_tools = concat!(env!("CARGO_MANIFEST_DIR"), "/target/tools/bin");
    [
        repo_tools,
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

/// A temp dir for `test` when it can run (its [`prerequisites`] of `tools` hold), else `None`.
pub fn scratch_dir(test: &str, tools: &[&str]) -> Option<tempfile::TempDir> {
    prerequisites(test, tools).then(|| tempfile::tempdir().expect("tempdir"))
}

/// A temp dir with a short path, `/tmp/<prefix><random>`: daemon sockets below it must fit in 108
/// bytes, whatever `TMPDIR` says.
pub fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("tempdir")
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

/// Who owns a fake GPU node and its permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAccess {
    /// The permission bits (set with chmod, whatever the umask).
    pub mode: u32,
    /// The owning user.
    pub uid: u32,
    /// The owning group.
    pub gid: u32,
}

impl NodeAccess {
    /// `0666 root:root`: anyone opens the node (what most tests need).
    pub const WORLD: Self = Self {
        mode: 0o666,
        uid: 0,
        gid: 0,
    };
    /// `0660 root:44`, as distributions ship `/dev/kfd` and the render nodes (group `render` or
    /// `video`, whose number differs per distribution; 44 is Debian's `video`): a user outside
    /// the group cannot open the node on the host.
    pub const RENDER_GROUP: Self = Self {
        mode: 0o660,
        uid: 0,
        gid: 44,
    };

    /// Gives `path` this owner and mode.
    pub fn apply(self, path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(self.uid)),
            Some(nix::unistd::Gid::from_raw(self.gid)),
        )
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        fs::set_permissions(path, fs::Permissions::from_mode(self.mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }
}

/// Creates fake GPU nodes under `dev_root/dev`: `kfd` (1:5, like /dev/zero) and `gpus` render
/// nodes `dri/renderD128..` (1:3, like /dev/null) that really open inside a container whose device
/// cgroup allows them. Returns the dev root.
pub fn fake_gpu_nodes(dev_root: &Path, gpus: u32) -> PathBuf {
    fake_gpu_nodes_with(dev_root, gpus, NodeAccess::WORLD)
}

/// Makes the character device `path` with the numbers `major:minor`, mode 0666 (before the umask).
pub fn char_device(path: &Path, major: u64, minor: u64) {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    mknod(
        path,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
}

/// [`fake_gpu_nodes`] with the nodes' owner and mode set to `access`.
pub fn fake_gpu_nodes_with(dev_root: &Path, gpus: u32, access: NodeAccess) -> PathBuf {
    let dri = dev_root.join("dev/dri");
    fs::create_dir_all(&dri).expect("create dev/dri");
    let kfd = dev_root.join("dev/kfd");
    char_device(&kfd, 1, 5);
    let mut nodes = vec![kfd];
    for i in 0..gpus {
        let path = dri.join(format!("renderD{}", 128 + i));
        char_device(&path, 1, 3);
        nodes.push(path);
    }
    if access != NodeAccess::WORLD {
        for node in &nodes {
            access.apply(node);
        }
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

pub use crate::roots::output;

/// Runs `podman run` (from [`podman`]) seeing only `spec_dir`, within 120 s.
///
/// Podman 4.3 reads only the default spec dirs (`cdi_spec_dirs` arrived in later releases), so
/// podman runs in a private mount namespace where `spec_dir` is bind-mounted over `/var/run/cdi`
/// and an empty dir over `/etc/cdi` when the host has one (podman reads no missing dir, and the
/// test creates none there): the host's specs are neither seen nor touched.
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
        "if [ -d /etc/cdi ]; then mount --bind \"$etc\" /etc/cdi; fi; ",
        "mkdir -p /var/run/cdi; mount --bind \"$run\" /var/run/cdi; ",
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

/// A temp dir with a busybox rootfs and a spec dir for `podman run --device` (CDI) through
/// [`podman_with_spec_dir`]; detaches what podman left mounted on drop.
pub struct PodmanCdi {
    dir: tempfile::TempDir,
    /// The spec dir podman sees (as `/var/run/cdi`); not created.
    pub spec_dir: PathBuf,
    rootfs: String,
}

impl PodmanCdi {
    /// The setup, when root, podman, runc, unshare and timeout are there.
    pub fn new(test: &str) -> Option<Self> {
        let dir = scratch_dir(test, &["podman", "runc", "unshare", "timeout"])?;
        let rootfs = busybox_rootfs(dir.path()).display().to_string();
        let spec_dir = dir.path().join("cdi");
        Some(Self {
            dir,
            spec_dir,
            rootfs,
        })
    }

    /// `name` in the temp dir (e.g. `host` for a fake host).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `sh -c script` in a container on the busybox rootfs with `args` (`--device ...`,
    /// `--user ...`): (success, stdout, stderr).
    pub fn run(&self, args: &[&str], script: &str) -> (bool, String, String) {
        let mut all = args.to_vec();
        all.extend(["--rootfs", &self.rootfs, "sh", "-c", script]);
        output(&mut podman_with_spec_dir(
            &self.path("podman"),
            &self.spec_dir,
            &all,
        ))
    }
}

impl Drop for PodmanCdi {
    fn drop(&mut self) {
        unmount_under(self.dir.path());
    }
}

/// An engine set up to give a container the GPUs its `AMD_VISIBLE_DEVICES` names (podman 4.3 with
/// the precreate hook, Docker 20.10 with the runtime wrapper).
pub trait VisibleDevices {
    /// Runs `sh -c script` in a container with `args` (`--user 1000:1000`, ...) and
    /// `AMD_VISIBLE_DEVICES=value`: (success, stdout, stderr).
    fn run(&self, args: &[&str], value: &str, script: &str) -> (bool, String, String);
}

/// What a GPU probe container prints: its render nodes on one line, then whether `/dev/kfd` and
/// each render node can be read.
pub const GPU_PROBE: &str = "ls /dev/dri 2>/dev/null | tr '\\n' ' '; head -c 1 /dev/kfd >/dev/null && \
                        echo kfd-readable; for n in /dev/dri/renderD*; do cat $n && echo $n-readable; done";

/// Writes the wrapper's settings for the three-GPU sysfs fixture over `dev_root` into `dir`
/// (live discovery); returns the settings path.
pub fn wrapper_settings_discover(dir: &Path, dev_root: &Path) -> PathBuf {
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
    fs::write(&path, text).expect("write wrapper settings");
    path
}

/// Writes a CDI spec for one fake GPU under `dev_root` into `dir/cdi` and wrapper settings that
/// take devices from that spec dir (`device-source = "cdi"`) into `dir`. Returns (spec dir,
/// settings path); the wrapper logs to `dir/wrapper.log`.
pub fn wrapper_settings_cdi(dir: &Path, dev_root: &Path) -> (PathBuf, PathBuf) {
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
    let settings = dir.join("amdgpu-cdi.toml");
    fs::write(
        &settings,
        format!(
            "runtime = \"{}\"\ndevice-source = \"cdi\"\nspec-dirs = [\"{}\"]\nlog-file = \"{}\"\n",
            find_tool("runc").expect("runc").display(),
            spec_dir.display(),
            dir.join("wrapper.log").display()
        ),
    )
    .expect("write wrapper settings");
    (spec_dir, settings)
}

/// Polls `ready` every 200 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A daemon started by a test, stopped on drop (SIGTERM, then SIGKILL after a bounded wait), after
/// which the mounts it left under its state directory are detached.
pub struct Daemon {
    child: Child,
    state: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr to `state/<name>.log`.
    pub fn spawn(mut cmd: Command, state: &Path, name: &str) -> Self {
        let log = state.join(format!("{name}.log"));
        let file = fs::File::create(&log).expect("daemon log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child,
            state: state.to_path_buf(),
            log,
        }
    }

    /// Waits until `ready` holds; panics with the daemon's log if it exits or times out.
    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("daemon exited with {status}:\n{}", self.log());
            }
            if ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("daemon did not come up within {timeout:?}:\n{}", self.log());
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `client version` succeeds: the daemon answers (see [`Daemon::wait_ready`]).
    pub fn wait_answering(&mut self, timeout: Duration, client: &Command) {
        self.wait_ready(timeout, || {
            quiet_success(
                Command::new(client.get_program())
                    .args(client.get_args())
                    .arg("version"),
            )
        });
    }

    fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if !wait_until(Duration::from_secs(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        unmount_under(&self.state);
    }
}

/// A dockerd with its own data root, exec root and socket under `dir`, stopped on drop. Keep
/// `dir` short: the containerd socket under the exec root must fit in 108 bytes.
pub struct Dockerd {
    daemon: Daemon,
    socket: PathBuf,
}

impl Dockerd {
    /// Starts dockerd with `extra` arguments and `AMDGPU_CDI_CONFIG=settings` in its environment
    /// (dockerd -> containerd -> shim -> wrapper: the wrapper finds its settings there).
    pub fn start(dir: &Path, settings: &Path, extra: &[&std::ffi::OsStr]) -> Self {
        let socket = dir.join("docker.sock");
        let mut cmd = Command::new(find_tool("dockerd").expect("dockerd"));
        cmd.env("AMDGPU_CDI_CONFIG", settings)
            .args(["--iptables=false", "--bridge=none"])
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args(extra);
        let mut dockerd = Self {
            daemon: Daemon::spawn(cmd, dir, "dockerd"),
            socket,
        };
        let client = dockerd.cli();
        dockerd
            .daemon
            .wait_answering(Duration::from_secs(60), &client);
        dockerd
    }

    /// `docker -H <this daemon>`.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(find_tool("docker").expect("docker"));
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket.display()));
        cmd
    }

    /// Imports `rootfs` as image `name` (`tar -C rootfs -c . | docker import - name`).
    pub fn import(&self, rootfs: &Path, name: &str) {
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar");
        let pipe = tar.stdout.take().expect("tar stdout");
        let (ok, _, stderr) = output(self.cli().args(["import", "-", name]).stdin(pipe));
        assert!(
            tar.wait().expect("wait for tar").success(),
            "tar of the rootfs failed"
        );
        assert!(ok, "docker import: {stderr}");
    }

    /// What dockerd has logged so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

/// A containerd started on `config` (which sets its own root, state and `grpc.address` socket),
/// stopped on drop.
pub struct Containerd {
    daemon: Daemon,
    socket: PathBuf,
}

impl Containerd {
    /// Starts containerd with `AMDGPU_CDI_CONFIG=settings` (containerd -> shim -> wrapper).
    pub fn start(dir: &Path, config: &Path, socket: &Path, settings: &Path) -> Self {
        let mut cmd = Command::new(find_tool("containerd").expect("containerd"));
        cmd.env("AMDGPU_CDI_CONFIG", settings)
            .arg("--config")
            .arg(config);
        let mut containerd = Self {
            daemon: Daemon::spawn(cmd, dir, "containerd"),
            socket: socket.to_path_buf(),
        };
        let client = containerd.ctr();
        containerd
            .daemon
            .wait_answering(Duration::from_secs(30), &client);
        containerd
    }

    /// `ctr --address <this daemon>`.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new(find_tool("ctr").expect("ctr"));
        cmd.arg("--address").arg(&self.socket);
        cmd
    }

    /// What containerd has logged so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

/// Runs `cmd` with its output discarded; true when it ran and succeeded.
fn quiet_success(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Detaches every mount at or below `dir` (deepest first): daemons leave private bind mounts of
/// their state directories behind, which would keep the temp dir from being removed. podman's
/// `container cleanup` (spawned by conmon) and shims may still run with the directory on their
/// command line and mount it again, so this waits for them and repeats (bounded).
pub fn unmount_under(dir: &Path) {
    for _ in 0..10 {
        let idle = wait_until(Duration::from_secs(10), || processes_using(dir) == 0);
        let mounts = mounts_under(dir);
        for point in &mounts {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
        if idle && mounts.is_empty() {
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

/// A container script for the one-GPU spec of [`wrapper_settings_cdi`]: the numbers of `/dev/kfd`
/// and `renderD128`, then `opened` once both were read.
pub const CDI_GPU_0_PROBE: &str = "stat -c '%n %t:%T' /dev/kfd /dev/dri/renderD128 && \
    head -c 4 /dev/kfd >/dev/null && cat /dev/dri/renderD128 && echo opened";

/// Checks the output of [`CDI_GPU_0_PROBE`] and that the wrapper logged the injection to
/// `dir/wrapper.log` (see [`wrapper_settings_cdi`]).
pub fn assert_cdi_gpu_0_injected(stdout: &str, dir: &Path) {
    assert!(stdout.contains("/dev/kfd 1:5"), "kfd injected: {stdout}");
    assert!(
        stdout.contains("/dev/dri/renderD128 1:3"),
        "render node injected: {stdout}"
    );
    assert!(
        stdout.contains("opened"),
        "nodes open inside the container: {stdout}"
    );
    let log = fs::read_to_string(dir.join("wrapper.log")).expect("wrapper log: the wrapper ran");
    assert!(log.contains("injected amd.com/gpu=0"), "wrapper log: {log}");
}
