//! `amdgpu-cdi hook prestart` with runc 1.1.5 on a raw bundle, and the hook's refusals on hostile
//! bundles.
//!
//! The fake GPU nodes use misc device numbers runc does NOT allow by default (`10:229` fuse as
//! kfd, `10:237` loop-control and `10:256` vga_arbiter as render nodes), so a node that opens
//! inside the container proves the hook's device cgroup rule, and GPU 0's numbers staying denied
//! prove the cgroup is enforced. (The shared `support::fake_gpu_nodes` numbers 1:3 and 1:5 are in
//! runc's default allow list and could not show that.)
//!
//! The runc tests run the hook as installed by default (live discovery: `--sysfs-root` on the
//! three-GPU fixture, `--dev-root` on the fake nodes); the podman and hostile tests read the GPUs
//! from a CDI spec dir, the other device source.
//!
//! `youki_prestart.rs` runs the same GPU 1 scenario ([`gpu_1_bundle`], [`assert_gpu_1_injected`])
//! with youki.
//!
//! The hostile bundles run the hook directly with a state on stdin: under runc the `/dev` tmpfs
//! would hide the planted `rootfs/dev` symlinks, so the hook's own policy is tested where it
//! matters - on whatever rootfs it is given.

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{self, NodeAccess};

/// kfd and the render nodes of the three-GPU sysfs fixture: (name under dev/, major, minor).
const NODES: [(&str, u64, u64); 4] = [
    ("kfd", 10, 229),
    ("dri/renderD128", 10, 237),
    ("dri/renderD129", 10, 256),
    ("dri/renderD130", 10, 259),
];

/// A fake host `/dev` with kfd and render nodes, and how the hook finds the GPUs: by default a CDI
/// spec dir naming renderD128/129 as GPUs 0 and 1 (`device-source = "cdi"`); with
/// [`FakeHost::discovering`], live discovery of the three-GPU sysfs fixture.
pub(crate) struct FakeHost {
    dev: PathBuf,
    config: PathBuf,
    /// The hook's log file.
    log: PathBuf,
    /// The hook's arguments after the stage.
    args: Vec<String>,
}

impl FakeHost {
    /// Discover the GPUs from `tests/fixtures/hosts/three-gpus` with this fake `/dev`, the way the
    /// hook runs by default (`--sysfs-root`, `--dev-root`).
    fn discovering(mut self, dir: &Path) -> Self {
        let config = dir.join("discover.toml");
        fs::write(&config, format!("log-file = \"{}\"\n", self.log.display()))
            .expect("write discover.toml");
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/three-gpus/sys");
        let dev_root = self.dev.parent().expect("dev root").to_path_buf();
        self.args = vec![
            "--config".into(),
            config.display().to_string(),
            "--sysfs-root".into(),
            fixture.display().to_string(),
            "--dev-root".into(),
            dev_root.display().to_string(),
        ];
        self.config = config;
        self
    }

