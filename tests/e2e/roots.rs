//! Today's engines, run from the Debian roots `scripts/build-engine-roots` builds under
//! `target/engine-roots/<suite>` (trixie: Docker 26.1, containerd 1.7, podman 5.4, CDI library 0.8;
//! sid: Docker 28.5, containerd 2.1, podman 5.8, CDI library 1.0, Go with the Kubernetes APIs).
//!
//! A test enters a root with [`EngineRoot::enter`]: a holder process (`unshare --mount --pid
//! --fork`) makes a private mount and PID namespace, mounts a throw-away overlay of the root (so
//! tests never change the cached root and never see each other's files), a fresh `/proc`, `/sys`
//! and `/dev` (rbind, slave), tmpfs over the engines' state dirs (overlayfs cannot be their backing
//! filesystem), and binds the test's scratch dir and the repository at their own paths, so a path
//! means the same thing on both sides, then pivots into the overlay. Commands run in it with
//! `nsenter`; the host reaches its files through the holder's `/proc/<pid>/root`. The holder is
//! the namespace's init: when the test ends, or dies, its stdin closes, it exits, and
//! the kernel kills everything left in the namespace; nothing leaks onto the host.
//!
//! Also used by the CLI tests (`#[path]`) for the roots' Go toolchains, so it depends on nothing
//! but std and nix.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/build-engine-roots` puts the roots.
pub const ROOTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/engine-roots");

/// The `PATH` commands get inside a root.
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The directories of a root that engines keep state in: tmpfs in each session.
const STATE_DIRS: &[&str] = &[
    "run",
    "tmp",
    "var/lib/docker",
    "var/lib/containerd",
    "var/lib/containers",
    "root",
];

/// The holder: sets up the namespace, prints `ready <host pid>`, then waits for its stdin to close.
/// Arguments: the root, the session dir, then the dirs to bind at their own paths (a dir inside
/// an earlier one after it). It ends with `pivot_root` into the overlay, not a chroot: a process
/// that joins a mount namespace (`nsenter`, and `runc exec` joining a container's, which engines
/// create from this one) gets the namespace's root, which under a mere chroot is the host's.
const HOLDER: &str = r#"set -eu
root=$1; session=$2; shift 2
read -r hostpid _ < /proc/self/stat
m=$session/merged
mkdir -p "$session/upper" "$session/work" "$m"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$session/upper,workdir=$session/work" "$m"
mount -t proc proc "$m/proc"
for d in sys dev; do
    mount --rbind "/$d" "$m/$d"
    mount --make-rslave "$m/$d"
done
for d in $STATE_DIRS; do
    mkdir -p "$m/$d"
    mount -t tmpfs -o mode=0755 tmpfs "$m/$d"
done
chmod 1777 "$m/tmp"
for dir in "$@"; do
    mkdir -p "$m$dir"
    mount --bind "$dir" "$m$dir"
done
mkdir -p "$m/.host"
cd "$m"
pivot_root . .host
cd /
umount -l /.host
echo "ready $hostpid"
while read -r _; do :; done
"#;

pub use crate::skip::unavailable;

/// A root built by `scripts/build-engine-roots`, with the engine versions it recorded.
pub struct EngineRoot {
    suite: String,
    dir: PathBuf,
    versions: BTreeMap<String, String>,
}

