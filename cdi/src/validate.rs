//! Semantic validation of a parsed CDI spec, with every rule the reference library enforces.
//!
//! [`validate`] reports all problems at once, each naming the device (if any) and the field path,
//! so a user can fix a spec in one pass.

use std::fmt;

use crate::name;
use crate::spec::{ContainerEdits, Spec};
use crate::version::{self, Version};

/// One thing wrong with a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The device the problem is in; `None` for spec-level fields.
    pub device: Option<String>,
    /// The field path, e.g. `containerEdits.deviceNodes[0].path`.
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

/// The Kubernetes limit on the total size of annotation keys and values.
pub const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

const HOOK_NAMES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

struct Collector {
    problems: Vec<Problem>,
}

impl Collector {
    fn push(&mut self, device: Option<&str>, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            device: device.map(str::to_owned),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Checks a spec against every CDI rule and returns all problems found; empty means valid.
pub fn validate(spec: &Spec) -> Vec<Problem> {
    let mut out = Collector {
        problems: Vec::new(),
    };
    check_version(spec, &mut out);
    if spec.kind.is_empty() {
        out.push(None, "kind", "required (vendor/class, e.g. amd.com/gpu)");
    } else if let Err(error) = name::parse_kind(&spec.kind) {
        out.push(None, "kind", error.to_string());
    }
    check_annotations(None, "annotations", &spec.annotations, &mut out);
    check_edits(None, "containerEdits", &spec.container_edits, &mut out);
    if spec.devices.is_empty() {
        out.push(None, "devices", "at least one device is required");
    }
    let mut seen = std::collections::BTreeSet::new();
    for (index, device) in spec.devices.iter().enumerate() {
        let label = Some(device.name.as_str());
        if let Err(error) = name::validate_device_name(&device.name) {
            out.push(label, format!("devices[{index}].name"), error.to_string());
        }
        if !seen.insert(device.name.as_str()) {
            out.push(
                label,
                format!("devices[{index}].name"),
                "duplicate device name in this spec",
            );
        }
        check_annotations(label, "annotations", &device.annotations, &mut out);
        if device.container_edits.is_empty() {
            out.push(label, "containerEdits", "must not be empty");
        }
        check_edits(label, "containerEdits", &device.container_edits, &mut out);
    }
    out.problems
}

fn check_version(spec: &Spec, out: &mut Collector) {
    let declared: Version = match spec.cdi_version.parse() {
        Ok(version) => version,
        Err(_) => {
            out.push(
                None,
                "cdiVersion",
                format!("invalid version {:?}", spec.cdi_version),
            );
            return;
        }
    };
    if !declared.is_known() {
        out.push(None, "cdiVersion", format!("unknown version {declared}"));
        return;
    }
    let required = version::minimum_required_version(spec);
    if declared < required {
        out.push(
            None,
            "cdiVersion",
            format!("{declared} is too old for this content, which needs at least {required}"),
        );
    }
}

fn check_annotations(
    device: Option<&str>,
    field: &str,
    annotations: &std::collections::BTreeMap<String, String>,
    out: &mut Collector,
) {
    let mut total = 0usize;
    for (key, value) in annotations {
        total += key.len() + value.len();
        if let Err(message) = check_annotation_key(key) {
            out.push(device, format!("{field}[{key:?}]"), message);
        }
    }
    if total > MAX_ANNOTATIONS_SIZE {
        out.push(
            device,
            field,
            format!(
                "keys and values total {total} bytes, more than the limit of {MAX_ANNOTATIONS_SIZE}"
            ),
        );
    }
}

fn check_annotation_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return Err("key prefix must be a DNS subdomain of 1 to 253 characters".into());
            }
            name
        }
        None => key,
    };
    if name.is_empty() || name.len() > 63 {
        return Err("key name must be 1 to 63 characters".into());
    }
    Ok(())
}

fn check_edits(device: Option<&str>, base: &str, edits: &ContainerEdits, out: &mut Collector) {
    for (index, entry) in edits.env.iter().enumerate() {
        if entry.find('=').is_none_or(|at| at == 0) {
            out.push(
                device,
                format!("{base}.env[{index}]"),
                format!("{entry:?} is not KEY=VALUE"),
            );
        }
    }
    for (index, node) in edits.device_nodes.iter().enumerate() {
        let field = format!("{base}.deviceNodes[{index}]");
        if node.path.is_empty() {
            out.push(device, format!("{field}.path"), "required");
        }
        if let Some(kind) = &node.kind
            && !matches!(kind.as_str(), "" | "b" | "c" | "u" | "p")
        {
            out.push(
                device,
                format!("{field}.type"),
                format!("{kind:?} is not one of b, c, u, p"),
            );
        }
        if let Some(permissions) = &node.permissions
            && permissions.chars().any(|c| !matches!(c, 'r' | 'w' | 'm'))
        {
            out.push(
                device,
                format!("{field}.permissions"),
                format!("{permissions:?} may only contain r, w and m"),
            );
        }
    }
    for (index, hook) in edits.hooks.iter().enumerate() {
        let field = format!("{base}.hooks[{index}]");
        if !HOOK_NAMES.contains(&hook.hook_name.as_str()) {
            out.push(
                device,
                format!("{field}.hookName"),
                format!(
                    "{:?} is not one of {}",
                    hook.hook_name,
                    HOOK_NAMES.join(", ")
                ),
            );
        }
        if hook.path.is_empty() {
            out.push(device, format!("{field}.path"), "required");
        }
    }
    for (index, mount) in edits.mounts.iter().enumerate() {
        let field = format!("{base}.mounts[{index}]");
        if mount.host_path.is_empty() {
            out.push(device, format!("{field}.hostPath"), "required");
        }
        if mount.container_path.is_empty() {
            out.push(device, format!("{field}.containerPath"), "required");
        }
    }
}
