//! `amdgpu-cdi device-plugin`: the kubelet device plugin's command line.
//!
//! The plugin runs an async gRPC stack (tokio, tonic) that the hooks and the runtime wrapper,
//! which run once per container, must not carry; so it is its own binary,
//! `amdgpu-cdi-device-plugin`, installed beside `amdgpu-cdi`. This subcommand parses and checks
//! the arguments (so `--help`, man pages, completions and errors come from here) and execs that
//! binary with them spelled out in full. The binary parses the same [`DevicePluginArgs`].

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// The plugin's binary, looked up in the directory of the running `amdgpu-cdi`.
pub const PLUGIN_BINARY: &str = "amdgpu-cdi-device-plugin";

/// How devices are grouped into Kubernetes resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResourceStrategyArg {
    /// Every GPU and partition is `amd.com/gpu`; the node's GPUs must all be whole or all be
    /// partitioned alike.
    Single,
    /// Partition-capable GPUs are named by mode (`amd.com/cpx_nps4`, `amd.com/spx_nps1`), others
    /// `amd.com/gpu`.
    Mixed,
}

/// What `Allocate` hands the kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AllocationArg {
    /// CDI device names in `CDIDevices` (Kubernetes 1.31+).
    Cdi,
    /// CDI device names in a `cdi.k8s.io/` container annotation.
    Annotations,
    /// Plain device nodes, for runtimes without CDI.
    DeviceSpecs,
}

/// Arguments of `amdgpu-cdi device-plugin`; each can also come from the environment (for the
/// DaemonSet).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct DevicePluginArgs {
    /// The kubelet's device plugin directory: where `kubelet.sock` is and the plugin's sockets
    /// go.
    #[arg(
        long,
        value_name = "DIR",
        env = "AMDGPU_CDI_DEVICE_PLUGIN_DIR",
        hide_env_values = true,
        default_value = "/var/lib/kubelet/device-plugins"
    )]
    pub device_plugin_dir: PathBuf,
    /// Where the plugin writes the CDI spec its devices resolve against (`amd.com-gpu.yaml`).
    #[arg(
        long,
        value_name = "DIR",
        env = "AMDGPU_CDI_CDI_DIR",
        hide_env_values = true,
        default_value = cdi::registry::DYNAMIC_DIR
    )]
    pub cdi_dir: PathBuf,
    /// The sysfs tree to discover GPUs in.
    #[arg(
        long,
        value_name = "DIR",
        env = "AMDGPU_CDI_SYSFS_ROOT",
        hide_env_values = true,
        default_value = "/sys"
    )]
    pub sysfs_root: PathBuf,
    /// The directory holding the host's `dev/`; when not `/`, device nodes get a hostPath under
    /// it.
    #[arg(
        long,
        value_name = "DIR",
        env = "AMDGPU_CDI_DEV_ROOT",
        hide_env_values = true,
        default_value = "/"
    )]
    pub dev_root: PathBuf,
    /// How devices are grouped into resources.
    #[arg(
        long,
        value_enum,
        env = "AMDGPU_CDI_RESOURCE_STRATEGY",
        hide_env_values = true,
        default_value = "single"
    )]
    pub strategy: ResourceStrategyArg,
    /// What `Allocate` returns.
    #[arg(
        long,
        value_enum,
        env = "AMDGPU_CDI_ALLOCATION",
        hide_env_values = true,
        default_value = "cdi"
    )]
    pub allocation: AllocationArg,
    /// Leave integrated GPUs (APUs) out of the advertised devices and the spec, as `generate
    /// --exclude-integrated` does.
    #[arg(long, env = "AMDGPU_CDI_EXCLUDE_INTEGRATED", hide_env_values = true)]
    pub exclude_integrated: bool,
}

impl DevicePluginArgs {
    /// Every argument spelled out, for the plugin binary: settings that came from the
    /// environment become explicit.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        for (flag, path) in [
            ("--device-plugin-dir", &self.device_plugin_dir),
            ("--cdi-dir", &self.cdi_dir),
            ("--sysfs-root", &self.sysfs_root),
            ("--dev-root", &self.dev_root),
        ] {
            args.push(flag.into());
            args.push(path.into());
        }
        args.push("--strategy".into());
        args.push(value_name(&self.strategy).into());
        args.push("--allocation".into());
        args.push(value_name(&self.allocation).into());
        if self.exclude_integrated {
            args.push("--exclude-integrated".into());
        }
        args
    }
}

/// A value's command-line spelling.
fn value_name(value: &impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// The plugin binary beside `exe`.
pub fn plugin_binary(exe: &Path) -> PathBuf {
    exe.parent().unwrap_or(Path::new("/")).join(PLUGIN_BINARY)
}

/// Execs the plugin binary; returns only on failure.
pub fn run(args: &DevicePluginArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the running amdgpu-cdi binary")?;
    let binary = plugin_binary(&exe);
    if !binary.is_file() {
        anyhow::bail!(
            "cannot run the device plugin: {} does not exist (install it beside {}, or build it \
             with `cargo build -p amdgpu-cdi-device-plugin`)",
            binary.display(),
            exe.display()
        );
    }
    let error = std::process::Command::new(&binary)
        .arg0(PLUGIN_BINARY)
        .args(args.to_args())
        .exec();
    Err(error).with_context(|| format!("cannot run the device plugin {}", binary.display()))
}

#[cfg(test)]
mod tests {
    use clap::{Args, FromArgMatches};

    use super::*;

    fn parse(args: &[OsString]) -> DevicePluginArgs {
        let command = DevicePluginArgs::augment_args(clap::Command::new("device-plugin"));
        let matches = command
            .try_get_matches_from(
                std::iter::once(OsString::from("device-plugin")).chain(args.iter().cloned()),
            )
            .expect("valid arguments");
        DevicePluginArgs::from_arg_matches(&matches).expect("valid arguments")
    }

    /// What the plugin binary is given parses back into the same arguments.
    #[test]
    fn spelled_out_arguments_parse_back_unchanged() {
        let args = DevicePluginArgs {
            device_plugin_dir: "/k/dp".into(),
            cdi_dir: "/run/cdi x".into(),
            sysfs_root: "/host/sys".into(),
            dev_root: "/host".into(),
            strategy: ResourceStrategyArg::Mixed,
            allocation: AllocationArg::DeviceSpecs,
            exclude_integrated: true,
        };
        assert_eq!(parse(&args.to_args()), args);
        let defaults = parse(&[]);
        assert_eq!(parse(&defaults.to_args()), defaults);
        assert_eq!(
            defaults.device_plugin_dir,
            Path::new("/var/lib/kubelet/device-plugins")
        );
    }

    #[test]
    fn the_plugin_is_looked_up_beside_amdgpu_cdi() {
        assert_eq!(
            plugin_binary(Path::new("/usr/bin/amdgpu-cdi")),
            Path::new("/usr/bin/amdgpu-cdi-device-plugin")
        );
    }
}
