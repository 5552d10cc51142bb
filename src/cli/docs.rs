//! `amdgpu-cdi generate-docs` (hidden): writes the man pages and shell completions from the clap
//! definitions, so `--help`, `man amdgpu-cdi` and tab completion never disagree. Packaging runs
//! it before building the .deb and .rpm.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// Write man pages (DIR/man/*.1) and shell completions (DIR/completions/) for packaging.
#[derive(Debug, Args)]
pub struct GenerateDocsArgs {
    /// Output directory; created when missing.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Runs `generate-docs`.
pub fn run(args: &GenerateDocsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    cmd.build();
    let man_dir = args.out.join("man");
    let completions_dir = args.out.join("completions");
    for dir in [&man_dir, &completions_dir] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_man_pages(&cmd, "amdgpu-cdi", &man_dir)?;
    for (shell, file) in [
        (Shell::Bash, "amdgpu-cdi"),
        (Shell::Zsh, "_amdgpu-cdi"),
        (Shell::Fish, "amdgpu-cdi.fish"),
    ] {
        let mut bytes = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "amdgpu-cdi", &mut bytes);
        write(&completions_dir.join(file), &bytes)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One page for the command and one per visible subcommand, named `amdgpu-cdi-<sub>.1`.
fn write_man_pages(cmd: &clap::Command, title: &str, dir: &Path) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(title)
        .render(&mut bytes)
        .with_context(|| format!("cannot render the man page of {title}"))?;
    write(&dir.join(format!("{title}.1")), &bytes)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_man_pages(sub, &format!("{title}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_page_per_visible_subcommand_and_three_completions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = GenerateDocsArgs {
            out: dir.path().join("docs"),
        };
        run(&args).expect("generate-docs");
        let mut pages: Vec<String> = fs::read_dir(args.out.join("man"))
            .expect("man dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        pages.sort();
        for wanted in ["amdgpu-cdi.1", "amdgpu-cdi-check.1", "amdgpu-cdi-doctor.1"] {
            assert!(
                pages.iter().any(|p| p == wanted),
                "{wanted} missing: {pages:?}"
            );
        }
        assert!(
            !pages
                .iter()
                .any(|p| p.contains("generate-docs") || p.contains("-help")),
            "hidden or help pages written: {pages:?}"
        );
        let root = fs::read_to_string(args.out.join("man/amdgpu-cdi.1")).expect("root page");
        assert!(root.starts_with(".ie \\n(.g .ds Aq"), "not roff: {root}");
        assert!(root.contains("amdgpu\\-cdi\\-doctor(1)"), "{root}");
        for file in ["amdgpu-cdi", "_amdgpu-cdi", "amdgpu-cdi.fish"] {
            let text = fs::read_to_string(args.out.join("completions").join(file))
                .expect("completion file");
            // clap_complete lists hidden subcommands too; only the man pages leave them out.
            assert!(
                text.contains("doctor") && text.contains("spec-dir"),
                "{file}"
            );
        }
    }
}
