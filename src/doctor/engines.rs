//! Engine checks: which container engines are installed, their versions, whether their CDI support
//! is on, which spec dirs they read, whether their CDI library accepts our spec's version, and
//! whether the runtime wrapper and the OCI hooks are configured.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdi::version::Version as SpecVersion;

use super::{Finding, HostRoots, Section, fail, info, ok, warn};
use crate::paths::{HOOKS_DIRS, SPEC_DIRS, WRAPPER_NAME};

/// The engines doctor knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Docker Engine (`dockerd`).
    Docker,
    /// containerd.
    Containerd,
    /// Podman.
    Podman,
    /// CRI-O.
    Crio,
}

impl Engine {
    const ALL: [Engine; 4] = [
        Engine::Docker,
        Engine::Containerd,
        Engine::Podman,
        Engine::Crio,
    ];

    /// The engine's usual name.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Containerd => "containerd",
            Engine::Podman => "podman",
            Engine::Crio => "crio",
        }
    }

    /// Binaries that identify the engine, the daemon first (its version is what matters).
    fn binaries(self) -> &'static [&'static str] {
        match self {
            Engine::Docker => &["dockerd", "docker"],
            Engine::Containerd => &["containerd"],
            Engine::Podman => &["podman"],
            Engine::Crio => &["crio"],
        }
    }

    /// The first release with CDI support.
    fn first_cdi(self) -> EngineVersion {
        match self {
            Engine::Docker => EngineVersion::new(25, 0, 0),
            Engine::Containerd => EngineVersion::new(1, 7, 0),
            Engine::Podman => EngineVersion::new(4, 1, 0),
            Engine::Crio => EngineVersion::new(1, 24, 0),
        }
    }

    /// The first release whose CDI library accepts `spec`; `None` when no release does (or the
    /// version is unknown).
    pub fn first_accepting(self, spec: SpecVersion) -> Option<EngineVersion> {
        let v = EngineVersion::new;
        let row = match (spec.major, spec.minor, spec.patch) {
            (0, 3 | 4, 0) => [
                Some(self.first_cdi()),
                Some(self.first_cdi()),
                Some(self.first_cdi()),
                Some(self.first_cdi()),
            ],
            (0, 5, 0) => [
                Some(v(4, 3, 0)),
                Some(v(1, 25, 0)),
                Some(v(1, 7, 0)),
                Some(v(25, 0, 0)),
            ],
            (0, 6, 0) => [
                Some(v(4, 7, 0)),
                Some(v(1, 28, 0)),
                Some(v(1, 7, 12)),
                Some(v(25, 0, 0)),
            ],
            (0, 7, 0) => [
                Some(v(5, 1, 0)),
                Some(v(1, 30, 0)),
                Some(v(1, 7, 16)),
                Some(v(26, 1, 0)),
            ],
            // Library-only versions: the releases seen accepting them in the engine roots'
            // tests (docs/engines.md); earlier releases may accept them too. CRI-O: from the
            // 1.1.0 row.
            (0, 8, 0) => [
                Some(v(5, 4, 0)),
                Some(v(1, 35, 0)),
                Some(v(1, 7, 24)),
                Some(v(28, 5, 0)),
            ],
            (1, 0, 0) => [
                Some(v(5, 8, 0)),
                Some(v(1, 35, 0)),
                Some(v(2, 1, 9)),
                Some(v(28, 5, 0)),
            ],
            (1, 1, 0) => [None, Some(v(1, 35, 0)), Some(v(2, 2, 1)), Some(v(29, 2, 0))],
            _ => return None,
        };
        match self {
            Engine::Podman => row[0],
            Engine::Crio => row[1],
            Engine::Containerd => row[2],
            Engine::Docker => row[3],
        }
    }
}

impl Engine {
    /// The newest spec version release `version` accepts; `None` when it accepts none.
    pub fn newest_accepted(self, version: EngineVersion) -> Option<SpecVersion> {
        cdi::version::KNOWN_VERSIONS
            .iter()
            .copied()
            .filter(|spec| {
                self.first_accepting(*spec)
                    .is_some_and(|first| version >= first)
            })
            .max()
    }
}

