//! Typed, borrowing views of the parts of an OCI runtime config (`config.json`) that the hooks,
//! the runtime wrapper and the request reader use: the process environment, annotations, the
//! rootfs path, namespaces, ID mappings, device nodes and device cgroup rules. Logic code reads
//! the config through these views, never through JSON pointers, and nothing is cloned.
//!
//! The views read exact keys. That is what the runtime reads too, because every config they see
//! went through [`parse`] first: it refuses the configs that runc's Go decoder would read
//! differently (a key matching an OCI field only when case is ignored, a key given twice).
//!
//! Values of the wrong JSON type read as absent (a `"devices": {}` is no list of devices): the
//! runtime refuses such a config when it decodes it, so nothing the hooks decide from it is
//! ever used.

mod parse;

use serde_json::{Map, Value};

use crate::cgroup::program::{Access, DeviceRule, DeviceType, Policy};

pub use parse::{ParseError, parse};

/// A read-only view of an OCI runtime config.
#[derive(Debug, Clone, Copy)]
pub struct OciConfig<'a> {
    value: &'a Value,
}

/// `linux.uidMappings` or `linux.gidMappings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// User ids.
    Uid,
    /// Group ids.
    Gid,
}

impl IdKind {
    /// `uid` or `gid`, as messages name the kind.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            IdKind::Uid => "uid",
            IdKind::Gid => "gid",
        }
    }

    fn field(self) -> &'static str {
        match self {
            IdKind::Uid => "uidMappings",
            IdKind::Gid => "gidMappings",
        }
    }
}

/// One entry of `linux.uidMappings`/`gidMappings` with all three numbers present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    /// The first id inside the container.
    pub container_id: u64,
    /// The host id it maps to.
    pub host_id: u64,
    /// How many consecutive ids are mapped.
    pub size: u64,
}

impl IdMapping {
    /// The host id `id` maps to through this mapping, if it falls inside it.
    #[must_use]
    pub fn map(&self, id: u64) -> Option<u64> {
        let offset = id.checked_sub(self.container_id)?;
        (offset < self.size).then(|| self.host_id.checked_add(offset))?
    }
}

/// One entry of `linux.devices`.
#[derive(Debug, Clone, Copy)]
pub struct LinuxDevice<'a> {
    value: &'a Value,
}

impl<'a> LinuxDevice<'a> {
    fn str(&self, name: &str) -> Option<&'a str> {
        self.value.get(name).and_then(Value::as_str)
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.value.get(name).and_then(Value::as_i64)
    }

    /// `path`: where the node is in the container.
    #[must_use]
    pub fn path(&self) -> Option<&'a str> {
        self.str("path")
    }

    /// `type`: `c`, `b`, `u` or `p`.
    #[must_use]
    pub fn kind(&self) -> Option<&'a str> {
        self.str("type")
    }

    /// `major`.
    #[must_use]
    pub fn major(&self) -> Option<i64> {
        self.int("major")
    }

    /// `minor`.
    #[must_use]
    pub fn minor(&self) -> Option<i64> {
        self.int("minor")
    }

    /// What identifies the node: path, type and numbers.
    #[must_use]
    pub fn key(&self) -> (Option<&'a str>, Option<&'a str>, Option<i64>, Option<i64>) {
        (self.path(), self.kind(), self.major(), self.minor())
    }
}

/// One entry of `linux.resources.devices`, as written.
#[derive(Debug, Clone, Copy)]
pub struct DeviceRuleEntry<'a> {
    value: &'a Value,
}

/// A `linux.resources.devices` entry that is not a device cgroup rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("linux.resources.devices[{index}] in the bundle config is invalid: {reason}")]
pub struct BadDeviceRule {
    /// Its index.
    pub index: usize,
    /// What is wrong.
    pub reason: String,
}

impl<'a> DeviceRuleEntry<'a> {
    /// `allow`, when it is a boolean.
    #[must_use]
    pub fn allow(&self) -> Option<bool> {
        self.value.get("allow").and_then(Value::as_bool)
    }

