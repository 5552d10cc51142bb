//! Rootless engines (issue 17): an unprivileged user with subordinate ids runs podman 4.3.1, or
//! runc 1.1.5 with `--rootless true`, and asks for a GPU whose host nodes are `0660 root:<render>`
//! with the user in the render group. Facts with versions are in docs/requests.md ("Rootless
//! engines").
//!
//! A rootless runtime cannot create device nodes: it bind-mounts the host's, which keep the
//! host's owner and group, seen in the container as the overflow ids (65534) unless mapped. runc
//! bind-mounts the node at the *container* path of `linux.devices` (it ignores the CDI
//! `hostPath`), so the fake nodes must sit at `/dev/kfd` and `/dev/dri/renderD12x`: each run
//! happens in a private mount namespace (entered as root, then dropping to the user with
//! `setpriv`) whose `/dev` is a tmpfs holding the host's usual entries and the fake nodes, with the
//! spec dir over `/var/run/cdi` as in [`support::podman_with_spec_dir`]. Nothing outside it
//! changes but the test user, its group and their lines in `/etc/subuid` and `/etc/subgid`,
//! created once and kept (idempotent).
//!
//! What opens the nodes: podman's `--group-add keep-groups` under crun, or the render group mapped
//! into the user namespace (`/etc/subgid` line `<user>:<render gid>:1`) and added by its container
//! gid under runc (`--group-add` or the spec's `additionalGids`, which podman 4.3 cannot read);
//! the wrapper and the prestart hook under `runc --rootless` (one-id maps, setgroups denied, so the
//! process keeps the user's groups).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::non_root::{NODE_PROBE, generate_on_host, probe_lines};
use crate::support::{self, NodeAccess};

/// The test user and group, created once per test process.
const USER: &str = "amdgpu-cdi-rootless";
/// The group owning the fake nodes, standing in for the host's `render` group.
const RENDER: &str = "amdgpu-cdi-render";

/// The test user's ids and its render group's id.
#[derive(Debug, Clone, Copy)]
struct Ids {
    uid: u32,
    gid: u32,
    render: u32,
}

/// Creates [`RENDER`] and [`USER`] (in that group, with 65536 subordinate uids and gids, and the
/// render group mapped by a one-id `/etc/subgid` line) unless they exist. Idempotent.
fn rootless_user() -> Ids {
    static IDS: OnceLock<Ids> = OnceLock::new();
    *IDS.get_or_init(|| {
        let run = |cmd: &mut Command| {
            let (ok, stdout, stderr) = support::output(cmd);
            assert!(ok, "{cmd:?}: {stdout}{stderr}");
            stdout
        };
        run(Command::new("groupadd").args(["-f", RENDER]));
        let id = |args: &[&str]| -> Option<u32> {
            let (ok, stdout, _) = support::output(Command::new("id").args(args));
            ok.then(|| stdout.trim().parse().ok()).flatten()
        };
        if id(&["-u", USER]).is_none() {
            run(Command::new("useradd").args([
                "--create-home",
                "--shell",
                "/bin/sh",
                "--groups",
                RENDER,
                USER,
            ]));
        }
        let render = run(Command::new("getent").args(["group", RENDER]));
        let render: u32 = render
            .split(':')
            .nth(2)
            .and_then(|g| g.parse().ok())
            .unwrap_or_else(|| panic!("getent group {RENDER}: {render}"));
        let has_line = |file: &str, line: &str| {
            fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .any(|l| l == line)
        };
        let has_range = |file: &str| {
            fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    l.strip_prefix(USER)
                        .and_then(|rest| rest.strip_prefix(':'))
                        .is_some_and(|rest| rest.ends_with(":65536"))
                })
        };
        if !has_range("/etc/subuid") {
            run(Command::new("usermod").args(["--add-subuids", "300000-365535", USER]));
        }
        if !has_range("/etc/subgid") {
            run(Command::new("usermod").args(["--add-subgids", "300000-365535", USER]));
        }
        let mapped = format!("{USER}:{render}:1");
        if !has_line("/etc/subgid", &mapped) {
            run(Command::new("usermod").args([
                "--add-subgids",
                &format!("{render}-{render}"),
                USER,
            ]));
        }
        Ids {
            uid: id(&["-u", USER]).expect("uid of the test user"),
            gid: id(&["-g", USER]).expect("gid of the test user"),
            render,
        }
    })
}

