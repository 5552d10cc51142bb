//! `amdgpu-cdi validate`: check spec files the way engines will load them, and say exactly what
//! is wrong, one `FILE: problem` line each, so a broken spec is found before a container start
//! fails with "unresolvable CDI devices". Valid specs that give containers dangerous host access
//! ([`cdi::audit`]) get `FILE: warning: ...` lines; `--strict` makes those problems.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cdi::codec::LoadError;
use cdi::registry::{self, Registry, RegistryError};

/// Arguments of `amdgpu-cdi validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Validate every spec in this directory, and report devices that two of its files both
    /// provide (repeatable; default: /etc/cdi and /var/run/cdi unless FILEs are given).
    #[arg(long = "spec-dir", value_name = "DIR")]
    pub spec_dirs: Vec<PathBuf>,
    /// Spec files to validate.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Count warnings about dangerous specs (host block devices, sensitive bind mounts,
    /// relative or `..` paths, loader variables such as LD_PRELOAD) as problems: exit 1.
    #[arg(long)]
    pub strict: bool,
}

/// Validates the files and directories; exit 1 when anything is wrong, an error (exit 2) when a
/// named directory does not exist.
pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    super::named_spec_dirs_exist(&args.spec_dirs)?;
    let dirs = if !args.spec_dirs.is_empty() || !args.files.is_empty() {
        args.spec_dirs
    } else {
        Registry::default_dirs()
    };

    let mut lines = Vec::new();
    let mut checked = 0usize;
    let mut bad_files = std::collections::BTreeSet::new();
    let mut dangers = Vec::new();
    let mut audit = |path: &Path, spec: &cdi::spec::Spec| {
        for warning in cdi::audit::warnings(spec) {
            dangers.push((path.to_path_buf(), warning));
        }
    };
    for file in &args.files {
        checked += 1;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if !registry::is_spec_file_name(&name) {
            eprintln!(
                "warning: {}: engines only read *.json and *.yaml files from a spec directory",
                file.display()
            );
        }
        match registry::load_checked(file) {
            Ok(spec) => audit(file, &spec),
            Err(err) => {
                bad_files.insert(err.path().to_path_buf());
                lines.extend(problem_lines(&err));
            }
        }
    }
    let mut devices = 0usize;
    if !dirs.is_empty() {
        let registry = Registry::load(&dirs);
        checked += registry.specs().len();
        devices = registry.devices().count();
        for file in registry.specs() {
            audit(&file.path, &file.spec);
        }
        for err in registry.errors() {
            if !matches!(
                err,
                RegistryError::Conflict { .. } | RegistryError::ReadDir { .. }
            ) {
                checked += 1;
            }
            bad_files.insert(err.path().to_path_buf());
            lines.extend(problem_lines(err));
        }
    }

    let mut warning_lines = Vec::new();
    for (path, warning) in &dangers {
        if args.strict {
            bad_files.insert(path.clone());
            lines.push(warning_line(path, warning, ""));
        } else {
            warning_lines.push(warning_line(path, warning, "warning: "));
        }
    }
    for line in lines.iter().chain(&warning_lines) {
        println!("{line}");
    }
    let warned = if warning_lines.is_empty() {
        String::new()
    } else {
        format!(
            ", {} (--strict refuses them)",
            plural(warning_lines.len(), "warning")
        )
    };
    if lines.is_empty() {
        let files = plural(checked, "spec file");
        if dirs.is_empty() {
            println!("ok: {files} valid{warned}");
        } else {
            println!(
                "ok: {files} valid, {} resolvable{warned}",
                plural(devices, "device")
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} in {} (of {} checked){warned}",
            plural(lines.len(), "problem"),
            plural(bad_files.len(), "file"),
            checked
        );
        Ok(ExitCode::from(1))
    }
}

/// `PATH: <prefix>device "d": field: what is dangerous`, one line.
pub(crate) fn warning_line(path: &Path, warning: &cdi::audit::Warning, prefix: &str) -> String {
    crate::error_text::plain_line(&format!("{}: {prefix}{warning}", path.display()))
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// One `PATH: problem` line for each thing a registry error says is wrong.
pub(crate) fn problem_lines(err: &RegistryError) -> Vec<String> {
    let at = |path: &Path, text: &dyn std::fmt::Display| {
        crate::error_text::plain_line(&format!("{}: {text}", path.display()))
    };
    match err {
        RegistryError::ReadDir { dir, source } => {
            vec![at(dir, &format!("cannot read directory: {source}"))]
        }
        RegistryError::Load(LoadError::Read { path, source }) => {
            vec![at(path, &format!("cannot read: {source}"))]
        }
        RegistryError::Load(LoadError::Parse { path, source }) => vec![at(path, source)],
        RegistryError::Invalid { path, problems } => problems.iter().map(|p| at(path, p)).collect(),
        RegistryError::Refused { path, reason } => vec![at(path, &format!("not read: {reason}"))],
        RegistryError::Conflict {
            device,
            first,
            second,
        } => vec![at(
            second,
            &format!(
                "device {device} is also provided by {} in the same directory, so engines ignore both",
                first.display()
            ),
        )],
    }
}
