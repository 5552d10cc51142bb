//! Command-line definitions (clap) and their dispatch. Logic lives in the library modules.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod check;
pub mod configure;
pub mod docs;
pub mod doctor;
pub mod generate;
pub mod gpus;
pub mod hook;
pub mod inject;
pub mod list;
pub mod validate;

/// Give containers AMD GPUs through the Container Device Interface.
#[derive(Debug, Parser)]
#[command(name = "amdgpu-cdi", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's command line. A hook runs for every container, so `amdgpu-cdi hook
    /// ...` is first parsed by the hook subcommand's own parser, which costs a fraction of
    /// building every subcommand's definition. Anything that parser does not accept (including
    /// `--help` and every error) goes to the full parser, so output and errors stay the same.
    pub fn from_env() -> Self {
        let args: Vec<OsString> = std::env::args_os().collect();
        if let Some(hook) = args
            .get(1..)
            .filter(|rest| rest.first().is_some_and(|a| a == "hook"))
        {
            let parser = <hook::HookArgs as clap::Args>::augment_args(clap::Command::new("hook"));
            if let Ok(hook) = parser.try_get_matches_from(hook).and_then(|matches| {
                <hook::HookArgs as clap::FromArgMatches>::from_arg_matches(&matches)
            }) {
                return Self {
                    command: Command::Hook(hook),
                };
            }
        }
        Self::parse_from(args)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as an OCI hook stage (from a hooks.d file or a CDI spec).
    Hook(hook::HookArgs),
    /// Check CDI spec files; print every problem and exit 1 if there is any.
    Validate(validate::ValidateArgs),
    /// List every CDI device the spec directories provide, with its file.
    List(list::ListArgs),
    /// Print an OCI runtime config with CDI devices injected, as an engine would.
    Inject(inject::InjectArgs),
    /// Discover the host's AMD GPUs and write their CDI spec.
    Generate(generate::GenerateArgs),
    /// Show the host's AMD GPUs and partitions with their CDI names.
    Gpus(gpus::GpusArgs),
    /// Compare a spec on disk with what `generate` writes now (exit 0 current, 1 stale, 2 error).
    ///
    /// Exits 0 when the spec is current, 1 when it is stale or missing (printing a unified diff
    /// from the file to the spec generated now), 2 on error: a spec file that cannot be read or
    /// parsed is an error naming the file and the line. Pass the same content options the spec
    /// was generated with.
    Check(check::CheckArgs),
    /// Check everything containers need to get AMD GPUs, with a fix for every failure.
    Doctor(doctor::DoctorArgs),
    /// Write man pages and shell completions (used by packaging).
    #[command(hide = true)]
    GenerateDocs(docs::GenerateDocsArgs),
    /// Set up docker, containerd, crio or podman for AMD GPUs (non-destructive, undoable).
    Configure(configure::ConfigureArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Hook(args) => hook::run(args),
        Command::Validate(args) => validate::run(args),
        Command::List(args) => list::run(args),
        Command::Inject(args) => inject::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Gpus(args) => gpus::run(args),
        Command::Check(args) => check::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::GenerateDocs(args) => docs::run(&args),
        Command::Configure(args) => configure::run(&args),
    }
}
