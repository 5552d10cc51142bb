//! Dangerous but valid specs: edits that give a container far more of the host than a device
//! should (the host's disk, `/` read-write, the Docker socket, code loaded into every process), or
//! paths whose meaning depends on where the runtime happens to run. The reference library and the
//! engines apply such specs without a word; [`warnings`] names each one with its device and
//! field, for `validate`, `list` and `doctor` to show (and to refuse with `--strict`). A spec with
//! warnings is still valid.
//!
//! What is checked, in every `containerEdits` (spec-wide and per device):
//! - device nodes that are host block devices (`type: b`, or no type and the host path is a block
//!   device on this host) or host memory (`/dev/mem`, `/dev/kmem`, `/dev/port`);
//! - bind mounts of a sensitive host path or of a directory holding one ([`SENSITIVE_PATHS`]);
//! - relative host paths and hook paths, which the runtime resolves against its working directory;
//! - `..` in any path;
//! - environment variables that make the dynamic loader load other code ([`LOADER_VARIABLES`]).

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::edits::env_key;
use crate::host::{HostFs, HostNode, LiveHostFs, NodeType, lexically_clean};
use crate::spec::{ContainerEdits, Spec};
use crate::text::escape;

/// Host paths a container should not get: each with what it gives away. A bind mount of one of
/// these, or of a directory holding one, is a [`Danger::SensitiveMount`].
pub const SENSITIVE_PATHS: &[(&str, &str)] = &[
    ("/", "the whole host file system"),
    ("/etc", "the host's configuration and password hashes"),
    ("/root", "root's home directory"),
    ("/boot", "the host's kernel and boot loader"),
    ("/proc", "every host process"),
    ("/sys", "kernel and device settings"),
    ("/dev", "every host device"),
    (
        "/run/docker.sock",
        "the Docker API, which is root on the host",
    ),
    (
        "/var/run/docker.sock",
        "the Docker API, which is root on the host",
    ),
    (
        "/run/containerd/containerd.sock",
        "the containerd API, which is root on the host",
    ),
    (
        "/var/run/containerd/containerd.sock",
        "the containerd API, which is root on the host",
    ),
    (
        "/run/crio/crio.sock",
        "the CRI-O API, which is root on the host",
    ),
    (
        "/var/run/crio/crio.sock",
        "the CRI-O API, which is root on the host",
    ),
    (
        "/run/podman/podman.sock",
        "the podman API, which is root on the host",
    ),
    ("/var/lib/kubelet", "the kubelet's pod volumes and secrets"),
];

/// Environment variables that make the dynamic loader load code the variable names into every
/// process of the container.
pub const LOADER_VARIABLES: &[&str] = &["LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "GCONV_PATH"];

/// Host device numbers (character major 1) that give access to host memory or I/O ports.
const MEMORY_DEVICES: &[(&str, u64)] = &[("/dev/mem", 1), ("/dev/kmem", 2), ("/dev/port", 4)];

/// One dangerous thing a spec does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The device it is in; `None` for the spec-wide edits.
    pub device: Option<String>,
    /// The field path, relative to the device when there is one, e.g.
    /// `containerEdits.mounts[0].hostPath`.
    pub field: String,
    /// What is dangerous.
    pub danger: Danger,
}

/// What is dangerous about an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Danger {
    /// A host block device is injected.
    BlockDevice {
        /// The host path.
        path: String,
        /// The cgroup access it gets (`rwm` when the spec leaves it empty).
        access: String,
    },
    /// A device giving access to host memory or I/O ports is injected.
    MemoryDevice {
        /// The host path.
        path: String,
    },
    /// A sensitive host path, or a directory holding one, is bind-mounted.
    SensitiveMount {
        /// The mount's host path.
        host_path: String,
        /// The sensitive path it is or holds.
        sensitive: &'static str,
        /// What that path gives away.
        gives: &'static str,
        /// False when the mount has the `ro` option.
        writable: bool,
    },
    /// A host path or hook path is relative.
    RelativePath {
        /// The path.
        path: String,
    },
    /// A path has a `..` component.
    ParentComponent {
        /// The path.
        path: String,
    },
    /// An environment variable makes the dynamic loader load other code.
    LoaderVariable {
        /// The variable's name.
        name: String,
    },
}