    /// `type`, when it is a string.
    #[must_use]
    pub fn kind(&self) -> Option<&'a str> {
        self.value.get("type").and_then(Value::as_str)
    }

    /// `major`, when it is an integer.
    #[must_use]
    pub fn major(&self) -> Option<i64> {
        self.value.get("major").and_then(Value::as_i64)
    }

    /// `minor`, when it is an integer.
    #[must_use]
    pub fn minor(&self) -> Option<i64> {
        self.value.get("minor").and_then(Value::as_i64)
    }

    /// `access`, when it is a string.
    #[must_use]
    pub fn access(&self) -> Option<&'a str> {
        self.value.get("access").and_then(Value::as_str)
    }

    /// The rule as the runtime reads it: a missing `type` is `a`, a missing (or `-1`) number is
    /// the wildcard, a missing `access` is `rwm`.
    pub fn rule(&self, index: usize) -> Result<DeviceRule, BadDeviceRule> {
        let bad = |reason: &str| BadDeviceRule {
            index,
            reason: reason.to_string(),
        };
        let allow = self
            .allow()
            .ok_or_else(|| bad("`allow` must be a boolean"))?;
        let kind = DeviceType::parse(self.kind().unwrap_or(""))
            .ok_or_else(|| bad("`type` must be a, b or c"))?;
        let number = |name: &str| -> Result<Option<u32>, BadDeviceRule> {
            match self.value.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_i64() {
                    Some(-1) => Ok(None),
                    Some(n) => u32::try_from(n)
                        .map(Some)
                        .map_err(|_| bad(&format!("`{name}` is out of range"))),
                    None => Err(bad(&format!("`{name}` must be an integer"))),
                },
            }
        };
        let access = Access::parse(self.access().unwrap_or(""))
            .ok_or_else(|| bad("`access` must be a subset of rwm"))?;
        Ok(DeviceRule {
            allow,
            kind,
            major: number("major")?,
            minor: number("minor")?,
            access,
        })
    }
}

/// One entry of `linux.namespaces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespace<'a> {
    /// `type`: `mount`, `user`, `pid`, ...
    pub kind: &'a str,
    /// `path`: an existing namespace to join.
    pub path: Option<&'a str>,
}

