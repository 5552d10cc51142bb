//! A container process that is not root opens its GPU nodes through every path (issue 17): host
//! nodes `0660 root:44` (as distributions ship `/dev/kfd` and the render nodes, group `render` or
//! `video`), the process running as uid 1000 gid 1000, in no group 44. Each test reuses its
//! path's harness with [`NodeAccess::RENDER_GROUP`] nodes and a user, and asserts exactly how the
//! nodes look inside (owner, mode) and that they open read-write, as ROCm opens them.
//!
//! What holds (recorded per engine in docs/requests.md): these root engines create the node for
//! the container, never bind-mount the host's. The hooks and the wrapper, podman and containerd's
//! CRI make it the process user's when the spec names no owner, so it opens without any group;
//! the mode is the host node's through this project's own edits and the spec's `fileMode`
//! otherwise (runc's 0666 when there is none, as `generate` writes by default). Docker's CDI
//! leaves the node root's: uid 1000 opens it only at 0666, so a spec with the host's `fileMode`
//! locks it out there, which the Docker tests assert.

use crate::docker_cdi::{docker_run, start_docker};
use crate::gpu_root::{self, GpuRoot};
use crate::roots::EngineRoot;
use crate::support::{self, NodeAccess, VisibleDevices};

/// The container probe as a macro, for `concat!` into other scripts: `user <uid>:<gid> groups
/// <ids>`, then `node <path> <uid>:<gid> <mode> <verdict>` for `/dev/kfd` and every render node,
/// opened read-write (`<>`) as ROCm opens them: `opens`, `denied` (permission denied) or
/// `fails: <the shell's message>`.
macro_rules! node_probe {
    () => {
        "echo \"user $(id -u):$(id -g) groups $(id -G)\"; \
         for n in /dev/kfd /dev/dri/renderD*; do test -e \"$n\" || continue; \
         if e=$(true 2>&1 <> \"$n\"); then v=opens; \
         else case \"$e\" in *'Permission denied'*) v=denied;; *) v=\"fails: $e\";; esac; fi; \
         echo \"node $(stat -c '%n %u:%g %a' \"$n\") $v\"; done"
    };
}
pub(crate) use node_probe;

/// The container probe (see [`node_probe`]).
pub(crate) const NODE_PROBE: &str = node_probe!();

/// Where `GpuRoot::generate` wrote the spec (`/var/run/cdi/amd.com-gpu.yaml`), spelled without
/// the `/var/run -> /run` symlink, which the host would resolve in its own root.
const SPEC: &str = "/run/cdi/amd.com-gpu.yaml";

/// Rewrites the generated [`SPEC`] in `gpu`'s root with [`with_host_mode`].
fn pin_host_mode(gpu: &GpuRoot) {
    gpu.session
        .write(SPEC, &with_host_mode(&gpu.session.read(SPEC)));
}

/// A generated spec's `text` with the host node's `fileMode` (0660, written in decimal as YAML 1.1
/// readers differ on octal) on every device node, as a spec written by hand or by another
/// generator may carry it: the engine then fills only type and numbers from the host node.
fn with_host_mode(text: &str) -> String {
    let mut pinned = String::new();
    for line in text.lines() {
        pinned.push_str(line);
        pinned.push('\n');
        if line.trim_start().starts_with("hostPath:") {
            let indent = &line[..line.len() - line.trim_start().len()];
            pinned.push_str(&format!("{indent}fileMode: 432\n"));
        }
    }
    assert!(pinned.contains("fileMode"), "no node in the spec:\n{text}");
    pinned
}

/// The container user of every test here.
const USER: (u32, u32) = (1000, 1000);

/// [`USER`] as engines spell it.
const USER_ARG: &str = "1000:1000";

/// The probe's `user` and `node` lines, without their keyword.
pub(crate) fn probe_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("user ").or_else(|| l.strip_prefix("node ")))
        .collect()
}

/// How a node looks inside a container and whether uid 1000 opens it.
#[derive(Clone, Copy)]
struct Inside {
    /// `uid:gid`.
    owner: &'static str,
    /// The permission bits in octal.
    mode: &'static str,
    /// `opens` or `denied` (see [`node_probe`]).
    verdict: &'static str,
}

