//! Command-line definitions (clap) and their dispatch. Logic lives in the library modules.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod docs;
pub mod doctor;

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
    /// Check everything containers need to get AMD GPUs, with a fix for every failure.
    Doctor(doctor::DoctorArgs),
    /// Write man pages and shell completions (used by packaging).
    #[command(hide = true)]
    GenerateDocs(docs::GenerateDocsArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Doctor(args) => doctor::run(&args),
        Command::GenerateDocs(args) => docs::run(&args),
    }
}
