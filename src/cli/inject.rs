//! `amdgpu-cdi inject`: print an OCI runtime config with CDI devices injected exactly as an engine
//! would, to debug specs without starting a container. Unknown fields and key order are kept.
//! Dangerous edits it applies ([`cdi::audit`]: the spec-wide edits and those of the requested
//! devices) are named on stderr as warnings; they do not change the output or the exit status,
//! because engines apply them the same way.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cdi::registry::{ApplyError, Registry};

/// Arguments of `amdgpu-cdi inject`.
#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// Spec directory to read, lowest priority first (repeatable; default: /etc/cdi and
    /// /var/run/cdi).
    #[arg(long = "spec-dir", value_name = "DIR")]
    pub spec_dirs: Vec<PathBuf>,
    /// The OCI runtime config (config.json) to inject into; `-` reads standard input.
    #[arg(long, value_name = "FILE|-")]
    pub config: PathBuf,
    /// Qualified device names, e.g. amd.com/gpu=0.
    #[arg(value_name = "DEVICE", required = true)]
    pub devices: Vec<String>,
}

/// Injects and prints the config; nothing is printed on stdout on error.
pub fn run(args: InjectArgs) -> anyhow::Result<ExitCode> {
    let (source, bytes) = if args.config.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read OCI config from stdin")?;
        ("stdin".to_string(), bytes)
    } else {
        let bytes = std::fs::read(&args.config)
            .with_context(|| format!("cannot read OCI config {}", args.config.display()))?;
        (args.config.display().to_string(), bytes)
    };
    let mut config: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("cannot parse OCI config {source} as JSON"))?;
    anyhow::ensure!(
        config.is_object(),
        "cannot use OCI config {source}: it is not a JSON object"
    );

    let dirs = if args.spec_dirs.is_empty() {
        Registry::default_dirs()
    } else {
        args.spec_dirs
    };
    let registry = Registry::load(&dirs);
    if let Err(err) = registry.inject(&mut config, &args.devices) {
        let broken = registry.errors().len();
        if matches!(err, ApplyError::Unresolvable { .. }) && broken > 0 {
            anyhow::bail!(
                "{err}; {broken} load error{} in the spec directories (run amdgpu-cdi validate)",
                if broken == 1 { "" } else { "s" }
            );
        }
        return Err(err.into());
    }
    for line in applied_warnings(&registry, &args.devices) {
        eprintln!("warning: {line}");
    }
    let mut out = serde_json::to_string_pretty(&config)?;
    out.push('\n');
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())
        .context("cannot write the config to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// The warning lines for the edits that injecting `names` applied: each spec's own edits once,
/// then each requested device's.
fn applied_warnings(registry: &Registry, names: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut seen_specs = std::collections::HashSet::new();
    let mut seen_names = std::collections::HashSet::new();
    for name in names {
        let Some(entry) = registry.device(name) else {
            continue;
        };
        if !seen_names.insert(name) {
            continue;
        }
        let first_of_spec = seen_specs.insert(entry.file.path.as_path());
        for warning in cdi::audit::warnings(&entry.file.spec) {
            let applies = match &warning.device {
                None => first_of_spec,
                Some(device) => *device == entry.device.name,
            };
            if applies {
                lines.push(super::validate::warning_line(
                    &entry.file.path,
                    &warning,
                    "",
                ));
            }
        }
    }
    lines
}