/// Created for the process user, with the host node's mode: this project's own edits (the hooks,
/// the wrapper) and the Go CDI engines but Docker given a spec with the host's `fileMode`.
const OWNED_HOST_MODE: Inside = Inside {
    owner: "1000:1000",
    mode: "660",
    verdict: "opens",
};

/// Created for the process user with runc's default mode: the Go CDI library fills no `fileMode`
/// from the host node, so a spec without one (the default of `generate`) gets 0666.
const OWNED_DEFAULT_MODE: Inside = Inside {
    owner: "1000:1000",
    mode: "666",
    verdict: "opens",
};

/// What [`NODE_PROBE`] prints for uid/gid 1000 (in no other group) given `/dev/kfd` and the
/// render nodes `renders`, each looking like `inside`.
fn probe_expects(inside: Inside, renders: &[&str]) -> Vec<String> {
    let Inside {
        owner,
        mode,
        verdict,
    } = inside;
    let mut lines = vec!["1000:1000 groups 1000".to_string()];
    lines.push(format!("/dev/kfd {owner} {mode} {verdict}"));
    for r in renders {
        lines.push(format!("/dev/dri/{r} {owner} {mode} {verdict}"));
    }
    lines
}

/// Asserts a run succeeded and the probe saw exactly `expected`.
fn assert_probe(path: &str, run: (bool, String, String), expected: &[String]) {
    let (ok, stdout, stderr) = run;
    assert!(ok, "{path}: the container failed:\n{stdout}{stderr}");
    assert_eq!(probe_lines(&stdout), expected, "{path}: {stdout}{stderr}");
}

/// A generated spec for the three-GPU fixture over `dev_root`, written by the real
/// `amdgpu-cdi generate` into `spec_dir` (on the host).
pub(crate) fn generate_on_host(dev_root: &std::path::Path, spec_dir: &std::path::Path) {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hosts/three-gpus/sys");
    let (ok, stdout, stderr) = support::output(
        std::process::Command::new(support::bin("amdgpu-cdi"))
            .arg("generate")
            .arg("--sysfs-root")
            .arg(&fixture)
            .arg("--dev-root")
            .arg(dev_root)
            .arg("--output")
            .arg(spec_dir.join("amd.com-gpu.yaml")),
    );
    assert!(ok, "generate failed: {stdout}{stderr}");
}

#[test]
fn uid_1000_opens_its_nodes_through_podman_4_3_cdi() {
    let Some(podman) = support::PodmanCdi::new("uid_1000_opens_its_nodes_through_podman_4_3_cdi")
    else {
        return;
    };
    let dev_root = support::fake_gpu_nodes_with(&podman.path("host"), 3, NodeAccess::RENDER_GROUP);
    generate_on_host(&dev_root, &podman.spec_dir);
    let run = || {
        podman.run(
            &["--user", USER_ARG, "--device", "amd.com/gpu=1"],
            NODE_PROBE,
        )
    };
    assert_probe(
        "podman 4.3 CDI",
        run(),
        &probe_expects(OWNED_DEFAULT_MODE, &["renderD129"]),
    );
    let spec = podman.spec_dir.join("amd.com-gpu.yaml");
    let text = std::fs::read_to_string(&spec).expect("read the spec");
    std::fs::write(&spec, with_host_mode(&text)).expect("rewrite the spec");
    assert_probe(
        "podman 4.3 CDI, spec with fileMode",
        run(),
        &probe_expects(OWNED_HOST_MODE, &["renderD129"]),
    );
}

/// GPU 1 asked for with `AMD_VISIBLE_DEVICES=1` by [`USER`] through an engine `start`ed over
/// render-group nodes (the precreate hook's or the wrapper's `path`): the nodes are the user's,
/// in the host's mode.
fn by_variable<E: VisibleDevices>(
    test: &str,
    path: &str,
    start: fn(&str, NodeAccess) -> Option<E>,
) {
    let Some(engine) = start(test, NodeAccess::RENDER_GROUP) else {
        return;
    };
    assert_probe(
        path,
        engine.run(&["--user", USER_ARG], "1", NODE_PROBE),
        &probe_expects(OWNED_HOST_MODE, &["renderD129"]),
    );
}

