//! The mechanics of a `prestart`/`createRuntime` hook that adds device nodes to a container
//! being created: runc and youki read `config.json` once, so editing it changes nothing; the
//! hook acts directly on the container instead.
//!
//! Inputs: the OCI [`State`], the bundle's `config.json`, and the devices to add: the caller
//! applies its CDI edits to a copy of the config and [`devices_added`] reads the difference, so
//! the nodes get exactly the type, numbers, mode and owner CDI injection gives. Steps: check the container process is alive, find its device
//! cgroups, create the nodes inside its rootfs (as seen through `/proc/<pid>/root` when it has
//! its own mount namespace) with the owner CDI injection would give, then allow them in the
//! device cgroup (v1 `devices.allow`, v2 eBPF program replacement).
//!
//! Rootless containers: the hook then runs as root inside the engine's user namespace (see
//! [`privilege`]), where the host refuses `mknod` of devices and the device cgroup cannot be
//! changed. It joins the container's mount namespace instead (the rootfs is mounted there but not
//! yet pivoted) and bind-mounts each host node onto an empty file in the rootfs, checked with the
//! same symlink policy; the device cgroup is left alone. An unprivileged hook refuses with an
//! error that says why. Containers with a user namespace started by host root get created nodes
//! owned by the host ids the container's ids map to.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde_json::Value;

use crate::cgroup::program::{Access, DeviceRule, DeviceType, runc_default_rules};
use crate::cgroup::{self, AllowOutcome, CgroupError, CgroupRoots};
use crate::rootfs::{NodeOutcome, NodeToCreate, Rootfs, RootfsError};
use crate::state::State;
use crate::syscalls::{FileKind, NodeSpec, Syscalls};

/// A device node to add, as CDI injection described it in `linux.devices` (type, numbers and
/// mode filled from the host node; owner set when the container user is not root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceToAdd {
    /// Where it goes in the container, e.g. `/dev/dri/renderD129`.
    pub container_path: PathBuf,
    /// Character or block device.
    pub kind: DeviceType,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Permission bits.
    pub mode: u32,
    /// Owner inside the container (before any user namespace mapping).
    pub uid: u32,
    /// Group inside the container (before any user namespace mapping).
    pub gid: u32,
    /// Device cgroup access to allow.
    pub access: Access,
    /// The host node, when known (needed to bind-mount it in rootless containers).
    pub host_path: Option<PathBuf>,
}

impl DeviceToAdd {
    /// The node to create for this device: its type, numbers and permission bits.
    pub fn node_spec(&self) -> NodeSpec {
        NodeSpec {
            kind: if self.kind == DeviceType::Block {
                FileKind::BlockDevice
            } else {
                FileKind::CharDevice
            },
            major: u64::from(self.major),
            minor: u64::from(self.minor),
            mode: self.mode,
        }
    }
}

/// What the hook can do, from who it runs as (see [`privilege`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Root in the host's user namespace: create nodes, change the device cgroup.
    HostRoot,
    /// Root inside a user namespace (a rootless engine): bind-mount host nodes from inside the
    /// container's mount namespace; no device cgroup change.
    NamespacedRoot,
    /// An unprivileged user: nothing is possible.
    Unprivileged,
}

/// What the hook may assume about itself and where to look.
#[derive(Debug, Clone)]
pub struct Options {
    /// `/proc` and the mount table.
    pub cgroup_roots: CgroupRoots,
    /// Who the hook runs as.
    pub privilege: Privilege,
}

/// What [`inject`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Each node with its outcome.
    pub nodes: Vec<(PathBuf, NodeOutcome)>,
    /// The device cgroup changes.
    pub cgroup: AllowOutcome,
    /// The nodes were bind-mounted from the host (rootless), the device cgroup left alone.
    pub bind_mounted: bool,
}

