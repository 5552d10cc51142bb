//! `amdgpu-cdi configure`: clap arguments, their conversion into validated
//! [`configure::ConfigureOptions`], and the user-facing report. The work is in [`crate::configure`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::configure::{self, Applied, ConfigureOptions};
use crate::engines::{Engine, RuntimeEntry};
use crate::paths;

/// Arguments of `amdgpu-cdi configure`.
#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// The engine to configure.
    #[arg(value_enum)]
    pub engine: EngineArg,
    /// The config file to edit (docker: /etc/docker/daemon.json, containerd:
    /// /etc/containerd/config.toml) or the drop-in to write (crio:
    /// /etc/crio/crio.conf.d/99-amdgpu-cdi.conf, podman:
    /// /etc/containers/containers.conf.d/99-amdgpu-cdi.conf).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the changes as a unified diff and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Name of the runtime entry (`docker run --runtime NAME`).
    #[arg(long, value_name = "NAME", default_value = configure::DEFAULT_RUNTIME_NAME)]
    pub runtime_name: String,
    /// Absolute path of amdgpu-container-runtime [default: the one next to this program if it
    /// exists, else /usr/bin/amdgpu-container-runtime].
    #[arg(long, value_name = "PATH")]
    pub runtime_path: Option<PathBuf>,
    /// Make the wrapper the engine's default runtime.
    #[arg(long)]
    pub set_as_default: bool,
    /// Extra directory to read CDI specs from (repeatable).
    #[arg(long = "cdi-spec-dir", value_name = "DIR")]
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// Undo what amdgpu-cdi added (values changed since are left alone).
    #[arg(long, conflicts_with_all = ["runtime_path", "set_as_default", "cdi_spec_dirs"])]
    pub remove: bool,
}

/// The engines on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EngineArg {
    /// Docker Engine (daemon.json).
    Docker,
    /// containerd (config.toml, version 2 or 3).
    Containerd,
    /// CRI-O (a crio.conf.d drop-in).
    Crio,
    /// Podman (a containers.conf.d drop-in).
    Podman,
}

impl From<EngineArg> for Engine {
    fn from(arg: EngineArg) -> Self {
        match arg {
            EngineArg::Docker => Engine::Docker,
            EngineArg::Containerd => Engine::Containerd,
            EngineArg::Crio => Engine::Crio,
            EngineArg::Podman => Engine::Podman,
        }
    }
}

/// The wrapper next to the running executable if it exists, else the packaged path.
fn default_runtime_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(paths::WRAPPER_NAME)))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(paths::WRAPPER_PATH))
}

impl ConfigureArgs {
    /// Converts the arguments into validated options.
    pub fn options(&self) -> Result<ConfigureOptions, configure::ConfigureError> {
        let settings = RuntimeEntry {
            runtime_name: self.runtime_name.clone(),
            runtime_path: self
                .runtime_path
                .clone()
                .unwrap_or_else(default_runtime_path),
            set_as_default: self.set_as_default,
            cdi_spec_dirs: self.cdi_spec_dirs.clone(),
        };
        ConfigureOptions::new(
            self.engine.into(),
            self.config.clone(),
            settings,
            self.remove,
        )
    }
}

/// Runs `amdgpu-cdi configure`.
pub fn run(args: &ConfigureArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    // Held until this function returns: the plan's reads and its writes form one step.
    let _lock = if args.dry_run {
        None
    } else {
        Some(configure::lock(&options)?)
    };
    let plan = configure::plan(&options)?;
    let wrapper = &options.settings.runtime_path;
    if !options.remove && options.engine != Engine::Podman && !wrapper.is_file() {
        eprintln!(
            "amdgpu-cdi: warning: {} does not exist: {} cannot use the `{}` runtime until it is \
             installed",
            wrapper.display(),
            options.engine,
            options.settings.runtime_name
        );
    }
    let mut out = std::io::stdout().lock();
    if args.dry_run {
        for edit in plan.files.iter().filter(|e| e.changes()) {
            write!(out, "{}", configure::diff(edit)).context("cannot write to stdout")?;
        }
        let summary = if plan.changes() {
            "dry run: nothing written"
        } else {
            "nothing to change"
        };
        writeln!(out, "{summary}").context("cannot write to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    if plan.files.is_empty() {
        writeln!(
            out,
            "nothing to remove: amdgpu-cdi has not configured {}",
            options.engine
        )
        .context("cannot write to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    for outcome in configure::execute(&plan)? {
        let line = match outcome {
            Applied::Unchanged(path) if plan.remove => {
                format!("{}: nothing to remove", path.display())
            }
            Applied::Unchanged(path) => {
                format!("{}: already configured, nothing changed", path.display())
            }
            Applied::Written {
                path,
                backup: Some(backup),
            } => {
                format!(
                    "updated {} (original saved as {})",
                    path.display(),
                    backup.display()
                )
            }
            Applied::Written { path, .. } if plan.remove => {
                format!("removed the amdgpu-cdi settings from {}", path.display())
            }
            Applied::Written { path, backup: None } => format!("wrote {}", path.display()),
            Applied::Deleted(path) => format!("removed {}", path.display()),
        };
        writeln!(out, "{line}").context("cannot write to stdout")?;
    }
    for kept in &plan.kept {
        eprintln!("amdgpu-cdi: left {kept} as it is: it was changed after amdgpu-cdi set it");
    }
    if plan.changes() {
        writeln!(out, "{}", options.engine.restart_hint()).context("cannot write to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}