/// A release number `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EngineVersion {
    /// Major release.
    pub major: u32,
    /// Minor release.
    pub minor: u32,
    /// Patch release.
    pub patch: u32,
}

impl EngineVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> EngineVersion {
        EngineVersion {
            major,
            minor,
            patch,
        }
    }

    /// Finds the first `X.Y[.Z]` token in `--version` output such as
    /// `Docker version 20.10.24+dfsg1, build 297e128` or `containerd github.com/... v1.7.2 ...`.
    pub fn find_in(output: &str) -> Option<EngineVersion> {
        output.split_whitespace().find_map(|token| {
            let token = token.strip_prefix('v').unwrap_or(token);
            let mut parts = token.split('.');
            let number = |s: Option<&str>| -> Option<u32> {
                let s = s?;
                let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            };
            let major = token
                .split('.')
                .next()
                .filter(|s| s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty())
                .and_then(|s| s.parse().ok())?;
            parts.next();
            let minor = number(parts.next())?;
            let patch = number(parts.next()).unwrap_or(0);
            Some(EngineVersion::new(major, minor, patch))
        })
    }
}

impl std::fmt::Display for EngineVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

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

fn find_binary(search_path: &[PathBuf], name: &str) -> Option<PathBuf> {
    search_path
        .iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// An engine's configuration as far as CDI and the wrapper are concerned.
#[derive(Debug, Default)]
struct EngineConfig {
    /// The file it came from (shown in messages), when one exists.
    file: Option<String>,
    /// Explicit CDI switch, when the config sets one.
    cdi_enabled: Option<bool>,
    /// Configured spec dirs, when set.
    spec_dirs: Option<Vec<String>>,
    /// Runtime entries whose binary is amdgpu-container-runtime: (entry name, path).
    wrappers: Vec<(String, String)>,
    /// A configuration file that could not be parsed, with the error.
    broken: Option<String>,
    /// Configured OCI hooks dirs (CRI-O `hooks_dir`), when set.
    hooks_dirs: Option<Vec<String>>,
}

/// dockerd skips a UTF-8 byte order mark at the start of daemon.json from this release on and
/// refuses the file before it (moby/moby#44770).
const DOCKER_SKIPS_BOM: EngineVersion = EngineVersion::new(23, 0, 0);

fn docker_config(roots: &HostRoots, version: Option<EngineVersion>) -> EngineConfig {
    let path = roots.host("/etc/docker/daemon.json");
    let mut config = EngineConfig::default();
    let Ok(text) = fs::read_to_string(&path) else {
        return config;
    };
    config.file = Some(roots.show(&path));
    let text = match text.strip_prefix('\u{feff}') {
        Some(_) if version.is_some_and(|v| v < DOCKER_SKIPS_BOM) => {
            config.broken = Some(format!(
                "{}: it starts with a UTF-8 byte order mark, which dockerd before 23.0 refuses \
                 (save it as UTF-8 without one)",
                roots.show(&path)
            ));
            return config;
        }
        Some(rest) => rest,
        None => &text,
    };
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(e) => {
            config.broken = Some(format!("{}: {e}", roots.show(&path)));
            return config;
        }
    };
    config.cdi_enabled = json.pointer("/features/cdi").and_then(|v| v.as_bool());
    config.spec_dirs = json.get("cdi-spec-dirs").and_then(|v| {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
    });
    if let Some(runtimes) = json.get("runtimes").and_then(|v| v.as_object()) {
        for (name, runtime) in runtimes {
            if let Some(p) = runtime.get("path").and_then(|v| v.as_str())
                && p.contains(WRAPPER_NAME)
            {
                config.wrappers.push((name.clone(), p.to_string()));
            }
        }
    }
    config
}

