//! The mechanics of a `prestart`/`createRuntime` hook that adds device nodes to a container
//! being created: runc and youki read `config.json` once, so editing it changes nothing; the
//! hook acts directly on the container instead.
//!
//! Inputs: the OCI state on stdin (size-capped), the bundle's `config.json`, and the host nodes
//! to add (chosen by the caller). Steps: check the container process is alive, find its device
//! cgroups, create the nodes inside its rootfs (as seen through `/proc/<pid>/root` when it has
//! its own mount namespace) with the owner CDI injection would give, then allow them in the
//! device cgroup (v1 `devices.allow`, v2 eBPF program replacement).
//!
//! Rootless containers: the hook then runs without `CAP_MKNOD` in the host user namespace, so it
//! cannot create nodes, and it cannot change the device cgroup either. A bind mount of the host
//! node would need `setns` into the container's user and mount namespaces from a single-threaded
//! process before the rootfs is pivoted; it is not implemented, and the hook says so instead of
//! pretending. Containers with a user namespace started by root are supported: nodes are created
//! by host root and owned by the host ids the container's ids map to.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::Deserialize;
use serde_json::Value;

use crate::cgroup::program::{Access, DeviceRule, DeviceType, runc_default_rules};
use crate::cgroup::{self, AllowOutcome, CgroupError, CgroupRoots};
use crate::rootfs::{NodeOutcome, NodeToCreate, Rootfs, RootfsError};
use crate::syscalls::{FileKind, NodeSpec, Syscalls};

/// The most bytes of state JSON read from stdin.
pub const STATE_LIMIT: u64 = 1 << 20;
/// The most bytes of `config.json` read.
pub const CONFIG_LIMIT: u64 = 16 << 20;

/// The OCI container state a runtime writes to a hook's stdin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct State {
    /// OCI version of the state.
    #[serde(rename = "ociVersion", default)]
    pub oci_version: String,
    /// Container id.
    #[serde(default)]
    pub id: String,
    /// `creating`, `created`, ...
    #[serde(default)]
    pub status: String,
    /// The container's init process on the host.
    #[serde(default)]
    pub pid: Option<i32>,
    /// Absolute path of the bundle.
    pub bundle: PathBuf,
    /// Container annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A host device node to add to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNode {
    /// The node on the host, including any dev root prefix.
    pub host_path: PathBuf,
    /// Where it goes in the container, e.g. `/dev/dri/renderD129`.
    pub container_path: PathBuf,
    /// Device cgroup access to allow.
    pub access: Access,
}

/// What the hook may assume about itself and where to look.
#[derive(Debug, Clone)]
pub struct Options {
    /// `/proc` and the mount table.
    pub cgroup_roots: CgroupRoots,
    /// Whether the hook runs as root in the host user namespace.
    pub privileged: bool,
}

/// What [`inject`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Each node with its outcome.
    pub nodes: Vec<(PathBuf, NodeOutcome)>,
    /// The device cgroup changes.
    pub cgroup: AllowOutcome,
}