impl Danger {
    /// A stable short name for scripts, e.g. `block-device`.
    pub fn code(&self) -> &'static str {
        match self {
            Danger::BlockDevice { .. } => "block-device",
            Danger::MemoryDevice { .. } => "memory-device",
            Danger::SensitiveMount { .. } => "sensitive-mount",
            Danger::RelativePath { .. } => "relative-path",
            Danger::ParentComponent { .. } => "parent-component",
            Danger::LoaderVariable { .. } => "loader-variable",
        }
    }
}

impl fmt::Display for Danger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Danger::BlockDevice { path, access } => write!(
                f,
                "injects the host block device {} with access {access}: the container can read \
                 {}the host disk behind it",
                escape(path),
                if access.contains('w') {
                    "and write "
                } else {
                    ""
                }
            ),
            Danger::MemoryDevice { path } => write!(
                f,
                "injects {}: the container can read host memory or I/O ports",
                escape(path)
            ),
            Danger::SensitiveMount {
                host_path,
                sensitive,
                gives,
                writable,
            } => {
                let how = if *writable { "read-write" } else { "read-only" };
                let same = normalize(host_path).as_deref() == Some(Path::new(sensitive));
                let host_path = escape(host_path);
                if same {
                    write!(f, "bind-mounts the host's {host_path} {how}: {gives}")
                } else {
                    write!(
                        f,
                        "bind-mounts the host's {host_path} {how}, which holds {sensitive}: {gives}"
                    )
                }
            }
            Danger::RelativePath { path } => write!(
                f,
                "relative path \"{}\": the runtime resolves it against its own working directory",
                escape(path)
            ),
            Danger::ParentComponent { path } => write!(
                f,
                "\"{}\" uses `..`, so it may not name the place it seems to",
                escape(path)
            ),
            Danger::LoaderVariable { name } => write!(
                f,
                "sets {}: the dynamic loader loads the code it names into every process of the \
                 container",
                escape(name)
            ),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(device) = &self.device {
            write!(f, "device \"{}\": ", escape(device))?;
        }
        write!(f, "{}: {}", self.field, self.danger)
    }
}

/// What a host path is, as far as the audit needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A block device.
    Block,
    /// A character device with these numbers.
    Char { major: u64, minor: u64 },
    /// Anything else.
    Other,
}

impl From<HostNode> for Seen {
    fn from(node: HostNode) -> Self {
        match node.kind {
            NodeType::Block => Self::Block,
            NodeType::Char => Self::Char {
                major: node.major,
                minor: node.minor,
            },
            NodeType::Fifo | NodeType::Other => Self::Other,
        }
    }
}

/// Every dangerous edit of `spec`, spec-wide edits first, then each device's, looking at this
/// machine for device nodes without a type.
///
/// ```
/// let yaml = b"cdiVersion: '0.5.0'\nkind: example.com/disk\ndevices:\n- name: d\n  containerEdits:\n    mounts: [{hostPath: /, containerPath: /host, options: [bind]}]\n    env: [LD_PRELOAD=/x.so]\n";
/// let spec = cdi::codec::parse(yaml, cdi::codec::Format::Yaml)?;
/// let shown: Vec<String> = cdi::audit::warnings(&spec).iter().map(ToString::to_string).collect();
/// assert_eq!(shown, [
///     "device \"d\": containerEdits.env[0]: sets LD_PRELOAD: the dynamic loader loads the code it names into every process of the container",
///     "device \"d\": containerEdits.mounts[0].hostPath: bind-mounts the host's / read-write: the whole host file system",
/// ]);
/// # Ok::<(), cdi::codec::CodecError>(())
/// ```
pub fn warnings(spec: &Spec) -> Vec<Warning> {
    warnings_on(spec, &LiveHostFs)
}

/// [`warnings`], asking `host` about device nodes.
pub fn warnings_on(spec: &Spec, host: &impl HostFs) -> Vec<Warning> {
    let mut out = Vec::new();
    check_edits(None, &spec.container_edits, host, &mut out);
    for device in &spec.devices {
        check_edits(Some(&device.name), &device.container_edits, host, &mut out);
    }
    out
}

