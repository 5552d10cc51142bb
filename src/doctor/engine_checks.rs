//! Engine checks: which container engines are installed, their versions, whether their CDI support
//! is on, which spec dirs they read, whether their CDI library accepts our spec's version, and
//! whether the runtime wrapper and the OCI hooks are configured.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdi::version::Version;

use super::specs::{mentions, spec_files};
use super::{EngineCheck, Finding, HostRoots, Section, fail, info, ok, warn};
use crate::engines::releases::{DOCKER_AMD_GPUS, DOCKER_AMD_GPUS_CDI, EngineVersion};
use crate::engines::{Engine, EngineConfig, crio, dir_files};
use crate::paths::{HOOKS_DIRS, SPEC_DIRS, WRAPPER_NAME};

/// Runs `binary --version`, bounded by `timeout`; returns its stdout or why it failed.
fn version_output(binary: &Path, timeout: Duration) -> Result<String, String> {
    let mut child = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut stdout) = child.stdout.take() {
                    let _ = stdout.read_to_string(&mut out);
                }
                return if status.success() {
                    Ok(out)
                } else {
                    Err(format!("`--version` exited with {status}"))
                };
            }
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`--version` did not finish within {} ms",
                    timeout.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    }
}

/// The first file named `name` in the directories of `search_path`.
pub(super) fn find_binary(search_path: &[PathBuf], name: &str) -> Option<PathBuf> {
    search_path
        .iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether CDI is on, from the version and the configuration; `(on, why)`.
fn cdi_state(engine: Engine, version: EngineVersion, config: &EngineConfig) -> (bool, String) {
    if version < engine.first_cdi() {
        return (
            false,
            format!(
                "{} {version} has no CDI support (needs {} or newer)",
                engine.name(),
                engine.first_cdi()
            ),
        );
    }
    let switch = match engine {
        Engine::Docker => "\"features\": {\"cdi\": ...} in daemon.json",
        Engine::Containerd => "enable_cdi in the CRI plugin section",
        Engine::Podman | Engine::Crio => return (true, "CDI support is always on".into()),
    };
    let default_on = engine.cdi_on_by_default(version);
    match config.cdi_enabled {
        Some(true) => (true, format!("CDI is enabled ({switch})")),
        Some(false) => (false, format!("CDI is switched off ({switch} is false)")),
        None if default_on => (true, "CDI is enabled (on by default)".into()),
        None => (false, format!("CDI is off ({switch} is not set)")),
    }
}

/// What doctor learned about an installed engine whose version it recognised, for the checks
/// that look at engines and specs together ([`super::access`]).
#[derive(Debug)]
pub(super) struct EngineFacts {
    /// Which engine.
    pub(super) engine: Engine,
    /// Its release.
    pub(super) version: EngineVersion,
    /// Whether it reads CDI specs.
    pub(super) cdi_on: bool,
    /// The spec dirs it reads (host paths) when CDI is on: the configured ones or the defaults.
    pub(super) spec_dirs: Vec<String>,
    /// Whether it gives containers SELinux labels, as configured or by default.
    pub(super) selinux_labels: bool,
}

impl EngineFacts {
    /// Whether the engine reads the spec at `path` (a real path).
    pub(super) fn reads(&self, roots: &HostRoots, path: &Path) -> bool {
        self.cdi_on && in_dirs(roots, &self.spec_dirs, path)
    }
}

/// Whether the file at `path` (a real path) is directly inside one of `dirs` (host paths), as an
/// engine reading specs from `dirs` finds it.
fn in_dirs(roots: &HostRoots, dirs: &[String], path: &Path) -> bool {
    path.parent()
        .is_some_and(|dir| dirs.iter().any(|d| roots.host(d) == dir))
}

/// The engine sections, and what they found about each engine whose version is known.
pub(super) fn sections(
    roots: &HostRoots,
    specs: &[(Version, PathBuf)],
    timeout: Duration,
) -> (Vec<Section>, Vec<EngineFacts>) {
    let mut sections = Vec::new();
    let mut facts = Vec::new();
    for engine in Engine::ALL {
        let (section, found) = engine_section(roots, engine, specs, timeout);
        sections.push(section);
        facts.extend(found);
    }
    (sections, facts)
}

fn engine_section(
    roots: &HostRoots,
    engine: Engine,
    specs: &[(Version, PathBuf)],
    timeout: Duration,
) -> (Section, Option<EngineFacts>) {
    let name = engine.name();
    let mut findings = Vec::new();
    let binary = engine
        .binaries()
        .iter()
        .find_map(|b| find_binary(&roots.search_path, b));
    let section = |findings| Section::new(name, findings);
    let Some(binary) = binary else {
        findings.push(info(
            EngineCheck::INSTALLED.of(engine),
            format!("{name} is not installed"),
        ));
        return (section(findings), None);
    };
    let version = match version_output(&binary, timeout) {
        Ok(out) => match EngineVersion::find_in(&out) {
            Some(version) => {
                findings.push(ok(
                    EngineCheck::VERSION.of(engine),
                    format!("{name} {version} ({})", roots.show(&binary)),
                ));
                Some(version)
            }
            None => {
                findings.push(warn(
                    EngineCheck::VERSION.of(engine),
                    format!(
                        "{name} is installed ({}) but its version is unrecognised: {}",
                        roots.show(&binary),
                        out.lines().next().unwrap_or("").trim()
                    ),
                    format!(
                        "check that {} is the real {name}: without a version its CDI support cannot be judged",
                        roots.show(&binary)
                    ),
                ));
                None
            }
        },
        Err(why) => {
            findings.push(warn(
                EngineCheck::VERSION.of(engine),
                format!("{name} is installed ({}) but {why}", roots.show(&binary)),
                format!(
                    "run `{} --version` by hand to see what is wrong",
                    roots.show(&binary)
                ),
            ));
            None
        }
    };
    let config = engine.read_config(roots, version);
    if let Some(broken) = &config.broken {
        findings.push(fail(
            EngineCheck::CONFIG.of(engine),
            format!("cannot parse {broken}"),
            format!("fix the syntax; {name} itself refuses to start with this file"),
        ));
    }
    let Some(version) = version else {
        return (section(findings), None);
    };
    let has_wrapper = !config.wrappers.is_empty();
    let (cdi_on, why) = cdi_state(engine, version, &config);
    if cdi_on {
        findings.push(ok(EngineCheck::CDI.of(engine), why));
    } else if has_wrapper {
        findings.push(info(
            EngineCheck::CDI.of(engine),
            format!("{why}; GPUs come through the runtime wrapper instead"),
        ));
    } else {
        let remedy = match engine {
            Engine::Docker if version >= engine.first_cdi() => {
                "`amdgpu-cdi configure docker` (sets features.cdi) and restart dockerd"
            }
            Engine::Containerd if version >= engine.first_cdi() => {
                "`amdgpu-cdi configure containerd` (sets enable_cdi) and restart containerd"
            }
            Engine::Docker => {
                "upgrade Docker to 25.0 or newer, or `amdgpu-cdi configure docker` to use the runtime wrapper"
            }
            Engine::Containerd => {
                "upgrade containerd to 1.7 or newer, or `amdgpu-cdi configure containerd` to use the runtime wrapper"
            }
            Engine::Podman | Engine::Crio => "upgrade the engine to a release with CDI support",
        };
        findings.push(fail(EngineCheck::CDI.of(engine), why, remedy));
    }
    let dirs: Vec<String> = config
        .spec_dirs
        .clone()
        .unwrap_or_else(|| SPEC_DIRS.map(str::to_string).to_vec());
    if cdi_on {
        findings.push(info(
            EngineCheck::SPEC_DIRS.of(engine),
            format!("reads CDI specs from {}", dirs.join(", ")),
        ));
        if let Some(newest) = engine.newest_accepted(version) {
            findings.push(info(
                EngineCheck::NEWEST_SPEC_VERSION.of(engine),
                format!("{name} {version} is known to accept cdiVersion up to {newest}"),
            ));
        }
        let visible: Vec<&(Version, PathBuf)> = specs
            .iter()
            .filter(|(_, path)| in_dirs(roots, &dirs, path))
            .collect();
        if visible.is_empty() {
            findings.push(warn(
                EngineCheck::SPEC_VISIBLE.of(engine),
                format!("no amd.com/gpu spec in the dirs {name} reads"),
                roots.write_spec_fix(
                    &roots.host(dirs.last().map_or("/var/run/cdi", String::as_str)),
                ),
            ));
        }
        for (spec_version, path) in visible {
            let shown = roots.show(path);
            let regenerate = roots.generate_command(path);
            match engine.first_accepting(*spec_version) {
                Some(first) if version >= first => findings.push(ok(
                    EngineCheck::SPEC_VERSION.of(engine),
                    format!("{name} {version} accepts cdiVersion {spec_version} of {shown}"),
                )),
                Some(first) => findings.push(fail(
                    EngineCheck::SPEC_VERSION.of(engine),
                    format!(
                        "{name} {version} rejects cdiVersion {spec_version} of {shown} (needs {name} {first})"
                    ),
                    format!(
                        "regenerate with `{regenerate} --cdi-version auto` (the minimum version) or upgrade {name} to {first}"
                    ),
                )),
                None => findings.push(fail(
                    EngineCheck::SPEC_VERSION.of(engine),
                    format!(
                        "no {name} release is known to accept cdiVersion {spec_version} of {shown}"
                    ),
                    format!("regenerate with `{regenerate} --cdi-version auto` (the minimum version)"),
                )),
            }
        }
    }
    if engine == Engine::Crio {
        findings.extend(crio_hooks(roots, &config));
    }
    if engine == Engine::Docker {
        findings.push(docker_gpus_finding(roots, version, &config, &dirs, cdi_on));
    }
    if config.wrappers.is_empty() && matches!(engine, Engine::Docker | Engine::Containerd) {
        findings.push(info(
            EngineCheck::WRAPPER.of(engine),
            "runtime wrapper not configured (only needed for AMD_VISIBLE_DEVICES requests)",
        ));
    }
    for (entry, path) in &config.wrappers {
        let real = roots.host(path);
        if real.is_file() {
            findings.push(ok(
                EngineCheck::WRAPPER.of(engine),
                format!("runtime `{entry}` is the wrapper {path}"),
            ));
        } else {
            findings.push(fail(
                EngineCheck::WRAPPER.of(engine),
                format!("runtime `{entry}` points at {path}, which does not exist"),
                format!("reinstall amdgpu-cdi or `amdgpu-cdi configure {name} --remove`"),
            ));
        }
    }
    let facts = EngineFacts {
        engine,
        version,
        cdi_on,
        spec_dirs: if cdi_on { dirs } else { Vec::new() },
        selinux_labels: config.selinux_labels.unwrap_or(engine.labels_by_default()),
    };
    (section(findings), Some(facts))
}

/// Docker 28.3 registers its AMD `--gpus` driver only when this executable is on dockerd's PATH.
const DOCKER_AMD_HELPER: &str = "amd-container-runtime";

/// What `docker run --gpus` does on this host (docs/engines.md) and what to use instead.
fn docker_gpus_finding(
    roots: &HostRoots,
    version: EngineVersion,
    config: &EngineConfig,
    spec_dirs: &[String],
    cdi_on: bool,
) -> Finding {
    let check = EngineCheck::GPUS.of(Engine::Docker);
    let cdi = if cdi_on {
        "use `docker run --device amd.com/gpu=N` (CDI) instead"
    } else {
        "use `docker run --runtime amd -e AMD_VISIBLE_DEVICES=N` (the runtime wrapper) instead"
    };
    if let Some(finding) = nvidia_gpus(roots, config, spec_dirs, cdi) {
        return finding;
    }
    if version < DOCKER_AMD_GPUS {
        return info(
            check,
            format!("docker {version} has no AMD driver for `--gpus` (needs 28.3); {cdi}"),
        );
    }
    if version >= DOCKER_AMD_GPUS_CDI {
        return ok(
            check,
            format!("docker {version} maps `--gpus` to amd.com/gpu CDI devices"),
        );
    }
    if find_binary(&roots.search_path, DOCKER_AMD_HELPER).is_none() {
        return info(
            check,
            format!(
                "docker {version} serves `--gpus` on AMD only when an executable named \
                 {DOCKER_AMD_HELPER} is on dockerd's PATH (link it to {WRAPPER_NAME} and restart \
                 dockerd, then `--runtime amd --gpus ...`); {cdi}"
            ),
        );
    }
    if !config.wrappers.is_empty() {
        ok(
            check,
            format!(
                "docker {version} turns `--gpus` into AMD_VISIBLE_DEVICES: use it with the \
                 wrapper's runtime (`--runtime amd`, or `--set-as-default`)"
            ),
        )
    } else {
        warn(
            check,
            format!(
                "docker {version} turns `--gpus` into AMD_VISIBLE_DEVICES, which only the \
                 runtime wrapper reads, and no runtime entry is the wrapper"
            ),
            "`amdgpu-cdi configure docker`, restart dockerd, then `docker run --runtime amd --gpus ...`",
        )
    }
}

/// Our hooks.d files in `dir` (a host path): JSON files whose hook path names amdgpu-cdi.
fn our_hook_files(roots: &HostRoots, dir: &str) -> Vec<PathBuf> {
    let mut files = dir_files(&roots.host(dir), "json");
    files.retain(|p| fs::read_to_string(p).is_ok_and(|t| t.contains("amdgpu-cdi")));
    files
}

/// Which hooks dirs CRI-O reads, and whether our hooks are in one of them.
fn crio_hooks(roots: &HostRoots, config: &EngineConfig) -> Vec<Finding> {
    let dirs = config.hooks_dirs.clone().unwrap_or_else(|| {
        crio::DEFAULT_HOOKS_DIRS
            .iter()
            .map(|d| (*d).to_string())
            .collect()
    });
    let mut findings = vec![info(
        EngineCheck::HOOKS_DIRS.of(Engine::Crio),
        format!("reads OCI hooks from {}", dirs.join(", ")),
    )];
    // CRI-O has no precreate stage (a podman extension): only the other stages matter here.
    let for_crio = |path: &PathBuf| {
        fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|json| json.get("stages").and_then(|s| s.as_array()).cloned())
            .is_some_and(|stages| stages.iter().any(|s| s.as_str() != Some("precreate")))
    };
    let installed: Vec<PathBuf> = HOOKS_DIRS
        .iter()
        .flat_map(|d| our_hook_files(roots, d))
        .filter(for_crio)
        .collect();
    let seen = dirs
        .iter()
        .any(|d| our_hook_files(roots, d).iter().any(for_crio));
    if !installed.is_empty() && !seen {
        let shown: Vec<String> = installed.iter().map(|p| roots.show(p)).collect();
        findings.push(warn(
            EngineCheck::HOOKS_DIRS.of(Engine::Crio),
            format!(
                "crio does not read the amdgpu-cdi hooks {}",
                shown.join(", ")
            ),
            format!(
                "add {} to hooks_dir in [crio.runtime] (only needed for AMD_VISIBLE_DEVICES requests)",
                HOOKS_DIRS[0]
            ),
        ));
    }
    findings
}

