//! `amdgpu-cdi doctor` against today's engines, run in each engine root with the engines found
//! only through `--path` (a non-default dir of links): it reports each engine's version, CDI on,
//! the spec dirs it reads (also from containerd 2.1's reading of a `version = 2` and of a
//! `version = 3` file, each edited by `configure containerd --cdi-spec-dir`), and the newest
//! cdiVersion it accepts; and the engines agree: Docker and podman inject from a spec of that
//! version and refuse one of the next version. (containerd's side of that is checked through the
//! CRI in `containerd_cri`.)

use std::collections::BTreeMap;

use cdi::version::Version;

use crate::gpu_root::{GpuRoot, PROBE, next_version};
use crate::roots::{EngineRoot, output};

/// Where the engines are linked for `doctor --path`.
const ENGINES_DIR: &str = "/opt/engines/bin";
const EXTRA_SPEC_DIR: &str = "/etc/amdgpu-cdi/specs";

/// `doctor --format json --path ENGINES_DIR` in the root: check -> (status, message).
fn doctor(gpu: &GpuRoot) -> BTreeMap<String, (String, String)> {
    let bin = crate::support::bin("amdgpu-cdi").display().to_string();
    let (_, stdout, stderr) = output(gpu.session.command(&bin).args([
        "doctor",
        "--format",
        "json",
        "--path",
        ENGINES_DIR,
    ]));
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("doctor JSON: {e}\n{stdout}{stderr}"));
    let mut findings = BTreeMap::new();
    for section in report["sections"].as_array().expect("sections") {
        for finding in section["findings"].as_array().expect("findings") {
            findings.insert(
                finding["check"].as_str().expect("check").to_string(),
                (
                    finding["status"].as_str().expect("status").to_string(),
                    finding["message"].as_str().expect("message").to_string(),
                ),
            );
        }
    }
    findings
}

/// The message of `check`, asserting its status.
fn finding<'a>(
    findings: &'a BTreeMap<String, (String, String)>,
    check: &str,
    status: &str,
) -> &'a str {
    let (got, message) = findings
        .get(check)
        .unwrap_or_else(|| panic!("doctor reports no {check}: {findings:#?}"));
    assert_eq!(got, status, "{check}: {message}");
    message
}

/// Whether `engine` starts a container with `amd.com/gpu=1`.
fn engine_injects(gpu: &GpuRoot, engine: &str) -> (bool, String) {
    let (ok, stdout, stderr) = if engine == "docker" {
        output(
            gpu.session
                .command(engine)
                .args(["run", "--rm", "--network", "none", "--device"])
                .args(["amd.com/gpu=1", "bb", "sh", "-c", PROBE]),
        )
    } else {
        gpu.podman_run(&["--device", "amd.com/gpu=1"])
    };
    (ok, format!("{stdout}{stderr}"))
}

/// Doctor in `suite`'s root, for engines of these versions accepting specs up to `newest`.
fn doctor_knows(test: &str, suite: &str, newest: [(&str, &str); 3]) {
    let Some(root) = EngineRoot::open(test, suite) else {
        return;
    };
    let mut gpu = GpuRoot::enter(&root);
    gpu.session.run("mkdir", &["-p", ENGINES_DIR]);
    for binary in [
        "/usr/sbin/dockerd",
        "/usr/bin/docker",
        "/usr/bin/containerd",
        "/usr/bin/podman",
    ] {
        gpu.session.run("ln", &["-s", binary, ENGINES_DIR]);
    }
    gpu.generate("/var/run/cdi/amd.com-gpu.yaml");
    gpu.amdgpu_cdi(&["configure", "docker"]);
    // Debian's own containerd config (`version = 2`, also in sid's containerd 2.1).
    let shipped = gpu.session.read("/etc/containerd/config.toml");
    assert!(shipped.starts_with("version = 2"), "{shipped}");
    gpu.amdgpu_cdi(&["configure", "containerd", "--cdi-spec-dir", EXTRA_SPEC_DIR]);

    let findings = doctor(&gpu);
    for (engine, daemon) in [
        ("docker", "dockerd"),
        ("containerd", "containerd"),
        ("podman", "podman"),
    ] {
        let version = root.version(engine);
        assert_eq!(
            finding(&findings, &format!("{engine}.version"), "ok"),
            format!("{engine} {version} ({ENGINES_DIR}/{daemon})")
        );
        finding(&findings, &format!("{engine}.cdi"), "ok");
        let newest = newest
            .iter()
            .find(|(e, _)| *e == engine)
            .map(|(_, v)| *v)
            .expect("a newest version per engine");
        assert_eq!(
            finding(&findings, &format!("{engine}.newest-spec-version"), "info"),
            format!("{engine} {version} is known to accept cdiVersion up to {newest}")
        );
    }
    let dirs = finding(&findings, "containerd.spec-dirs", "info");
    assert!(dirs.contains(EXTRA_SPEC_DIR), "version 2 file: {dirs}");

    // containerd 2.x's own `version = 3` default, edited the same way.
    if root.version("containerd").starts_with("2.") {
        let default = gpu.session.run("containerd", &["config", "default"]);
        assert!(default.starts_with("version = 3"), "{default}");
        gpu.session.write("/etc/containerd/config.toml", &default);
        gpu.amdgpu_cdi(&["configure", "containerd", "--cdi-spec-dir", EXTRA_SPEC_DIR]);
        let findings = doctor(&gpu);
        let dirs = finding(&findings, "containerd.spec-dirs", "info");
        assert!(dirs.contains(EXTRA_SPEC_DIR), "version 3 file: {dirs}");
    }

    // The engines accept exactly up to what doctor says.
    gpu.session.start_containerd(&[]);
    gpu.session.start_dockerd(&[], &[]);
    gpu.session.docker_import(&gpu.rootfs, "bb");
    for engine in ["docker", "podman"] {
        let newest: Version = newest
            .iter()
            .find(|(e, _)| *e == engine)
            .map(|(_, v)| v.parse().expect("version"))
            .expect("newest");
        gpu.generate_version(newest);
        let (ok, out) = engine_injects(&gpu, engine);
        assert!(ok, "{engine} refuses cdiVersion {newest}: {out}");
        let next = next_version(newest);
        gpu.generate_version(next);
        let (ok, out) = engine_injects(&gpu, engine);
        assert!(!ok, "{engine} accepts cdiVersion {next}: {out}");
        assert!(out.contains("unresolvable CDI devices"), "{engine}: {out}");
    }
}

#[test]
fn doctor_knows_the_trixie_engines() {
    doctor_knows(
        "doctor_knows_the_trixie_engines",
        "trixie",
        [
            ("docker", "0.7.0"),
            ("containerd", "0.8.0"),
            ("podman", "0.8.0"),
        ],
    );
}

#[test]
fn doctor_knows_the_sid_engines() {
    doctor_knows(
        "doctor_knows_the_sid_engines",
        "sid",
        [
            ("docker", "1.0.0"),
            ("containerd", "1.0.0"),
            ("podman", "1.0.0"),
        ],
    );
}
