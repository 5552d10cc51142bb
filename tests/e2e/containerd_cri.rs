//! containerd 1.7 (trixie) and 2.1 (sid) through the Kubernetes CRI, as a kubelet drives them:
//! each version's own `containerd config default` (version 2 on 1.7, version 3 on 2.1) edited by
//! the real `amdgpu-cdi configure containerd`, containerd started on it, and the official CRI
//! client (`tests/go/cri-run`, built from the sid root's k8s.io/cri-client) creating a pod
//! sandbox and a container that asks for `amd.com/gpu=1` through `CDIDevices` and, separately,
//! through a `cdi.k8s.io/...` annotation: the container sees exactly GPU 1. On 2.1 the wrapper's
//! runtime entry, selected as the sandbox's runtime handler, gives `AMD_VISIBLE_DEVICES=0` GPU 0;
//! and 2.1 reads Debian's own `version = 2` file edited by `configure` as well.
//!
//! Images are never pulled: the busybox rootfs is packed as a Docker image archive (tagged also
//! as the version's default sandbox image, so the pod's pause container is busybox `sleep`) and
//! imported with `ctr -n k8s.io images import`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::gpu_root::{self, GpuRoot, PROBE, probe_sees};
use crate::roots::{self, EngineRoot, output};
use crate::support::NodeAccess;

/// The image the workload containers run.
const IMAGE: &str = "docker.io/library/amdgpu-cdi-busybox:latest";

/// The CRI driver, built once per test process with the sid root's Go and CRI client.
fn cri_run(test: &str) -> Option<PathBuf> {
    static DRIVER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = DRIVER.get_or_init(|| {
        let root = EngineRoot::find(test, "sid").ok_or("needs the sid engine root")?;
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cri-run");
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let binary = dir.join("cri-run");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/cri-run");
        root.go_build(&src, &[], &binary)?;
        Ok(binary)
    });
    match built {
        Ok(binary) => Some(binary.clone()),
        Err(reason) => {
            roots::unavailable(test, reason);
            None
        }
    }
}

/// The quoted value of the first `key = "..."` (or `'...'`) line of a TOML text.
fn toml_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line
            .trim()
            .strip_prefix(key)?
            .trim_start()
            .strip_prefix('=')?;
        Some(rest.trim().trim_matches(['"', '\'']).to_string())
    })
}

/// True when this process lacks CAP_SYS_RESOURCE (bit 24 of CapEff), as on the machines these
/// tests run on: then no process can lower its `oom_score_adj`, and runc fails to start the CRI's
/// pod sandbox, which asks for -998 ("can't get final child's PID from pipe", from runc's
/// "failed to update /proc/self/oom_score_adj: Permission denied").
fn lacks_cap_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .expect("CapEff");
    caps & (1 << 24) == 0
}

/// `config` with the CRI's `restrict_oom_score_adj` on when the machine needs it (see
/// [`lacks_cap_sys_resource`]): containerd then never asks for a score below its own.
fn for_this_machine(config: &str) -> String {
    if !lacks_cap_sys_resource() {
        return config.to_string();
    }
    if config.contains("restrict_oom_score_adj = false") {
        return config.replace(
            "restrict_oom_score_adj = false",
            "restrict_oom_score_adj = true",
        );
    }
    let table = "[plugins.\"io.containerd.grpc.v1.cri\"]\n";
    assert!(
        config.contains(table),
        "no CRI table to restrict oom_score_adj in:\n{config}"
    );
    config.replacen(
        table,
        &format!("{table}    restrict_oom_score_adj = true\n"),
        1,
    )
}

/// Packs `rootfs` as a Docker image archive tagged `tags` (image config: `sleep 3600`), in `dir`.
fn image_archive(dir: &Path, rootfs: &Path, tags: &[&str]) -> PathBuf {
    let work = dir.join("image");
    fs::create_dir_all(&work).expect("image dir");
    let layer = work.join("layer.tar");
    let (ok, _, stderr) = output(
        Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg("."),
    );
    assert!(ok, "tar of the rootfs: {stderr}");
    let (ok, sum, stderr) = output(Command::new("sha256sum").arg(&layer));
    assert!(ok, "sha256sum: {stderr}");
    let digest = sum.split_whitespace().next().expect("digest").to_string();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sleep", "3600"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
    });
    fs::write(work.join("config.json"), config.to_string()).expect("image config");
    let manifest = serde_json::json!([
        {"Config": "config.json", "RepoTags": tags, "Layers": ["layer.tar"]}
    ]);
    fs::write(work.join("manifest.json"), manifest.to_string()).expect("manifest");
    let archive = dir.join("image.tar");
    let (ok, _, stderr) = output(
        Command::new("tar")
            .arg("-C")
            .arg(&work)
            .arg("-cf")
            .arg(&archive)
            .args(["manifest.json", "config.json", "layer.tar"]),
    );
    assert!(ok, "tar of the image: {stderr}");
    archive
}

