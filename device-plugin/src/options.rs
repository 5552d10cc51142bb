//! The plugin's settings, validated, and their conversion from the command line
//! (`amdgpu_cdi::cli::device_plugin::DevicePluginArgs`, shared with `amdgpu-cdi device-plugin`).

use std::path::PathBuf;

use amdgpu_cdi::cli::device_plugin::{AllocationArg, DevicePluginArgs, ResourceStrategyArg};
use amdgpu_cdi::discover::DiscoverOptions;

use crate::allocate::AllocationForm;
use crate::inventory::ResourceStrategy;

/// The file name of the plugin's CDI spec in the CDI directory: the same file `amdgpu-cdi
/// generate` and the refresh service write, so that one node never has two specs defining the
/// same device names (engines would drop both).
pub const SPEC_FILE: &str = "amd.com-gpu.yaml";

/// Everything the plugin needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOptions {
    /// Where `kubelet.sock` is and where the plugin's sockets go.
    pub device_plugin_dir: PathBuf,
    /// Where the plugin writes its CDI spec.
    pub cdi_dir: PathBuf,
    /// Where discovery looks (sysfs and dev roots).
    pub discover: DiscoverOptions,
    /// How devices are grouped into resources.
    pub strategy: ResourceStrategy,
    /// What `Allocate` returns.
    pub allocation: AllocationForm,
    /// Leave integrated GPUs out (as `generate --exclude-integrated`).
    pub exclude_integrated: bool,
}

impl PluginOptions {
    /// The spec file, `<cdi dir>/amd.com-gpu.yaml`.
    pub fn spec_path(&self) -> PathBuf {
        self.cdi_dir.join(SPEC_FILE)
    }

    /// The `dev` directory holding `kfd` and `dri/`, under the dev root.
    pub fn dev_dir(&self) -> PathBuf {
        self.discover.dev_root.join("dev")
    }

    /// The kubelet's registration socket.
    pub fn kubelet_socket(&self) -> PathBuf {
        self.device_plugin_dir.join(crate::api::KUBELET_SOCKET)
    }
}

impl From<&DevicePluginArgs> for PluginOptions {
    fn from(args: &DevicePluginArgs) -> Self {
        Self {
            device_plugin_dir: args.device_plugin_dir.clone(),
            cdi_dir: args.cdi_dir.clone(),
            discover: DiscoverOptions {
                sysfs_root: args.sysfs_root.clone(),
                dev_root: args.dev_root.clone(),
            },
            strategy: match args.strategy {
                ResourceStrategyArg::Single => ResourceStrategy::Single,
                ResourceStrategyArg::Mixed => ResourceStrategy::Mixed,
            },
            allocation: match args.allocation {
                AllocationArg::Cdi => AllocationForm::Cdi,
                AllocationArg::Annotations => AllocationForm::Annotations,
                AllocationArg::DeviceSpecs => AllocationForm::DeviceSpecs,
            },
            exclude_integrated: args.exclude_integrated,
        }
    }
}
