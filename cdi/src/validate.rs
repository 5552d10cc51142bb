//! Semantic validation of a parsed CDI spec, with every rule the reference library enforces.
//!
//! [`validate`] reports all problems at once, each naming the device (if any) and the field path,
//! so a user can fix a spec in one pass. The rules mirror the reference Go library (newest
//! release), tightened where released libraries misbehave: one-character vendor or class names
//! (they crash), a `v` before the version and the `none` permission (older libraries reject them).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::name;
use crate::spec::{ContainerEdits, DeviceNode, IntelRdt, Spec};
use crate::version::{self, Version};

/// One thing wrong with a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The name of the device the problem is in; `None` for spec-level fields.
    pub device: Option<String>,
    /// The field path, relative to the device when there is one, e.g.
    /// `containerEdits.deviceNodes[0].path`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(device) = &self.device {
            write!(f, "device {device:?}: ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The Kubernetes limit on the total size of annotation keys and values, in bytes.
pub const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

/// The OCI hook stages a CDI hook may name.
pub const HOOK_NAMES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Device node types: unset, block, character, unbuffered character, FIFO.
const NODE_TYPES: &[&str] = &["", "b", "c", "u", "p"];

/// Where problems are collected, with the device they belong to.
struct Problems<'a> {
    device: Option<&'a str>,
    problems: &'a mut Vec<Problem>,
}

impl Problems<'_> {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            device: self.device.map(str::to_owned),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Checks a spec against every CDI rule and returns all problems found; empty means valid.
///
/// ```
/// let yaml = b"cdiVersion: '0.3.0'\nkind: amd.com/gpu\ndevices:\n- name: '0'\n  containerEdits:\n    env: [ROCR]\n";
/// let spec = cdi::codec::parse(yaml, cdi::codec::Format::Yaml)?;
/// let problems: Vec<String> = cdi::validate::validate(&spec).iter().map(|p| p.to_string()).collect();
/// assert_eq!(problems, [
///     "cdiVersion: 0.3.0 is too old: the spec uses a device name starting with a digit, which needs 0.5.0",
///     "device \"0\": containerEdits.env[0]: \"ROCR\" is not NAME=VALUE",
/// ]);
/// # Ok::<(), cdi::codec::CodecError>(())
/// ```
pub fn validate(spec: &Spec) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut report = Problems {
        device: None,
        problems: &mut problems,
    };
    check_version(spec, &mut report);
    check_kind(&spec.kind, &mut report);
    check_annotations(&spec.annotations, &mut report);
    check_edits("containerEdits", &spec.container_edits, &mut report);
    if spec.devices.is_empty() {
        report.push("devices", "at least one device is required");
    }
    let mut seen = BTreeSet::new();
    for device in &spec.devices {
        let mut report = Problems {
            device: Some(&device.name),
            problems: &mut problems,
        };
        if let Err(error) = name::validate_device_name(&device.name) {
            report.push("name", error.to_string());
        }
        if !seen.insert(device.name.as_str()) {
            report.push("name", "another device in this spec has the same name");
        }
        check_annotations(&device.annotations, &mut report);
        if device.container_edits.is_empty() {
            report.push("containerEdits", "must not be empty");
        }
        check_edits("containerEdits", &device.container_edits, &mut report);
    }
    problems
}

fn check_version(spec: &Spec, report: &mut Problems<'_>) {
    let declared = &spec.cdi_version;
    if declared.is_empty() {
        report.push("cdiVersion", "required, e.g. 0.5.0");
        return;
    }
    if let Some(bare) = declared.strip_prefix('v')
        && bare.parse::<Version>().is_ok_and(Version::is_known)
    {
        report.push(
            "cdiVersion",
            format!("write {bare} without the leading v (CDI libraries before 0.6 reject it)"),
        );
        return;
    }
    let Ok(parsed) = declared.parse::<Version>() else {
        report.push("cdiVersion", format!("invalid version {declared:?}"));
        return;
    };
    let required = version::minimum_required_version(spec);
    let needed_for = version::required_by(spec).unwrap_or("this content");
    if !parsed.is_known() {
        if parsed < version::V0_3_0 {
            report.push(
                "cdiVersion",
                format!("{parsed} is older than 0.3.0, the oldest version CDI libraries accept"),
            );
        } else {
            report.push(
                "cdiVersion",
                format!(
                    "unknown version {parsed} (known: 0.3.0 to {})",
                    version::LATEST
                ),
            );
        }
        return;
    }
    if parsed < required {
        report.push(
            "cdiVersion",
            format!("{parsed} is too old: the spec uses {needed_for}, which needs {required}"),
        );
    }
}