/// A containerd of one engine root with the CRI plugin, a spec for the example host and the
/// busybox image imported.
pub(crate) struct CriSetup {
    pub(crate) gpu: GpuRoot,
    driver: PathBuf,
}

impl CriSetup {
    /// Writes the root's own default `/etc/containerd/config.toml`, runs `configure containerd`
    /// on it, starts containerd with the wrapper's settings in its environment, and imports the
    /// image.
    pub(crate) fn start(test: &str, suite: &str, containerd: &str) -> Option<Self> {
        Self::start_with(test, suite, containerd, None, NodeAccess::WORLD)
    }

    /// [`CriSetup::start`] on `config` (the text of `/etc/containerd/config.toml`) when given, with
    /// the fake nodes' owner and mode set to `access`.
    pub(crate) fn start_with(
        test: &str,
        suite: &str,
        containerd: &str,
        config: Option<&str>,
        access: NodeAccess,
    ) -> Option<Self> {
        let root = EngineRoot::open(test, suite)?;
        assert_eq!(
            root.version("containerd"),
            containerd,
            "the {suite} root's containerd"
        );
        let driver = cri_run(test)?;
        let mut gpu = GpuRoot::enter_with(&root, access);
        gpu.generate("/var/run/cdi/amd.com-gpu.yaml");

        let default = gpu.session.run("containerd", &["config", "default"]);
        gpu.session.write(
            "/etc/containerd/config.toml",
            &for_this_machine(config.unwrap_or(&default)),
        );
        let stdout = gpu.amdgpu_cdi(&["configure", "containerd"]);
        assert!(stdout.contains("restart containerd"), "{stdout}");

        // The runtime wrapper (used through the `amd` handler) discovers the example host.
        let settings = gpu.write_wrapper_settings(None);
        let env = format!("AMDGPU_CDI_CONFIG={}", settings.display());
        gpu.session.start_containerd(&[&env]);

        // The default sandbox image of this version, read from its own default config.
        let sandbox_image = toml_value(&default, "sandbox_image")
            .or_else(|| toml_value(&default, "sandbox"))
            .expect("a default sandbox image");
        let archive = image_archive(gpu.dir(), &gpu.rootfs, &[IMAGE, &sandbox_image]);
        let archive = archive.display().to_string();
        gpu.session
            .run("ctr", &["-n", "k8s.io", "images", "import", &archive]);
        Some(Self { gpu, driver })
    }

    /// Runs the probe in a CRI container created with `args` (cri-run flags).
    pub(crate) fn run(&self, args: &[&str]) -> (bool, String, String) {
        self.run_script(args, PROBE)
    }

    /// Runs `sh -c script` in a CRI container created with `args` (cri-run flags).
    pub(crate) fn run_script(&self, args: &[&str], script: &str) -> (bool, String, String) {
        let driver = self.driver.display().to_string();
        output(
            self.gpu
                .session
                .command(&driver)
                .args(["-image", IMAGE])
                .args(args)
                .args(["--", "sh", "-c", script]),
        )
    }

    /// Asserts the container created with `args` sees exactly `renders` (and kfd).
    pub(crate) fn assert_sees(&self, args: &[&str], renders: &[&str]) {
        let (ok, stdout, stderr) = self.run(args);
        assert!(
            ok,
            "cri-run {args:?} failed:\n{stdout}{stderr}\nconfig:\n{}\ncontainerd log:\n{}",
            self.gpu.session.read("/etc/containerd/config.toml"),
            self.gpu.session.log("containerd")
        );
        assert_eq!(
            stdout,
            probe_sees(renders),
            "cri-run {args:?}; wrapper log:\n{}\ncontainerd log:\n{}",
            self.gpu.wrapper_log(),
            self.gpu.session.log("containerd")
        );
    }

    /// Asserts the container created with `args` gets no GPU at all.
    fn assert_no_gpu(&self, args: &[&str]) {
        let (ok, stdout, stderr) = self.run(args);
        assert!(
            !ok || !stdout.contains("kfd"),
            "no GPU expected: {stdout}{stderr}"
        );
    }
}