fn containerd_config(roots: &HostRoots, version: Option<EngineVersion>) -> EngineConfig {
    let path = roots.host("/etc/containerd/config.toml");
    let mut config = EngineConfig::default();
    let Ok(text) = fs::read_to_string(&path) else {
        return config;
    };
    config.file = Some(roots.show(&path));
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            config.broken = Some(format!("{}: {}", roots.show(&path), toml_error(&text, &e)));
            return config;
        }
    };
    // The file's own `version` picks the section: containerd 2.x still reads (and converts) a
    // `version = 2` file; without the key, 2.x assumes 3 and 1.x assumes 2.
    let file_version = table.get("version").and_then(toml::Value::as_integer);
    let v3 = file_version.map_or(version.is_some_and(|v| v.major >= 2), |v| v >= 3);
    let section = if v3 {
        "io.containerd.cri.v1.runtime"
    } else {
        "io.containerd.grpc.v1.cri"
    };
    if let Some(cri) = table
        .get("plugins")
        .and_then(|p| p.get(section))
        .and_then(|s| s.as_table())
    {
        config.cdi_enabled = cri.get("enable_cdi").and_then(toml::Value::as_bool);
        config.spec_dirs = cri.get("cdi_spec_dirs").and_then(|v| {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
        });
    }
    collect_binary_names(&toml::Value::Table(table), "", &mut config.wrappers);
    config
}

/// Finds `runtimes.<name>.options.BinaryName` entries pointing at the wrapper, at any depth.
fn collect_binary_names(value: &toml::Value, name: &str, out: &mut Vec<(String, String)>) {
    if let Some(table) = value.as_table() {
        for (key, child) in table {
            if key == "BinaryName"
                && let Some(path) = child.as_str()
                && path.contains(WRAPPER_NAME)
            {
                out.push((name.to_string(), path.to_string()));
            }
            let child_name = if key == "options" { name } else { key };
            collect_binary_names(child, child_name, out);
        }
    }
}

fn crio_config(roots: &HostRoots) -> EngineConfig {
    let mut config = EngineConfig::default();
    let mut files = vec![roots.host("/etc/crio/crio.conf")];
    if let Ok(entries) = fs::read_dir(roots.host("/etc/crio/crio.conf.d")) {
        let mut dropins: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        dropins.sort();
        files.extend(dropins);
    }
    for path in files {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        config.file = Some(roots.show(&path));
        let table: toml::Table = match toml::from_str(&text) {
            Ok(table) => table,
            Err(e) => {
                config.broken = Some(format!("{}: {}", roots.show(&path), toml_error(&text, &e)));
                continue;
            }
        };
        if let Some(runtimes) = table
            .get("crio")
            .and_then(|c| c.get("runtime"))
            .and_then(|r| r.get("runtimes"))
            .and_then(toml::Value::as_table)
        {
            for (name, runtime) in runtimes {
                if let Some(path) = runtime.get("runtime_path").and_then(toml::Value::as_str)
                    && path.contains(WRAPPER_NAME)
                {
                    config.wrappers.push((name.clone(), path.to_string()));
                }
            }
        }
        if let Some(dirs) = table
            .get("crio")
            .and_then(|c| c.get("runtime"))
            .and_then(|r| r.get("hooks_dir"))
            .and_then(toml::Value::as_array)
        {
            config.hooks_dirs = Some(
                dirs.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect(),
            );
        }
        if let Some(dirs) = table
            .get("crio")
            .and_then(|c| c.get("runtime"))
            .and_then(|r| r.get("cdi_spec_dirs"))
            .and_then(toml::Value::as_array)
        {
            config.spec_dirs = Some(
                dirs.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect(),
            );
        }
    }
    config
}