/// Errors of the prestart mechanics.
#[derive(Debug, thiserror::Error)]
pub enum PrestartError {
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
    /// The container's proc directory could not be inspected.
    #[error("cannot inspect {path}: {source}")]
    Proc {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: Errno,
    },
    /// A `linux.devices` entry added by the injection is malformed.
    #[error("linux.devices entry {path} of the injected config is invalid: {reason}")]
    BadDevice {
        /// Its path (or `?`).
        path: String,
        /// What is wrong.
        reason: String,
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
        "cannot add {count} device node(s) to container {id}: the hook runs as an unprivileged user; creating device nodes needs root in the host user namespace, and bind-mounting host nodes needs root in the container's user namespace"
    )]
    Rootless {
        /// Container id.
        id: String,
        /// How many nodes were requested.
        count: usize,
    },
    /// A rootless hook could not join the container's mount namespace.
    #[error(
        "cannot enter the mount namespace {path} of the container: {source} (a rootless hook must run in the user namespace that owns it)"
    )]
    EnterNamespace {
        /// The namespace file.
        path: PathBuf,
        /// The cause.
        source: Errno,
    },
    /// A device to bind-mount has no known host path.
    #[error("cannot bind-mount {path} into the rootless container: its host path is unknown")]
    MissingHostPath {
        /// The container path.
        path: PathBuf,
    },
    /// Node creation failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The cgroup update failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
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
    let wanted = u64::from(id);
    for mapping in mappings.into_iter().flatten() {
        let field = |name: &str| mapping.get(name).and_then(Value::as_u64);
        let (Some(container), Some(host), Some(size)) =
            (field("containerID"), field("hostID"), field("size"))
        else {
            continue;
        };
        if wanted >= container && wanted - container < size {
            return u32::try_from(host + (wanted - container))
                .map_err(|_| PrestartError::Unmapped { kind, id });
        }
    }
    Err(PrestartError::Unmapped { kind, id })
}

/// The host owner of a node owned by `uid`/`gid` inside the container: the same ids, or the
/// ids they map to when the container has a user namespace.
pub fn host_owner(config: &Value, uid: u32, gid: u32) -> Result<(u32, u32), PrestartError> {
    Ok((map_id(config, "uid", uid)?, map_id(config, "gid", gid)?))
}

fn device_key(device: &Value) -> (Option<&str>, Option<&str>, Option<i64>, Option<i64>) {
    (
        device.get("path").and_then(Value::as_str),
        device.get("type").and_then(Value::as_str),
        device.get("major").and_then(Value::as_i64),
        device.get("minor").and_then(Value::as_i64),
    )
}

/// The device nodes `after` (a config with CDI edits applied) has in `linux.devices` that
/// `before` lacks, with the access of the matching new `linux.resources.devices` allow rule.
pub fn devices_added(before: &Value, after: &Value) -> Result<Vec<DeviceToAdd>, PrestartError> {
    let list = |config: &'_ Value, pointer: &str| -> Vec<Value> {
        config
            .pointer(pointer)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let old_devices = list(before, "/linux/devices");
    let old_rules = list(before, "/linux/resources/devices");
    let new_rules: Vec<Value> = list(after, "/linux/resources/devices")
        .into_iter()
        .filter(|rule| !old_rules.contains(rule))
        .collect();
    let mut added = Vec::new();
    for device in list(after, "/linux/devices") {
        if old_devices
            .iter()
            .any(|d| device_key(d) == device_key(&device))
        {
            continue;
        }
        let (path, kind, major, minor) = device_key(&device);
        let path = path.unwrap_or("?").to_string();
        let bad = |reason: &str| PrestartError::BadDevice {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let kind = match kind {
            Some("c" | "u") => DeviceType::Char,
            Some("b") => DeviceType::Block,
            _ => {
                return Err(bad(
                    "only character and block devices can be added at prestart",
                ));
            }
        };
        let number = |n: Option<i64>, name: &str| {
            n.and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad(&format!("`{name}` is missing or out of range")))
        };
        let (major, minor) = (number(major, "major")?, number(minor, "minor")?);
        let id = |name: &str| {
            device
                .get(name)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0)
        };
        let letter = if kind == DeviceType::Block { "b" } else { "c" };
        let access = new_rules
            .iter()
            .find(|rule| {
                rule.get("allow").and_then(Value::as_bool) == Some(true)
                    && rule.get("type").and_then(Value::as_str) == Some(letter)
                    && rule.get("major").and_then(Value::as_i64) == Some(i64::from(major))
                    && rule.get("minor").and_then(Value::as_i64) == Some(i64::from(minor))
            })
            .and_then(|rule| rule.get("access").and_then(Value::as_str))
            .map_or(Some(Access::ALL), Access::parse)
            .ok_or_else(|| bad("its cgroup access must be a subset of rwm"))?;
        added.push(DeviceToAdd {
            container_path: PathBuf::from(&path),
            kind,
            major,
            minor,
            mode: u32::try_from(
                device
                    .get("fileMode")
                    .and_then(Value::as_u64)
                    .unwrap_or(0o666),
            )
            .map_err(|_| bad("`fileMode` is out of range"))?
                & 0o7777,
            uid: id("uid"),
            gid: id("gid"),
            access,
            host_path: None,
        });
    }
    Ok(added)
}