#[test]
fn uid_1000_opens_its_nodes_through_the_podman_4_3_precreate_hook() {
    by_variable(
        "uid_1000_opens_its_nodes_through_the_podman_4_3_precreate_hook",
        "podman 4.3 precreate hook",
        crate::podman_hooks::HookSetup::with_access,
    );
}

/// podman 5.x from `suite`: CDI, the precreate hook and the prestart hook, each for GPU 1.
fn podman_5(test: &str, suite: &str, podman: &str) {
    let Some(root) = EngineRoot::open(test, suite) else {
        return;
    };
    assert_eq!(root.version("podman"), podman, "the {suite} root's podman");
    let gpu = GpuRoot::enter_with(&root, NodeAccess::RENDER_GROUP);
    gpu.generate(SPEC);
    let gpu_1 = [gpu_root::RENDER_OF_INDEX[1]];
    let run = |args: &[&str]| {
        let mut all = vec!["--user", USER_ARG];
        all.extend_from_slice(args);
        gpu.podman_run_script(&all, NODE_PROBE)
    };
    let cdi = ["--device", "amd.com/gpu=1"];
    assert_probe(
        &format!("podman {podman} CDI"),
        run(&cdi),
        &probe_expects(OWNED_DEFAULT_MODE, &gpu_1),
    );
    pin_host_mode(&gpu);
    assert_probe(
        &format!("podman {podman} CDI, spec with fileMode"),
        run(&cdi),
        &probe_expects(OWNED_HOST_MODE, &gpu_1),
    );
    let expected = probe_expects(OWNED_HOST_MODE, &gpu_1);
    for (hook, file) in [
        ("precreate", "amdgpu-cdi-precreate.json"),
        ("prestart", "amdgpu-cdi-prestart.json"),
    ] {
        let dir = crate::podman5::hooks_dir(&gpu, file);
        assert_probe(
            &format!("podman {podman} {hook} hook"),
            run(&["--hooks-dir", &dir, "-e", "AMD_VISIBLE_DEVICES=1"]),
            &expected,
        );
    }
}

#[test]
fn uid_1000_opens_its_nodes_through_podman_5_4_cdi_and_hooks() {
    podman_5(
        "uid_1000_opens_its_nodes_through_podman_5_4_cdi_and_hooks",
        "trixie",
        "5.4.2",
    );
}

#[test]
fn uid_1000_opens_its_nodes_through_podman_5_8_cdi_and_hooks() {
    podman_5(
        "uid_1000_opens_its_nodes_through_podman_5_8_cdi_and_hooks",
        "sid",
        "5.8.6",
    );
}

/// Docker from `suite`: CDI (`--device amd.com/gpu=1`) and the runtime wrapper (`--runtime amd
/// -e AMD_VISIBLE_DEVICES=1`).
fn docker(test: &str, suite: &str, version: &str) {
    let Some(gpu) = start_docker(test, suite, version, NodeAccess::RENDER_GROUP) else {
        return;
    };
    let gpu_1 = [gpu_root::RENDER_OF_INDEX[1]];
    let cdi = ["--user", USER_ARG, "--device", "amd.com/gpu=1"];
    // Docker applies the CDI edits before the container's user is known: the nodes stay root's.
    let root_owned = |mode, verdict| Inside {
        owner: "0:0",
        mode,
        verdict,
    };
    assert_probe(
        &format!("Docker {version} CDI"),
        docker_run(&gpu, &cdi, NODE_PROBE),
        &probe_expects(root_owned("666", "opens"), &gpu_1),
    );
    // So a spec that gives the host's 0660 locks uid 1000 out.
    pin_host_mode(&gpu);
    assert_probe(
        &format!("Docker {version} CDI, spec with fileMode"),
        docker_run(&gpu, &cdi, NODE_PROBE),
        &probe_expects(root_owned("660", "denied"), &gpu_1),
    );
    let expected = probe_expects(OWNED_HOST_MODE, &gpu_1);
    assert_probe(
        &format!("Docker {version} runtime wrapper"),
        docker_run(
            &gpu,
            &[
                "--user",
                USER_ARG,
                "--runtime",
                "amd",
                "-e",
                "AMD_VISIBLE_DEVICES=1",
            ],
            NODE_PROBE,
        ),
        &expected,
    );
}