/// The wrapper's runtime entry as the sandbox's runtime handler: by default it refuses
/// `AMD_VISIBLE_DEVICES` from a Kubernetes container (the device plugin decides there) and logs
/// why; an operator who sets `accept-env-from-unprivileged = true` gets GPU 0 for
/// `AMD_VISIBLE_DEVICES=0`. The default handler (runc) never looks at the variable.
fn wrapper_handler_gives_gpu_0(setup: &CriSetup) {
    let request = ["-runtime-handler", "amd", "-env", "AMD_VISIBLE_DEVICES=0"];
    setup.assert_no_gpu(&request);
    let log = setup.gpu.wrapper_log();
    assert!(
        log.contains("ignoring AMD_VISIBLE_DEVICES of an unprivileged container"),
        "wrapper log: {log}"
    );
    setup.gpu.write_wrapper_settings(Some(true));
    setup.assert_sees(&request, &[gpu_root::RENDER_OF_INDEX[0]]);
    setup.assert_no_gpu(&["-env", "AMD_VISIBLE_DEVICES=0"]);
}

/// CDIDevices and the CDI annotation each give exactly GPU 1; an unknown device fails.
fn cri_gives_gpu_1(setup: &CriSetup) {
    let gpu_1 = gpu_root::RENDER_OF_INDEX[1];
    setup.assert_sees(&["-cdi-device", "amd.com/gpu=1"], &[gpu_1]);
    setup.assert_sees(
        &["-annotation", "cdi.k8s.io/amdgpu-cdi-test=amd.com/gpu=1"],
        &[gpu_1],
    );
    let (ok, stdout, stderr) = setup.run(&["-cdi-device", "amd.com/gpu=7"]);
    assert!(!ok, "an unknown CDI device started a container: {stdout}");
    assert!(stderr.contains("amd.com/gpu=7"), "{stderr}");
}

/// containerd accepts a spec declaring `newest` (what `doctor` says for this release, see
/// `doctor_engines`) and refuses one declaring the next known version.
fn accepts_cdi_versions_up_to(setup: &CriSetup, newest: &str) {
    let newest: cdi::version::Version = newest.parse().expect("version");
    let next = gpu_root::next_version(newest);
    setup.gpu.generate_version(newest);
    setup.assert_sees(
        &["-cdi-device", "amd.com/gpu=1"],
        &[gpu_root::RENDER_OF_INDEX[1]],
    );
    setup.gpu.generate_version(next);
    let (ok, stdout, stderr) = setup.run(&["-cdi-device", "amd.com/gpu=1"]);
    assert!(!ok, "cdiVersion {next} accepted: {stdout}");
    assert!(stderr.contains("unresolvable CDI devices"), "{stderr}");
}

#[test]
fn containerd_1_7_cri_gives_exactly_gpu_1_by_cdi_devices_and_annotation() {
    let test = "containerd_1_7_cri_gives_exactly_gpu_1_by_cdi_devices_and_annotation";
    let Some(setup) = CriSetup::start(test, "trixie", "1.7.24") else {
        return;
    };
    cri_gives_gpu_1(&setup);
    accepts_cdi_versions_up_to(&setup, "0.8.0");
}

#[test]
fn containerd_2_1_cri_gives_exactly_gpu_1_and_the_wrapper_handler_gives_gpu_0() {
    let test = "containerd_2_1_cri_gives_exactly_gpu_1_and_the_wrapper_handler_gives_gpu_0";
    let Some(setup) = CriSetup::start(test, "sid", "2.1.9") else {
        return;
    };
    let config = setup.gpu.session.read("/etc/containerd/config.toml");
    assert!(config.starts_with("version = 3"), "{config}");
    cri_gives_gpu_1(&setup);
    wrapper_handler_gives_gpu_0(&setup);
    accepts_cdi_versions_up_to(&setup, "1.0.0");
}

#[test]
fn containerd_2_1_reads_debians_version_2_config_edited_by_configure() {
    let test = "containerd_2_1_reads_debians_version_2_config_edited_by_configure";
    let Some(root) = EngineRoot::open(test, "sid") else {
        return;
    };
    let shipped = fs::read_to_string(root.dir().join("etc/containerd/config.toml"))
        .expect("Debian's config.toml");
    assert!(shipped.starts_with("version = 2"), "{shipped}");
    drop(root);
    let Some(setup) = CriSetup::start_with(test, "sid", "2.1.9", Some(&shipped), NodeAccess::WORLD)
    else {
        return;
    };
    cri_gives_gpu_1(&setup);
    wrapper_handler_gives_gpu_0(&setup);
}