    /// What the hook has logged so far.
    pub(crate) fn hook_log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn fake_host(dir: &Path) -> FakeHost {
    fake_host_with(dir, NodeAccess::WORLD)
}

/// [`fake_host`] with the nodes' owner and mode set to `access`.
fn fake_host_with(dir: &Path, access: NodeAccess) -> FakeHost {
    let dev = dir.join("devroot/dev");
    fs::create_dir_all(dev.join("dri")).expect("create fake dev");
    for (name, major, minor) in NODES {
        support::char_device(&dev.join(name), major, minor);
        if access != NodeAccess::WORLD {
            access.apply(&dev.join(name));
        }
    }
    let cdi = dir.join("cdi");
    fs::create_dir_all(&cdi).expect("create spec dir");
    let node = |path: &str, host: &str| json!({"path": path, "hostPath": dev.join(host).display().to_string()});
    let spec = json!({
        "cdiVersion": "0.5.0",
        "kind": "amd.com/gpu",
        "devices": [
            {"name": "0", "containerEdits": {"deviceNodes": [node("/dev/dri/renderD128", "dri/renderD128")]}},
            {"name": "1", "containerEdits": {"deviceNodes": [node("/dev/dri/renderD129", "dri/renderD129")]}}
        ],
        "containerEdits": {"deviceNodes": [node("/dev/kfd", "kfd")]}
    });
    fs::write(cdi.join("amd.com-gpu.json"), spec.to_string()).expect("write CDI spec");
    let log = dir.join("hook.log");
    let config = dir.join("config.toml");
    fs::write(
        &config,
        format!(
            "device-source = \"cdi\"\nspec-dirs = [\"{}\"]\nlog-file = \"{}\"\n",
            cdi.display(),
            log.display()
        ),
    )
    .expect("write config.toml");
    let args = vec!["--config".into(), config.display().to_string()];
    FakeHost {
        dev,
        config,
        log,
        args,
    }
}

fn hook_args(host: &FakeHost) -> Vec<String> {
    stage_args(host, "prestart")
}

fn stage_args(host: &FakeHost, stage: &str) -> Vec<String> {
    let mut args: Vec<String> = vec!["amdgpu-cdi".into(), "hook".into(), stage.into()];
    args.extend(host.args.iter().cloned());
    args
}

/// A runc bundle config: busybox `sh -c script`, AMD_VISIBLE_DEVICES=1, the hook registered.
fn bundle_config(host: &FakeHost, script: &str, with_mount_ns: bool) -> serde_json::Value {
    stage_config(host, script, with_mount_ns, "prestart", ROOT)
}

/// The container user of most bundles: uid 0, gid 0.
pub(crate) const ROOT: (u32, u32) = (0, 0);

/// [`bundle_config`] with the hook registered for `stage` (`prestart` or `createRuntime`) and the
/// process running as `user` (uid, gid).
fn stage_config(
    host: &FakeHost,
    script: &str,
    with_mount_ns: bool,
    stage: &str,
    user: (u32, u32),
) -> serde_json::Value {
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
    ];
    if with_mount_ns {
        namespaces.push(json!({"type": "mount"}));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": user.0, "gid": user.1},
            "args": ["/bin/sh", "-c", script],
            "env": ["PATH=/bin", "AMD_VISIBLE_DEVICES=1"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "prestart",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ],
        "hooks": {
            stage: [{
                "path": support::bin("amdgpu-cdi").display().to_string(),
                "args": stage_args(host, stage),
                "timeout": 30
            }]
        },
        "linux": {
            "namespaces": namespaces,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]}
        }
    })
}

