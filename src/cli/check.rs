//! `amdgpu-cdi check`: arguments, conversion into discovery and generation options, and the exit
//! status (0 current, 1 stale with a diff, 2 on error, including a spec file that cannot be read or
//! parsed).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::generate::{HostArgs, SpecContentArgs};
use crate::check::{self, Checked, Currentness};
use crate::generate::{GenerateOptions, record};

/// Compare a spec on disk with what `generate` would write now.
///
/// Exits 0 when the spec is current, 1 when it is stale or missing (printing a unified diff from the
/// file to the spec generated now), 2 on error: a spec file that cannot be read or parsed is an
/// error naming the file and the line. The spec is compared with what `generate` writes now with the
/// options recorded on its first line; the content options given here apply only to a spec that
/// records none (JSON, or one not written by `amdgpu-cdi generate`).
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The spec file to check.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/var/run/cdi/amd.com-gpu.yaml"
    )]
    pub spec: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub host: HostArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub content: SpecContentArgs,
}

/// Runs `check`.
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let discover_options = args.host.discover_options()?;
    let given = args.content.generate_options(&discover_options.dev_root)?;
    let Checked {
        outcome,
        options,
        recorded,
    } = if args.host.wsl.is_wsl(&discover_options) {
        check::check_wsl(
            &args.spec,
            &discover_options,
            &args.host.wsl.wsl_options(),
            &given,
        )?
    } else {
        check::check(&args.spec, &discover_options, &given)?
    };
    let defaults = GenerateOptions {
        dev_root: discover_options.dev_root.clone(),
        ..GenerateOptions::default()
    };
    if recorded && given != defaults && given != options {
        eprintln!(
            "amdgpu-cdi: warning: {} records the options it was generated with; comparing with \
             those, not the ones given",
            args.spec.display()
        );
    }
    match outcome {
        Currentness::Current => {
            println!("{} is current", args.spec.display());
            Ok(ExitCode::SUCCESS)
        }
        Currentness::Stale { reason, diff } => {
            println!(
                "{reason}; `amdgpu-cdi generate {}` would write:",
                record::arguments(&options).join(" ")
            );
            print!("{diff}");
            Ok(ExitCode::from(1))
        }
    }
}
