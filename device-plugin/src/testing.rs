//! Helpers for the unit tests: the example hosts of `examples/hosts` as inventories.

use std::path::{Path, PathBuf};

use amdgpu_cdi::discover::{DiscoverOptions, Host, RealSysfs, discover_with};

use crate::inventory::{Inventory, ResourceStrategy};

/// The sysfs tree of an example host.
pub(crate) fn example_sysfs(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/hosts")
        .join(name)
        .join("sys")
}

/// An example host, discovered.
pub(crate) fn example(name: &str) -> Host {
    let options = DiscoverOptions {
        sysfs_root: example_sysfs(name),
        dev_root: PathBuf::from("/nonexistent"),
    };
    match discover_with(&options, &RealSysfs) {
        Ok(discovery) => discovery.host,
        Err(error) => panic!("{name}: {error}"),
    }
}

/// An example host's inventory with every node present.
pub(crate) fn inventory(name: &str, strategy: ResourceStrategy) -> Inventory {
    match Inventory::build(&example(name), strategy, &|_: &Path| true) {
        Ok(inventory) => inventory,
        Err(error) => panic!("{name}: {error}"),
    }
}