/// Chowns `path` and everything below it (not following symlinks) to `ids`' user.
fn chown_tree(path: &Path, ids: Ids) {
    let (ok, _, stderr) = support::output(
        Command::new("chown")
            .args(["-R", "-h", &format!("{}:{}", ids.uid, ids.gid)])
            .arg(path),
    );
    assert!(ok, "chown {}: {stderr}", path.display());
}

/// As root in a private mount namespace: `$1` over `/var/run/cdi` (and an empty `$2` over
/// `/etc/cdi` when the host has one), the v2 `unified` mount detached when `$3` is 1, a tmpfs
/// `/dev` holding the host's usual entries (saved under `$4`), the fake nodes of `$5/dev` and a
/// `/dev/shm` of its own (rootless podman keeps its locks there, named by uid only), then
/// `$6...` run from `$7`... (see [`Rootless::command`]).
const PRELUDE: &str = r#"set -e; spec=$1; etc=$2; hide=$3; saved=$4; fake=$5; shift 5
if [ -d /etc/cdi ]; then mount --bind "$etc" /etc/cdi; fi
mkdir -p /var/run/cdi; mount --bind "$spec" /var/run/cdi
if [ "$hide" = 1 ]; then umount -l /sys/fs/cgroup/unified; fi
mkdir -p "$saved"; mount --rbind /dev "$saved"
mount -t tmpfs -o mode=755 fakedev /dev
mkdir /dev/shm; mount -t tmpfs -o mode=1777 shm /dev/shm
for n in null zero full random urandom tty ptmx fuse pts mqueue net fd stdin stdout stderr; do
  e=$saved/$n
  if [ -L "$e" ]; then cp -P "$e" /dev/$n
  elif [ -d "$e" ]; then mkdir /dev/$n; mount --rbind "$e" /dev/$n
  elif [ -e "$e" ]; then touch /dev/$n; mount --bind "$e" /dev/$n; fi
