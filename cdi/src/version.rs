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

    /// Parses `major.minor.patch`; a leading `v` is accepted, as the reference library does.
    fn from_str(s: &str) -> Result<Version, VersionError> {
        let error = || VersionError {
            input: s.to_owned(),
        };
        let digits = s.strip_prefix('v').unwrap_or(s);
        let mut parts = digits.split('.');
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
    let all_edits = || {
        std::iter::once(&spec.container_edits)
            .chain(spec.devices.iter().map(|device| &device.container_edits))
    };
    if all_edits().any(needs_1_1_0) {
        return V1_1_0;
    }
    if all_edits().any(|edits| edits.intel_rdt.is_some() || !edits.additional_gids.is_empty()) {
        return V0_7_0;
    }
    let class_has_dot = spec
        .kind
        .split_once('/')
        .is_some_and(|(_, class)| class.contains('.'));
    if !spec.annotations.is_empty()
        || spec.devices.iter().any(|d| !d.annotations.is_empty())
        || class_has_dot
    {
        return V0_6_0;
    }
    let digit_name = spec
        .devices
        .iter()
        .any(|d| d.name.starts_with(|c: char| c.is_ascii_digit()));
    let host_path = all_edits()
        .flat_map(|edits| &edits.device_nodes)
        .any(|node| node.host_path.as_deref().is_some_and(|p| !p.is_empty()));
    if digit_name || host_path {
        return V0_5_0;
    }
    if all_edits()
        .flat_map(|edits| &edits.mounts)
        .any(|mount| mount.kind.as_deref().is_some_and(|t| !t.is_empty()))
    {
        return V0_4_0;
    }
    V0_3_0
}

fn needs_1_1_0(edits: &ContainerEdits) -> bool {
    !edits.net_devices.is_empty()
        || edits
            .intel_rdt
            .as_ref()
            .is_some_and(|rdt| !rdt.schemata.is_empty() || rdt.enable_monitoring)
}
