//! The container engines amdgpu-cdi sets up, one module per engine, each the one home of what that
//! engine's config file means: where it is, how it parses, the keys amdgpu-cdi adds (written by
//! `configure`) and what those keys say when read back (by `doctor`).
//!
//! - [`docker`]: `daemon.json`; [`containerd`]: `config.toml` (version 2 or 3) and its drop-in;
//!   [`crio`]: `crio.conf` and a `crio.conf.d` drop-in; [`podman`]: `containers.conf` and a
//!   `containers.conf.d` drop-in.
//! - [`releases`]: what each engine release accepts (CDI support, the newest `cdiVersion`), in one
//!   table, and the engine release number type.
//! - [`change`]: the record of each edit, which makes `configure --remove` exact.
//!
//! The edit functions are pure (`(original text, settings) -> new text`); reading and writing
//! files, backups and ledgers are `configure`'s. The readers take a [`HostPaths`] so `doctor` can
//! point them at a host mounted anywhere.

pub mod change;
pub mod containerd;
pub mod crio;
pub mod docker;
pub mod podman;
pub mod releases;
#[cfg(test)]
mod strategies;
mod toml_tree;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use change::{Change, ChangeError};
use releases::EngineVersion;

/// First line of every drop-in amdgpu-cdi writes; a drop-in without it is not touched.
pub const DROPIN_HEADER: &str = "# Written by `amdgpu-cdi configure`; \
    `amdgpu-cdi configure <engine> --remove` deletes this file.\n";

/// A container engine amdgpu-cdi knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Docker Engine (`dockerd`, `daemon.json`).
    Docker,
    /// containerd (`config.toml`, version 2 or 3).
    Containerd,
    /// CRI-O (a `crio.conf.d` drop-in).
    Crio,
    /// Podman (a `containers.conf.d` drop-in).
    Podman,
}

