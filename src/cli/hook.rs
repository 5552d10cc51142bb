//! `amdgpu-cdi hook <stage>`: the OCI hook entry points. Each stage is one [`HookStage`] variant.
//! Unknown stages and extra arguments (from a hooks.d file written for a newer version) exit 0
//! with a warning, so an upgrade or downgrade never blocks containers.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use amdgpu_cdi_oci::log::DetailLog;
use clap::{Args, Subcommand};

use crate::inject::precreate::{self, PrecreateOutcome};
use crate::inject::{Outcome, prestart};
use crate::settings::{self, Overrides, Settings};

/// Run as an OCI hook (hooks.d passes arguments, not environment).
#[derive(Debug, Args)]
pub struct HookArgs {
    /// Configuration file [default: $AMDGPU_CDI_CONFIG, else /etc/amdgpu-cdi/config.toml].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read sysfs from this directory instead of /sys (overrides the configuration file).
    #[arg(long, global = true, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// Host directory holding `dev/` (overrides the configuration file).
    #[arg(long, global = true, value_name = "DIR")]
    pub dev_root: Option<PathBuf>,
    /// The hook stage.
    #[command(subcommand)]
    pub stage: HookStage,
}

/// Arguments of one stage: anything beyond the shared options is ignored with a warning.
#[derive(Debug, Args)]
pub struct StageArgs {
    /// Arguments this version does not know (ignored).
    #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub extra: Vec<OsString>,
}

/// The hook stages.
#[derive(Debug, Subcommand)]
pub enum HookStage {
    /// podman's precreate stage: OCI config on stdin, edited config on stdout.
    Precreate(StageArgs),
    /// OCI prestart stage: container state on stdin; adds the requested device nodes to the
    /// container being created (rootfs and device cgroup).
    Prestart(StageArgs),
    /// OCI createRuntime stage: the same as prestart.
    #[command(name = "createRuntime", alias = "create-runtime")]
    CreateRuntime(StageArgs),
    /// A stage this version does not know: ignored with a warning, exit 0.
    #[command(external_subcommand)]
    Unknown(Vec<OsString>),
}

impl HookArgs {
    /// The shared options, including those that follow an unknown argument (clap hands
    /// everything after the first unknown argument to [`StageArgs::extra`]). Relative roots are
    /// refused (see [`super::RelativeRoot`]).
    fn overrides(&self, stage: &str, extra: &[OsString]) -> Result<Overrides, super::RelativeRoot> {
        let mut overrides = Overrides {
            config: self.config.clone(),
            sysfs_root: self.sysfs_root.clone(),
            dev_root: self.dev_root.clone(),
        };
        let mut ignored = Vec::new();
        let mut rest = extra.iter();
        while let Some(arg) = rest.next() {
            let text = arg.to_string_lossy();
            let (name, inline) = match text.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(PathBuf::from(value))),
                None => (text.to_string(), None),
            };
            let slot = match name.as_str() {
                "--config" => &mut overrides.config,
                "--sysfs-root" => &mut overrides.sysfs_root,
                "--dev-root" => &mut overrides.dev_root,
                _ => {
                    ignored.push(text.into_owned());
                    continue;
                }
            };
            if let Some(value) = inline.or_else(|| rest.next().map(PathBuf::from)) {
                *slot = Some(value);
            }
        }
        if !ignored.is_empty() {
            eprintln!(
                "amdgpu-cdi hook {stage}: warning: ignoring unknown arguments {}",
                ignored.join(" ")
            );
        }
        for (option, root) in [
            ("--sysfs-root", &overrides.sysfs_root),
            ("--dev-root", &overrides.dev_root),
        ] {
            if let Some(root) = root {
                super::absolute_root(option, root, super::HOOK_ROOT_REASON)?;
            }
        }
        Ok(overrides)
    }

    /// The settings for `stage` (file, environment and command line) and its detail log, whose
    /// lines are tagged with the stage name. Every stage starts with this.
    pub fn load(
        &self,
        stage: &'static str,
        extra: &[OsString],
    ) -> anyhow::Result<(Settings, DetailLog)> {
        let overrides = self.overrides(stage, extra)?;
        let settings = Settings::load(&overrides, std::env::var_os(settings::ENV_VAR))?;
        let log = DetailLog::new(settings.log_file.clone(), stage);
        if let Some(problem) = log.problem() {
            eprintln!(
                "amdgpu-cdi hook {stage}: warning: {}",
                crate::error_text::error_line(problem)
            );
        }
        Ok((settings, log))
    }
}

/// Runs `amdgpu-cdi hook`.
pub fn run(args: HookArgs) -> anyhow::Result<ExitCode> {
    match &args.stage {
        HookStage::Unknown(words) => {
            let stage = words
                .first()
                .map(|w| w.to_string_lossy())
                .unwrap_or_default();
            eprintln!("amdgpu-cdi hook: warning: unknown hook stage {stage:?}, doing nothing");
            Ok(ExitCode::SUCCESS)
        }
        HookStage::Precreate(stage) => precreate_stage(&args, stage),
        HookStage::Prestart(stage) => run_prestart(&args, "prestart", &stage.extra),
        HookStage::CreateRuntime(stage) => run_prestart(&args, "createRuntime", &stage.extra),
    }
}

/// `amdgpu-cdi hook precreate`.
fn precreate_stage(args: &HookArgs, stage: &StageArgs) -> anyhow::Result<ExitCode> {
    let (settings, log) = args.load("precreate", &stage.extra)?;
    let result = precreate::run(
        std::io::stdin().lock(),
        std::io::stdout().lock(),
        &settings,
        &log,
    );
    match result {
        Ok(PrecreateOutcome::Done(Outcome::Injected(names))) => {
            log.info(&format!("injected {}", names.join(",")));
        }
        Ok(PrecreateOutcome::Done(Outcome::Unchanged(reason))) => {
            log.info(&format!("unchanged: {reason}"));
        }
        Ok(PrecreateOutcome::Refused(message)) => {
            // podman discards this stderr; the printed config carries the message.
            log.error(&format!("refused: {message}"));
            eprintln!("amdgpu-cdi: {message}");
        }
        Err(err) => {
            log.error(&err.to_string());
            return Err(err.into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the prestart/createRuntime stage (see [`crate::inject::prestart`]).
fn run_prestart(
    args: &HookArgs,
    stage: &'static str,
    extra: &[OsString],
) -> anyhow::Result<ExitCode> {
    let (settings, log) = args.load(stage, extra)?;
    let sys = amdgpu_cdi_oci::syscalls::RealSyscalls;
    let cgroup_roots = amdgpu_cdi_oci::cgroup::CgroupRoots::default();
    let privilege = amdgpu_cdi_oci::nodes::privilege(
        &sys,
        &cgroup_roots.proc_root,
        nix::unistd::geteuid().is_root(),
    );
    let options = amdgpu_cdi_oci::nodes::NodeOptions {
        cgroup_roots,
        privilege,
    };
    let result = prestart::run(std::io::stdin().lock(), &sys, &options, &settings, &log);
    match result {
        Ok(Outcome::Injected(names)) => log.info(&format!("injected {}", names.join(","))),
        Ok(Outcome::Unchanged(reason)) => log.info(&format!("unchanged: {reason}")),
        Err(err) => {
            log.error(&err.to_string());
            return Err(err.into());
        }
    }
    Ok(ExitCode::SUCCESS)
}