fn podman_config(roots: &HostRoots) -> EngineConfig {
    let mut config = EngineConfig::default();
    for file in [
        "/usr/share/containers/containers.conf",
        "/etc/containers/containers.conf",
    ] {
        let path = roots.host(file);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        config.file = Some(roots.show(&path));
        match toml::from_str::<toml::Table>(&text) {
            Ok(table) => {
                if let Some(runtimes) = table
                    .get("engine")
                    .and_then(|e| e.get("runtimes"))
                    .and_then(toml::Value::as_table)
                {
                    for (name, paths) in runtimes {
                        let paths = paths.as_array().map(Vec::as_slice).unwrap_or_default();
                        if let Some(path) = paths
                            .iter()
                            .filter_map(toml::Value::as_str)
                            .find(|p| p.contains(WRAPPER_NAME))
                        {
                            config.wrappers.push((name.clone(), path.to_string()));
                        }
                    }
                }
                if let Some(dirs) = table
                    .get("engine")
                    .and_then(|e| e.get("cdi_spec_dirs"))
                    .and_then(toml::Value::as_array)
                {
                    config.spec_dirs = Some(
                        dirs.iter()
                            .filter_map(|d| d.as_str().map(str::to_string))
                            .collect(),
                    );
                }
            }
            Err(e) => {
                config.broken = Some(format!("{}: {}", roots.show(&path), toml_error(&text, &e)));
            }
        }
    }
    config
}

/// A TOML error on one line: `line N: message`.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().trim_end_matches('.');
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message.to_string(),
    }
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
    let (default_on, switch) = match engine {
        Engine::Docker => (
            version >= EngineVersion::new(28, 2, 0),
            "\"features\": {\"cdi\": ...} in daemon.json",
        ),
        Engine::Containerd => (version.major >= 2, "enable_cdi in the CRI plugin section"),
        Engine::Podman | Engine::Crio => return (true, "CDI support is always on".into()),
    };
    match config.cdi_enabled {
        Some(true) => (true, format!("CDI is enabled ({switch})")),
        Some(false) => (false, format!("CDI is switched off ({switch} is false)")),
        None if default_on => (true, "CDI is enabled (on by default)".into()),
        None => (false, format!("CDI is off ({switch} is not set)")),
    }
}

/// The engine sections, then the hooks section.
pub(super) fn sections(
    roots: &HostRoots,
    specs: &[(SpecVersion, PathBuf)],
    timeout: Duration,
) -> Vec<Section> {
    let mut sections: Vec<Section> = Engine::ALL
        .iter()
        .map(|&engine| engine_section(roots, engine, specs, timeout))
        .collect();
    sections.push(hooks_section(roots));
    sections
}

