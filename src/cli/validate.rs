//! `amdgpu-cdi validate`: check spec files the way engines will load them, and say exactly what
//! is wrong, one `FILE: problem` line each, so a broken spec is found before a container start
//! fails with "unresolvable CDI devices".

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
}

/// Validates the files and directories; exit 1 when anything is wrong.
pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let explicit_dirs = !args.spec_dirs.is_empty();
    let dirs = if explicit_dirs || !args.files.is_empty() {
        args.spec_dirs
    } else {
        Registry::default_dirs()
    };

    let mut lines = Vec::new();
    let mut checked = 0usize;
    let mut bad_files = std::collections::BTreeSet::new();
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
        if let Err(err) = registry::load_checked(file) {
            bad_files.insert(err.path().to_path_buf());
            lines.extend(problem_lines(&err));
        }
    }
    let mut devices = 0usize;
    if !dirs.is_empty() {
        if explicit_dirs {
            for dir in dirs.iter().filter(|d| !d.exists()) {
                eprintln!("warning: {}: no such spec directory", dir.display());
            }
        }
        let registry = Registry::load(&dirs);
        checked += registry.specs().len();
        devices = registry.devices().count();
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

    for line in &lines {
        println!("{line}");
    }
    if lines.is_empty() {
        let files = plural(checked, "spec file");
        if dirs.is_empty() {
            println!("ok: {files} valid");
        } else {
            println!(
                "ok: {files} valid, {} resolvable",
                plural(devices, "device")
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} in {} (of {} checked)",
            plural(lines.len(), "problem"),
            plural(bad_files.len(), "file"),
            checked
        );
        Ok(ExitCode::from(1))
    }
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
        crate::report::plain_os_errors(&format!("{}: {text}", path.display()))
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
