//! The CDI spec model: every field of the Container Device Interface through version 1.1.0.
//!
//! Field names follow the specification exactly (camelCase in JSON and YAML) and are written in
//! the reference Go library's order. Reading is as strict as that library: unknown fields are
//! rejected, integers and booleans must not be quoted strings, and map keys must not repeat; as in
//! Go, `null` for an optional list, map or object means empty. Read and write specs with
//! [`crate::codec`], which adds positions and field paths to errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::strict;

/// A whole CDI spec file: one vendor/class and the devices it provides.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// The CDI version the file declares, e.g. `0.5.0`.
    pub cdi_version: String,
    /// `vendor/class`, e.g. `amd.com/gpu`.
    pub kind: String,
    /// Spec-level annotations (CDI 0.6.0+).
    #[serde(
        default,
        deserialize_with = "strict::annotations",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The devices this spec provides; at least one.
    pub devices: Vec<Device>,
    /// Edits applied once when any device of this spec is requested.
    #[serde(
        default,
        deserialize_with = "strict::nullable",
        skip_serializing_if = "ContainerEdits::is_empty"
    )]
    pub container_edits: ContainerEdits,
}

/// One named device of a spec.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Device {
    /// The device name, the part after `=` in `vendor/class=name`.
    pub name: String,
    /// Device-level annotations (CDI 0.6.0+).
    #[serde(
        default,
        deserialize_with = "strict::annotations",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// What requesting this device does to a container; must not be empty.
    pub container_edits: ContainerEdits,
}

/// Changes made to a container's OCI config.
///
/// Fields are in the order the reference library writes them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerEdits {
    /// Environment entries, `KEY=VALUE`.
    #[serde(
        default,
        deserialize_with = "strict::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// Device nodes to create in the container.
    #[serde(
        default,
        deserialize_with = "strict::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub device_nodes: Vec<DeviceNode>,
    /// Network devices moved into the container (CDI 1.1.0+).
    #[serde(
        default,
        deserialize_with = "strict::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub net_devices: Vec<NetDevice>,
    /// OCI hooks to add.
    #[serde(
        default,
        deserialize_with = "strict::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hooks: Vec<Hook>,
    /// Mounts to add.
    #[serde(
        default,
        deserialize_with = "strict::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mounts: Vec<Mount>,
    /// Intel RDT settings (CDI 0.7.0+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<IntelRdt>,
    /// Supplementary group IDs for the container process (CDI 0.7.0+); 0 is ignored.
    #[serde(
        default,
        deserialize_with = "strict::u32_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub additional_gids: Vec<u32>,
}

impl ContainerEdits {
    /// True when applying these edits would change nothing.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty()
            && self.device_nodes.is_empty()
            && self.hooks.is_empty()
            && self.mounts.is_empty()
            && self.net_devices.is_empty()
            && self.intel_rdt.is_none()
            && self.additional_gids.is_empty()
    }
}

/// A device node to create inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceNode {
    /// Path inside the container.
    pub path: String,
    /// Path on the host (CDI 0.5.0+); defaults to `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// Node type: `b`, `c`, `u` or `p`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Major number.
    #[serde(
        default,
        deserialize_with = "strict::i64_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub major: Option<i64>,
    /// Minor number.
    #[serde(
        default,
        deserialize_with = "strict::i64_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub minor: Option<i64>,
    /// Permission bits of the node, e.g. 438 for 0666.
    #[serde(
        default,
        deserialize_with = "strict::u32_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_mode: Option<u32>,
    /// Device cgroup access, a subset of `rwm`; empty means `rwm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    /// Owner of the node inside the container.
    #[serde(
        default,
        deserialize_with = "strict::u32_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub uid: Option<u32>,
    /// Group of the node inside the container.
    #[serde(
        default,
        deserialize_with = "strict::u32_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub gid: Option<u32>,
}

impl Spec {
    /// Every edit of the spec: its own, then each device's.
    pub fn all_edits(&self) -> impl Iterator<Item = &ContainerEdits> + Clone {
        std::iter::once(&self.container_edits)
            .chain(self.devices.iter().map(|device| &device.container_edits))
    }
}

impl DeviceNode {
    /// `hostPath` when the spec sets it to a path: an empty `hostPath` is no `hostPath`, as the
    /// engines read it.
    #[must_use]
    pub fn given_host_path(&self) -> Option<&str> {
        self.host_path.as_deref().filter(|p| !p.is_empty())
    }

    /// The path of the host node: [`given_host_path`](Self::given_host_path), else `path`.
    #[must_use]
    pub fn host_node_path(&self) -> &str {
        self.given_host_path().unwrap_or(&self.path)
    }

    /// The device cgroup access of the node's allow rule: `permissions`, or `rwm` when it is
    /// unset or empty.
    #[must_use]
    pub fn access(&self) -> &str {
        self.permissions
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("rwm")
    }
}

/// A mount to add to the container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    /// Source on the host.
    pub host_path: String,
    /// Destination inside the container.
    pub container_path: String,
    /// Mount options, e.g. `ro`, `bind`.
    #[serde(
        default,
        deserialize_with = "strict::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub options: Vec<String>,
    /// Filesystem type (CDI 0.4.0+).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An OCI hook to add to the container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hook {
    /// The OCI lifecycle stage, e.g. `createContainer`.
    pub hook_name: String,
    /// Absolute path of the executable.
    pub path: String,
    /// Full argv, including argv0.
    #[serde(
        default,
        deserialize_with = "strict::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<String>,
    /// Environment, `KEY=VALUE`.
    #[serde(
        default,
        deserialize_with = "strict::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// Timeout in seconds.
    #[serde(
        default,
        deserialize_with = "strict::i64_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<i64>,
}

/// Intel Resource Director Technology settings (CDI 0.7.0+).
///
/// CDI 0.7.0 to 1.0.0 also had `enableCMT` and `enableMBM`; CDI 1.1.0 replaced them with
/// `schemata` and `enableMonitoring`, so 1.1.0 libraries (and this crate) reject the old fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntelRdt {
    /// The RDT class of service.
    #[serde(default, rename = "closID", skip_serializing_if = "Option::is_none")]
    pub clos_id: Option<String>,
    /// L3 cache schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l3_cache_schema: Option<String>,
    /// Memory bandwidth schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_bw_schema: Option<String>,
    /// Full schemata lines (CDI 1.1.0+). An empty list counts as absent; the Go library treats a
    /// present but empty list as 1.1.0 content.
    #[serde(
        default,
        deserialize_with = "strict::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub schemata: Vec<String>,
    /// Enable RDT monitoring (CDI 1.1.0+).
    #[serde(
        default,
        deserialize_with = "strict::bool",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub enable_monitoring: bool,
}

/// A host network interface moved into the container (CDI 1.1.0+).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetDevice {
    /// Interface name on the host.
    pub host_interface_name: String,
    /// Interface name inside the container.
    pub name: String,
}