impl Engine {
    /// Every engine, in the order `doctor` reports them.
    pub const ALL: [Engine; 4] = [
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
            Engine::Crio => "crio",
            Engine::Podman => "podman",
        }
    }

    /// Binaries that identify the engine, the daemon first (its version is what matters).
    pub fn binaries(self) -> &'static [&'static str] {
        match self {
            Engine::Docker => &["dockerd", "docker"],
            Engine::Containerd => &["containerd"],
            Engine::Crio => &["crio"],
            Engine::Podman => &["podman"],
        }
    }

    /// The file `configure` edits when `--config` is not given.
    pub fn default_config(self) -> &'static Path {
        Path::new(match self {
            Engine::Docker => docker::CONFIG,
            Engine::Containerd => containerd::CONFIG,
            Engine::Crio => crio::DROPIN,
            Engine::Podman => podman::DROPIN,
        })
    }

    /// What the user must do for the engine to read the new configuration.
    pub fn restart_hint(self) -> &'static str {
        match self {
            Engine::Docker => "restart Docker to apply: systemctl restart docker",
            Engine::Containerd => "restart containerd to apply: systemctl restart containerd",
            Engine::Crio => "restart CRI-O to apply: systemctl restart crio",
            Engine::Podman => "podman reads the new configuration on its next command",
        }
    }

    /// Whether the engine gives containers SELinux labels (confines them) where its config does
    /// not say. Podman's `label` is on by default; CRI-O's `selinux` is on where its packages
    /// ship for SELinux hosts, so an unset one counts as on (doctor would rather name a denial
    /// that does not happen than miss one); Docker's `selinux-enabled` and containerd's CRI
    /// `enable_selinux` are off by default.
    pub fn labels_by_default(self) -> bool {
        matches!(self, Engine::Podman | Engine::Crio)
    }

    /// What the engine's config files say about CDI and the wrapper (see [`EngineConfig`]);
    /// `version` is the engine's release, when known (some files are read by it).
    pub fn read_config(self, host: &dyn HostPaths, version: Option<EngineVersion>) -> EngineConfig {
        match self {
            Engine::Docker => docker::read_config(host, version),
            Engine::Containerd => containerd::read_config(host, version),
            Engine::Crio => crio::read_config(host),
            Engine::Podman => podman::read_config(host),
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `configure` writes into an engine config (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEntry {
    /// Name of the runtime entry (`amd`).
    pub runtime_name: String,
    /// Absolute path of `amdgpu-container-runtime`.
    pub runtime_path: PathBuf,
    /// Make the wrapper the engine's default runtime.
    pub set_as_default: bool,
    /// Extra CDI spec directories (absolute).
    pub cdi_spec_dirs: Vec<PathBuf>,
}

impl RuntimeEntry {
    /// The spec directories as strings.
    pub fn spec_dir_strings(&self) -> Vec<String> {
        self.cdi_spec_dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        RuntimeEntry {
            runtime_name: "amd".to_string(),
            runtime_path: PathBuf::from(crate::paths::WRAPPER_PATH),
            set_as_default: false,
            cdi_spec_dirs: Vec::new(),
        }
    }
}

/// The pure result of configuring a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Edited {
    /// The new text (the original, byte for byte, when nothing changed).
    pub text: String,
    /// What was changed.
    pub changes: Vec<Change>,
}

/// The pure result of removing recorded changes from a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Reverted {
    /// The new text.
    pub text: String,
    /// Dotted keys left alone because they changed since amdgpu-cdi set them.
    pub kept: Vec<String>,
}

/// The starting list for a drop-in: the value of `key` in the engine's main config, else the
/// engine's `defaults`, plus `ours` (each entry once, order kept).
pub(crate) fn merged_list(
    main_config: Option<&str>,
    key: &[String],
    defaults: &[&str],
    ours: &[String],
) -> Result<Vec<String>, ChangeError> {
    let inherited = match main_config {
        Some(text) => toml_tree::string_list(text, key)?,
        None => None,
    };
    let mut list = inherited.unwrap_or_else(|| defaults.iter().map(|d| (*d).to_string()).collect());
    for item in ours {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
    Ok(list)
}

/// The engine's main config next to the drop-in directory holding `dropin` (`crio.conf`,
/// `containers.conf`); `None` for engines configured in place.
pub fn main_config(engine: Engine, dropin: &Path) -> Option<PathBuf> {
    let name = match engine {
        Engine::Crio => crio::MAIN_CONFIG_NAME,
        Engine::Podman => podman::MAIN_CONFIG_NAME,
        Engine::Docker | Engine::Containerd => return None,
    };
    Some(dropin.parent()?.parent()?.join(name))
}

/// Where the readers find a host's files: `host` maps a path on the host (`/etc/docker/...`) to
/// where it can be read, `show` maps such a path back for messages.
pub trait HostPaths {
    /// Where the host's `path` can be read.
    fn host(&self, path: &str) -> PathBuf;
    /// The host path of a readable `path`, for messages.
    fn show(&self, path: &Path) -> String;
}

/// An engine's configuration as far as CDI and the wrapper are concerned, read back from its
/// files.
#[derive(Debug, Default)]
pub struct EngineConfig {
    /// Explicit CDI switch, when the config sets one.
    pub cdi_enabled: Option<bool>,
    /// Configured spec dirs, when set.
    pub spec_dirs: Option<Vec<String>>,
    /// Runtime entries whose binary is amdgpu-container-runtime: (entry name, path).
    pub wrappers: Vec<(String, String)>,
    /// A configuration file that could not be parsed, with the error.
    pub broken: Option<String>,
    /// Configured OCI hooks dirs (CRI-O `hooks_dir`), when set.
    pub hooks_dirs: Option<Vec<String>>,
    /// Runtime entries whose binary is NVIDIA's runtime (Docker `runtimes`): (entry name, path).
    pub nvidia_runtimes: Vec<(String, String)>,
    /// Explicit switch for SELinux labels on containers, when the config sets one: Docker's
    /// `selinux-enabled`, containerd's `enable_selinux`, CRI-O's `selinux`, podman's `label`.
    pub selinux_labels: Option<bool>,
}

/// Reads the TOML files `paths` (host paths, missing ones skipped) in order, calling `read` with
/// each parsed table; a file that does not parse is recorded in `broken` and skipped.
fn read_toml_files(
    host: &dyn HostPaths,
    paths: impl IntoIterator<Item = PathBuf>,
    mut read: impl FnMut(&mut EngineConfig, toml::Table),
) -> EngineConfig {
    let mut config = EngineConfig::default();
    for path in paths {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        match toml::from_str::<toml::Table>(&text) {
            Ok(table) => read(&mut config, table),
            Err(e) => {
                config.broken = Some(format!("{}: {}", host.show(&path), toml_error(&text, &e)));
            }
        }
    }
    config
}

/// The files named `*.<extension>` in `dir`, in name order, as engines list their drop-in and
/// hooks.d directories; empty when `dir` cannot be read.
pub fn dir_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// The strings of a TOML array (other values skipped); `None` when `value` is not an array.
fn string_array(value: Option<&toml::Value>) -> Option<Vec<String>> {
    value.and_then(toml::Value::as_array).map(|a| {
        a.iter()
            .filter_map(|d| d.as_str().map(str::to_string))
            .collect()
    })
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
