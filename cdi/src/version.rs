//! CDI spec versions: which ones exist, and the oldest one a spec's content needs.
//!
//! Consumers reject specs that declare a version newer than their library knows, so a producer
//! must declare the minimum version its content requires (see [`minimum_required_version`]).

use std::fmt;
use std::str::FromStr;

use crate::spec::{ContainerEdits, Spec};

/// A CDI specification version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major component.
    pub major: u32,
    /// Minor component.
    pub minor: u32,
    /// Patch component.
    pub patch: u32,
}

impl Version {
    /// Builds a version from its three components.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// True when this is one of the published spec versions in [`KNOWN_VERSIONS`].
    pub fn is_known(self) -> bool {
        KNOWN_VERSIONS.contains(&self)
    }
}

/// CDI 0.3.0, the oldest version the reference library accepts.
pub const V0_3_0: Version = Version::new(0, 3, 0);
/// CDI 0.4.0: mount `type`.
pub const V0_4_0: Version = Version::new(0, 4, 0);
/// CDI 0.5.0: device node `hostPath`, device names starting with a digit.
pub const V0_5_0: Version = Version::new(0, 5, 0);
/// CDI 0.6.0: annotations, dots in the class.
pub const V0_6_0: Version = Version::new(0, 6, 0);
/// CDI 0.7.0: `intelRdt`, `additionalGids`.
pub const V0_7_0: Version = Version::new(0, 7, 0);
/// CDI 0.8.0: a library-only release.
pub const V0_8_0: Version = Version::new(0, 8, 0);
/// CDI 1.0.0: a library-only release.
pub const V1_0_0: Version = Version::new(1, 0, 0);
/// CDI 1.1.0: `netDevices`, `intelRdt.schemata` and `intelRdt.enableMonitoring`.
pub const V1_1_0: Version = Version::new(1, 1, 0);

/// Every published CDI spec version, oldest first.
pub const KNOWN_VERSIONS: &[Version] = &[
    V0_3_0, V0_4_0, V0_5_0, V0_6_0, V0_7_0, V0_8_0, V1_0_0, V1_1_0,
];

/// The newest version this crate knows.
pub const LATEST: Version = V1_1_0;

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a string is not a `major.minor.patch` version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {input:?}: expected major.minor.patch, e.g. 0.5.0")]
pub struct VersionError {
    /// The text that failed to parse.
    pub input: String,
}

impl FromStr for Version {
    type Err = VersionError;

    /// Parses `major.minor.patch`, decimal without leading zeros and without a leading `v`
    /// (libraries before 0.6 reject `v0.5.0`).
    fn from_str(s: &str) -> Result<Version, VersionError> {
        let error = || VersionError {
            input: s.to_owned(),
        };
        let mut parts = s.split('.');
        let mut next = || -> Result<u32, VersionError> {
            let part = parts.next().ok_or_else(error)?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error());
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(error());
            }
            part.parse().map_err(|_| error())
        };
        let version = Version::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(error());
        }
        Ok(version)
    }
}

/// The oldest CDI version whose schema can express everything in `spec`.
///
/// Predicates, newest first: 1.1.0 for `netDevices` or `intelRdt.schemata`/`enableMonitoring`;
/// 0.7.0 for `intelRdt` or non-empty `additionalGids`; 0.6.0 for annotations or a `.` in the class;
/// 0.5.0 for a device name starting with a digit or a device node `hostPath`; 0.4.0 for a mount
/// `type`; 0.3.0 otherwise. 0.8.0 and 1.0.0 are never required.
pub fn minimum_required_version(spec: &Spec) -> Version {
    requirement(spec).0
}

/// The content that makes [`minimum_required_version`] what it is, e.g. `a device node hostPath`;
/// `None` when the spec needs nothing beyond 0.3.0.
pub fn required_by(spec: &Spec) -> Option<&'static str> {
    requirement(spec).1
}