/// Waits for a child with a deadline, killing it when the deadline passes; returns (success,
/// stdout, stderr).
pub(crate) fn wait_output(mut child: Child, timeout: Duration) -> (bool, String, String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(_status) = child.try_wait().expect("poll child") {
            let out = child.wait_with_output().expect("collect output");
            return (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "timed out after {timeout:?}; stdout: {} stderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deletes a runc container on drop (it may be left behind by a failed test).
struct RuncContainer {
    root: PathBuf,
    id: String,
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        if let Some(runc) = support::find_tool("runc") {
            let _ = Command::new(runc)
                .arg("--root")
                .arg(&self.root)
                .args(["delete", "--force", &self.id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn runc_prestart_hook_adds_the_requested_gpu_and_the_cgroup_enforces_the_rest() {
    injects_gpu_1(
        "runc_prestart_hook",
        "runc",
        "prestart",
        runc_injects_gpu_1_as,
    );
}

#[test]
fn runc_create_runtime_hook_adds_the_requested_gpu() {
    injects_gpu_1(
        "runc_create_runtime_hook",
        "runc",
        "createRuntime",
        runc_injects_gpu_1_as,
    );
}

/// The GPU 1 scenario on one OCI runtime ([`runc_injects_gpu_1_as`],
/// `youki_prestart::youki_injects_gpu_1_as`): the hook registered for a stage, host nodes with an
/// access, the process running as a user (uid, gid); checks GPU 1 is usable, GPU 0 absent, and a
/// hand-made node with GPU 0's numbers denied by the cgroup; returns the container's output.
pub(crate) type InjectsGpu1 = fn(&str, NodeAccess, (u32, u32)) -> String;

/// Runs `inject` for `stage` over world-accessible nodes as root, when `tool` is there.
pub(crate) fn injects_gpu_1(test: &str, tool: &str, stage: &str, inject: InjectsGpu1) {
    if support::prerequisites(test, &[tool]) {
        inject(stage, NodeAccess::WORLD, ROOT);
    }
}

/// [`InjectsGpu1`] with runc.
pub(crate) fn runc_injects_gpu_1_as(stage: &str, access: NodeAccess, user: (u32, u32)) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (host, bundle) = gpu_1_bundle_as(tmp.path(), stage, access, user);
    let id = format!("amdgpu-cdi-{}-{}", stage.to_lowercase(), std::process::id());
    let state_root = tmp.path().join("runc-root");
    let _cleanup = RuncContainer {
        root: state_root.clone(),
        id: id.clone(),
    };
    let child = Command::new(support::find_tool("runc").expect("runc"))
        .arg("--root")
        .arg(&state_root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runc");
    let (ok, stdout, stderr) = wait_output(child, Duration::from_secs(60));
    let log = host.hook_log();
    assert!(ok, "runc run failed: {stderr}\nhook log:\n{log}");
    assert_gpu_1_injected(&stdout, &stderr, &log);
    stdout
}

/// What the container of [`gpu_1_bundle`] runs: who it runs as and how its nodes look
/// ([`crate::non_root::NODE_PROBE`]), then one marker per check that holds.
const GPU_1_SCRIPT: &str = concat!(
    crate::non_root::node_probe!(),
    "; \
    test -c /dev/kfd && true < /dev/kfd && echo KFD_OPENS; \
    test -c /dev/dri/renderD129 && true < /dev/dri/renderD129 && echo GPU1_OPENS; \
    test -e /dev/dri/renderD128 || echo GPU0_ABSENT; \
    test -c /tmp/gpu0 && echo HANDMADE_PRESENT; \
    true < /tmp/gpu0 2>/dev/null || echo HANDMADE_DENIED; \
    true"
);

/// Writes, under `dir`, a host discovering the three-GPU fixture and a bundle (returned) whose
/// busybox container requests GPU 1 with the hook registered for `stage` and runs
/// [`GPU_1_SCRIPT`]. The image holds a hand-made node with GPU 0's numbers at `/tmp/gpu0`:
/// present, but never allowed by the hook.
pub(crate) fn gpu_1_bundle(dir: &Path, stage: &str) -> (FakeHost, PathBuf) {
    gpu_1_bundle_as(dir, stage, NodeAccess::WORLD, ROOT)
}

/// [`gpu_1_bundle`] over host nodes with `access`, the process running as `user` (uid, gid).
pub(crate) fn gpu_1_bundle_as(
    dir: &Path,
    stage: &str,
    access: NodeAccess,
    user: (u32, u32),
) -> (FakeHost, PathBuf) {
    let host = fake_host_with(dir, access).discovering(dir);
    let bundle = dir.join("bundle");
    let rootfs = support::busybox_rootfs(&bundle);
    support::char_device(&rootfs.join("tmp/gpu0"), 10, 237);
    let config = stage_config(&host, GPU_1_SCRIPT, true, stage, user);
    fs::write(bundle.join("config.json"), config.to_string()).expect("write config.json");
    (host, bundle)
}

/// Checks the output of the [`gpu_1_bundle`] container and the hook's log: GPU 1 and kfd open,
/// GPU 0 absent, the hand-made node denied by the device cgroup, one GPU injected.
pub(crate) fn assert_gpu_1_injected(stdout: &str, stderr: &str, log: &str) {
    for marker in [
        "KFD_OPENS",
        "GPU1_OPENS",
        "GPU0_ABSENT",
        "HANDMADE_PRESENT",
        "HANDMADE_DENIED",
    ] {
        assert!(
            stdout.contains(marker),
            "missing {marker} in container output:\n{stdout}\nstderr: {stderr}\nhook log:\n{log}"
        );
    }
    assert!(log.contains("injected 1"), "hook log: {log}");
}

/// A sleeping process standing in for a container's init, killed on drop.
struct Sleeper(Child);

impl Sleeper {
    /// A sleeper with no namespaces of its own.
    fn start() -> Self {
        Self(
            Command::new("/bin/busybox")
                .args(["sleep", "60"])
                .spawn()
                .expect("spawn sleeper"),
        )
    }

    /// A sleeper in its own user and mount namespaces (`unshare -U -r -m`), standing in for a
    /// rootless container's init before the pivot.
    fn start_namespaced() -> Self {
        let unshare = support::find_tool("unshare").expect("unshare");
        let sleeper = Self(
            Command::new(unshare)
                .args(["-U", "-r", "-m", "--propagation", "private"])
                .args(["/bin/busybox", "sleep", "60"])
                .spawn()
                .expect("spawn unshare"),
        );
        // unshare makes the namespaces, then writes the id maps and the propagation, then execs
        // busybox: only after the exec may another process enter them (entering earlier finds no
        // uid map, so nsenter fails before it reads the hook's state).
        let comm = format!("/proc/{}/comm", sleeper.pid());
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(&comm).is_ok_and(|name| name.trim() != "busybox") {
            assert!(
                Instant::now() < deadline,
                "unshare never ran busybox in its namespaces"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        sleeper
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fake host reading its GPUs from a CDI spec dir ([`fake_host`]) and a bundle without a mount
/// namespace, in a temp dir: the hook, run directly with a state on stdin, then works on the
/// bundle's rootfs (an empty dir to plant things in) directly.
struct BareBundle {
    tmp: tempfile::TempDir,
    host: FakeHost,
    bundle: PathBuf,
    rootfs: PathBuf,
}

impl BareBundle {
    /// The bundle, when root and `tools` are there.
    fn new(test: &str, tools: &[&str]) -> Option<Self> {
        let tmp = support::scratch_dir(test, tools)?;
        let host = fake_host(tmp.path());
        let bundle = tmp.path().join("bundle");
        let rootfs = bundle.join("rootfs");
        fs::create_dir_all(&rootfs).expect("create rootfs");
        let config = bundle_config(&host, "true", false);
        fs::write(bundle.join("config.json"), config.to_string()).expect("write config.json");
        Some(Self {
            tmp,
            host,
            bundle,
            rootfs,
        })
    }

    /// A path in the temp dir, outside the bundle.
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Runs the hook with a state naming a [`Sleeper`] as the container's init: (success, stderr).
    fn run_hook(&self) -> (bool, String) {
        let sleeper = Sleeper::start();
        self.run_hook_with(sleeper.pid(), &[])
    }

    /// Runs the hook with a state naming `pid`, started through `wrapper` (e.g. `setpriv ...`):
    /// (success, stderr).
    fn run_hook_with(&self, pid: u32, wrapper: &[&str]) -> (bool, String) {
        let state = json!({
            "ociVersion": "1.0.2",
            "id": "hostile",
            "status": "created",
            "pid": pid,
            "bundle": self.bundle.display().to_string()
        });
        let hook = support::bin("amdgpu-cdi");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&hook);
                command
            }
            None => Command::new(&hook),
        };
        let mut child = command
            .args(&hook_args(&self.host)[1..])
            .env_remove("AMDGPU_CDI_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hook");
        // A hook that fails before it reads its state closes the pipe: its stderr says why.
        let written = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(state.to_string().as_bytes());
        let (ok, _stdout, mut stderr) = wait_output(child, Duration::from_secs(30));
        if let Err(err) = written {
            stderr.push_str(&format!("\n(writing the state to the hook failed: {err})"));
        }
        (ok, stderr)
    }
}

/// Asserts the hook created nothing in `dir` (`place` says where that is).
fn assert_nothing_in(dir: &Path, place: &str) {
    assert_eq!(
        crate::files::names(dir),
        Vec::<String>::new(),
        "nothing created {place}"
    );
}

/// Asserts the hook's `run` (success, stderr) failed with a message containing `error`; returns
/// the message.
fn assert_refused(run: (bool, String), error: &str) -> String {
    let (ok, stderr) = run;
    assert!(!ok, "hook must refuse");
    assert!(stderr.contains(error), "unclear error: {stderr}");
    stderr
}

#[test]
fn hostile_rootfs_dev_symlink_to_a_host_dir_is_refused() {
    let Some(bare) = BareBundle::new("hostile_rootfs_dev_symlink", &[]) else {
        return;
    };
    let host_dir = bare.path("host-dir");
    fs::create_dir_all(&host_dir).expect("host dir");
    symlink(&host_dir, bare.rootfs.join("dev")).expect("plant dev symlink");
    assert_refused(bare.run_hook(), "/dev is a symlink");
    assert_nothing_in(&host_dir, "on the host");
}

#[test]
fn hostile_rootfs_dri_symlink_to_etc_is_refused() {
    let Some(bare) = BareBundle::new("hostile_rootfs_dri_symlink", &[]) else {
        return;
    };
    let rootfs = &bare.rootfs;
    fs::create_dir_all(rootfs.join("dev")).expect("dev");
    fs::create_dir_all(rootfs.join("etc")).expect("etc");
    symlink("../../etc", rootfs.join("dev/dri")).expect("plant dri symlink");
    // Where `../../etc` would lead from the bundle's rootfs/dev if it were followed naively.
    let escaped = bare.bundle.join("etc");
    assert_refused(bare.run_hook(), "/dev/dri is a symlink");
    assert!(!escaped.exists(), "nothing created outside the rootfs");
    assert_nothing_in(&rootfs.join("etc"), "in the rootfs's /etc");
    assert_eq!(
        crate::files::names(&rootfs.join("dev")),
        vec!["dri".to_string()],
        "not even kfd"
    );
    assert!(!Path::new("/etc/renderD129").exists());
}

/// Issue 12 item 9: a bundle whose `rootfs` is a symlink made the hook create nodes in the
/// symlink's target. runc refuses such a bundle (`invalid rootfs`); the hook refuses it too.
#[test]
fn hostile_symlinked_rootfs_is_refused() {
    let Some(bare) = BareBundle::new("hostile_symlinked_rootfs", &[]) else {
        return;
    };
    let target = bare.path("host-dir");
    fs::create_dir_all(target.join("dev")).expect("host dir");
    fs::remove_dir(&bare.rootfs).expect("remove rootfs dir");
    symlink(&target, &bare.rootfs).expect("plant rootfs symlink");
    let stderr = assert_refused(
        bare.run_hook(),
        &format!(
            "refusing the container rootfs {r}: {r} is a symlink (runc refuses such a bundle",
            r = bare.rootfs.display()
        ),
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert_nothing_in(&target.join("dev"), "in the symlink's target");
}

#[test]
fn hostile_regular_file_where_a_node_goes_is_refused() {
    let Some(bare) = BareBundle::new("hostile_regular_file", &[]) else {
        return;
    };
    let planted = bare.rootfs.join("dev/dri/renderD129");
    fs::create_dir_all(bare.rootfs.join("dev/dri")).expect("dev/dri");
    fs::write(&planted, "not a device").expect("plant file");
    let stderr = assert_refused(bare.run_hook(), "refusing to replace /dev/dri/renderD129");
    assert!(stderr.contains("a regular file"), "unclear error: {stderr}");
    assert_eq!(
        fs::read_to_string(&planted).expect("file kept"),
        "not a device"
    );
    assert_eq!(
        crate::files::names(&bare.rootfs.join("dev")),
        vec!["dri".to_string()],
        "not even kfd"
    );
    assert!(bare.host.dev.join("kfd").exists());
}

#[test]
fn hostile_state_whose_pid_is_gone_is_refused() {
    let Some(bare) = BareBundle::new("hostile_gone_pid", &[]) else {
        return;
    };
    fs::create_dir_all(bare.rootfs.join("dev")).expect("dev");
    let mut gone = Command::new("/bin/busybox")
        .arg("true")
        .spawn()
        .expect("spawn");
    let pid = gone.id();
    gone.wait().expect("reap");
    assert_refused(
        bare.run_hook_with(pid, &[]),
        &format!("container process {pid} is gone"),
    );
    assert_nothing_in(&bare.rootfs.join("dev"), "in the rootfs's /dev");
}

#[test]
fn podman_hooks_d_prestart_file_injects_the_requested_gpu() {
    let Some(tmp) = support::scratch_dir("podman_hooks_d_prestart", &["podman", "runc"]) else {
        return;
    };
    let host = fake_host(tmp.path());
    let rootfs = support::busybox_rootfs(tmp.path());
    // The packaged hooks.d file, pointed at the binary under test and the test configuration.
    let packaged = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/hooks.d/amdgpu-cdi-prestart.json"),
    )
    .expect("read packaging/hooks.d/amdgpu-cdi-prestart.json");
    let mut hook: serde_json::Value = serde_json::from_str(&packaged).expect("hooks.d JSON");
    assert_eq!(hook["stages"], json!(["prestart"]));
    hook["hook"]["path"] = json!(support::bin("amdgpu-cdi").display().to_string());
    hook["hook"]["args"]
        .as_array_mut()
        .expect("args")
        .extend([json!("--config"), json!(host.config.display().to_string())]);
    let hooks_dir = tmp.path().join("hooks.d");
    fs::create_dir_all(&hooks_dir).expect("hooks dir");
    fs::write(hooks_dir.join("amdgpu-cdi-prestart.json"), hook.to_string()).expect("write hook");

    let script = "\
        test -c /dev/kfd && true < /dev/kfd && echo KFD_OPENS; \
        test -c /dev/dri/renderD129 && true < /dev/dri/renderD129 && echo GPU1_OPENS; \
        test -e /dev/dri/renderD128 || echo GPU0_ABSENT; \
        true";
    let mut cmd = support::podman(&tmp.path().join("podman"));
    cmd.arg("--hooks-dir")
        .arg(&hooks_dir)
        .args(["-e", "AMD_VISIBLE_DEVICES=1", "--rootfs"])
        .arg(&rootfs)
        .args(["/bin/sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn podman");
    let (ok, stdout, stderr) = wait_output(child, Duration::from_secs(120));
    let log = host.hook_log();
    assert!(ok, "podman run failed: {stderr}\nhook log:\n{log}");
    for marker in ["KFD_OPENS", "GPU1_OPENS", "GPU0_ABSENT"] {
        assert!(
            stdout.contains(marker),
            "missing {marker} in container output:\n{stdout}\nstderr: {stderr}\nhook log:\n{log}"
        );
    }
}

#[test]
fn rootless_hook_bind_mounts_the_gpu_into_the_container_mount_namespace() {
    let Some(bare) = BareBundle::new("rootless_hook_bind_mounts", &["unshare", "nsenter"]) else {
        return;
    };
    let rootfs = &bare.rootfs;
    fs::create_dir_all(rootfs.join("dev")).expect("dev");
    let sleeper = Sleeper::start_namespaced();
    let pid = sleeper.pid().to_string();
    let nsenter = support::find_tool("nsenter").expect("nsenter");
    let nsenter = nsenter.display().to_string();
    // The hook runs as root of the container's user namespace, like under a rootless engine.
    let (ok, stderr) = bare.run_hook_with(sleeper.pid(), &[&nsenter, "-U", "-t", &pid, "--"]);
    let log = bare.host.hook_log();
    assert!(ok, "hook failed: {stderr}\nhook log:\n{log}");
    assert!(
        log.contains("bind-mounted the host nodes"),
        "hook log: {log}"
    );

    // Inside the container's namespaces the host nodes are mounted and open.
    let render = rootfs.join("dev/dri/renderD129");
    let kfd = rootfs.join("dev/kfd");
    let script = format!(
        "test -c '{r}' && true < '{r}' && test -c '{k}' && true < '{k}' && echo MOUNTED; test -e '{g}' || echo GPU0_ABSENT",
        r = render.display(),
        k = kfd.display(),
        g = rootfs.join("dev/dri/renderD128").display()
    );
    let (inside_ok, stdout, inside_err) = support::output(
        Command::new(&nsenter)
            .args(["-U", "-m", "-t", &pid, "--", "/bin/busybox", "sh", "-c"])
            .arg(&script),
    );
    assert!(inside_ok, "check inside failed: {inside_err}");
    assert!(
        stdout.contains("MOUNTED") && stdout.contains("GPU0_ABSENT"),
        "inside: {stdout}"
    );
    // Outside, only the empty mount points exist: nothing was mounted on the host.
    let outside = fs::symlink_metadata(&render).expect("mount point");
    assert!(outside.file_type().is_file() && outside.len() == 0);
}

#[test]
fn unprivileged_hook_says_what_it_cannot_do() {
    let Some(bare) = BareBundle::new("unprivileged_hook", &["setpriv"]) else {
        return;
    };
    // Readable by the unprivileged user the hook runs as.
    fs::set_permissions(
        bare.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod tempdir");
    fs::create_dir_all(bare.rootfs.join("dev")).expect("dev");
    let sleeper = Sleeper::start();
    let setpriv = support::find_tool("setpriv").expect("setpriv");
    let setpriv = setpriv.display().to_string();
    assert_refused(
        bare.run_hook_with(
            sleeper.pid(),
            &[
                &setpriv,
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ],
        ),
        "the hook runs as an unprivileged user",
    );
    assert_nothing_in(&bare.rootfs.join("dev"), "in the rootfs's /dev");
}
