//! Command-line definitions (clap) and their dispatch. Logic lives in the library modules.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod hook;

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
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Hook(args) => hook::run(args),
    }
}