/// Who the hook runs as: root with the host's identity uid map (`0 0 4294967295` in
/// `<proc>/self/uid_map`) is [`Privilege::HostRoot`]; root with any other map runs inside a user
/// namespace (a rootless engine), where the host refuses `mknod` of devices:
/// [`Privilege::NamespacedRoot`].
pub fn privilege<S: Syscalls>(sys: &S, proc_root: &Path, euid_is_root: bool) -> Privilege {
    if !euid_is_root {
        return Privilege::Unprivileged;
    }
    let Ok(map) = sys.read_to_string(&proc_root.join("self/uid_map")) else {
        return Privilege::NamespacedRoot;
    };
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|line| line.split_whitespace().collect())
        .filter(|fields: &Vec<&str>| !fields.is_empty())
        .collect();
    if lines == [vec!["0", "0", "4294967295"]] {
        Privilege::HostRoot
    } else {
        Privilege::NamespacedRoot
    }
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

/// Adds `devices` to the container described by `state` and its `config`: checks the process
/// is alive and finds its device cgroups first, then creates the nodes (all checked before any is
/// created), then allows them in the device cgroup.
pub fn inject<S: Syscalls>(
    sys: &S,
    options: &Options,
    state: &State,
    config: &Value,
    devices: &[DeviceToAdd],
) -> Result<Report, PrestartError> {
    if devices.is_empty() {
        return Ok(Report::default());
    }
    if options.privilege == Privilege::Unprivileged {
        return Err(PrestartError::Rootless {
            id: state.id.clone(),
            count: devices.len(),
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
            return Err(PrestartError::Proc {
                path: proc_dir,
                source,
            });
        }
    }
    if options.privilege == Privilege::NamespacedRoot {
        return bind_into(sys, options, state, config, devices, pid);
    }
    let view = rootfs_view(config, &state.bundle, &options.cgroup_roots.proc_root, pid)
        .ok_or_else(|| PrestartError::MissingRoot {
            path: state.bundle.join("config.json"),
        })?;
    let base = runtime_rules(config)?;
    let cgroups = cgroup::locate(sys, &options.cgroup_roots, pid)?;

    let mut to_create = Vec::with_capacity(devices.len());
    let mut new_rules = Vec::with_capacity(devices.len());
    for device in devices {
        let (uid, gid) = host_owner(config, device.uid, device.gid)?;
        to_create.push(NodeToCreate {
            container_path: device.container_path.clone(),
            node: device.node_spec(),
            uid,
            gid,
        });
        new_rules.push(DeviceRule::allow_device(
            device.kind,
            device.major,
            device.minor,
            device.access,
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
        bind_mounted: false,
    })
}

/// The rootless path: join the container's mount namespace (the rootfs is mounted there, not yet
/// pivoted) and bind-mount each host node onto an empty file in the rootfs. The device cgroup is
/// left alone: a rootless runtime cannot restrict devices by cgroup either.
fn bind_into<S: Syscalls>(
    sys: &S,
    options: &Options,
    state: &State,
    config: &Value,
    devices: &[DeviceToAdd],
    pid: i32,
) -> Result<Report, PrestartError> {
    let root = config
        .pointer("/root/path")
        .and_then(Value::as_str)
        .ok_or_else(|| PrestartError::MissingRoot {
            path: state.bundle.join("config.json"),
        })?;
    let rootfs = state.bundle.join(root);
    let mut requests = Vec::with_capacity(devices.len());
    for device in devices {
        let host = device
            .host_path
            .clone()
            .ok_or_else(|| PrestartError::MissingHostPath {
                path: device.container_path.clone(),
            })?;
        requests.push((
            NodeToCreate {
                container_path: device.container_path.clone(),
                node: device.node_spec(),
                uid: 0,
                gid: 0,
            },
            host,
        ));
    }
    let ns = options
        .cgroup_roots
        .proc_root
        .join(pid.to_string())
        .join("ns/mnt");
    sys.enter_mount_namespace(&ns)
        .map_err(|source| PrestartError::EnterNamespace { path: ns, source })?;
    let outcomes = Rootfs::open(sys, &rootfs)?.bind_nodes(&requests)?;
    Ok(Report {
        nodes: requests
            .into_iter()
            .map(|(n, _)| n.container_path)
            .zip(outcomes)
            .collect(),
        cgroup: AllowOutcome::default(),
        bind_mounted: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::{Fake, FakeEntry, Op};
    use serde_json::json;
    use std::collections::BTreeMap;

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
            privilege: Privilege::HostRoot,
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

    fn injected() -> Value {
        let mut after = config();
        after["linux"]["devices"] = json!([
            {"path": "/dev/kfd", "type": "c", "major": 511, "minor": 0, "fileMode": 438},
            {"path": "/dev/dri/renderD129", "type": "c", "major": 226, "minor": 129, "fileMode": 432, "uid": 1000, "gid": 44}
        ]);
        after["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 511, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 226, "minor": 129, "access": "rw"}
        ]);
        after
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
        fake
    }

    fn devices() -> Vec<DeviceToAdd> {
        devices_added(&config(), &injected()).expect("diff")
    }

    #[test]
    fn added_devices_come_from_the_config_difference() {
        let added = devices();
        assert_eq!(
            added,
            vec![
                DeviceToAdd {
                    container_path: "/dev/kfd".into(),
                    kind: DeviceType::Char,
                    major: 511,
                    minor: 0,
                    mode: 0o666,
                    uid: 0,
                    gid: 0,
                    access: Access::ALL,
                    host_path: None,
                },
                DeviceToAdd {
                    container_path: "/dev/dri/renderD129".into(),
                    kind: DeviceType::Char,
                    major: 226,
                    minor: 129,
                    mode: 0o660,
                    uid: 1000,
                    gid: 44,
                    access: Access::parse("rw").expect("rw"),
                    host_path: None,
                },
            ]
        );
        assert!(
            devices_added(&injected(), &injected())
                .expect("same")
                .is_empty()
        );
    }

    #[test]
    fn fifo_cannot_be_added_at_prestart() {
        let mut after = config();
        after["linux"]["devices"] = json!([{"path": "/dev/p", "type": "p"}]);
        let err = devices_added(&config(), &after).expect_err("fifo");
        assert_eq!(
            err.to_string(),
            "linux.devices entry /dev/p of the injected config is invalid: only character and block devices can be added at prestart"
        );
    }

    #[test]
    fn injects_through_the_container_mount_namespace() {
        let fake = host();
        let report =
            inject(&fake, &options(), &state(Some(42)), &config(), &devices()).expect("inject");
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
        assert!(ops.contains(&Op::Chown(
            "/proc/42/root/bundle/rootfs/dev/dri/renderD129".into(),
            1000,
            44
        )));
        assert!(ops.contains(&Op::Write(
            "/sys/fs/cgroup/devices/ctr/devices.allow".into(),
            "c 226:129 rw".into()
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
            inject(&fake, &options(), &state(Some(77)), &config(), &devices()).expect_err("gone");
        assert_eq!(
            err.to_string(),
            "container process 77 is gone (/proc/77 does not exist)"
        );
        assert!(fake.ops().is_empty());
    }

    #[test]
    fn missing_pid_names_the_stage_problem() {
        let fake = host();
        let err =
            inject(&fake, &options(), &state(None), &config(), &devices()).expect_err("no pid");
        assert!(err.to_string().contains("has no pid"), "{err}");
    }

    #[test]
    fn rootless_says_what_is_not_possible() {
        let fake = host();
        let mut opts = options();
        opts.privilege = Privilege::Unprivileged;
        let err =
            inject(&fake, &opts, &state(Some(42)), &config(), &devices()).expect_err("rootless");
        assert!(
            err.to_string().contains("runs as an unprivileged user"),
            "{err}"
        );
        assert!(fake.ops().is_empty());
    }

    #[test]
    fn owners_are_mapped_through_the_user_namespace() {
        let config = json!({
            "root": {"path": "/abs/rootfs"},
            "linux": {
                "namespaces": [{"type": "user"}],
                "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]
            }
        });
        assert_eq!(
            host_owner(&config, 1000, 1001).expect("owner"),
            (101_000, 201_001)
        );
        assert_eq!(
            rootfs_view(&config, Path::new("/bundle"), Path::new("/proc"), 1),
            Some(PathBuf::from("/abs/rootfs"))
        );
        let unmapped = json!({"linux": {"namespaces": [{"type": "user"}], "uidMappings": []}});
        assert_eq!(
            host_owner(&unmapped, 0, 0)
                .expect_err("unmapped")
                .to_string(),
            "container uid 0 has no mapping in linux.uidMappings (cannot choose the owner of the device nodes)"
        );
        assert_eq!(host_owner(&json!({}), 5, 6).expect("no userns"), (5, 6));
    }

    #[test]
    fn privilege_comes_from_the_uid_map() {
        let fake = Fake::new();
        let proc = Path::new("/proc");
        fake.add(
            "/proc/self/uid_map",
            FakeEntry::File("         0          0 4294967295\n".into()),
        );
        assert_eq!(privilege(&fake, proc, true), Privilege::HostRoot);
        assert_eq!(privilege(&fake, proc, false), Privilege::Unprivileged);
        fake.add(
            "/proc/self/uid_map",
            FakeEntry::File(
                "         0       1000          1\n         1     100000      65536\n".into(),
            ),
        );
        assert_eq!(privilege(&fake, proc, true), Privilege::NamespacedRoot);
    }

    #[test]
    fn namespaced_root_bind_mounts_inside_the_container_mount_namespace() {
        let fake = host();
        fake.add("/bundle/rootfs/dev", FakeEntry::Dir);
        let node = |major, minor| {
            FakeEntry::Node(crate::syscalls::FileStat {
                kind: FileKind::CharDevice,
                major,
                minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
            })
        };
        fake.add("/host/dev/kfd", node(511, 0));
        fake.add("/host/dev/dri/renderD129", node(226, 129));
        let mut with_hosts = devices();
        with_hosts[0].host_path = Some("/host/dev/kfd".into());
        with_hosts[1].host_path = Some("/host/dev/dri/renderD129".into());
        let mut opts = options();
        opts.privilege = Privilege::NamespacedRoot;
        let report = inject(&fake, &opts, &state(Some(42)), &config(), &with_hosts).expect("bind");
        assert!(report.bind_mounted);
        let ops = fake.ops();
        assert_eq!(ops[0], Op::EnterMountNamespace("/proc/42/ns/mnt".into()));
        assert!(ops.contains(&Op::BindMount(
            "/host/dev/kfd".into(),
            "/bundle/rootfs/dev/kfd".into()
        )));
        assert!(
            !ops.iter().any(|op| matches!(op, Op::Write(..))),
            "no cgroup write"
        );
        let err = inject(&Fake::new(), &opts, &state(Some(42)), &config(), &devices());
        assert!(err.is_err());
    }

    #[test]
    fn namespaced_root_without_host_paths_is_refused_before_entering() {
        let fake = host();
        let mut opts = options();
        opts.privilege = Privilege::NamespacedRoot;
        let err = inject(&fake, &opts, &state(Some(42)), &config(), &devices())
            .expect_err("no host path");
        assert_eq!(
            err.to_string(),
            "cannot bind-mount /dev/kfd into the rootless container: its host path is unknown"
        );
        assert!(fake.ops().is_empty());
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
}