fn engine_section(
    roots: &HostRoots,
    engine: Engine,
    specs: &[(SpecVersion, PathBuf)],
    timeout: Duration,
) -> Section {
    let name = engine.name();
    let mut findings = Vec::new();
    let binary = engine
        .binaries()
        .iter()
        .find_map(|b| find_binary(&roots.search_path, b));
    let section = |findings| Section {
        title: name.to_string(),
        findings,
    };
    let Some(binary) = binary else {
        findings.push(info(
            &format!("{name}.installed"),
            format!("{name} is not installed"),
        ));
        return section(findings);
    };
    let version = match version_output(&binary, timeout) {
        Ok(out) => match EngineVersion::find_in(&out) {
            Some(version) => {
                findings.push(ok(
                    &format!("{name}.version"),
                    format!("{name} {version} ({})", roots.show(&binary)),
                ));
                Some(version)
            }
            None => {
                findings.push(warn(
                    &format!("{name}.version"),
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
                &format!("{name}.version"),
                format!("{name} is installed ({}) but {why}", roots.show(&binary)),
                format!(
                    "run `{} --version` by hand to see what is wrong",
                    roots.show(&binary)
                ),
            ));
            None
        }
    };
    let config = match engine {
        Engine::Docker => docker_config(roots, version),
        Engine::Containerd => containerd_config(roots, version),
        Engine::Podman => podman_config(roots),
        Engine::Crio => crio_config(roots),
    };
    if let Some(broken) = &config.broken {
        findings.push(fail(
            &format!("{name}.config"),
            format!("cannot parse {broken}"),
            format!("fix the syntax; {name} itself refuses to start with this file"),
        ));
    }
    let Some(version) = version else {
        return section(findings);
    };
    let has_wrapper = !config.wrappers.is_empty();
    let (cdi_on, why) = cdi_state(engine, version, &config);
    if cdi_on {
        findings.push(ok(&format!("{name}.cdi"), why));
    } else if has_wrapper {
        findings.push(info(
            &format!("{name}.cdi"),
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
        findings.push(fail(&format!("{name}.cdi"), why, remedy));
    }
    if cdi_on {
        let dirs: Vec<String> = config
            .spec_dirs
            .clone()
            .unwrap_or_else(|| SPEC_DIRS.map(str::to_string).to_vec());
        findings.push(info(
            &format!("{name}.spec-dirs"),
            format!("reads CDI specs from {}", dirs.join(", ")),
        ));
        if let Some(newest) = engine.newest_accepted(version) {
            findings.push(info(
                &format!("{name}.newest-spec-version"),
                format!("{name} {version} is known to accept cdiVersion up to {newest}"),
            ));
        }
        let visible: Vec<&(SpecVersion, PathBuf)> = specs
            .iter()
            .filter(|(_, path)| {
                path.parent()
                    .is_some_and(|dir| dirs.iter().any(|d| roots.host(d) == dir))
            })
            .collect();
        if visible.is_empty() {
            findings.push(warn(
                &format!("{name}.spec-visible"),
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
                    &format!("{name}.spec-version"),
                    format!("{name} {version} accepts cdiVersion {spec_version} of {shown}"),
                )),
                Some(first) => findings.push(fail(
                    &format!("{name}.spec-version"),
                    format!(
                        "{name} {version} rejects cdiVersion {spec_version} of {shown} (needs {name} {first})"
                    ),
                    format!(
                        "regenerate with `{regenerate} --cdi-version auto` (the minimum version) or upgrade {name} to {first}"
                    ),
                )),
                None => findings.push(fail(
                    &format!("{name}.spec-version"),
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
        findings.push(docker_gpus_finding(roots, version, cdi_on, has_wrapper));
    }
    if config.wrappers.is_empty() && matches!(engine, Engine::Docker | Engine::Containerd) {
        findings.push(info(
            &format!("{name}.wrapper"),
            "runtime wrapper not configured (only needed for AMD_VISIBLE_DEVICES requests)",
        ));
    }
    for (entry, path) in &config.wrappers {
        let real = roots.host(path);
        if real.is_file() {
            findings.push(ok(
                &format!("{name}.wrapper"),
                format!("runtime `{entry}` is the wrapper {path}"),
            ));
        } else {
            findings.push(fail(
                &format!("{name}.wrapper"),
                format!("runtime `{entry}` points at {path}, which does not exist"),
                format!("reinstall amdgpu-cdi or `amdgpu-cdi configure {name} --remove`"),
            ));
        }
    }
    section(findings)
}

/// Docker 28.3 registers its AMD `--gpus` driver only when this executable is on dockerd's PATH.
const DOCKER_AMD_HELPER: &str = "amd-container-runtime";
/// The first Docker with an AMD `--gpus` driver (it sets `AMD_VISIBLE_DEVICES`), and the first
/// whose driver maps `--gpus` to `amd.com/gpu` CDI devices.
const DOCKER_AMD_GPUS: EngineVersion = EngineVersion::new(28, 3, 0);
const DOCKER_AMD_GPUS_CDI: EngineVersion = EngineVersion::new(29, 3, 0);

/// What `docker run --gpus` does on this host (docs/engines.md) and what to use instead.
fn docker_gpus_finding(
    roots: &HostRoots,
    version: EngineVersion,
    cdi_on: bool,
    has_wrapper: bool,
) -> Finding {
    let check = "docker.gpus";
    let cdi = if cdi_on {
        "use `docker run --device amd.com/gpu=N` (CDI) instead"
    } else {
        "use `docker run --runtime amd -e AMD_VISIBLE_DEVICES=N` (the runtime wrapper) instead"
    };
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
    if has_wrapper {
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
    let Ok(entries) = fs::read_dir(roots.host(dir)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| fs::read_to_string(p).is_ok_and(|t| t.contains("amdgpu-cdi")))
        .collect();
    files.sort();
    files
}

/// Which hooks dirs CRI-O reads, and whether our hooks are in one of them.
fn crio_hooks(roots: &HostRoots, config: &EngineConfig) -> Vec<Finding> {
    let dirs = config
        .hooks_dirs
        .clone()
        .unwrap_or_else(|| vec![HOOKS_DIRS[0].to_string()]);
    let mut findings = vec![info(
        "crio.hooks-dirs",
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
            "crio.hooks-dirs",
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

/// The hooks and wrapper section: the configuration file they read, our hooks.d files and whether
/// their binaries exist.
fn hooks_section(roots: &HostRoots) -> Section {
    let mut findings = vec![settings_finding(roots)];
    for dir in HOOKS_DIRS {
        let Ok(entries) = fs::read_dir(roots.host(dir)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for file in files {
            let shown = roots.show(&file);
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            let json: serde_json::Value = match serde_json::from_str(&text) {
                Ok(json) => json,
                Err(e) => {
                    if text.contains("amdgpu-cdi") {
                        findings.push(fail(
                            "hooks.file",
                            format!("cannot parse {shown}: {e}"),
                            "reinstall amdgpu-cdi; podman and CRI-O refuse every container while a hooks.d file is broken",
                        ));
                    }
                    continue;
                }
            };
            let Some(path) = json.pointer("/hook/path").and_then(|v| v.as_str()) else {
                continue;
            };
            if !path.contains("amdgpu-cdi") {
                continue;
            }
            let stages: Vec<&str> = json
                .get("stages")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
                .unwrap_or_default();
            if roots.host(path).is_file() {
                findings.push(ok(
                    "hooks.file",
                    format!("{shown}: {} hook {path}", stages.join(", ")),
                ));
            } else {
                findings.push(fail(
                    "hooks.file",
                    format!("{shown} runs {path}, which does not exist"),
                    format!(
                        "reinstall amdgpu-cdi or delete {shown}; podman fails every container while a hook binary is missing"
                    ),
                ));
            }
        }
    }
    if !findings.iter().any(|f| f.check == "hooks.file") {
        findings.push(info(
            "hooks.file",
            "no amdgpu-cdi OCI hook is installed (only needed for AMD_VISIBLE_DEVICES with podman or CRI-O)",
        ));
    }
    Section {
        title: "hooks and runtime wrapper".into(),
        findings,
    }
}

/// The configuration file the hooks and the wrapper read: valid, and its runtime present.
fn settings_finding(roots: &HostRoots) -> Finding {
    let shown = crate::settings::DEFAULT_PATH;
    let path = roots.host(shown);
    let Ok(text) = fs::read_to_string(&path) else {
        return info(
            "hooks.config",
            format!("{shown} does not exist: the hooks and the runtime wrapper use their defaults"),
        );
    };
    match crate::settings::Settings::from_toml(&text, Path::new(shown)) {
        Err(err) => fail(
            "hooks.config",
            err.to_string(),
            format!("fix {shown}: the hooks and the runtime wrapper refuse to run with it"),
        ),
        Ok(settings) => match settings.runtime {
            Some(runtime) if !roots.host(&runtime.to_string_lossy()).is_file() => fail(
                "hooks.config",
                format!(
                    "{shown} sets runtime {}, which does not exist",
                    runtime.display()
                ),
                "install that runtime or point `runtime` at an installed one (runc, crun, youki)",
            ),
            _ => ok("hooks.config", format!("{shown} is valid")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_real_version_lines() {
        let cases = [
            (
                "Docker version 20.10.24+dfsg1, build 297e128",
                EngineVersion::new(20, 10, 24),
            ),
            (
                "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1",
                EngineVersion::new(1, 6, 20),
            ),
            (
                "containerd containerd.io v2.1.3 abc",
                EngineVersion::new(2, 1, 3),
            ),
            ("podman version 4.3.1", EngineVersion::new(4, 3, 1)),
            (
                "crio version 1.28.0\nVersion: 1.28.0",
                EngineVersion::new(1, 28, 0),
            ),
            ("Docker version 28.2", EngineVersion::new(28, 2, 0)),
        ];
        for (line, want) in cases {
            assert_eq!(EngineVersion::find_in(line), Some(want), "{line}");
        }
        assert_eq!(EngineVersion::find_in("no version here"), None);
    }

    #[test]
    fn acceptance_follows_the_reference_table() {
        let v = |s: &str| s.parse::<SpecVersion>().expect("valid test version");
        assert_eq!(
            Engine::Podman.first_accepting(v("0.5.0")),
            Some(EngineVersion::new(4, 3, 0))
        );
        assert_eq!(
            Engine::Podman.first_accepting(v("0.6.0")),
            Some(EngineVersion::new(4, 7, 0))
        );
        assert_eq!(Engine::Podman.first_accepting(v("1.1.0")), None);
        assert_eq!(
            Engine::Containerd.first_accepting(v("0.7.0")),
            Some(EngineVersion::new(1, 7, 16))
        );
        assert_eq!(
            Engine::Docker.first_accepting(v("1.1.0")),
            Some(EngineVersion::new(29, 2, 0))
        );
    }

    #[test]
    fn the_newest_accepted_version_is_what_the_engine_roots_showed() {
        let v = |s: &str| s.parse::<SpecVersion>().expect("valid test version");
        let e = EngineVersion::new;
        let cases = [
            (Engine::Docker, e(20, 10, 24), None),
            (Engine::Docker, e(26, 1, 5), Some(v("0.7.0"))),
            (Engine::Docker, e(28, 5, 2), Some(v("1.0.0"))),
            (Engine::Containerd, e(1, 6, 20), None),
            (Engine::Containerd, e(1, 7, 24), Some(v("0.8.0"))),
            (Engine::Containerd, e(2, 1, 9), Some(v("1.0.0"))),
            (Engine::Podman, e(4, 3, 1), Some(v("0.5.0"))),
            (Engine::Podman, e(5, 4, 2), Some(v("0.8.0"))),
            (Engine::Podman, e(5, 8, 6), Some(v("1.0.0"))),
        ];
        for (engine, version, newest) in cases {
            assert_eq!(
                engine.newest_accepted(version),
                newest,
                "{engine:?} {version}"
            );
        }
    }

    #[test]
    fn containerd_2_reads_the_section_of_the_file_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("etc/containerd")).expect("mkdir");
        let roots = HostRoots::under(dir.path(), Vec::new());
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  enable_cdi = false\n  \
                  cdi_spec_dirs = [\"/srv/v2\"]\n";
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.runtime']\n  enable_cdi = false\n  \
                  cdi_spec_dirs = ['/srv/v3']\n";
        for (text, dir_name) in [(v2, "/srv/v2"), (v3, "/srv/v3")] {
            fs::write(dir.path().join("etc/containerd/config.toml"), text).expect("write");
            let config = containerd_config(&roots, Some(EngineVersion::new(2, 1, 9)));
            assert_eq!(config.cdi_enabled, Some(false), "{text}");
            assert_eq!(config.spec_dirs, Some(vec![dir_name.to_string()]), "{text}");
        }
        fs::write(dir.path().join("etc/containerd/config.toml"), v2).expect("write");
        let config = containerd_config(&roots, Some(EngineVersion::new(1, 7, 24)));
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
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("etc/docker")).expect("mkdir");
        fs::write(
            dir.path().join("etc/docker/daemon.json"),
            "\u{feff}{\"features\": {\"cdi\": true}}\n",
        )
        .expect("write daemon.json");
        let roots = HostRoots::under(dir.path(), Vec::new());
        for version in [None, Some(EngineVersion::new(23, 0, 0))] {
            let config = docker_config(&roots, version);
            assert_eq!(config.broken, None, "{version:?}");
            assert_eq!(config.cdi_enabled, Some(true), "{version:?}");
        }
        let old = docker_config(&roots, Some(EngineVersion::new(20, 10, 24)));
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
        fs::write(&script, "#!/bin/sh\nsleep 5\n").expect("write script");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
        let started = Instant::now();
        let err = version_output(&script, Duration::from_millis(200)).expect_err("times out");
        assert!(err.contains("did not finish within 200 ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
