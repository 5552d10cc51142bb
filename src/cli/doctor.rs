//! `amdgpu-cdi doctor`: arguments, conversion into [`DoctorOptions`], rendering and exit status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser as _, ValueEnum};

use super::{Cli, Command};
use crate::generate::GenerateOptions;

use crate::doctor::{self, DoctorOptions, HostRoots, Subject};

/// Output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A checklist for people.
    Text,
    /// The same findings as JSON, for scripts.
    Json,
}

/// Check everything containers need to get AMD GPUs, with a fix for every failure.
///
/// Exits 0 when nothing failed (warnings allowed), 1 when a check failed.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Root of the host file system (configuration files, hooks dirs, default spec dirs).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The sysfs mount [default: <ROOT>/sys].
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// The directory holding dev/ [default: <ROOT>].
    #[arg(long, value_name = "DIR")]
    pub dev_root: Option<PathBuf>,
    /// A CDI spec dir, lowest priority first (repeatable) [default: <ROOT>/etc/cdi and
    /// <ROOT>/var/run/cdi].
    #[arg(long = "spec-dir", value_name = "DIR")]
    pub spec_dirs: Vec<PathBuf>,
    /// Colon-separated directories searched for engine binaries [default: $PATH].
    #[arg(long, value_name = "DIRS")]
    pub path: Option<String>,
    /// Check device access for this user instead of the invoking one.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Upper bound for each `<engine> --version` run, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub version_timeout: u64,
    /// Report amd.com/gpu specs that give containers dangerous host access (host block devices,
    /// sensitive bind mounts, relative or `..` paths, loader variables such as LD_PRELOAD) as
    /// failures instead of warnings.
    #[arg(long)]
    pub strict: bool,
}

impl DoctorArgs {
    /// The validated options; a relative `--dev-root` is refused (see [`super::RelativeRoot`]).
    pub fn options(&self) -> Result<DoctorOptions, super::RelativeRoot> {
        let search = self
            .path
            .clone()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_else(|| {
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
            });
        let search_path = search
            .split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        let mut roots = HostRoots::under(&self.root, search_path);
        if let Some(sysfs) = &self.sysfs_root {
            roots.sysfs_root.clone_from(sysfs);
        }
        if let Some(dev) = &self.dev_root {
            let dev = super::absolute_root("--dev-root", dev, super::DEV_ROOT_REASON)?;
            roots.dev_root = dev.to_path_buf();
            roots.dev_root_given = true;
        }
        if !self.spec_dirs.is_empty() {
            roots.spec_dirs.clone_from(&self.spec_dirs);
        }
        let generate = refresh_generate_options(&roots.host(DEFAULTS_FILE));
        Ok(DoctorOptions {
            generate,
            roots,
            subject: self.user.clone().map_or(Subject::Invoker, Subject::User),
            version_timeout: Duration::from_millis(self.version_timeout),
            strict: self.strict,
        })
    }
}

/// Where the refresh service reads extra generate options (`AMDGPU_CDI_GENERATE_ARGS`).
const DEFAULTS_FILE: &str = "/etc/default/amdgpu-cdi";

/// The generate options `amdgpu-cdi-refresh.service` uses: the defaults plus
/// `AMDGPU_CDI_GENERATE_ARGS` from `path` (systemd `EnvironmentFile` syntax, split on spaces as
/// systemd does for an unquoted `$VAR` in `ExecStart`), parsed with `check`'s content flags.
fn refresh_generate_options(path: &std::path::Path) -> Result<GenerateOptions, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(GenerateOptions::default());
    };
    let Some(value) = text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("AMDGPU_CDI_GENERATE_ARGS=")
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''))
    }) else {
        return Ok(GenerateOptions::default());
    };
    let argv = ["amdgpu-cdi", "check"]
        .into_iter()
        .chain(value.split_whitespace());
    let problem = |e: &dyn std::fmt::Display| {
        let first = e.to_string();
        let first = first
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        format!("AMDGPU_CDI_GENERATE_ARGS in {DEFAULTS_FILE} is not usable: {first}")
    };
    match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Command::Check(args),
        }) => args
            .host
            .discover_options()
            .map_err(anyhow::Error::from)
            .and_then(|host| args.content.generate_options(&host.dev_root))
            .map_err(|e| problem(&format!("{e:#}"))),
        Ok(_) => Err(problem(&"not generate options")),
        Err(e) => Err(problem(&e)),
    }
}

/// Runs `doctor`.
pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let report = doctor::run(&args.options()?);
    let text = match args.format {
        ReportFormat::Text => report.to_text(),
        ReportFormat::Json => report.to_json(),
    };
    print!("{text}");
    Ok(if report.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