fn requirement(spec: &Spec) -> (Version, Option<&'static str>) {
    if spec.all_edits().any(|edits| !edits.net_devices.is_empty()) {
        return (V1_1_0, Some("netDevices"));
    }
    if spec.all_edits().any(needs_1_1_0) {
        return (
            V1_1_0,
            Some("intelRdt.schemata or intelRdt.enableMonitoring"),
        );
    }
    if spec.all_edits().any(|edits| edits.intel_rdt.is_some()) {
        return (V0_7_0, Some("intelRdt"));
    }
    if spec
        .all_edits()
        .any(|edits| !edits.additional_gids.is_empty())
    {
        return (V0_7_0, Some("additionalGids"));
    }
    if !spec.annotations.is_empty() || spec.devices.iter().any(|d| !d.annotations.is_empty()) {
        return (V0_6_0, Some("annotations"));
    }
    let class_has_dot = spec
        .kind
        .split_once('/')
        .is_some_and(|(_, class)| class.contains('.'));
    if class_has_dot {
        return (V0_6_0, Some("a . in the class of the kind"));
    }
    if spec
        .devices
        .iter()
        .any(|d| d.name.starts_with(|c: char| c.is_ascii_digit()))
    {
        return (V0_5_0, Some("a device name starting with a digit"));
    }
    if spec
        .all_edits()
        .flat_map(|edits| &edits.device_nodes)
        .any(|node| node.given_host_path().is_some())
    {
        return (V0_5_0, Some("a device node hostPath"));
    }
    if spec
        .all_edits()
        .flat_map(|edits| &edits.mounts)
        .any(|mount| mount.kind.as_deref().is_some_and(|t| !t.is_empty()))
    {
        return (V0_4_0, Some("a mount type"));
    }
    (V0_3_0, None)
}