/// Errors of the prestart mechanics.
#[derive(Debug, thiserror::Error)]
pub enum PrestartError {
    /// stdin could not be read.
    #[error("cannot read the container state from stdin: {0}")]
    ReadState(#[source] std::io::Error),
    /// The state is larger than [`STATE_LIMIT`].
    #[error(
        "container state on stdin is larger than {STATE_LIMIT} bytes (is this hook registered for a hook stage?)"
    )]
    StateTooLarge,
    /// The state is not valid JSON for an OCI state.
    #[error("cannot parse the container state from stdin: {0} (is this running as an OCI hook?)")]
    ParseState(#[source] serde_json::Error),
    /// The state has no pid.
    #[error(
        "container state of {id} has no pid (register the hook as prestart or createRuntime, not {status})"
    )]
    MissingPid {
        /// Container id.
        id: String,
        /// State status.
        status: String,
    },
    /// The container process has exited.
    #[error("container process {pid} is gone ({path} does not exist)")]
    PidGone {
        /// The pid from the state.
        pid: i32,
        /// Its proc directory.
        path: PathBuf,
    },
    /// `config.json` could not be read.
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `config.json` is too large.
    #[error("{path} is larger than {CONFIG_LIMIT} bytes")]
    ConfigTooLarge {
        /// The file.
        path: PathBuf,
    },
    /// `config.json` is not JSON.
    #[error("cannot parse {path}: {source}")]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// `config.json` lacks `root.path`.
    #[error("{path} has no root.path")]
    MissingRoot {
        /// The config file.
        path: PathBuf,
    },
    /// A `linux.resources.devices` entry is malformed.
    #[error("linux.resources.devices[{index}] in the bundle config is invalid: {reason}")]
    BadDeviceRule {
        /// Its index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A host node could not be inspected.
    #[error("cannot inspect host device {path}: {source}")]
    HostNode {
        /// The host path.
        path: PathBuf,
        /// The cause.
        source: Errno,
    },
    /// A host path is not a device node.
    #[error("host path {path} is not a device node")]
    NotADevice {
        /// The host path.
        path: PathBuf,
    },
    /// A container id has no mapping to the host.
    #[error(
        "container {kind} {id} has no mapping in linux.{kind}Mappings (cannot choose the owner of the device nodes)"
    )]
    Unmapped {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The container id.
        id: u32,
    },
    /// The hook is not privileged.
    #[error(
        "cannot add {count} device node(s) to container {id}: the hook is not running as root (rootless container); creating device nodes and changing the device cgroup need host root, and bind-mounting host nodes from inside the container's namespaces is not supported - use CDI (--device) with a rootless engine instead"
    )]
    Rootless {
        /// Container id.
        id: String,
        /// How many nodes were requested.
        count: usize,
    },
    /// Node creation failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The cgroup update failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

/// Reads and parses the state from `reader`, reading at most [`STATE_LIMIT`] bytes.
pub fn read_state(reader: impl Read) -> Result<State, PrestartError> {
    let mut text = Vec::new();
    reader
        .take(STATE_LIMIT + 1)
        .read_to_end(&mut text)
        .map_err(PrestartError::ReadState)?;
    if text.len() as u64 > STATE_LIMIT {
        return Err(PrestartError::StateTooLarge);
    }
    serde_json::from_slice(&text).map_err(PrestartError::ParseState)
}

/// Reads `<bundle>/config.json` as JSON (kept as a value: only a few fields matter here).
pub fn read_config(bundle: &Path) -> Result<Value, PrestartError> {
    let path = bundle.join("config.json");
    let file = std::fs::File::open(&path).map_err(|source| PrestartError::ReadConfig {
        path: path.clone(),
        source,
    })?;
    let mut text = Vec::new();
    file.take(CONFIG_LIMIT + 1)
        .read_to_end(&mut text)
        .map_err(|source| PrestartError::ReadConfig {
            path: path.clone(),
            source,
        })?;
    if text.len() as u64 > CONFIG_LIMIT {
        return Err(PrestartError::ConfigTooLarge { path });
    }
    serde_json::from_slice(&text).map_err(|source| PrestartError::ParseConfig { path, source })
}