fn check_edits(
    device: Option<&str>,
    edits: &ContainerEdits,
    host: &impl HostFs,
    out: &mut Vec<Warning>,
) {
    let mut push = |field: String, danger: Danger| {
        out.push(Warning {
            device: device.map(str::to_owned),
            field,
            danger,
        });
    };
    for (index, entry) in edits.env.iter().enumerate() {
        let name = env_key(entry);
        if LOADER_VARIABLES.contains(&name) {
            push(
                format!("containerEdits.env[{index}]"),
                Danger::LoaderVariable {
                    name: name.to_owned(),
                },
            );
        }
    }
    for (index, node) in edits.device_nodes.iter().enumerate() {
        let field = format!("containerEdits.deviceNodes[{index}]");
        let host_path = node.host_node_path();
        let given = node.given_host_path().is_some();
        let host_field = if given {
            format!("{field}.hostPath")
        } else {
            format!("{field}.path")
        };
        paths(&host_field, host_path, true, &mut push);
        if given {
            paths(&format!("{field}.path"), &node.path, false, &mut push);
        }
        let seen = match node.kind.as_deref() {
            Some("b") => Some(Seen::Block),
            Some("c" | "u") => Some(match (node.major, node.minor) {
                (Some(major), Some(minor)) => Seen::Char {
                    major: u64::try_from(major).unwrap_or(u64::MAX),
                    minor: u64::try_from(minor).unwrap_or(u64::MAX),
                },
                _ => host
                    .stat(Path::new(host_path))
                    .map_or(Seen::Other, Seen::from),
            }),
            Some(_) => None,
            None => host.stat(Path::new(host_path)).ok().map(Seen::from),
        };
        let normal = normalize(host_path);
        let memory = MEMORY_DEVICES.iter().any(|(path, minor)| {
            normal.as_deref() == Some(Path::new(path))
                || seen
                    == Some(Seen::Char {
                        major: 1,
                        minor: *minor,
                    })
        });
        if seen == Some(Seen::Block) {
            push(
                field,
                Danger::BlockDevice {
                    path: host_path.to_owned(),
                    access: node.access().to_owned(),
                },
            );
        } else if memory {
            push(
                field,
                Danger::MemoryDevice {
                    path: host_path.to_owned(),
                },
            );
        }
    }
    for (index, hook) in edits.hooks.iter().enumerate() {
        paths(
            &format!("containerEdits.hooks[{index}].path"),
            &hook.path,
            true,
            &mut push,
        );
    }
    for (index, mount) in edits.mounts.iter().enumerate() {
        let field = format!("containerEdits.mounts[{index}]");
        let bind = matches!(mount.kind.as_deref(), None | Some("" | "bind" | "rbind"))
            || mount.options.iter().any(|o| o == "bind" || o == "rbind");
        if bind {
            let host_field = format!("{field}.hostPath");
            paths(&host_field, &mount.host_path, true, &mut push);
            if let Some((sensitive, gives)) = sensitive(&mount.host_path) {
                push(
                    host_field,
                    Danger::SensitiveMount {
                        host_path: mount.host_path.clone(),
                        sensitive,
                        gives,
                        writable: !mount.options.iter().any(|o| o == "ro"),
                    },
                );
            }
        }
        paths(
            &format!("{field}.containerPath"),
            &mount.container_path,
            false,
            &mut push,
        );
    }
}

/// The path checks: `..` anywhere, and (for paths the host resolves) a relative path.
fn paths(field: &str, path: &str, on_host: bool, push: &mut impl FnMut(String, Danger)) {
    if path.is_empty() {
        return;
    }
    if on_host && !path.starts_with('/') {
        push(
            field.to_owned(),
            Danger::RelativePath {
                path: path.to_owned(),
            },
        );
    }
    if Path::new(path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        push(
            field.to_owned(),
            Danger::ParentComponent {
                path: path.to_owned(),
            },
        );
    }
}

/// The first sensitive path that `host_path` is, or holds (as a directory above it).
fn sensitive(host_path: &str) -> Option<(&'static str, &'static str)> {
    let normal = normalize(host_path)?;
    SENSITIVE_PATHS
        .iter()
        .find(|(path, _)| Path::new(path).starts_with(&normal))
        .map(|&(path, gives)| (path, gives))
}

/// An absolute path with `.`, `..` and repeated slashes resolved by text alone
/// ([`lexically_clean`]); `None` for a relative path.
fn normalize(path: &str) -> Option<PathBuf> {
    path.starts_with('/')
        .then(|| lexically_clean(Path::new(path)))
}

#[cfg(test)]
mod tests;
