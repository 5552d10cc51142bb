//! The CDI spec of a WSL2 host ([`WslHost`]): `/dev/dxg` for the `all` device (and for `0` when
//! exactly one adapter is shared), and in the spec-level edits the DXCore library mounted
//! read-only and the variable that makes the HSA runtime load its DXG thunk.
//!
//! Choices, and why (sources in docs/wsl.md):
//! - `/dev/dxg` is one node for every adapter the Windows host shares, so a container cannot be
//!   limited to one of several adapters; `0` exists only when there is nothing to choose.
//! - `libdxcore.so` is mounted at `/usr/lib/libdxcore.so`, where AMD's librocdxg documentation
//!   mounts it for containers: librocdxg opens it by bare name, so it must be on the loader's
//!   default path, and an image does not carry WSL's `/etc/ld.so.conf.d` entry for
//!   `/usr/lib/wsl/lib`.
//! - librocdxg itself is not mounted from the host: it must be built from the same ROCm source as
//!   the image's `libhsa-runtime64.so` (ROCprofiler-SDK's WSL page), so it belongs in the image.
//! - The Windows driver store (`/usr/lib/wsl/drivers`) is not mounted: ROCm's user-mode stack is
//!   the image's, and librocdxg reaches the kernel-mode driver through DXCore alone.

use std::collections::BTreeMap;

use cdi::spec::{ContainerEdits, Device, Mount, Spec};

use super::{GenerateError, GenerateOptions, node_edit};
use crate::discover::wsl::WslHost;
use crate::naming::NameStrategy;

/// Where containers get the DXCore library.
pub const DXCORE_CONTAINER_PATH: &str = "/usr/lib/libdxcore.so";

/// The variable that makes the HSA runtime (ROCm 7.1+) detect `/dev/dxg` and load librocdxg.
pub const DXG_DETECTION: &str = "HSA_ENABLE_DXG_DETECTION=1";

/// Generates the spec for the WSL host `host`. Of the naming strategies only `index` applies
/// (there is no unique id or PCI address under WSL); card nodes and annotations do not apply.
pub fn generate_wsl(host: &WslHost, options: &GenerateOptions) -> Result<Spec, GenerateError> {
    cdi::name::validate_vendor(&options.vendor)?;
    cdi::name::validate_class(&options.class)?;
    let devices: Vec<Device> = device_names(host, &options.strategies, options.all_device)
        .map(|name| Device {
            name: name.into(),
            annotations: BTreeMap::new(),
            container_edits: ContainerEdits {
                device_nodes: vec![node_edit(&host.dxg, options)],
                ..ContainerEdits::default()
            },
        })
        .collect();
    if devices.is_empty() {
        return Err(GenerateError::NoWslDevice {
            adapters: host.adapters,
        });
    }
    let mut container_edits = ContainerEdits {
        env: vec![DXG_DETECTION.into()],
        mounts: vec![Mount {
            host_path: host.dxcore.display().to_string(),
            container_path: DXCORE_CONTAINER_PATH.into(),
            options: ["ro", "nosuid", "nodev", "bind"].map(String::from).to_vec(),
            ..Mount::default()
        }],
        ..ContainerEdits::default()
    };
    if options.additional_gids {
        container_edits.additional_gids =
            super::node_groups(std::iter::once(&host.dxg), &options.dev_root)?;
    }
    super::assemble(devices, container_edits, options)
}

/// The names of the devices of a WSL spec generated with `strategies`, in spec order: `0` when
/// exactly one adapter is shared and the index strategy is asked for, then `all` with
/// `all_device`.
pub fn device_names(
    host: &WslHost,
    strategies: &[NameStrategy],
    all_device: bool,
) -> impl Iterator<Item = &'static str> {
    let index = host.adapters == 1 && strategies.contains(&NameStrategy::Index);
    [("0", index), ("all", all_device)]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
}

/// The host paths a WSL spec generated with `options` names that do not exist: `/dev/dxg` under
/// the dev root and the DXCore library. Engines refuse a container given either.
pub fn missing_paths(host: &WslHost, options: &GenerateOptions) -> Vec<std::path::PathBuf> {
    let mut missing = Vec::new();
    if host.dxg.gid.is_none() {
        missing.push(super::under_root(&options.dev_root, &host.dxg.path));
    }
    if !host.dxcore_found {
        missing.push(host.dxcore.clone());
    }
    missing
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::discover::FoundNode;

    fn host(adapters: usize) -> WslHost {
        WslHost {
            dxg: FoundNode {
                path: "/dev/dxg".into(),
                major: 10,
                minor: 124,
                gid: Some(44),
                file_mode: Some(0o666),
            },
            adapters,
            dxcore: PathBuf::from("/usr/lib/wsl/lib/libdxcore.so"),
            dxcore_found: true,
        }
    }

    #[test]
    fn one_adapter_gets_0_and_all_several_only_all() {
        let options = GenerateOptions::default();
        let spec = generate_wsl(&host(1), &options).expect("spec");
        let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["0", "all"]);
        assert_eq!(spec.cdi_version, "0.5.0");
        assert_eq!(spec.container_edits.env, [DXG_DETECTION]);
        let spec = generate_wsl(&host(2), &options).expect("spec");
        let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["all"]);
        assert_eq!(spec.cdi_version, "0.3.0");
    }

    #[test]
    fn no_device_and_a_too_old_version_are_errors() {
        let options = GenerateOptions {
            all_device: false,
            ..GenerateOptions::default()
        };
        let err = generate_wsl(&host(2), &options).expect_err("nothing to name");
        assert!(err.to_string().contains("2 adapters"), "{err}");
        let options = GenerateOptions {
            cdi_version: Some("0.6.0".parse().expect("version")),
            additional_gids: true,
            ..GenerateOptions::default()
        };
        let err = generate_wsl(&host(1), &options).expect_err("gids need 0.7.0");
        assert!(
            err.to_string().contains("additionalGids needs 0.7.0"),
            "{err}"
        );
    }
}