fn namespaces(config: &Value) -> impl Iterator<Item = &str> {
    config
        .pointer("/linux/namespaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ns| ns.get("type").and_then(Value::as_str))
}

/// The rootfs as the hook must see it: through the container's mount namespace when it has one.
#[must_use]
pub fn rootfs_view(config: &Value, bundle: &Path, proc_root: &Path, pid: i32) -> Option<PathBuf> {
    let root = config.pointer("/root/path").and_then(Value::as_str)?;
    let rootfs = bundle.join(root);
    if namespaces(config).any(|ns| ns == "mount") {
        let relative = rootfs.strip_prefix("/").unwrap_or(&rootfs);
        Some(proc_root.join(pid.to_string()).join("root").join(relative))
    } else {
        Some(rootfs)
    }
}

fn map_id(config: &Value, kind: &'static str, id: u32) -> Result<u32, PrestartError> {
    if !namespaces(config).any(|ns| ns == "user") {
        return Ok(id);
    }
    let key = format!("/linux/{kind}Mappings");
    let mappings = config.pointer(&key).and_then(Value::as_array);
    for mapping in mappings.into_iter().flatten() {
        let field = |name: &str| mapping.get(name).and_then(Value::as_u64);
        let (Some(container), Some(host), Some(size)) =
            (field("containerID"), field("hostID"), field("size"))
        else {
            continue;
        };
        let id = u64::from(id);
        if id >= container && id - container < size {
            return u32::try_from(host + (id - container)).map_err(|_| PrestartError::Unmapped {
                kind,
                id: id as u32,
            });
        }
    }
    Err(PrestartError::Unmapped { kind, id })
}

/// The host owner of new nodes: the container's process user when it is not root (what CDI
/// injection does), else root - mapped through the user namespace when there is one.
pub fn node_owner(config: &Value) -> Result<(u32, u32), PrestartError> {
    let get = |name: &str| {
        config
            .pointer(&format!("/process/user/{name}"))
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0)
    };
    let (uid, gid) = match get("uid") {
        0 => (0, 0),
        uid => (uid, get("gid")),
    };
    Ok((map_id(config, "uid", uid)?, map_id(config, "gid", gid)?))
}