fn check_kind(kind: &str, report: &mut Problems<'_>) {
    if kind.is_empty() {
        report.push("kind", "required, vendor/class, e.g. amd.com/gpu");
        return;
    }
    if let Err(error) = name::parse_kind(kind) {
        report.push("kind", error.to_string());
    }
}

fn check_annotations(annotations: &BTreeMap<String, String>, report: &mut Problems<'_>) {
    let mut total = 0usize;
    for (key, value) in annotations {
        total = total.saturating_add(key.len()).saturating_add(value.len());
        if let Err(message) = check_annotation_key(key) {
            report.push(format!("annotations[{key:?}]"), message);
        }
    }
    if total > MAX_ANNOTATIONS_SIZE {
        report.push(
            "annotations",
            format!(
                "keys and values total {total} bytes, more than the limit of {MAX_ANNOTATIONS_SIZE}"
            ),
        );
    }
}

/// Kubernetes qualified name, compared case-insensitively as Kubernetes does for annotations:
/// an optional DNS-subdomain prefix (at most 253 characters) and `/`, then a name of 1 to 63
/// characters of `[A-Za-z0-9_.-]` that starts and ends with a letter or digit.
fn check_annotation_key(key: &str) -> Result<(), String> {
    let lower = key.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return Err("key prefix before / must not be empty".into());
            }
            if prefix.len() > 253 || !is_dns_subdomain(prefix) {
                return Err(
                    "key prefix must be a DNS subdomain of at most 253 characters: lower-case \
                     letters, digits, - and ., e.g. example.com"
                        .into(),
                );
            }
            *name
        }
        _ => return Err("key may contain at most one /".into()),
    };
    if name.is_empty() {
        return Err("key name must not be empty".into());
    }
    if name.len() > 63 {
        return Err("key name must be at most 63 characters".into());
    }
    let bytes = name.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_alphanumeric();
    let middle_ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !bytes.first().is_some_and(edge_ok)
        || !bytes.last().is_some_and(edge_ok)
        || !bytes.iter().all(middle_ok)
    {
        return Err(
            "key name must start and end with a letter or digit, with only letters, digits, \
             -, _ and . in between"
                .into(),
        );
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels of `[a-z0-9-]`, each starting and ending with a
/// letter or digit.
fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.first()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && b.last()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    })
}

fn check_env(field: &str, env: &[String], report: &mut Problems<'_>) {
    for (index, entry) in env.iter().enumerate() {
        if entry.find('=').is_none_or(|at| at == 0) {
            report.push(
                format!("{field}[{index}]"),
                format!("{entry:?} is not NAME=VALUE"),
            );
        }
    }
}

fn check_edits(base: &str, edits: &ContainerEdits, report: &mut Problems<'_>) {
    check_env(&format!("{base}.env"), &edits.env, report);
    for (index, node) in edits.device_nodes.iter().enumerate() {
        check_device_node(&format!("{base}.deviceNodes[{index}]"), node, report);
    }
    for (index, hook) in edits.hooks.iter().enumerate() {
        let field = format!("{base}.hooks[{index}]");
        if !HOOK_NAMES.contains(&hook.hook_name.as_str()) {
            report.push(
                format!("{field}.hookName"),
                format!(
                    "{:?} is not one of {}",
                    hook.hook_name,
                    HOOK_NAMES.join(", ")
                ),
            );
        }
        if hook.path.is_empty() {
            report.push(format!("{field}.path"), "required");
        }
        check_env(&format!("{field}.env"), &hook.env, report);
    }
    for (index, mount) in edits.mounts.iter().enumerate() {
        let field = format!("{base}.mounts[{index}]");
        if mount.host_path.is_empty() {
            report.push(format!("{field}.hostPath"), "required");
        }
        if mount.container_path.is_empty() {
            report.push(format!("{field}.containerPath"), "required");
        }
    }
    if let Some(rdt) = &edits.intel_rdt {
        check_intel_rdt(&format!("{base}.intelRdt"), rdt, report);
    }
    let mut host_names = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (index, net) in edits.net_devices.iter().enumerate() {
        let field = format!("{base}.netDevices[{index}]");
        // Both names are required, and neither may repeat (a reuse says why it is refused).
        for (key, value, seen, reused) in [
            (
                "hostInterfaceName",
                &net.host_interface_name,
                &mut host_names,
                "is moved more than once",
            ),
            (
                "name",
                &net.name,
                &mut names,
                "is used by more than one interface",
            ),
        ] {
            if value.is_empty() {
                report.push(format!("{field}.{key}"), "required");
            } else if !seen.insert(value.as_str()) {
                report.push(format!("{field}.{key}"), format!("{value:?} {reused}"));
            }
        }
    }
}