impl EngineRoot {
    /// The root of `suite`, for running its engines; `None` (after printing why) when it is
    /// missing or the test does not run as root. Under `CI=true` either fails the test.
    pub fn open(test: &str, suite: &str) -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            unavailable(test, "needs root");
            return None;
        }
        Self::find(test, suite)
    }

    /// The root of `suite`, for its Go toolchain and packages (no privileges needed); `None`
    /// (after printing why) when it is missing, which fails the test under `CI=true`. Prints the
    /// root's versions.
    pub fn find(test: &str, suite: &str) -> Option<Self> {
        let dir = Path::new(ROOTS_DIR).join(suite);
        let versions_file = dir.join("engine-root/versions");
        let Ok(text) = fs::read_to_string(&versions_file) else {
            unavailable(
                test,
                &format!(
                    "needs the {suite} engine root (scripts/build-engine-roots {suite}): \
                     {} is missing",
                    versions_file.display()
                ),
            );
            return None;
        };
        let versions: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        eprintln!("{test}: {suite} root: {}", text.trim().replace('\n', " "));
        Some(Self {
            suite: suite.to_string(),
            dir,
            versions,
        })
    }

    /// The root's directory on the host.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The version the root recorded for `name` (`docker`, `containerd`, `podman`, `runc`, `cdi`,
    /// `go`, ...).
    pub fn version(&self, name: &str) -> &str {
        self.versions
            .get(name)
            .unwrap_or_else(|| panic!("the {} root records no {name} version", self.suite))
    }

    /// The suite name (`trixie`, `sid`).
    pub fn suite(&self) -> &str {
        &self.suite
    }

    /// Builds the Go program in `src` with this root's Go toolchain and Go packages (see
    /// [`go_build`]). The toolchain is a static binary: this runs on the host, unprivileged,
    /// without entering the root. The build cache lives in `target/engine-roots/go-cache/<suite>`.
    pub fn go_build(&self, src: &Path, tags: &[&str], out: &Path) -> Result<(), String> {
        let goroot = self.dir.join("usr/lib/go");
        go_build(
            &GoToolchain {
                go: goroot.join("bin/go"),
                goroot: Some(goroot),
                gopath: self.dir.join("usr/share/gocode"),
                cache: Path::new(ROOTS_DIR).join("go-cache").join(&self.suite),
            },
            src,
            tags,
            out,
        )
    }

    /// Enters a throw-away copy of the root, with `scratch` (a fresh dir of the test's) and the
    /// repository bound at their own paths. The session's own files go to `scratch/session`.
    pub fn enter(&self, scratch: &Path) -> Session {
        let session = scratch.join("session");
        fs::create_dir_all(&session).expect("create the session dir");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut holder = Command::new("unshare")
            .args([
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
                "sh",
                "-c",
                HOLDER,
                "holder",
            ])
            .arg(&self.dir)
            .arg(&session)
            .arg(repo)
            .arg(scratch)
            .env("STATE_DIRS", STATE_DIRS.join(" "))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run unshare (util-linux)");
        let stdout = holder.stdout.take().expect("holder stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let Some(pid) = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse::<u32>().ok())
        else {
            let _ = holder.kill();
            let out = holder.wait_with_output().expect("holder output");
            panic!(
                "cannot enter the {} root: {}",
                self.suite,
                String::from_utf8_lossy(&out.stderr)
            );
        };
        Session {
            stdin: holder.stdin.take(),
            holder,
            pid,
            scratch: scratch.to_path_buf(),
            daemons: Vec::new(),
        }
    }
}

/// A daemon running in a [`Session`]: the `nsenter` on the host side and its log file.
struct RootDaemon {
    name: String,
    child: Child,
    log: PathBuf,
}

/// A session in an engine root (see the module doc); everything in it dies on drop.
pub struct Session {
    holder: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    scratch: PathBuf,
    daemons: Vec<RootDaemon>,
}

