//! Command-line definitions (clap) and their dispatch. Logic lives in the library modules.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as an OCI hook: `amdgpu-cdi hook precreate`.
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
    }
}