done
mkdir /dev/dri
for n in kfd $(cd "$fake/dev" && ls dri/*); do touch /dev/$n; mount --bind "$fake/dev/$n" /dev/$n; done
exec "$@""#;

/// A temp dir readable by the test user with a rootfs it owns, fake nodes `0660 root:<render>`
/// for the three-GPU fixture, its generated spec, copies of the binaries and fixture, and a
/// podman state dir.
struct Rootless {
    tmp: tempfile::TempDir,
    ids: Ids,
}

impl Rootless {
    fn new() -> Self {
        let ids = rootless_user();
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod tempdir");
        let rootfs = support::busybox_rootfs(tmp.path());
        // Podman links /etc/mtab when it is missing, as the container's root.
        std::os::unix::fs::symlink("/proc/mounts", rootfs.join("etc/mtab")).expect("mtab");
        chown_tree(&rootfs, ids);
        let access = NodeAccess {
            mode: 0o660,
            uid: 0,
            gid: ids.render,
        };
        let dev_root = support::fake_gpu_nodes_with(&tmp.path().join("host"), 3, access);
        generate_on_host(&dev_root, &tmp.path().join("cdi"));
        // The user runs what it can read: the repository may sit in a directory closed to it.
        let bin = tmp.path().join("bin");
        fs::create_dir(&bin).expect("bin dir");
        for name in ["amdgpu-cdi", "amdgpu-container-runtime"] {
            fs::copy(support::bin(name), bin.join(name)).expect("copy binary");
        }
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/three-gpus/sys");
        let (ok, _, stderr) = support::output(
            Command::new("cp")
                .arg("-a")
                .arg(&fixture)
                .arg(tmp.path().join("sys")),
        );
        assert!(ok, "copy the sysfs fixture: {stderr}");
        let state = tmp.path().join("state");
        fs::create_dir_all(state.join("xdg")).expect("state dir");
        fs::create_dir_all(tmp.path().join("empty-etc-cdi")).expect("empty dir");
        chown_tree(&state, ids);
        fs::set_permissions(
            state.join("xdg"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod XDG_RUNTIME_DIR");
        Self { tmp, ids }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `args` run as the test user (with its groups) from `cwd` in the mount namespace of
    /// [`PRELUDE`], within 120 s; `hide_unified` detaches the cgroup v2 mount there.
    fn command(&self, hide_unified: bool, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args(["120", "unshare", "--mount", "--propagation", "private"])
            .args(["sh", "-c", PRELUDE, "sh"])
            .arg(self.path("cdi"))
            .arg(self.path("empty-etc-cdi"))
            .arg(if hide_unified { "1" } else { "0" })
            .arg(self.path("saved-dev"))
            .arg(self.path("host"))
            .arg(support::find_tool("setpriv").expect("setpriv"))
            .arg(format!("--reuid={}", self.ids.uid))
            .arg(format!("--regid={}", self.ids.gid))
            .args(["--init-groups", "env", "-i", "-C"])
            .arg(cwd)
            .arg(format!("HOME=/home/{USER}"))
            .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(format!(
                "XDG_RUNTIME_DIR={}",
                self.path("state/xdg").display()
            ))
            .args(args);
        cmd
    }

    /// Rootless `podman run` on `runtime` with `args` (then the probe) over the rootfs.
    fn podman(&self, runtime: &str, hide_unified: bool, args: &[&str]) -> (bool, String, String) {
        let root = self.path("state/storage").display().to_string();
        let runroot = self.path("state/run").display().to_string();
        let rootfs = self.path("rootfs").display().to_string();
        let probe = format!("{NODE_PROBE}; cat /proc/self/gid_map");
        let mut full = vec![
            "podman",
            "--root",
            &root,
            "--runroot",
            &runroot,
            "--events-backend=file",
            "--runtime",
            runtime,
            "--cgroup-manager=cgroupfs",
            "run",
            "--rm",
            "--network",
            "none",
        ];
        full.extend(args);
        full.extend(["--rootfs", &rootfs, "sh", "-c", &probe]);
        support::output(&mut self.command(hide_unified, self.tmp.path(), &full))
    }

    /// The precreate hook from the shipped hooks.d file, pointed at the copies, in `hooks.d`.
    fn precreate_hooks_dir(&self) -> PathBuf {
        let shipped = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("packaging/hooks.d/amdgpu-cdi-precreate.json"),
        )
        .expect("shipped hooks.d file");
        let mut hook: serde_json::Value = serde_json::from_str(&shipped).expect("JSON");
        hook["hook"]["path"] = self.path("bin/amdgpu-cdi").display().to_string().into();
        let args = hook["hook"]["args"].as_array_mut().expect("args");
        fs::write(self.path("config.toml"), "").expect("empty config");
        for arg in [
            "--config".into(),
            self.path("config.toml"),
            "--sysfs-root".into(),
            self.path("sys"),
            "--dev-root".into(),
            self.path("host"),
        ] {
            args.push(arg.display().to_string().into());
        }
        let dir = self.path("hooks.d");
        fs::create_dir_all(&dir).expect("hooks dir");
        fs::write(dir.join("amdgpu-cdi-precreate.json"), hook.to_string()).expect("hook");
        dir
    }

    /// Settings for the wrapper and the prestart hook (live discovery over the copies), logging
    /// into a directory the user owns; returns their path.
    fn settings(&self) -> PathBuf {
        let log_dir = self.path("log");
        fs::create_dir_all(&log_dir).expect("log dir");
        chown_tree(&log_dir, self.ids);
        let path = self.path("amdgpu-cdi.toml");
        fs::write(
            &path,
            format!(
                "sysfs-root = \"{}\"\ndev-root = \"{}\"\nruntime = \"{}\"\nlog-file = \"{}\"\n",
                self.path("sys").display(),
                self.path("host").display(),
                support::find_tool("runc").expect("runc").display(),
                log_dir.join("amdgpu-cdi.log").display()
            ),
        )
        .expect("settings");
        path
    }

    /// What the wrapper or hook logged.
    fn log(&self) -> String {
        fs::read_to_string(self.path("log/amdgpu-cdi.log")).unwrap_or_default()
    }

    /// A rootless runc bundle (`runc spec --rootless`, mapped to the user's own uid and gid)
    /// running the probe with `AMD_VISIBLE_DEVICES=1`, with `hooks` set; returns its directory.
    fn bundle(&self, hooks: serde_json::Value) -> PathBuf {
        let bundle = self.path("bundle");
        fs::create_dir_all(&bundle).expect("bundle dir");
        let (ok, _, stderr) = support::output(
            Command::new(support::find_tool("runc").expect("runc"))
                .args(["spec", "--rootless", "--bundle"])
                .arg(&bundle),
        );
        assert!(ok, "runc spec: {stderr}");
        let path = bundle.join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).expect("config")).expect("JSON");
        config["root"]["path"] = self.path("rootfs").display().to_string().into();
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(["sh", "-c", NODE_PROBE]);
        config["process"]["env"]
            .as_array_mut()
            .expect("env")
            .push("AMD_VISIBLE_DEVICES=1".into());
        config["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": self.ids.uid, "size": 1}]);
        config["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": self.ids.gid, "size": 1}]);
        config["hooks"] = hooks;
        fs::write(&path, config.to_string()).expect("write config");
        chown_tree(&bundle, self.ids);
        bundle
    }

    /// `runtime --root <state>/runc --rootless true run --bundle <bundle> <id>` as the user.
    fn runc_run(&self, runtime: &Path, bundle: &Path, id: &str) -> (bool, String, String) {
        let root = self.path("state/runc").display().to_string();
        let runtime = runtime.display().to_string();
        let bundle_arg = bundle.display().to_string();
        let settings = format!("AMDGPU_CDI_CONFIG={}", self.settings().display());
        support::output(&mut self.command(
            false,
            bundle,
            &[
                &settings,
                &runtime,
                "--root",
                &root,
                "--rootless",
                "true",
                "run",
                "--bundle",
                &bundle_arg,
                id,
            ],
        ))
    }
}

impl Drop for Rootless {
    /// Stops the user's podman pause process (it holds the private namespaces), then detaches
    /// what is left mounted below the temp dir.
    fn drop(&mut self) {
        let pid = fs::read_to_string(self.path("state/xdg/libpod/tmp/pause.pid"));
        if let Some(pid) = pid.ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        support::unmount_under(self.tmp.path());
    }
}

/// The container gid the render group maps to, read from a `gid_map` the probe printed.
fn mapped_render_gid(stdout: &str, render: u32) -> u32 {
    stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() == 3 && f[1] == render && f[2] == 1).then_some(f[0])
        })
        .next()
        .unwrap_or_else(|| panic!("render gid {render} is not mapped:\n{stdout}"))
}

/// Asserts a run succeeded and every node line ends in `verdict`.
fn assert_nodes(what: &str, run: &(bool, String, String), verdict: &str) {
    let (ok, stdout, stderr) = run;
    assert!(ok, "{what}: the container failed:\n{stdout}{stderr}");
    let nodes: Vec<&str> = probe_lines(stdout)
        .into_iter()
        .filter(|l| l.starts_with("/dev/"))
        .collect();
    let kfd = nodes.iter().any(|l| l.starts_with("/dev/kfd "));
    assert!(kfd && nodes.len() == 2, "{what}: {stdout}{stderr}");
    assert!(
        nodes.iter().all(|l| l.ends_with(verdict)),
        "{what}: expected {verdict}:\n{stdout}{stderr}"
    );
}

fn prerequisites(test: &str, tools: &[&str]) -> bool {
    let mut all = vec![
        "unshare",
        "setpriv",
        "timeout",
        "newuidmap",
        "newgidmap",
        "useradd",
    ];
    all.extend(tools);
    support::prerequisites(test, &all)
}

#[test]
fn rootless_podman_with_runc_opens_the_nodes_through_the_mapped_render_group() {
    if !prerequisites("rootless_podman_runc", &["podman", "runc"]) {
        return;
    }
    let host = Rootless::new();
    // The shipped spec loads and runc bind-mounts the host nodes, which keep their owner: the
    // container's root is not in their group.
    let plain = host.podman("runc", false, &["--device", "amd.com/gpu=1"]);
    assert_nodes("plain", &plain, "denied");
    let gid = mapped_render_gid(&plain.1, host.ids.render);
    assert!(
        plain
            .1
            .contains(&format!("node /dev/kfd 65534:{gid} 660 denied")),
        "{}",
        plain.1
    );
    // runc drops the user's supplementary groups: podman's keep-groups annotation is for crun.
    let keep = host.podman(
        "runc",
        false,
        &["--group-add", "keep-groups", "--device", "amd.com/gpu=1"],
    );
    assert_nodes("keep-groups under runc", &keep, "denied");
    // The host's gid as a container gid is some subordinate id, not the render group.
    let render = host.ids.render.to_string();
    let host_gid = host.podman(
        "runc",
        false,
        &["--group-add", &render, "--device", "amd.com/gpu=1"],
    );
    assert_nodes("the host gid", &host_gid, "denied");
    // The mapped render group's container gid opens them, as root and as uid 1000.
    let gid = gid.to_string();
    for user in ["0:0", "1000:1000"] {
        let run = host.podman(
            "runc",
            false,
            &[
                "--user",
                user,
                "--group-add",
                &gid,
                "--device",
                "amd.com/gpu=1",
            ],
        );
        assert_nodes(&format!("--user {user} --group-add {gid}"), &run, "opens");
    }
    // A gid map giving the render group its host number inside makes the host's gid (what
    // `generate --additional-gids` writes into a 0.7.0 spec) the one to add.
    let identity = format!("{render}:{gid}:1");
    let run = host.podman(
        "runc",
        false,
        &[
            "--uidmap",
            "0:0:1",
            "--gidmap",
            "0:0:1",
            "--gidmap",
            &identity,
            "--group-add",
            &render,
            "--device",
            "amd.com/gpu=1",
        ],
    );
    assert_nodes("render gid mapped to itself", &run, "opens");
    assert!(
        run.1
            .contains(&format!("node /dev/kfd 65534:{render} 660 opens")),
        "{}",
        run.1
    );
    // So does the precreate hook's injection.
    let hooks = host.precreate_hooks_dir().display().to_string();
    let hook = host.podman(
        "runc",
        false,
        &[
            "--hooks-dir",
            &hooks,
            "-e",
            "AMD_VISIBLE_DEVICES=1",
            "--group-add",
            &gid,
        ],
    );
    assert_nodes("precreate hook", &hook, "opens");
    let hook = host.podman(
        "runc",
        false,
        &["--hooks-dir", &hooks, "-e", "AMD_VISIBLE_DEVICES=1"],
    );
    assert_nodes("precreate hook, no group", &hook, "denied");
}

#[test]
fn rootless_podman_with_crun_keeps_the_users_groups() {
    if !prerequisites("rootless_podman_crun", &["podman", "crun"]) {
        return;
    }
    let keep = ["--group-add", "keep-groups", "--device", "amd.com/gpu=1"];
    // On a hybrid hierarchy with a controller on the v2 mount, crun 1.8 refuses every container,
    // even with `--cgroups disabled`; without that mount it runs. Each host has its own podman
    // pause process, whose mount namespace every later podman of the user joins.
    let unified = fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| !c.trim().is_empty());
    if unified {
        let hybrid = Rootless::new();
        let mut disabled = vec!["--cgroups", "disabled"];
        disabled.extend(keep);
        let (ok, stdout, stderr) = hybrid.podman("crun", false, &disabled);
        assert!(!ok, "crun ran on the hybrid hierarchy: {stdout}");
        assert!(
            stderr.contains("cgroups in hybrid mode not supported"),
            "{stderr}"
        );
    }
    let host = Rootless::new();
    let run = host.podman("crun", unified, &keep);
    assert_nodes("keep-groups under crun", &run, "opens");
    let mut as_user = vec!["--user", "1000:1000"];
    as_user.extend(keep);
    let run = host.podman("crun", unified, &as_user);
    assert_nodes("keep-groups under crun as 1000", &run, "opens");
}

#[test]
fn the_wrapper_injects_under_rootless_runc() {
    if !prerequisites("rootless_wrapper", &["runc"]) {
        return;
    }
    let host = Rootless::new();
    let bundle = host.bundle(serde_json::json!({}));
    let run = host.runc_run(
        &host.path("bin/amdgpu-container-runtime"),
        &bundle,
        "rl-wrap",
    );
    assert_nodes("wrapper", &run, "opens");
    assert!(run.1.contains("node /dev/dri/renderD129 "), "{}", run.1);
    let log = host.log();
    assert!(log.contains("injected amd.com/gpu=1"), "log: {log}");
}

#[test]
fn the_prestart_hook_joins_the_user_namespace_under_rootless_runc() {
    if !prerequisites("rootless_prestart", &["runc"]) {
        return;
    }
    let host = Rootless::new();
    let settings = host.settings();
    let bundle = host.bundle(serde_json::json!({"prestart": [{
        "path": host.path("bin/amdgpu-cdi").display().to_string(),
        "args": ["amdgpu-cdi", "hook", "prestart", "--config", settings.display().to_string()],
        "timeout": 30
    }]}));
    let runc = support::find_tool("runc").expect("runc");
    let run = host.runc_run(&runc, &bundle, "rl-hook");
    let log = host.log();
    assert_nodes(&format!("prestart hook, log: {log}"), &run, "opens");
    assert!(run.1.contains("node /dev/dri/renderD129 "), "{}", run.1);
    assert!(
        log.contains("rootless: bind-mounted the host nodes, device cgroup unchanged"),
        "log: {log}"
    );
}