fn list(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

impl<'a> OciConfig<'a> {
    /// A view of `value` (anything other than an object reads as an empty config).
    #[must_use]
    pub fn new(value: &'a Value) -> Self {
        Self { value }
    }

    fn object(&self, key: &str) -> Option<&'a Map<String, Value>> {
        self.value.get(key).and_then(Value::as_object)
    }

    fn process(&self) -> Option<&'a Map<String, Value>> {
        self.object("process")
    }

    fn linux(&self) -> Option<&'a Map<String, Value>> {
        self.object("linux")
    }

    /// `process.env` as written: each string entry, in order (`KEY=VALUE`, or anything else a
    /// config holds).
    pub fn env(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        list(self.process().and_then(|p| p.get("env")))
            .iter()
            .filter_map(Value::as_str)
    }

    /// `process.user.additionalGids`: each id that is a non-negative integer.
    pub fn additional_gids(&self) -> impl Iterator<Item = u64> + use<'a> {
        let user = self.process().and_then(|p| p.get("user"));
        list(user.and_then(|u| u.get("additionalGids")))
            .iter()
            .filter_map(Value::as_u64)
    }

    /// `mounts`, as written.
    #[must_use]
    pub fn mounts(&self) -> &'a [Value] {
        list(self.value.get("mounts"))
    }

    /// `hooks`, as written.
    #[must_use]
    pub fn hooks(&self) -> Option<&'a Value> {
        self.value.get("hooks")
    }

    /// `annotations`, when it is an object.
    #[must_use]
    pub fn annotations(&self) -> Option<&'a Map<String, Value>> {
        self.object("annotations")
    }

    /// True when `annotations` has `key`.
    #[must_use]
    pub fn has_annotation(&self, key: &str) -> bool {
        self.annotations().is_some_and(|a| a.contains_key(key))
    }

    /// `root.path`.
    #[must_use]
    pub fn root_path(&self) -> Option<&'a str> {
        self.object("root")
            .and_then(|root| root.get("path"))
            .and_then(Value::as_str)
    }

    /// `linux.namespaces`: each entry with a string `type`.
    pub fn namespaces(&self) -> impl Iterator<Item = Namespace<'a>> + use<'a> {
        list(self.linux().and_then(|l| l.get("namespaces")))
            .iter()
            .filter_map(|ns| {
                Some(Namespace {
                    kind: ns.get("type").and_then(Value::as_str)?,
                    path: ns.get("path").and_then(Value::as_str),
                })
            })
    }

    /// True when the container gets (or joins) a namespace of type `kind`.
    #[must_use]
    pub fn has_namespace(&self, kind: &str) -> bool {
        self.namespaces().any(|ns| ns.kind == kind)
    }

    /// `linux.uidMappings` or `gidMappings`: each entry with all three numbers.
    pub fn id_mappings(&self, kind: IdKind) -> impl Iterator<Item = IdMapping> + use<'a> {
        list(self.linux().and_then(|l| l.get(kind.field())))
            .iter()
            .filter_map(|mapping| {
                let field = |name: &str| mapping.get(name).and_then(Value::as_u64);
                Some(IdMapping {
                    container_id: field("containerID")?,
                    host_id: field("hostID")?,
                    size: field("size")?,
                })
            })
    }

    /// `linux.devices`.
    pub fn devices(&self) -> impl Iterator<Item = LinuxDevice<'a>> + use<'a> {
        list(self.linux().and_then(|l| l.get("devices")))
            .iter()
            .map(|value| LinuxDevice { value })
    }

    /// `linux.resources.devices`, as written.
    pub fn device_rule_entries(&self) -> impl Iterator<Item = DeviceRuleEntry<'a>> + use<'a> {
        let resources = self.linux().and_then(|l| l.get("resources"));
        list(resources.and_then(|r| r.get("devices")))
            .iter()
            .map(|value| DeviceRuleEntry { value })
    }

    /// `linux.resources.devices` as the runtime reads them, in order.
    pub fn device_rules(&self) -> Result<Vec<DeviceRule>, BadDeviceRule> {
        self.device_rule_entries()
            .enumerate()
            .map(|(index, entry)| entry.rule(index))
            .collect()
    }

    /// True when the container's device cgroup rules, applied in order from the runtime's
    /// deny-all start, allow every access to every device: a wildcard allow rule (no `type`, or
    /// type `a`) that no later rule narrows. That is what Docker's and podman's `--privileged`
    /// and Kubernetes' `privileged: true` write. A config whose rules cannot be read allows
    /// nothing here (the runtime refuses it anyway). Capabilities do not matter: with
    /// `CAP_SYS_ADMIN` but a deny-all device cgroup a container still cannot open a device.
    #[must_use]
    pub fn allows_every_device(&self) -> bool {
        self.device_rules()
            .is_ok_and(|rules| Policy::from_rules(&rules).allows_everything())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn views_read_what_the_config_says_and_skip_what_is_malformed() {
        let config = json!({
            "process": {"env": ["A=1", 7, "B"], "user": {"additionalGids": [44, -1, "x"]}},
            "root": {"path": "rootfs"},
            "annotations": {"k": "v"},
            "linux": {
                "namespaces": [{"type": "mount"}, {"path": "/x"}, {"type": "net", "path": "/n"}],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}, {"hostID": 1}],
                "devices": [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "fileMode": 438}]
            }
        });
        let view = OciConfig::new(&config);
        assert_eq!(view.env().collect::<Vec<_>>(), ["A=1", "B"]);
        assert_eq!(view.additional_gids().collect::<Vec<_>>(), [44]);
        assert_eq!(view.root_path(), Some("rootfs"));
        assert!(view.has_annotation("k") && !view.has_annotation("K"));
        assert_eq!(
            view.namespaces().collect::<Vec<_>>(),
            [
                Namespace {
                    kind: "mount",
                    path: None
                },
                Namespace {
                    kind: "net",
                    path: Some("/n")
                }
            ]
        );
        assert!(view.has_namespace("mount") && !view.has_namespace("user"));
        let uids: Vec<IdMapping> = view.id_mappings(IdKind::Uid).collect();
        assert_eq!(
            uids,
            [IdMapping {
                container_id: 0,
                host_id: 1000,
                size: 10
            }]
        );
        assert_eq!(uids[0].map(9), Some(1009));
        assert_eq!(uids[0].map(10), None);
        assert_eq!(view.id_mappings(IdKind::Gid).count(), 0);
        let device = view.devices().next().expect("one device");
        assert_eq!(device.key(), (Some("/dev/x"), Some("c"), Some(1), Some(3)));

        let nothing = json!(["not", "an", "object"]);
        let view = OciConfig::new(&nothing);
        assert_eq!(view.env().count(), 0);
        assert_eq!(view.root_path(), None);
        assert!(view.device_rules().expect("no rules").is_empty());
    }

    fn rules(rules: Value) -> Value {
        json!({"linux": {"resources": {"devices": rules}}})
    }

    #[test]
    fn every_device_is_allowed_only_by_a_wildcard_allow_not_narrowed_later() {
        let allowed = [
            // Docker's, podman's and the Kubernetes CRIs' privileged containers.
            json!([{"allow": false, "access": "rwm"}, {"allow": true, "access": "rwm"}]),
            json!([{"allow": true, "type": "a", "access": "rwm"}]),
            // A wildcard resets everything before it; a later allow changes nothing.
            json!([{"allow": false, "type": "c", "major": 226, "access": "rwm"},
                   {"allow": true, "access": "rwm"},
                   {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]),
        ];
        for config in allowed {
            assert!(
                OciConfig::new(&rules(config.clone())).allows_every_device(),
                "{config}"
            );
        }
        let denied = [
            json!([]),
            json!([{"allow": false, "access": "rwm"}]),
            json!([{"allow": true, "access": "rwm"}, {"allow": false, "access": "rwm"}]),
            json!([{"allow": true, "access": "rwm"},
                   {"allow": false, "type": "c", "major": 226, "access": "rw"}]),
            json!([{"allow": true, "type": "c", "access": "rwm"},
                   {"allow": true, "type": "b", "access": "rwm"}]),
            // Unreadable rules allow nothing.
            json!([{"allow": true, "access": "rwx"}]),
        ];
        for config in denied {
            assert!(
                !OciConfig::new(&rules(config.clone())).allows_every_device(),
                "{config}"
            );
        }
        assert!(!OciConfig::new(&json!({})).allows_every_device());
    }

    #[test]
    fn device_rules_read_like_the_runtime() {
        let config = rules(json!([
            {"allow": false},
            {"allow": true, "type": "c", "major": 226, "minor": -1, "access": "rw"},
            {"allow": true, "type": "b", "major": 8, "minor": null}
        ]));
        let parsed = OciConfig::new(&config).device_rules().expect("rules");
        assert_eq!(
            parsed,
            [
                DeviceRule {
                    allow: false,
                    kind: DeviceType::All,
                    major: None,
                    minor: None,
                    access: Access::ALL
                },
                DeviceRule {
                    allow: true,
                    kind: DeviceType::Char,
                    major: Some(226),
                    minor: None,
                    access: Access::parse("rw").expect("rw")
                },
                DeviceRule {
                    allow: true,
                    kind: DeviceType::Block,
                    major: Some(8),
                    minor: None,
                    access: Access::ALL
                },
            ]
        );
        for (rule, reason) in [
            (json!({"access": "rwm"}), "`allow` must be a boolean"),
            (
                json!({"allow": true, "type": "p"}),
                "`type` must be a, b or c",
            ),
            (
                json!({"allow": true, "major": 1.5}),
                "`major` must be an integer",
            ),
            (
                json!({"allow": true, "minor": 5_000_000_000_i64}),
                "`minor` is out of range",
            ),
        ] {
            let config = rules(json!([{"allow": false}, rule]));
            assert_eq!(
                OciConfig::new(&config).device_rules(),
                Err(BadDeviceRule {
                    index: 1,
                    reason: reason.to_string()
                })
            );
        }
    }
}
