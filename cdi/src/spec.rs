//! The CDI spec model: every field of the Container Device Interface through version 1.1.0.
//!
//! Field names follow the specification exactly (camelCase in JSON and YAML) and are written in
//! the reference Go library's order. Reading is as strict as that library: unknown fields are
//! rejected, integers and booleans must not be quoted strings, and map keys must not repeat; as in
//! Go, `null` for an optional list, map or object means empty. Read and write specs with
//! [`crate::codec`], which adds positions and field paths to errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// Deserialisers that read the way the reference library does (Go's `encoding/json` behind
/// `sigs.k8s.io/yaml`): `null` for an optional list or map means empty, integers and booleans
/// must not be quoted strings, and a map may not repeat a key (JSON included).
mod strict {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::Deserialize;
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    /// `null` reads as the type's default (an empty list or map, or empty edits).
    pub(super) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
    }

    /// A string-to-string map that rejects repeated keys; `null` reads as empty.
    pub(super) fn annotations<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
    where
        D: Deserializer<'de>,
    {
        struct Annotations;
        impl<'de> Visitor<'de> for Annotations {
            type Value = BTreeMap<String, String>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings to strings")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(BTreeMap::new())
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(BTreeMap::new())
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_map(self)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate annotation key {key:?}"
                        )));
                    }
                    let value = map.next_value::<String>()?;
                    out.insert(key, value);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_option(Annotations)
    }

    /// An integer of type `T` written as a number, never as a quoted string.
    struct Integer<T>(PhantomData<T>);

    impl<'de, T> Visitor<'de> for Integer<T>
    where
        T: TryFrom<i64> + TryFrom<u64>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "an integer in the range of {}",
                std::any::type_name::<T>()
            )
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
        }

        fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
            i64::try_from(v)
                .ok()
                .and_then(|v| T::try_from(v).ok())
                .ok_or_else(|| E::invalid_value(de::Unexpected::Other("a large integer"), &self))
        }

        fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
            u64::try_from(v)
                .ok()
                .and_then(|v| T::try_from(v).ok())
                .ok_or_else(|| E::invalid_value(de::Unexpected::Other("a large integer"), &self))
        }
    }

    impl<'de, T> DeserializeSeed<'de> for Integer<T>
    where
        T: TryFrom<i64> + TryFrom<u64>,
    {
        type Value = T;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
            d.deserialize_any(self)
        }
    }

    /// An optional integer; `null` reads as absent.
    struct OptionalInteger<T>(PhantomData<T>);

    impl<'de, T> Visitor<'de> for OptionalInteger<T>
    where
        T: TryFrom<i64> + TryFrom<u64>,
    {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            Integer::<T>(PhantomData).expecting(f)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            Integer::<T>(PhantomData).deserialize(d).map(Some)
        }
    }

    pub(super) fn i64_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        d.deserialize_option(OptionalInteger::<i64>(PhantomData))
    }

    pub(super) fn u32_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_option(OptionalInteger::<u32>(PhantomData))
    }

    /// A list of `u32` written as numbers; `null` reads as empty.
    pub(super) fn u32_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Vec<u32>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of integers in the range of u32")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_seq(self)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(value) = seq.next_element_seed(Integer::<u32>(PhantomData))? {
                    out.push(value);
                }
                Ok(out)
            }
        }
        d.deserialize_option(List)
    }

    /// A boolean written as `true`/`false` (YAML 1.1 spellings included), never quoted;
    /// `null` reads as `false`.
    pub(super) fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        struct Bool;
        impl<'de> Visitor<'de> for Bool {
            type Value = bool;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }

            fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
                Ok(false)
            }

            fn visit_none<E: de::Error>(self) -> Result<bool, E> {
                Ok(false)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
                d.deserialize_any(self)
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
        }
        d.deserialize_option(Bool)
    }
}
