//! `amdgpu-cdi check`: arguments, conversion into discovery and generation options, and the exit
//! status (0 current, 1 stale with a diff, 2 on error).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use cdi::version::Version;
use clap::Args;

use crate::check::{self, Outcome};
use crate::discover::DiscoverOptions;
use crate::generate::GenerateOptions;
use crate::naming::NameStrategy;

use super::generate::StrategyArg;

/// Compare a spec on disk with what `generate` would write now.
///
/// Exits 0 when the spec is current, 1 when it is stale (printing a unified diff from the file to
/// the spec generated now), 2 on error. Pass the same content options the spec was generated with.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The spec file to check.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/var/run/cdi/amd.com-gpu.yaml"
    )]
    pub spec: PathBuf,
    /// The sysfs mount to discover GPUs from.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// The directory holding dev/; nodes get a hostPath under it when it is not /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub dev_root: PathBuf,
    /// Vendor part of the kind.
    #[arg(long, default_value = "amd.com")]
    pub vendor: String,
    /// Class part of the kind.
    #[arg(long, default_value = "gpu")]
    pub class: String,
    /// Device naming strategy (repeatable): index, uuid or pci [default: index].
    #[arg(long = "device-name-strategy", value_name = "STRATEGY", value_enum)]
    pub strategies: Vec<StrategyArg>,
    /// The spec has no `all` device.
    #[arg(long)]
    pub no_all_device: bool,
    /// The cdiVersion the spec declares: auto (the minimum the content needs) or X.Y.Z.
    #[arg(long, value_name = "VERSION", default_value = "auto")]
    pub cdi_version: String,
    /// The spec has per-device annotations.
    #[arg(long)]
    pub annotations: bool,
    /// The spec has additionalGids with the groups of the nodes.
    #[arg(long)]
    pub additional_gids: bool,
    /// The spec pins type, major, minor and file mode of each node.
    #[arg(long)]
    pub pin_device_numbers: bool,
    /// The spec includes each GPU's card (primary) node.
    #[arg(long)]
    pub include_card_nodes: bool,
}

impl CheckArgs {
    /// Where to discover GPUs.
    pub fn discover_options(&self) -> DiscoverOptions {
        DiscoverOptions {
            sysfs_root: self.sysfs_root.clone(),
            dev_root: self.dev_root.clone(),
        }
    }

    /// What the spec should contain; fails on a malformed `--cdi-version`.
    pub fn generate_options(&self) -> anyhow::Result<GenerateOptions> {
        let cdi_version = match self.cdi_version.as_str() {
            "auto" => None,
            text => Some(text.parse::<Version>().context("invalid --cdi-version")?),
        };
        Ok(GenerateOptions {
            vendor: self.vendor.clone(),
            class: self.class.clone(),
            strategies: if self.strategies.is_empty() {
                vec![NameStrategy::Index]
            } else {
                self.strategies
                    .iter()
                    .copied()
                    .map(NameStrategy::from)
                    .collect()
            },
            all_device: !self.no_all_device,
            cdi_version,
            annotations: self.annotations,
            additional_gids: self.additional_gids,
            pin_device_numbers: self.pin_device_numbers,
            include_card_nodes: self.include_card_nodes,
            dev_root: self.dev_root.clone(),
        })
    }
}

/// Runs `check`.
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    match check::check(
        &args.spec,
        &args.discover_options(),
        &args.generate_options()?,
    )? {
        Outcome::Current => {
            println!("{} is current", args.spec.display());
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Stale { reason, diff } => {
            println!("{reason}; `amdgpu-cdi generate` would write:");
            print!("{diff}");
            Ok(ExitCode::from(1))
        }
    }
}
