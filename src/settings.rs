//! The configuration file of the hooks and the runtime wrapper, `/etc/amdgpu-cdi/config.toml`
//! (or the file named by `AMDGPU_CDI_CONFIG` or `--config`). Parsing is strict: an unknown key is
//! an error naming the file and the key, so a typo never silently changes behaviour.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::paths;
use crate::request::{EnvPolicy, RequestOptions};

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/amdgpu-cdi/config.toml";
/// The environment variable naming another configuration file.
pub const ENV_VAR: &str = "AMDGPU_CDI_CONFIG";
/// Where the low-level runtime is looked for when `runtime` is not set, in order.
pub const RUNTIME_CANDIDATES: &[&str] = &["/usr/bin/runc", "/usr/sbin/runc"];

/// Where the devices injected into a container come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceSource {
    /// Discover the GPUs from sysfs when the container is created (never stale).
    #[default]
    Discover,
    /// Use the `amd.com/gpu` devices of the CDI specs in `spec-dirs`.
    Cdi,
}

/// `accept-env-from-unprivileged`: `true`, `false` or `"outside-kubernetes"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum EnvPolicyValue {
    Bool(bool),
    Word(EnvPolicyWord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum EnvPolicyWord {
    OutsideKubernetes,
}

/// The file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    sysfs_root: Option<PathBuf>,
    dev_root: Option<PathBuf>,
    wsl_lib_root: Option<PathBuf>,
    exclude_integrated: Option<bool>,
    runtime: Option<PathBuf>,
    device_source: Option<DeviceSource>,
    spec_dirs: Option<Vec<PathBuf>>,
    log_file: Option<PathBuf>,
    accept_env_from_unprivileged: Option<EnvPolicyValue>,
    swarm_resources: Option<Vec<String>>,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The file they were read from, if any.
    pub source: Option<PathBuf>,
    /// The sysfs mount to discover GPUs from (`/sys`).
    pub sysfs_root: PathBuf,
    /// The directory holding the host's `dev/` (`/`).
    pub dev_root: PathBuf,
    /// Where WSL mounts the Windows GPU libraries (`/usr/lib/wsl`), for a WSL2 host (docs/wsl.md).
    pub wsl_lib_root: PathBuf,
    /// Leave integrated GPUs out, the others numbered from 0, as `generate --exclude-integrated`.
    pub exclude_integrated: bool,
    /// The low-level runtime the wrapper execs, when configured.
    pub runtime: Option<PathBuf>,
    /// Where devices come from.
    pub device_source: DeviceSource,
    /// CDI spec directories, lowest priority first (for `device-source = "cdi"`).
    pub spec_dirs: Vec<PathBuf>,
    /// The detail log, when configured.
    pub log_file: Option<PathBuf>,
    /// Whether unprivileged containers' environment requests are honoured.
    pub env_policy: EnvPolicy,
    /// Swarm generic-resource names read from `DOCKER_RESOURCE_<NAME>`.
    pub swarm_resources: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            source: None,
            sysfs_root: PathBuf::from("/sys"),
            dev_root: PathBuf::from("/"),
            wsl_lib_root: PathBuf::from(crate::discover::wsl::WSL_LIB_ROOT),
            exclude_integrated: false,
            runtime: None,
            device_source: DeviceSource::Discover,
            spec_dirs: paths::SPEC_DIRS.map(PathBuf::from).to_vec(),
            log_file: None,
            env_policy: EnvPolicy::OutsideKubernetes,
            swarm_resources: vec!["AMD_GPU".to_string(), "AMD-GPU".to_string()],
        }
    }
}

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read configuration {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid configuration {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line.
        message: String,
    },
    /// A path setting is relative.
    #[error("invalid configuration {path}: {key} must be an absolute path, not {value}")]
    Relative {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// The value.
        value: PathBuf,
    },
    /// No runtime is configured and none was found.
    #[error(
        "no low-level runtime found at {} (set runtime = \"/path/to/runc\" in {config})",
        RUNTIME_CANDIDATES.join(" or ")
    )]
    NoRuntime {
        /// The configuration file to fix.
        config: String,
    },
}

/// Command-line overrides of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--sysfs-root`.
    pub sysfs_root: Option<PathBuf>,
    /// `--dev-root`.
    pub dev_root: Option<PathBuf>,
}

