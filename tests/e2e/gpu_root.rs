//! The GPU host every test of today's engines uses: the `mi210x4` example host (four MI210s whose
//! render minors 128..131 come in KFD probe order, not PCI order) over four fake GPU nodes, a
//! busybox rootfs, and a session in an engine root (see `roots`) with the project's binaries and
//! these files at the same paths inside and out.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use cdi::version::{KNOWN_VERSIONS, Version};

use crate::roots::{self, EngineRoot, Session};
use crate::support::{self, NodeAccess};

/// The example host whose sysfs the spec is generated from.
pub const SYSFS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hosts/mi210x4/sys");

/// The render node of each GPU index of `mi210x4` (PCI order): GPU 1 (0000:23:00.0) is probed
/// last, so it has renderD131.
pub const RENDER_OF_INDEX: [&str; 4] = ["renderD129", "renderD131", "renderD128", "renderD130"];
/// The ROCm uuid of GPU 1.
pub const UUID_OF_GPU_1: &str = "GPU-f07655db2e3690b4";
/// The PCI name of the GPU with renderD130, and that node.
pub const PCI_NAME: (&str, &str) = ("0000:63:00.0", "renderD130");

/// Lists `/dev/dri` on one line, then `kfd` once `/dev/kfd` was read, then `read <node>` for every
/// render node that opens.
pub const PROBE: &str = "echo $(ls /dev/dri 2>/dev/null); \
    head -c 1 /dev/kfd >/dev/null && echo kfd; \
    for n in /dev/dri/*; do test -e \"$n\" && cat \"$n\" && echo \"read $n\"; done; true";

/// What [`PROBE`] prints in a container given exactly these render nodes (and `/dev/kfd`).
pub fn probe_sees(renders: &[&str]) -> String {
    let mut text = format!("{}\nkfd\n", renders.join(" "));
    for r in renders {
        text.push_str(&format!("read /dev/dri/{r}\n"));
    }
    text
}

/// The known spec version after `version`.
pub fn next_version(version: Version) -> Version {
    *KNOWN_VERSIONS
        .iter()
        .filter(|v| **v > version)
        .min()
        .expect("a newer known version")
}

/// A test's scratch dir (short, under /tmp: sockets live below it), the fake host under it and a
/// session in `root`. Field order matters: the session ends before the dir goes.
pub struct GpuRoot {
    /// The session in the root.
    pub session: Session,
    /// The busybox rootfs (a dir).
    pub rootfs: PathBuf,
    /// The fake host's dev root (holds `dev/kfd`, `dev/dri/renderD128..131`).
    pub dev_root: PathBuf,
    scratch: tempfile::TempDir,
}

impl GpuRoot {
    /// Enters `root` with the fake host ready; no spec is written yet.
    pub fn enter(root: &EngineRoot) -> Self {
        Self::enter_with(root, NodeAccess::WORLD)
    }

    /// [`GpuRoot::enter`] with the fake nodes' owner and mode set to `access`.
    pub fn enter_with(root: &EngineRoot, access: NodeAccess) -> Self {
        let scratch = support::short_tempdir("acr");
        let dev_root = support::fake_gpu_nodes_with(&scratch.path().join("host"), 4, access);
        let rootfs = support::busybox_rootfs(scratch.path());
        let session = root.enter(scratch.path());
        Self {
            session,
            rootfs,
            dev_root,
            scratch,
        }
    }

    /// The scratch dir (the same path inside the root).
    pub fn dir(&self) -> &Path {
        self.scratch.path()
    }

    /// `amdgpu-cdi args...` run in the root; panics unless it succeeds; returns its stdout.
    pub fn amdgpu_cdi(&self, args: &[&str]) -> String {
        let bin = support::bin("amdgpu-cdi");
        self.session.run(&bin.display().to_string(), args)
    }

    /// Writes the runtime wrapper's settings to `<scratch>/wrapper.toml` (what `AMDGPU_CDI_CONFIG`
    /// names for containerd, which passes it on to the shim and the wrapper): discover the example
    /// host, exec runc, log to `<scratch>/wrapper.log`, and `accept-env-from-unprivileged` when
    /// given. The wrapper reads the file at every container creation. Returns the settings path.
    pub fn write_wrapper_settings(&self, accept_env_from_unprivileged: Option<bool>) -> PathBuf {
        let mut text = format!(
            "sysfs-root = \"{}\"\ndev-root = \"{}\"\nruntime = \"/usr/sbin/runc\"\nlog-file = \"{}\"\n",
            SYSFS,
            self.dev_root.display(),
            self.dir().join("wrapper.log").display()
        );
        if let Some(accept) = accept_env_from_unprivileged {
            text.push_str(&format!("accept-env-from-unprivileged = {accept}\n"));
        }
        let path = self.dir().join("wrapper.toml");
        std::fs::write(&path, text).expect("wrapper settings");
        path
    }

    /// What the runtime wrapper has logged so far (see [`GpuRoot::write_wrapper_settings`]).
    pub fn wrapper_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("wrapper.log")).unwrap_or_default()
    }

    /// Runs the real `amdgpu-cdi generate` in the root for the example host, with index, uuid and
    /// PCI names, writing `output` (a path in the root).
    pub fn generate(&self, output: &str) {
        self.generate_for_example(&[
            "--device-name-strategy",
            "index",
            "--device-name-strategy",
            "uuid",
            "--device-name-strategy",
            "pci",
            "--output",
            output,
        ]);
    }

    /// Regenerates the spec in `/var/run/cdi` declaring `version` (default device names).
    pub fn generate_version(&self, version: Version) {
        let version = version.to_string();
        self.generate_for_example(&[
            "--cdi-version",
            &version,
            "--output",
            "/var/run/cdi/amd.com-gpu.yaml",
        ]);
    }

    /// `amdgpu-cdi generate --sysfs-root <example> --dev-root <fake host> args...` in the root.
    fn generate_for_example(&self, args: &[&str]) {
        let dev_root = self.dev_root.display().to_string();
        let mut all = vec!["generate", "--sysfs-root", SYSFS, "--dev-root", &dev_root];
        all.extend_from_slice(args);
        self.amdgpu_cdi(&all);
    }

    /// `podman run` in the root with the flags these machines need (runc, cgroupfs, no network,
    /// ulimits) on the busybox rootfs, running [`PROBE`]; `args` go before `--rootfs`.
    pub fn podman_run(&self, args: &[&str]) -> (bool, String, String) {
        self.podman_run_script(args, PROBE)
    }

    /// [`Self::podman_run`] with `sh -c script` as the container's command.
    pub fn podman_run_script(&self, args: &[&str], script: &str) -> (bool, String, String) {
        let rootfs = self.rootfs.display().to_string();
        let mut cmd = self.session.command("podman");
        cmd.args([
            "--runtime",
            "runc",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(args)
        .args(["--rootfs", &rootfs, "sh", "-c", script]);
        roots::output(&mut cmd)
    }
}