impl Session {
    /// `program` run in the root, with a clean environment (`PATH`, `HOME=/root`) plus `env`
    /// (`KEY=VALUE` entries). Add arguments to the returned command.
    pub fn command_env(&self, env: &[&str], program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.pid))
            .args([
                "--mount",
                "--pid",
                "--root",
                "--wd",
                "--",
                "/usr/bin/env",
                "-i",
            ])
            .arg(format!("PATH={ROOT_PATH}"))
            .arg("HOME=/root")
            .args(env)
            .arg(program);
        cmd
    }

    /// `program` run in the root with a clean environment.
    pub fn command(&self, program: &str) -> Command {
        self.command_env(&[], program)
    }

    /// Runs `program args...` in the root; panics with its output unless it succeeds; returns
    /// its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let (ok, stdout, stderr) = output(self.command(program).args(args));
        assert!(
            ok,
            "{program} {} failed in the root:\n{stdout}{stderr}",
            args.join(" ")
        );
        stdout
    }

    /// The host's view of `inside` (an absolute path in the root), through the holder's
    /// `/proc/<pid>/root`. Symbolic links on the way are resolved here, inside the root: the
    /// kernel would resolve an absolute one (Debian's `/var/run -> /run`) against the host's
    /// root, and a test would write the host's `/run` instead of the session's.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        let root = PathBuf::from(format!("/proc/{}/root", self.pid));
        let mut resolved = PathBuf::from("/");
        let mut pending: Vec<String> = inside
            .split('/')
            .rev()
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        let mut links = 0;
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = resolved.join(&component);
            let on_host = root.join(candidate.strip_prefix("/").expect("absolute"));
            match fs::read_link(&on_host) {
                Ok(target) if links < 40 => {
                    links += 1;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        resolved = PathBuf::from("/");
                    }
                    pending.extend(
                        target
                            .split('/')
                            .rev()
                            .filter(|c| !c.is_empty())
                            .map(String::from),
                    );
                }
                _ => resolved = candidate,
            }
        }
        root.join(resolved.strip_prefix("/").expect("absolute"))
    }

    /// Writes `contents` to `inside`, creating its parent dirs.
    pub fn write(&self, inside: &str, contents: &str) {
        let path = self.host_path(inside);
        fs::create_dir_all(path.parent().expect("parent")).expect("create parent dirs");
        fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {inside}: {e}"));
    }

    /// Reads `inside`.
    pub fn read(&self, inside: &str) -> String {
        fs::read_to_string(self.host_path(inside))
            .unwrap_or_else(|e| panic!("cannot read {inside} in the root: {e}"))
    }

    /// Starts a daemon (`env`, `program`, `args`) in the root, logging to `scratch/<name>.log`,
    /// and waits (up to `timeout`) until `ready` holds; panics with the log if it exits first.
    pub fn start_daemon(
        &mut self,
        name: &str,
        env: &[&str],
        argv: &[&str],
        timeout: Duration,
        mut ready: impl FnMut(&Self) -> bool,
    ) {
        let log = self.scratch.join(format!("{name}.log"));
        let file = fs::File::create(&log).expect("daemon log");
        let child = self
            .command_env(env, argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.push(RootDaemon {
            name: name.to_string(),
            child,
            log,
        });
        let deadline = Instant::now() + timeout;
        loop {
            let daemon = self.daemons.last_mut().expect("just pushed");
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", self.log(name));
            }
            if ready(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not come up within {timeout:?}:\n{}",
                self.log(name)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What daemon `name` has logged so far.
    pub fn log(&self, name: &str) -> String {
        self.daemons
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| fs::read_to_string(&d.log).ok())
            .unwrap_or_default()
    }

    /// Stops daemon `name` (SIGTERM, SIGKILL after 20 s) and forgets it.
    pub fn stop_daemon(&mut self, name: &str) {
        if let Some(i) = self.daemons.iter().position(|d| d.name == name) {
            let mut daemon = self.daemons.remove(i);
            stop(&mut daemon.child);
        }
    }

    /// Starts containerd (`containerd`, config `/etc/containerd/config.toml` if present) and
    /// waits for its socket to answer.
    pub fn start_containerd(&mut self, env: &[&str]) {
        self.start_daemon(
            "containerd",
            env,
            &["containerd"],
            Duration::from_secs(60),
            |root| quiet_success(root.command("ctr").arg("version")),
        );
    }

    /// Starts dockerd on the running containerd (config `/etc/docker/daemon.json` if present)
    /// and waits until `docker version` answers.
    pub fn start_dockerd(&mut self, env: &[&str], extra: &[&str]) {
        let mut argv = vec![
            "dockerd",
            "--containerd",
            "/run/containerd/containerd.sock",
            "--iptables=false",
            "--bridge=none",
        ];
        argv.extend_from_slice(extra);
        self.start_daemon("dockerd", env, &argv, Duration::from_secs(90), |root| {
            quiet_success(root.command("docker").arg("version"))
        });
    }

    /// Imports the rootfs dir `rootfs` (a host path under the scratch dir) as Docker image
    /// `name` (`tar -C rootfs -c . | docker import - name`).
    pub fn docker_import(&self, rootfs: &Path, name: &str) {
        let script = format!(
            "tar -C '{}' -c . | docker import - {name}",
            rootfs.display()
        );
        self.run("sh", &["-c", &script]);
    }
}

impl Drop for Session {
    /// Daemons first, newest first (dockerd before its containerd), each given time to clean up
    /// its containers; then the holder, whose exit kills whatever is left in the namespace.
    fn drop(&mut self) {
        while let Some(mut daemon) = self.daemons.pop() {
            stop(&mut daemon.child);
        }
        drop(self.stdin.take());
        if !wait_for(&mut self.holder, Duration::from_secs(20)) {
            let _ = self.holder.kill();
            let _ = self.holder.wait();
        }
    }
}

/// Stops the process an `nsenter` started (its only child): SIGTERM, then SIGKILL after 20 s;
/// reaps the `nsenter`.
fn stop(nsenter: &mut Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let children = format!("/proc/{0}/task/{0}/children", nsenter.id());
    let pids: Vec<i32> = fs::read_to_string(children)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    if !wait_for(nsenter, Duration::from_secs(20)) {
        for pid in &pids {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        let _ = nsenter.kill();
        let _ = nsenter.wait();
    }
}

/// Waits up to `timeout` for `child` to exit; true when it did.
fn wait_for(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
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

/// Runs `cmd` with its output discarded; true when it ran and succeeded.
fn quiet_success(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Go toolchain and the Go packages it builds against, offline.
pub struct GoToolchain {
    /// The `go` binary.
    pub go: PathBuf,
    /// Its `GOROOT` when not where the binary finds it itself.
    pub goroot: Option<PathBuf>,
    /// The `GOPATH` holding the packages (Debian's `/usr/share/gocode`).
    pub gopath: PathBuf,
    /// The build cache dir.
    pub cache: PathBuf,
}

/// Builds the Go program in `src` offline in GOPATH mode with `tags`, statically
/// (`CGO_ENABLED=0`, so a binary built in a root also runs on the host), into `out`. It is built
/// under a per-process name and renamed into place: test processes running in parallel never
/// write a binary another one is executing. Builds with the same cache take turns (a lock file
/// next to it): on a cold cache one process compiles the dependencies and the others then find
/// them cached, instead of all compiling them at once. A failed build is an `Err` with go's
/// output.
pub fn go_build(
    toolchain: &GoToolchain,
    src: &Path,
    tags: &[&str],
    out: &Path,
) -> Result<(), String> {
    fs::create_dir_all(&toolchain.cache)
        .map_err(|e| format!("cannot create {}: {e}", toolchain.cache.display()))?;
    let lock_path = toolchain.cache.with_extension("lock");
    let lock = fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    let partial = out.with_extension(format!("partial.{}", std::process::id()));
    let mut cmd = Command::new(&toolchain.go);
    cmd.current_dir(src)
        .env_clear()
        .env("PATH", ROOT_PATH)
        .env("HOME", &toolchain.cache)
        .env("GO111MODULE", "off")
        .env("GOPATH", &toolchain.gopath)
        .env("GOCACHE", &toolchain.cache)
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0");
    if let Some(goroot) = &toolchain.goroot {
        cmd.env("GOROOT", goroot);
    }
    cmd.arg("build");
    if !tags.is_empty() {
        cmd.arg("-tags").arg(tags.join(","));
    }
    cmd.arg("-o").arg(&partial).arg(".");
    let (ok, stdout, stderr) = output(&mut cmd);
    if !ok {
        return Err(format!(
            "go build of {} with {} failed:\n{stdout}{stderr}",
            src.display(),
            toolchain.go.display()
        ));
    }
    fs::rename(&partial, out).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            out.display()
        )
    })
}