impl Settings {
    /// Loads the settings: the `--config` file, else `AMDGPU_CDI_CONFIG` (passed in as `env`),
    /// else [`DEFAULT_PATH`]; a missing default file means defaults, a missing named file is an
    /// error. Then applies the command-line roots.
    pub fn load(overrides: &Overrides, env: Option<OsString>) -> Result<Self, SettingsError> {
        let named = overrides
            .config
            .clone()
            .or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from));
        let mut settings = match named {
            Some(path) => Self::from_file(&path)?,
            None => match std::fs::read_to_string(DEFAULT_PATH) {
                Ok(text) => Self::from_toml(&text, Path::new(DEFAULT_PATH))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
                Err(source) => {
                    return Err(SettingsError::Read {
                        path: PathBuf::from(DEFAULT_PATH),
                        source,
                    });
                }
            },
        };
        if let Some(root) = &overrides.sysfs_root {
            settings.sysfs_root.clone_from(root);
        }
        if let Some(root) = &overrides.dev_root {
            settings.dev_root.clone_from(root);
        }
        Ok(settings)
    }

    /// Reads one file, which must exist.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses TOML text; `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, SettingsError> {
        let file: File = toml::from_str(text).map_err(|e| SettingsError::Parse {
            path: path.to_path_buf(),
            message: one_line(&e, text),
        })?;
        let defaults = Self::default();
        let absolute = |key: &'static str, value: Option<PathBuf>| match value {
            Some(v) if !v.is_absolute() => Err(SettingsError::Relative {
                path: path.to_path_buf(),
                key,
                value: v,
            }),
            other => Ok(other),
        };
        let spec_dirs = file.spec_dirs.unwrap_or(defaults.spec_dirs);
        for dir in &spec_dirs {
            absolute("spec-dirs", Some(dir.clone()))?;
        }
        Ok(Self {
            source: Some(path.to_path_buf()),
            sysfs_root: absolute("sysfs-root", file.sysfs_root)?.unwrap_or(defaults.sysfs_root),
            dev_root: absolute("dev-root", file.dev_root)?.unwrap_or(defaults.dev_root),
            wsl_lib_root: absolute("wsl-lib-root", file.wsl_lib_root)?
                .unwrap_or(defaults.wsl_lib_root),
            exclude_integrated: file
                .exclude_integrated
                .unwrap_or(defaults.exclude_integrated),
            runtime: absolute("runtime", file.runtime)?,
            device_source: file.device_source.unwrap_or_default(),
            spec_dirs,
            log_file: absolute("log-file", file.log_file)?,
            env_policy: match file.accept_env_from_unprivileged {
                None | Some(EnvPolicyValue::Word(EnvPolicyWord::OutsideKubernetes)) => {
                    EnvPolicy::OutsideKubernetes
                }
                Some(EnvPolicyValue::Bool(true)) => EnvPolicy::Always,
                Some(EnvPolicyValue::Bool(false)) => EnvPolicy::Never,
            },
            swarm_resources: file.swarm_resources.unwrap_or(defaults.swarm_resources),
        })
    }

    /// The runtime to exec: the configured one, else the first of [`RUNTIME_CANDIDATES`] that
    /// exists.
    pub fn runtime_path(&self) -> Result<PathBuf, SettingsError> {
        if let Some(runtime) = &self.runtime {
            return Ok(runtime.clone());
        }
        RUNTIME_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| SettingsError::NoRuntime {
                config: self
                    .source
                    .as_ref()
                    .map_or_else(|| DEFAULT_PATH.to_string(), |p| p.display().to_string()),
            })
    }

    /// The options for reading requests.
    pub fn request_options(&self) -> RequestOptions {
        RequestOptions {
            env_policy: self.env_policy,
            swarm_resources: self.swarm_resources.clone(),
        }
    }
}

/// A TOML error on one line: `line N: message`.
fn one_line(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, SettingsError> {
        Settings::from_toml(text, Path::new("/etc/amdgpu-cdi/config.toml"))
    }

    #[test]
    fn an_empty_file_means_defaults() {
        let settings = parse("").expect("valid");
        assert_eq!(
            settings,
            Settings {
                source: Some(PathBuf::from("/etc/amdgpu-cdi/config.toml")),
                ..Settings::default()
            }
        );
    }

    #[test]
    fn every_key() {
        let settings = parse(
            r#"
sysfs-root = "/fx/sys"
dev-root = "/fx"
runtime = "/usr/local/bin/crun"
device-source = "cdi"
spec-dirs = ["/etc/cdi"]
log-file = "/var/log/amdgpu-cdi.log"
accept-env-from-unprivileged = false
swarm-resources = ["GPU"]
"#,
        )
        .expect("valid");
        assert_eq!(settings.sysfs_root, PathBuf::from("/fx/sys"));
        assert_eq!(settings.dev_root, PathBuf::from("/fx"));
        assert_eq!(
            settings.runtime_path().expect("set"),
            PathBuf::from("/usr/local/bin/crun")
        );
        assert_eq!(settings.device_source, DeviceSource::Cdi);
        assert_eq!(settings.spec_dirs, vec![PathBuf::from("/etc/cdi")]);
        assert_eq!(settings.env_policy, EnvPolicy::Never);
        assert_eq!(settings.swarm_resources, vec!["GPU".to_string()]);
        let settings = parse("accept-env-from-unprivileged = \"outside-kubernetes\"").expect("ok");
        assert_eq!(settings.env_policy, EnvPolicy::OutsideKubernetes);
        let settings = parse("accept-env-from-unprivileged = true").expect("ok");
        assert_eq!(settings.env_policy, EnvPolicy::Always);
    }

    #[test]
    fn an_unknown_key_names_file_and_key() {
        let err = parse("sysfs-root = \"/sys\"\nruntim = \"/usr/bin/runc\"\n").expect_err("typo");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "invalid configuration /etc/amdgpu-cdi/config.toml: line 2: unknown field `runtim`"
            ),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn relative_paths_and_bad_values_are_refused() {
        let err = parse("runtime = \"runc\"").expect_err("relative");
        assert_eq!(
            err.to_string(),
            "invalid configuration /etc/amdgpu-cdi/config.toml: runtime must be an absolute path, not runc"
        );
        assert!(parse("device-source = \"udev\"").is_err());
        assert!(parse("accept-env-from-unprivileged = \"sometimes\"").is_err());
    }

    #[test]
    fn a_missing_named_file_is_an_error_and_overrides_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.toml");
        let err = Settings::load(&Overrides::default(), Some(missing.clone().into()))
            .expect_err("missing file");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read configuration {}", missing.display()))
        );
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "dev-root = \"/a\"\n").expect("write");
        let overrides = Overrides {
            config: Some(file.clone()),
            sysfs_root: Some(PathBuf::from("/s")),
            dev_root: None,
        };
        let settings = Settings::load(&overrides, Some(missing.into())).expect("--config wins");
        assert_eq!(settings.source, Some(file));
        assert_eq!(settings.sysfs_root, PathBuf::from("/s"));
        assert_eq!(settings.dev_root, PathBuf::from("/a"));
    }
}