/// The device rules the runtime built its policy from: the config's `linux.resources.devices`
/// followed by runc's implicit defaults.
pub fn runtime_rules(config: &Value) -> Result<Vec<DeviceRule>, PrestartError> {
    let mut rules = Vec::new();
    let entries = config
        .pointer("/linux/resources/devices")
        .and_then(Value::as_array);
    for (index, entry) in entries.into_iter().flatten().enumerate() {
        let bad = |reason: &str| PrestartError::BadDeviceRule {
            index,
            reason: reason.to_string(),
        };
        let allow = entry
            .get("allow")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("`allow` must be a boolean"))?;
        let kind = DeviceType::parse(entry.get("type").and_then(Value::as_str).unwrap_or(""))
            .ok_or_else(|| bad("`type` must be a, b or c"))?;
        let number = |name: &str| -> Result<Option<u32>, PrestartError> {
            match entry.get(name) {
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
        let access = Access::parse(entry.get("access").and_then(Value::as_str).unwrap_or(""))
            .ok_or_else(|| bad("`access` must be a subset of rwm"))?;
        rules.push(DeviceRule {
            allow,
            kind,
            major: number("major")?,
            minor: number("minor")?,
            access,
        });
    }
    let paths: Vec<&str> = config
        .pointer("/linux/devices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("path").and_then(Value::as_str))
        .collect();
    rules.extend(runc_default_rules(&paths));
    Ok(rules)
}

/// Adds `nodes` to the container described by `state` and `config`.
pub fn inject<S: Syscalls>(
    sys: &S,
    options: &Options,
    state: &State,
    config: &Value,
    nodes: &[HostNode],
) -> Result<Report, PrestartError> {
    if nodes.is_empty() {
        return Ok(Report::default());
    }
    if !options.privileged {
        return Err(PrestartError::Rootless {
            id: state.id.clone(),
            count: nodes.len(),
        });
    }
    let pid = state.pid.ok_or_else(|| PrestartError::MissingPid {
        id: state.id.clone(),
        status: state.status.clone(),
    })?;
    let proc_dir = options.cgroup_roots.proc_root.join(pid.to_string());
    match sys.stat(&proc_dir) {
        Ok(_) => {}
        Err(Errno::ENOENT | Errno::ESRCH) => {
            return Err(PrestartError::PidGone {
                pid,
                path: proc_dir,
            });
        }
        Err(source) => {
            return Err(PrestartError::HostNode {
                path: proc_dir,
                source,
            });
        }
    }
    let view = rootfs_view(config, &state.bundle, &options.cgroup_roots.proc_root, pid)
        .ok_or_else(|| PrestartError::MissingRoot {
            path: state.bundle.join("config.json"),
        })?;
    let (uid, gid) = node_owner(config)?;
    let base = runtime_rules(config)?;
    let cgroups = cgroup::locate(sys, &options.cgroup_roots, pid)?;

    let mut to_create = Vec::with_capacity(nodes.len());
    let mut new_rules = Vec::with_capacity(nodes.len());
    for node in nodes {
        let stat = sys
            .stat(&node.host_path)
            .map_err(|source| PrestartError::HostNode {
                path: node.host_path.clone(),
                source,
            })?;
        let kind = match stat.kind {
            FileKind::CharDevice => DeviceType::Char,
            FileKind::BlockDevice => DeviceType::Block,
            _ => {
                return Err(PrestartError::NotADevice {
                    path: node.host_path.clone(),
                });
            }
        };
        to_create.push(NodeToCreate {
            container_path: node.container_path.clone(),
            node: NodeSpec {
                kind: stat.kind,
                major: stat.major,
                minor: stat.minor,
                mode: stat.mode & 0o777,
            },
            uid,
            gid,
        });
        let number = |n: u64| {
            u32::try_from(n).map_err(|_| PrestartError::NotADevice {
                path: node.host_path.clone(),
            })
        };
        new_rules.push(DeviceRule::allow_device(
            kind,
            number(stat.major)?,
            number(stat.minor)?,
            node.access,
        ));
    }

    let rootfs = Rootfs::open(sys, &view)?;
    let outcomes = rootfs.create_nodes(&to_create)?;
    let cgroup = cgroup::allow(sys, &cgroups, &base, &new_rules)?;
    Ok(Report {
        nodes: to_create
            .into_iter()
            .map(|n| n.container_path)
            .zip(outcomes)
            .collect(),
        cgroup,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::{Fake, FakeEntry, FileStat, Op};
    use serde_json::json;

    const MOUNTINFO: &str = "36 31 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";

    fn state(pid: Option<i32>) -> State {
        State {
            oci_version: "1.0.2".into(),
            id: "ctr".into(),
            status: "created".into(),
            pid,
            bundle: PathBuf::from("/bundle"),
            annotations: BTreeMap::new(),
        }
    }

    fn options() -> Options {
        Options {
            cgroup_roots: CgroupRoots::default(),
            privileged: true,
        }
    }

    fn config() -> Value {
        json!({
            "root": {"path": "rootfs"},
            "process": {"user": {"uid": 0, "gid": 0}},
            "linux": {
                "namespaces": [{"type": "mount"}, {"type": "pid"}],
                "resources": {"devices": [{"allow": false, "access": "rwm"}]}
            }
        })
    }

    fn dev(major: u64, minor: u64) -> FakeEntry {
        FakeEntry::Node(FileStat {
            kind: FileKind::CharDevice,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
    }

    fn host() -> Fake {
        let fake = Fake::new();
        fake.add("/proc/self/mountinfo", FakeEntry::File(MOUNTINFO.into()));
        fake.add(
            "/proc/42/cgroup",
            FakeEntry::File("5:devices:/ctr\n0::/ctr\n".into()),
        );
        fake.add("/proc/42/root/bundle/rootfs/dev", FakeEntry::Dir);
        fake.add(
            "/sys/fs/cgroup/devices/ctr/devices.allow",
            FakeEntry::File(String::new()),
        );
        fake.add("/host/dev/kfd", dev(511, 0));
        fake.add("/host/dev/dri/renderD129", dev(226, 129));
        fake
    }

    fn nodes() -> Vec<HostNode> {
        vec![
            HostNode {
                host_path: "/host/dev/kfd".into(),
                container_path: "/dev/kfd".into(),
                access: Access::ALL,
            },
            HostNode {
                host_path: "/host/dev/dri/renderD129".into(),
                container_path: "/dev/dri/renderD129".into(),
                access: Access::ALL,
            },
        ]
    }

    #[test]
    fn state_is_parsed_and_capped() {
        let text = r#"{"ociVersion":"1.0.2","id":"c","status":"created","pid":42,"bundle":"/b","extra":1}"#;
        let parsed = read_state(text.as_bytes()).expect("parse");
        assert_eq!(parsed.pid, Some(42));
        assert_eq!(parsed.bundle, PathBuf::from("/b"));
        let huge = vec![b' '; (STATE_LIMIT + 10) as usize];
        assert!(matches!(
            read_state(&huge[..]),
            Err(PrestartError::StateTooLarge)
        ));
        assert!(matches!(
            read_state(&b"{"[..]),
            Err(PrestartError::ParseState(_))
        ));
    }

    #[test]
    fn injects_through_the_container_mount_namespace() {
        let fake = host();
        let report =
            inject(&fake, &options(), &state(Some(42)), &config(), &nodes()).expect("inject");
        assert_eq!(report.nodes.len(), 2);
        let ops = fake.ops();
        assert!(ops.contains(&Op::Mknod(
            "/proc/42/root/bundle/rootfs/dev/kfd".into(),
            NodeSpec {
                kind: FileKind::CharDevice,
                major: 511,
                minor: 0,
                mode: 0o666
            }
        )));
        assert!(ops.contains(&Op::Write(
            "/sys/fs/cgroup/devices/ctr/devices.allow".into(),
            "c 226:129 rwm".into()
        )));
        assert_eq!(
            report.cgroup.v1_allow_file,
            Some(PathBuf::from("/sys/fs/cgroup/devices/ctr/devices.allow"))
        );
    }

    #[test]
    fn nothing_requested_touches_nothing() {
        let fake = Fake::new();
        let report = inject(&fake, &options(), &state(None), &config(), &[]).expect("noop");
        assert_eq!(report, Report::default());
    }

    #[test]
    fn gone_pid_is_refused_before_anything_changes() {
        let fake = host();
        let err =
            inject(&fake, &options(), &state(Some(77)), &config(), &nodes()).expect_err("gone");
        assert_eq!(
            err.to_string(),
            "container process 77 is gone (/proc/77 does not exist)"
        );
        assert!(fake.ops().is_empty());
    }

    #[test]
    fn rootless_says_what_is_not_possible() {
        let fake = host();
        let mut opts = options();
        opts.privileged = false;
        let err =
            inject(&fake, &opts, &state(Some(42)), &config(), &nodes()).expect_err("rootless");
        assert!(err.to_string().contains("not running as root"), "{err}");
        assert!(fake.ops().is_empty());
    }

    #[test]
    fn non_root_user_owns_nodes_mapped_through_the_user_namespace() {
        let config = json!({
            "root": {"path": "/abs/rootfs"},
            "process": {"user": {"uid": 1000, "gid": 1001}},
            "linux": {
                "namespaces": [{"type": "user"}],
                "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]
            }
        });
        assert_eq!(node_owner(&config).expect("owner"), (101_000, 201_001));
        assert_eq!(
            rootfs_view(&config, Path::new("/bundle"), Path::new("/proc"), 1),
            Some(PathBuf::from("/abs/rootfs"))
        );
        let unmapped = json!({
            "process": {"user": {"uid": 0}},
            "linux": {"namespaces": [{"type": "user"}], "uidMappings": []}
        });
        assert_eq!(
            node_owner(&unmapped).expect_err("unmapped").to_string(),
            "container uid 0 has no mapping in linux.uidMappings (cannot choose the owner of the device nodes)"
        );
    }

    #[test]
    fn runtime_rules_follow_the_config_then_runc_defaults() {
        let rules = runtime_rules(&config()).expect("rules");
        assert_eq!(rules[0].kind, DeviceType::All);
        assert!(!rules[0].allow);
        assert_eq!(rules.len(), 1 + runc_default_rules(&[]).len());
        let bad = json!({"linux": {"resources": {"devices": [{"allow": true, "access": "rwx"}]}}});
        assert_eq!(
            runtime_rules(&bad).expect_err("bad").to_string(),
            "linux.resources.devices[0] in the bundle config is invalid: `access` must be a subset of rwm"
        );
    }

    #[test]
    fn host_path_that_is_not_a_device_is_refused() {
        let fake = host();
        fake.add("/host/dev/kfd", FakeEntry::Symlink("elsewhere".into()));
        let err =
            inject(&fake, &options(), &state(Some(42)), &config(), &nodes()).expect_err("symlink");
        assert_eq!(
            err.to_string(),
            "host path /host/dev/kfd is not a device node"
        );
    }
}