fn needs_1_1_0(edits: &ContainerEdits) -> bool {
    edits
        .intel_rdt
        .as_ref()
        .is_some_and(|rdt| !rdt.schemata.is_empty() || rdt.enable_monitoring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Device, DeviceNode, IntelRdt, Mount, NetDevice};

    /// A spec with one device `dev0` that needs nothing beyond 0.3.0.
    fn base() -> Spec {
        let mut device = Device {
            name: "dev0".to_owned(),
            ..Default::default()
        };
        device.container_edits.env.push("A=1".to_owned());
        Spec {
            cdi_version: "0.3.0".to_owned(),
            kind: "vendor.com/device".to_owned(),
            devices: vec![device],
            ..Default::default()
        }
    }

    fn device_edits(spec: &mut Spec) -> &mut ContainerEdits {
        &mut spec.devices[0].container_edits
    }

    /// The versions the base spec needs with `edit` made to its device's edits, and with it
    /// made to the spec's own edits instead.
    fn needed_at_both_levels(edit: impl Fn(&mut ContainerEdits)) -> [Version; 2] {
        let mut at_device = base();
        edit(device_edits(&mut at_device));
        let mut at_spec = base();
        edit(&mut at_spec.container_edits);
        [
            minimum_required_version(&at_device),
            minimum_required_version(&at_spec),
        ]
    }

    #[test]
    fn versions_parse_and_print_as_major_minor_patch() {
        let version: Version = "0.5.0".parse().expect("valid");
        assert_eq!(version, V0_5_0);
        assert_eq!(version.to_string(), "0.5.0");
        assert_eq!("10.20.30".parse::<Version>(), Ok(Version::new(10, 20, 30)));
        for bad in [
            "", "0.5", "0.5.0.1", "v0.5.0", "0.05.0", "a.b.c", "0.5.x", " 0.5.0", "-1.0.0",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            "0.5".parse::<Version>().map_err(|e| e.to_string()),
            Err("invalid version \"0.5\": expected major.minor.patch, e.g. 0.5.0".to_owned())
        );
    }

    #[test]
    fn known_versions_are_sorted_and_end_with_the_latest() {
        assert!(KNOWN_VERSIONS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(KNOWN_VERSIONS.last(), Some(&LATEST));
        assert_eq!(KNOWN_VERSIONS.len(), 8);
        assert!(V0_8_0.is_known() && V1_0_0.is_known());
        assert!(!Version::new(0, 2, 0).is_known() && !Version::new(0, 9, 0).is_known());
    }

    #[test]
    fn plain_content_needs_0_3_0() {
        assert_eq!(minimum_required_version(&base()), V0_3_0);
        assert_eq!(required_by(&base()), None);
    }

    #[test]
    fn mount_type_needs_0_4_0() {
        let mut spec = base();
        spec.container_edits.mounts.push(Mount {
            host_path: "tmpfs".to_owned(),
            container_path: "/run".to_owned(),
            kind: Some("tmpfs".to_owned()),
            ..Default::default()
        });
        assert_eq!(minimum_required_version(&spec), V0_4_0);
        spec.container_edits.mounts[0].kind = Some(String::new());
        assert_eq!(
            minimum_required_version(&spec),
            V0_3_0,
            "an empty type is no type"
        );
    }

    #[test]
    fn digit_leading_device_name_needs_0_5_0() {
        let mut spec = base();
        spec.devices[0].name = "0".to_owned();
        assert_eq!(minimum_required_version(&spec), V0_5_0);
        spec.devices[0].name = "gpu0".to_owned();
        assert_eq!(minimum_required_version(&spec), V0_3_0);
    }

    #[test]
    fn host_path_needs_0_5_0_at_spec_or_device_level() {
        let node = DeviceNode {
            path: "/dev/x".to_owned(),
            host_path: Some("/dev/y".to_owned()),
            ..Default::default()
        };
        let with = |node: &DeviceNode| needed_at_both_levels(|e| e.device_nodes.push(node.clone()));
        assert_eq!(with(&node), [V0_5_0; 2]);
        let empty = DeviceNode {
            host_path: Some(String::new()),
            ..node
        };
        assert_eq!(with(&empty), [V0_3_0; 2]);
    }

    #[test]
    fn annotations_need_0_6_0() {
        let mut spec = base();
        spec.annotations.insert("a".to_owned(), "b".to_owned());
        assert_eq!(minimum_required_version(&spec), V0_6_0);
        let mut spec = base();
        spec.devices[0]
            .annotations
            .insert("a".to_owned(), "b".to_owned());
        assert_eq!(minimum_required_version(&spec), V0_6_0);
    }

    #[test]
    fn dot_in_class_needs_0_6_0_but_dot_in_vendor_does_not() {
        let mut spec = base();
        spec.kind = "vendor.com/gpu.compute".to_owned();
        assert_eq!(minimum_required_version(&spec), V0_6_0);
        spec.kind = "vendor.com/gpu".to_owned();
        assert_eq!(minimum_required_version(&spec), V0_3_0);
        spec.kind = "no-slash.here".to_owned();
        assert_eq!(minimum_required_version(&spec), V0_3_0);
    }

    #[test]
    fn intel_rdt_needs_0_7_0() {
        let mut spec = base();
        device_edits(&mut spec).intel_rdt = Some(IntelRdt::default());
        assert_eq!(minimum_required_version(&spec), V0_7_0);
    }

    #[test]
    fn additional_gids_need_0_7_0_at_spec_or_device_level() {
        assert_eq!(
            needed_at_both_levels(|e| e.additional_gids.push(44)),
            [V0_7_0; 2]
        );
    }

    #[test]
    fn net_devices_need_1_1_0() {
        let mut spec = base();
        spec.container_edits.net_devices.push(NetDevice {
            host_interface_name: "eth0".to_owned(),
            name: "eth1".to_owned(),
        });
        assert_eq!(minimum_required_version(&spec), V1_1_0);
        assert_eq!(required_by(&spec), Some("netDevices"));
    }

    #[test]
    fn intel_rdt_schemata_or_monitoring_need_1_1_0() {
        let mut spec = base();
        device_edits(&mut spec).intel_rdt = Some(IntelRdt {
            schemata: vec!["L3:0=f".to_owned()],
            ..Default::default()
        });
        assert_eq!(minimum_required_version(&spec), V1_1_0);
        device_edits(&mut spec).intel_rdt = Some(IntelRdt {
            enable_monitoring: true,
            ..Default::default()
        });
        assert_eq!(minimum_required_version(&spec), V1_1_0);
    }

    #[test]
    fn the_newest_requirement_wins() {
        let mut spec = base();
        spec.devices[0].name = "0".to_owned();
        spec.annotations.insert("a".to_owned(), "b".to_owned());
        device_edits(&mut spec).additional_gids.push(1);
        assert_eq!(minimum_required_version(&spec), V0_7_0);
        assert_eq!(required_by(&spec), Some("additionalGids"));
    }
}
