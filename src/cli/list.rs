//! `amdgpu-cdi list`: every CDI device the spec directories resolve to, with the file providing
//! it, as engines will see them; files engines would skip, and valid specs that give containers
//! dangerous host access ([`cdi::audit`]), are reported as warnings (errors with `--strict`).

use std::path::PathBuf;
use std::process::ExitCode;

use cdi::registry::Registry;

/// Output formats of `amdgpu-cdi list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// One `NAME  FILE` line per device.
    Text,
    /// A JSON array of `{"name": ..., "file": ...}` objects.
    Json,
}

/// Arguments of `amdgpu-cdi list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Spec directory to read, lowest priority first (repeatable; default: /etc/cdi and
    /// /var/run/cdi).
    #[arg(long = "spec-dir", value_name = "DIR")]
    pub spec_dirs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
    /// Report dangerous specs (host block devices, sensitive bind mounts, relative or `..`
    /// paths, loader variables such as LD_PRELOAD) as errors and exit 1; the devices are still
    /// listed, as engines would resolve them.
    #[arg(long)]
    pub strict: bool,
}

/// Lists the devices; warnings about broken files go to stderr; a named directory that does not
/// exist is an error (exit 2).
pub fn run(args: ListArgs) -> anyhow::Result<ExitCode> {
    super::named_spec_dirs_exist(&args.spec_dirs)?;
    let dirs = if args.spec_dirs.is_empty() {
        Registry::default_dirs()
    } else {
        args.spec_dirs
    };
    let registry = Registry::load(&dirs);
    for err in registry.errors() {
        for line in super::validate::problem_lines(err) {
            eprintln!("warning: {line}");
        }
    }
    let mut dangerous = false;
    for file in registry.specs() {
        for warning in cdi::audit::warnings(&file.spec) {
            dangerous = true;
            let level = if args.strict { "error" } else { "warning" };
            let line = super::validate::warning_line(&file.path, &warning, "");
            eprintln!("{level}: {line}");
        }
    }
    match args.format {
        ListFormat::Text => {
            if registry.devices().next().is_none() {
                let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                eprintln!("no CDI devices in {}", dirs.join(", "));
            }
            let width = registry.devices().map(|d| d.name.len()).max().unwrap_or(0);
            for device in registry.devices() {
                println!("{:<width$}  {}", device.name, device.file.path.display());
            }
        }
        ListFormat::Json => {
            let entries: Vec<serde_json::Value> = registry
                .devices()
                .map(|d| serde_json::json!({"name": d.name, "file": d.file.path.display().to_string()}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&entries)?);
        }
    }
    if dangerous && args.strict {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