/// NVIDIA's helper binary: dockerd registers its NVIDIA `--gpus` driver when it is on its PATH, and
/// then never the AMD one (moby `daemon/nvidia_linux.go`, `amd_linux.go`).
const NVIDIA_HOOK: &str = "nvidia-container-runtime-hook";

/// The CDI vendor of NVIDIA's specs (`nvidia-ctk cdi generate`).
const NVIDIA_VENDOR: &str = "nvidia.com/";

/// Spec files of NVIDIA devices in `dirs` (host paths).
fn nvidia_specs(roots: &HostRoots, dirs: &[String]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in dirs {
        for path in spec_files(&roots.host(dir)) {
            let Ok(bytes) = cdi::registry::read_entry(&path) else {
                continue;
            };
            let nvidia = match cdi::codec::parse(&bytes, cdi::codec::Format::from_path(&path)) {
                Ok(spec) => spec.kind.starts_with(NVIDIA_VENDOR),
                // NVIDIA's specs may hold what this reader refuses; the kind is enough here.
                Err(_) => mentions(&bytes, NVIDIA_VENDOR),
            };
            if nvidia {
                found.push(path);
            }
        }
    }
    found
}

/// `docker.gpus` when NVIDIA's container toolkit is set up for Docker: its hook on dockerd's
/// PATH, its runtime in daemon.json or its CDI spec in the dirs Docker reads. `instead` says what
/// to use for AMD GPUs.
pub(super) fn nvidia_gpus(
    roots: &HostRoots,
    config: &EngineConfig,
    spec_dirs: &[String],
    instead: &str,
) -> Option<Finding> {
    let mut found = Vec::new();
    if let Some(hook) = find_binary(&roots.search_path, NVIDIA_HOOK) {
        found.push(format!("{} is on dockerd's PATH", roots.show(&hook)));
    }
    for (name, path) in &config.nvidia_runtimes {
        found.push(format!(
            "daemon.json has NVIDIA's runtime {path} as `{name}`"
        ));
    }
    for path in nvidia_specs(roots, spec_dirs) {
        found.push(format!("{} defines NVIDIA CDI devices", roots.show(&path)));
    }
    if found.is_empty() {
        return None;
    }
    Some(warn(
        EngineCheck::GPUS.of(Engine::Docker),
        format!(
            "`docker run --gpus` is NVIDIA's on this host: dockerd registers its AMD `--gpus` \
             driver only where NVIDIA's {NVIDIA_HOOK} is not on its PATH, and NVIDIA's container \
             toolkit is set up here: {}",
            found.join("; ")
        ),
        format!("for AMD GPUs, {instead}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::{containerd, docker};

    #[test]
    fn containerd_2_reads_the_section_of_the_file_version() {
        let (_dir, roots) = HostRoots::temp();
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  enable_cdi = false\n  \
                  cdi_spec_dirs = [\"/srv/v2\"]\n";
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.runtime']\n  enable_cdi = false\n  \
                  cdi_spec_dirs = ['/srv/v3']\n";
        for (text, dir_name) in [(v2, "/srv/v2"), (v3, "/srv/v3")] {
            roots.write_file("/etc/containerd/config.toml", text);
            let config = containerd::read_config(&roots, Some(EngineVersion::new(2, 1, 9)));
            assert_eq!(config.cdi_enabled, Some(false), "{text}");
            assert_eq!(config.spec_dirs, Some(vec![dir_name.to_string()]), "{text}");
        }
        roots.write_file("/etc/containerd/config.toml", v2);
        let config = containerd::read_config(&roots, Some(EngineVersion::new(1, 7, 24)));
        assert_eq!(config.spec_dirs, Some(vec!["/srv/v2".to_string()]));
    }

    #[test]
    fn docker_cdi_is_on_by_default_from_28_2() {
        let config = EngineConfig::default();
        assert!(!cdi_state(Engine::Docker, EngineVersion::new(27, 0, 0), &config).0);
        assert!(cdi_state(Engine::Docker, EngineVersion::new(28, 2, 0), &config).0);
        let on = EngineConfig {
            cdi_enabled: Some(true),
            ..EngineConfig::default()
        };
        assert!(cdi_state(Engine::Docker, EngineVersion::new(26, 1, 0), &on).0);
        assert!(!cdi_state(Engine::Docker, EngineVersion::new(20, 10, 24), &on).0);
    }

    #[test]
    fn a_daemon_json_byte_order_mark_is_skipped_from_docker_23() {
        let (_dir, roots) = HostRoots::temp();
        roots.write_file(
            "/etc/docker/daemon.json",
            "\u{feff}{\"features\": {\"cdi\": true}}\n",
        );
        for version in [None, Some(EngineVersion::new(23, 0, 0))] {
            let config = docker::read_config(&roots, version);
            assert_eq!(config.broken, None, "{version:?}");
            assert_eq!(config.cdi_enabled, Some(true), "{version:?}");
        }
        let old = docker::read_config(&roots, Some(EngineVersion::new(20, 10, 24)));
        let broken = old.broken.expect("dockerd 20.10 refuses the mark");
        assert!(
            broken.ends_with("daemon.json: it starts with a UTF-8 byte order mark, which dockerd before 23.0 refuses (save it as UTF-8 without one)"),
            "{broken}"
        );
    }

    #[test]
    fn a_hanging_version_command_is_cut_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("slow");
        crate::files::executable(&script, "#!/bin/sh\nsleep 5\n");
        let started = Instant::now();
        let err = version_output(&script, Duration::from_millis(200)).expect_err("times out");
        assert!(err.contains("did not finish within 200 ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn each_engine_reads_its_selinux_label_switch() {
        let (_dir, roots) = HostRoots::temp();
        let version = Some(EngineVersion::new(99, 0, 0));
        for engine in Engine::ALL {
            assert_eq!(engine.read_config(&roots, version).selinux_labels, None);
        }
        let files = [
            (
                Engine::Docker,
                "/etc/docker/daemon.json",
                "{\"selinux-enabled\": VALUE}",
            ),
            (
                Engine::Containerd,
                "/etc/containerd/config.toml",
                "version = 3\n[plugins.'io.containerd.cri.v1.runtime']\nenable_selinux = VALUE\n",
            ),
            (
                Engine::Crio,
                "/etc/crio/crio.conf",
                "[crio.runtime]\nselinux = VALUE\n",
            ),
            (
                Engine::Podman,
                "/etc/containers/containers.conf",
                "[containers]\nlabel = VALUE\n",
            ),
        ];
        for (engine, path, text) in files {
            for value in [true, false] {
                roots.write_file(path, &text.replace("VALUE", &value.to_string()));
                let config = engine.read_config(&roots, version);
                assert_eq!(config.selinux_labels, Some(value), "{engine} {path}");
            }
        }
        roots.write_file(
            "/etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nenable_selinux = true\n",
        );
        let v2 = Engine::Containerd.read_config(&roots, Some(EngineVersion::new(1, 7, 24)));
        assert_eq!(v2.selinux_labels, Some(true));
    }
}