fn check_device_node(field: &str, node: &DeviceNode, report: &mut Problems<'_>) {
    if node.path.is_empty() {
        report.push(format!("{field}.path"), "required");
    }
    if let Some(kind) = &node.kind
        && !NODE_TYPES.contains(&kind.as_str())
    {
        report.push(
            format!("{field}.type"),
            format!("{kind:?} is not one of b, c, u, p"),
        );
    }
    for (name, number) in [("major", node.major), ("minor", node.minor)] {
        if let Some(number) = number
            && number < 0
        {
            report.push(
                format!("{field}.{name}"),
                format!("{number} is negative (-1 would mean every device)"),
            );
        }
    }
    if let Some(permissions) = &node.permissions
        && permissions.chars().any(|c| !matches!(c, 'r' | 'w' | 'm'))
    {
        report.push(
            format!("{field}.permissions"),
            format!("{permissions:?} may only contain r, w and m"),
        );
    }
}

fn check_intel_rdt(field: &str, rdt: &IntelRdt, report: &mut Problems<'_>) {
    // The class of service names a resctrl directory; "/" is the root class.
    if let Some(clos) = rdt.clos_id.as_deref()
        && clos != "/"
        && (clos.len() >= 4096 || clos == "." || clos == ".." || clos.contains(['/', '\n']))
    {
        report.push(
            format!("{field}.closID"),
            format!("{clos:?} is not a valid resctrl group name"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Device, Hook, NetDevice};

    fn spec(version: &str) -> Spec {
        let mut device = Device {
            name: "dev0".to_owned(),
            ..Default::default()
        };
        device.container_edits.env.push("A=1".to_owned());
        Spec {
            cdi_version: version.to_owned(),
            kind: "vendor.com/device".to_owned(),
            devices: vec![device],
            ..Default::default()
        }
    }

    fn messages(spec: &Spec) -> Vec<String> {
        validate(spec).iter().map(Problem::to_string).collect()
    }

    #[test]
    fn a_plain_spec_is_valid() {
        assert_eq!(validate(&spec("0.3.0")), vec![]);
        assert_eq!(validate(&spec("1.1.0")), vec![]);
    }

    #[test]
    fn problems_name_the_device_and_the_field() {
        let mut spec = spec("0.3.0");
        spec.devices[0]
            .container_edits
            .device_nodes
            .push(DeviceNode::default());
        spec.container_edits.env.push("BAD".to_owned());
        assert_eq!(
            messages(&spec),
            [
                "containerEdits.env[0]: \"BAD\" is not NAME=VALUE",
                "device \"dev0\": containerEdits.deviceNodes[0].path: required",
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let mut spec = spec("0.9.0");
        spec.kind = "v/c".to_owned();
        spec.devices.push(spec.devices[0].clone());
        spec.devices[1].container_edits = ContainerEdits::default();
        let fields: Vec<_> = validate(&spec).into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["cdiVersion", "kind", "name", "containerEdits"]);
    }

    #[test]
    fn versions_must_be_known_and_cover_the_content() {
        let cases = [
            ("", "cdiVersion: required, e.g. 0.5.0"),
            ("v0.5.0", "cdiVersion: write 0.5.0 without the leading v"),
            ("0.5", "cdiVersion: invalid version \"0.5\""),
            ("0.2.0", "cdiVersion: 0.2.0 is older than 0.3.0"),
            ("0.9.0", "cdiVersion: unknown version 0.9.0"),
            ("2.0.0", "cdiVersion: unknown version 2.0.0"),
        ];
        for (version, start) in cases {
            let found = messages(&spec(version));
            assert!(
                found.len() == 1 && found[0].starts_with(start),
                "{version:?}: {found:?}"
            );
        }
        let mut digit = spec("0.4.0");
        digit.devices[0].name = "0".to_owned();
        assert_eq!(
            messages(&digit),
            [
                "cdiVersion: 0.4.0 is too old: the spec uses a device name starting with a \
                 digit, which needs 0.5.0"
            ]
        );
        digit.cdi_version = "0.8.0".to_owned();
        assert_eq!(validate(&digit), vec![], "a newer declared version is fine");
    }

    #[test]
    fn annotation_keys_follow_kubernetes_qualified_names() {
        let long_label = "a".repeat(63);
        let prefix_253 = format!("{}.com", "a".repeat(249));
        for ok in [
            "a",
            "A",
            "a.b_c-d",
            "vendor.com/key",
            "Vendor.COM/Key",
            long_label.as_str(),
        ] {
            assert_eq!(check_annotation_key(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(check_annotation_key(&format!("{prefix_253}/k")), Ok(()));
        for bad in [
            "",
            "/k",
            "a.com/",
            "a/b/c",
            "-a",
            "a-",
            "a b",
            "under_score.com/k",
            "-a.com/k",
            "a..com/k",
        ] {
            assert!(check_annotation_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_annotation_key(&"a".repeat(64)).is_err());
        assert!(check_annotation_key(&format!("a{prefix_253}/k")).is_err());
    }

    #[test]
    fn annotations_are_limited_to_256_kib_in_total() {
        let mut spec = spec("0.6.0");
        let half = "x".repeat(MAX_ANNOTATIONS_SIZE / 2);
        spec.annotations.insert("a".to_owned(), half.clone());
        spec.annotations
            .insert("b".to_owned(), half[2..].to_owned());
        assert_eq!(validate(&spec), vec![], "exactly the limit is fine");
        spec.annotations.insert("c".to_owned(), String::new());
        assert_eq!(
            messages(&spec),
            ["annotations: keys and values total 262145 bytes, more than the limit of 262144"]
        );
    }

    #[test]
    fn device_node_type_permissions_and_numbers_are_checked() {
        let mut spec = spec("0.3.0");
        let node = DeviceNode {
            path: "/dev/x".to_owned(),
            kind: Some("z".to_owned()),
            major: Some(-1),
            minor: Some(-2),
            permissions: Some("rwmx".to_owned()),
            ..Default::default()
        };
        spec.devices[0].container_edits.device_nodes.push(node);
        let fields: Vec<_> = validate(&spec).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "containerEdits.deviceNodes[0].type",
                "containerEdits.deviceNodes[0].major",
                "containerEdits.deviceNodes[0].minor",
                "containerEdits.deviceNodes[0].permissions",
            ]
        );
    }

    #[test]
    fn hooks_need_a_known_stage_a_path_and_valid_env() {
        let mut spec = spec("0.3.0");
        spec.devices[0].container_edits.hooks.push(Hook {
            hook_name: "precreate".to_owned(),
            env: vec!["OK=1".to_owned(), "=bad".to_owned()],
            ..Default::default()
        });
        let fields: Vec<_> = validate(&spec).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "containerEdits.hooks[0].hookName",
                "containerEdits.hooks[0].path",
                "containerEdits.hooks[0].env[1]",
            ]
        );
    }

    #[test]
    fn net_devices_need_names_that_are_not_reused() {
        let mut spec = spec("1.1.0");
        let net = |host: &str, name: &str| NetDevice {
            host_interface_name: host.to_owned(),
            name: name.to_owned(),
        };
        spec.devices[0].container_edits.net_devices = vec![
            net("eth0", "a"),
            net("eth0", "b"),
            net("eth1", "a"),
            net("", ""),
        ];
        let fields: Vec<_> = validate(&spec).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "containerEdits.netDevices[1].hostInterfaceName",
                "containerEdits.netDevices[2].name",
                "containerEdits.netDevices[3].hostInterfaceName",
                "containerEdits.netDevices[3].name",
            ]
        );
    }

    #[test]
    fn intel_rdt_clos_id_must_be_a_resctrl_group_name() {
        for (clos, ok) in [
            ("/", true),
            ("gpu", true),
            ("", true),
            (".", false),
            ("..", false),
            ("a/b", false),
            ("a\nb", false),
        ] {
            let mut spec = spec("0.7.0");
            spec.devices[0].container_edits.intel_rdt = Some(IntelRdt {
                clos_id: Some(clos.to_owned()),
                ..Default::default()
            });
            assert_eq!(validate(&spec).is_empty(), ok, "{clos:?}");
        }
        let mut spec = spec("0.7.0");
        spec.devices[0].container_edits.intel_rdt = Some(IntelRdt {
            clos_id: Some("x".repeat(4096)),
            ..Default::default()
        });
        assert_eq!(validate(&spec).len(), 1);
    }

    #[test]
    fn spec_level_edits_may_be_empty_but_device_edits_may_not() {
        let mut spec = spec("0.3.0");
        assert!(spec.container_edits.is_empty());
        assert_eq!(validate(&spec), vec![]);
        spec.devices[0].container_edits = ContainerEdits::default();
        assert_eq!(
            messages(&spec),
            ["device \"dev0\": containerEdits: must not be empty"]
        );
    }
}