#[test]
fn uid_1000_opens_its_nodes_through_docker_26_1_cdi_and_the_wrapper() {
    docker(
        "uid_1000_opens_its_nodes_through_docker_26_1_cdi_and_the_wrapper",
        "trixie",
        "26.1.5",
    );
}

#[test]
fn uid_1000_opens_its_nodes_through_docker_28_5_cdi_and_the_wrapper() {
    docker(
        "uid_1000_opens_its_nodes_through_docker_28_5_cdi_and_the_wrapper",
        "sid",
        "28.5.2",
    );
}

#[test]
fn uid_1000_opens_its_nodes_through_the_docker_20_10_wrapper() {
    by_variable(
        "uid_1000_opens_its_nodes_through_the_docker_20_10_wrapper",
        "Docker 20.10 runtime wrapper",
        crate::docker_runtime::Docker::start_with,
    );
}

/// The prestart hook on a raw bundle whose process runs as [`USER`], under the runtime `tool`
/// (`runc_injects_gpu_1_as` or `youki_injects_gpu_1_as`, which also check GPU 1 alone is there).
fn prestart_hook(test: &str, tool: &str, inject: crate::runc_prestart::InjectsGpu1) {
    if !support::prerequisites(test, &[tool]) {
        return;
    }
    let stdout = inject("prestart", NodeAccess::RENDER_GROUP, USER);
    assert_eq!(
        probe_lines(&stdout),
        probe_expects(OWNED_HOST_MODE, &["renderD129"]),
        "{tool}: {stdout}"
    );
}

#[test]
fn uid_1000_opens_its_nodes_through_the_runc_prestart_hook() {
    prestart_hook(
        "uid_1000_opens_its_nodes_through_the_runc_prestart_hook",
        "runc",
        crate::runc_prestart::runc_injects_gpu_1_as,
    );
}

#[test]
fn uid_1000_opens_its_nodes_through_the_youki_prestart_hook() {
    prestart_hook(
        "uid_1000_opens_its_nodes_through_the_youki_prestart_hook",
        "youki",
        crate::youki_prestart::youki_injects_gpu_1_as,
    );
}

/// containerd's CRI from `suite`: a pod with `runAsUser`/`runAsGroup` 1000 and `CDIDevices`
/// `amd.com/gpu=1`.
fn cri(test: &str, suite: &str, containerd: &str) {
    let Some(setup) = crate::containerd_cri::CriSetup::start_with(
        test,
        suite,
        containerd,
        None,
        NodeAccess::RENDER_GROUP,
    ) else {
        return;
    };
    let pod = [
        "-cdi-device",
        "amd.com/gpu=1",
        "-run-as-user",
        "1000",
        "-run-as-group",
        "1000",
    ];
    let gpu_1 = [gpu_root::RENDER_OF_INDEX[1]];
    assert_probe(
        &format!("containerd {containerd} CRI"),
        setup.run_script(&pod, NODE_PROBE),
        &probe_expects(OWNED_DEFAULT_MODE, &gpu_1),
    );
    pin_host_mode(&setup.gpu);
    assert_probe(
        &format!("containerd {containerd} CRI, spec with fileMode"),
        setup.run_script(&pod, NODE_PROBE),
        &probe_expects(OWNED_HOST_MODE, &gpu_1),
    );
}

#[test]
fn uid_1000_opens_its_nodes_through_a_containerd_1_7_cri_pod() {
    cri(
        "uid_1000_opens_its_nodes_through_a_containerd_1_7_cri_pod",
        "trixie",
        "1.7.24",
    );
}

#[test]
fn uid_1000_opens_its_nodes_through_a_containerd_2_1_cri_pod() {
    cri(
        "uid_1000_opens_its_nodes_through_a_containerd_2_1_cri_pod",
        "sid",
        "2.1.9",
    );
}
