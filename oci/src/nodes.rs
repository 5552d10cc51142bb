//! The mechanics of a `prestart`/`createRuntime` hook that adds device nodes to a container
//! being created: runc and youki read `config.json` once, so editing it changes nothing; the
//! hook acts directly on the container instead.
//!
//! Inputs: the OCI [`State`], the bundle's `config.json`, and the devices to add: the caller
//! resolves the device nodes of its CDI edits against the config ([`cdi::edits::resolve_nodes`],
//! which changes nothing) and [`devices_to_add`] keeps those injection would add, so the nodes
//! get exactly the type, numbers, mode and owner CDI injection gives. Steps: check the container process is alive, find its device
//! cgroups, create the nodes inside its rootfs (as seen through `/proc/<pid>/root` when it has
//! its own mount namespace) with the owner CDI injection would give, then allow them in the
//! device cgroup (v1 `devices.allow`, v2 eBPF program replacement).
//!
//! Rootless containers: the hook then runs as root inside the engine's user namespace (see
//! [`privilege`]), where the host refuses `mknod` of devices and the device cgroup cannot be
//! changed. It joins the container's mount namespace instead (the rootfs is mounted there but not
//! yet pivoted) and bind-mounts each host node onto an empty file in the rootfs, checked with the
//! same symlink policy; the device cgroup is left alone. Under `runc --rootless` the hook runs as
//! the engine's unprivileged user in the host's user namespace: it first joins the container's
//! user namespace, which that user owns, and then does the same. An unprivileged hook that cannot
//! join it refuses with an error that says why. Containers with a user namespace started by host
//! root get created nodes owned by the host ids the container's ids map to.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use cdi::edits::ResolvedNode;
use cdi::host::lexically_clean;
use nix::errno::Errno;
use serde_json::Value;

use crate::bundle::config_path;
use crate::cgroup::program::{Access, DeviceRule, DeviceType, runc_default_rules};
use crate::cgroup::{self, AllowOutcome, CgroupError, CgroupRoots};
use crate::oci_config::{BadDeviceRule, IdKind, OciConfig};
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
    /// An unprivileged user: possible only after joining the container's user namespace, which
    /// the kernel allows when this user owns it (the engine is rootless and runs as this user).
    Unprivileged,
}

/// What the hook may assume about itself and where to look.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// `/proc` and the mount table.
    pub cgroup_roots: CgroupRoots,
    /// Who the hook runs as.
    pub privilege: Privilege,
}

/// What [`inject`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeReport {
    /// Each node with its outcome.
    pub nodes: Vec<(PathBuf, NodeOutcome)>,
    /// The device cgroup changes.
    pub cgroup: AllowOutcome,
    /// The nodes were bind-mounted from the host (rootless), the device cgroup left alone.
    pub bind_mounted: bool,
}

/// Errors of the prestart mechanics.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
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
    #[error(transparent)]
    BadDeviceRule(#[from] BadDeviceRule),
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
    /// The hook is not privileged and cannot join the container's user namespace.
    #[error(
        "cannot add {count} device node(s) to container {id}: the hook runs as an unprivileged user and cannot enter the container's user namespace {path} ({source}); creating device nodes needs root in the host user namespace, and bind-mounting host nodes needs root in the container's user namespace, which only the user who owns it (a rootless engine's) can take"
    )]
    Rootless {
        /// Container id.
        id: String,
        /// How many nodes were requested.
        count: usize,
        /// The container's user namespace file.
        path: PathBuf,
        /// Why it could not be entered.
        source: Errno,
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

/// Where the container's rootfs is, split the way it is opened: `base` is a directory the
/// runtime named (the bundle, or `/`), seen through the container's mount namespace when it has
/// one, and opened following symlinks; `below` is the part `root.path` adds, whose every
/// component is opened without following a symlink ([`Rootfs::open_below`]).
///
/// That is runc's rule: it resolves a relative `root.path` from the bundle directory it changed
/// into, then refuses the rootfs (`invalid rootfs`) when the path passes through a symlink. An
/// absolute `root.path`, or one with `..`, is therefore checked from `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsLocation {
    /// The trusted directory.
    pub base: PathBuf,
    /// The components below it, plain names only.
    pub below: PathBuf,
}

/// Where the rootfs of `config` in `bundle` is (see [`RootfsLocation`]), as the host sees it;
/// `None` without a `root.path`.
#[must_use]
pub fn rootfs_location(config: &Value, bundle: &Path) -> Option<RootfsLocation> {
    let root = Path::new(OciConfig::new(config).root_path()?);
    let plain = |c: Component<'_>| matches!(c, Component::Normal(_) | Component::CurDir);
    if root.is_relative() && root.components().all(plain) {
        return Some(RootfsLocation {
            base: bundle.to_path_buf(),
            below: lexically_clean(root),
        });
    }
    let whole = lexically_clean(&Path::new("/").join(bundle).join(root));
    Some(RootfsLocation {
        below: whole.strip_prefix("/").unwrap_or(&whole).to_path_buf(),
        base: PathBuf::from("/"),
    })
}

/// [`rootfs_location`] through `<proc>/<pid>/root` when the container has its own mount
/// namespace (the rootfs is mounted there, not yet pivoted).
fn rootfs_seen_by_the_hook(
    config: &Value,
    bundle: &Path,
    proc_root: &Path,
    pid: i32,
) -> Option<RootfsLocation> {
    let mut location = rootfs_location(config, bundle)?;
    if OciConfig::new(config).has_namespace("mount") {
        let relative = location.base.strip_prefix("/").unwrap_or(&location.base);
        location.base = proc_root.join(pid.to_string()).join("root").join(relative);
    }
    Some(location)
}

fn map_id(config: OciConfig<'_>, kind: IdKind, id: u32) -> Result<u32, NodeError> {
    if !config.has_namespace("user") {
        return Ok(id);
    }
    let unmapped = || NodeError::Unmapped {
        kind: kind.name(),
        id,
    };
    let host = config
        .id_mappings(kind)
        .find_map(|mapping| mapping.map(u64::from(id)))
        .ok_or_else(unmapped)?;
    u32::try_from(host).map_err(|_| unmapped())
}

/// The host owner of a node owned by `uid`/`gid` inside the container: the same ids, or the
/// ids they map to when the container has a user namespace.
pub fn host_owner(config: &Value, uid: u32, gid: u32) -> Result<(u32, u32), NodeError> {
    let config = OciConfig::new(config);
    Ok((
        map_id(config, IdKind::Uid, uid)?,
        map_id(config, IdKind::Gid, gid)?,
    ))
}

/// The device nodes CDI injection adds to `config`, from the nodes the edits resolve to
/// ([`cdi::edits::resolve_nodes`], in the order of the edits), as applying them would leave
/// `linux.devices`: each node replaces the first entry with its path and is appended; what is
/// left that `config` lacks (by path, type and numbers) is added, with the access of the first
/// allow rule the injection adds for its type and numbers (`rwm` when it adds none); each with
/// its host node (`hostPath`, else the path), which a rootless container gets bind-mounted. Nothing is
/// copied or edited: a config with many devices or rules costs no more than reading it.
pub fn devices_to_add(
    config: &Value,
    nodes: &[ResolvedNode],
) -> Result<Vec<DeviceToAdd>, NodeError> {
    let config = OciConfig::new(config);
    let old_devices: HashSet<_> = config.devices().map(|d| d.key()).collect();
    // `linux.devices` after injection: `None` for an entry of `config`.
    let mut devices: Vec<(Option<&str>, Option<&ResolvedNode>)> =
        config.devices().map(|d| (d.path(), None)).collect();
    for node in nodes {
        if let Some(i) = devices
            .iter()
            .position(|(path, _)| *path == Some(node.path.as_str()))
        {
            devices.remove(i);
        }
        devices.push((Some(&node.path), Some(node)));
    }
    // The allow rules the injection adds: those not present yet; the first one of each
    // (type, major, minor) gives its access.
    let mut rules: HashSet<(&str, i64, i64, &str)> = HashSet::new();
    for rule in config.device_rule_entries() {
        if let (Some(true), Some(kind), Some(major), Some(minor), Some(access)) = (
            rule.allow(),
            rule.kind(),
            rule.major(),
            rule.minor(),
            rule.access(),
        ) {
            rules.insert((kind, major, minor, access));
        }
    }
    let mut new_access: HashMap<(&str, i64, i64), &str> = HashMap::new();
    for node in nodes.iter().filter(|n| n.has_cgroup_rule()) {
        let rule = (
            node.kind.as_str(),
            node.major,
            node.minor,
            node.access.as_str(),
        );
        if rules.insert(rule) {
            new_access.entry((rule.0, rule.1, rule.2)).or_insert(rule.3);
        }
    }
    let mut added = Vec::new();
    for node in devices.into_iter().filter_map(|(_, node)| node) {
        let key = (
            Some(node.path.as_str()),
            Some(node.kind.as_str()),
            Some(node.major),
            Some(node.minor),
        );
        if old_devices.contains(&key) {
            continue;
        }
        let bad = |reason: &str| NodeError::BadDevice {
            path: node.path.clone(),
            reason: reason.to_string(),
        };
        let kind = match node.kind.as_str() {
            "c" | "u" => DeviceType::Char,
            "b" => DeviceType::Block,
            _ => {
                return Err(bad(
                    "only character and block devices can be added at prestart",
                ));
            }
        };
        let number = |n: i64, name: &str| {
            u32::try_from(n).map_err(|_| bad(&format!("`{name}` is missing or out of range")))
        };
        let (major, minor) = (number(node.major, "major")?, number(node.minor, "minor")?);
        let id = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        let letter = if kind == DeviceType::Block { "b" } else { "c" };
        let access = new_access
            .get(&(letter, i64::from(major), i64::from(minor)))
            .map_or(Some(Access::ALL), |access| Access::parse(access))
            .ok_or_else(|| bad("its cgroup access must be a subset of rwm"))?;
        added.push(DeviceToAdd {
            container_path: PathBuf::from(&node.path),
            kind,
            major,
            minor,
            mode: node.file_mode.unwrap_or(0o666) & 0o7777,
            uid: id(node.uid),
            gid: id(node.gid),
            access,
            host_path: Some(PathBuf::from(node.host_node_path())),
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
pub fn runtime_rules(config: &Value) -> Result<Vec<DeviceRule>, NodeError> {
    let config = OciConfig::new(config);
    let mut rules = config.device_rules()?;
    let paths: Vec<&str> = config.devices().filter_map(|d| d.path()).collect();
    rules.extend(runc_default_rules(&paths));
    Ok(rules)
}

/// Adds `devices` to the container described by `state` and its `config`: checks the process
/// is alive and finds its device cgroups first, then creates the nodes (all checked before any is
/// created), then allows them in the device cgroup.
pub fn inject<S: Syscalls>(
    sys: &S,
    options: &NodeOptions,
    state: &State,
    config: &Value,
    devices: &[DeviceToAdd],
) -> Result<NodeReport, NodeError> {
    if devices.is_empty() {
        return Ok(NodeReport::default());
    }
    let pid = state.pid.ok_or_else(|| NodeError::MissingPid {
        id: state.id.clone(),
        status: state.status.clone(),
    })?;
    let proc_dir = options.cgroup_roots.proc_root.join(pid.to_string());
    match sys.stat(&proc_dir) {
        Ok(_) => {}
        Err(Errno::ENOENT | Errno::ESRCH) => {
            return Err(NodeError::PidGone {
                pid,
                path: proc_dir,
            });
        }
        Err(source) => {
            return Err(NodeError::Proc {
                path: proc_dir,
                source,
            });
        }
    }
    match options.privilege {
        Privilege::HostRoot => {}
        Privilege::NamespacedRoot => return bind_into(sys, options, state, config, devices, pid),
        Privilege::Unprivileged => {
            // `runc --rootless` runs hooks as its own user in the host's user namespace.
            let path = proc_dir.join("ns/user");
            sys.enter_user_namespace(&path)
                .map_err(|source| NodeError::Rootless {
                    id: state.id.clone(),
                    count: devices.len(),
                    path,
                    source,
                })?;
            return bind_into(sys, options, state, config, devices, pid);
        }
    }
    let location =
        rootfs_seen_by_the_hook(config, &state.bundle, &options.cgroup_roots.proc_root, pid)
            .ok_or_else(|| NodeError::MissingRoot {
                path: config_path(&state.bundle),
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

    let rootfs = Rootfs::open_below(sys, &location.base, &location.below)?;
    let outcomes = rootfs.create_nodes(&to_create)?;
    let cgroup = cgroup::allow(sys, &cgroups, &base, &new_rules)?;
    Ok(NodeReport {
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
    options: &NodeOptions,
    state: &State,
    config: &Value,
    devices: &[DeviceToAdd],
    pid: i32,
) -> Result<NodeReport, NodeError> {
    let location =
        rootfs_location(config, &state.bundle).ok_or_else(|| NodeError::MissingRoot {
            path: config_path(&state.bundle),
        })?;
    let mut requests = Vec::with_capacity(devices.len());
    for device in devices {
        let host = device
            .host_path
            .clone()
            .ok_or_else(|| NodeError::MissingHostPath {
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
        .map_err(|source| NodeError::EnterNamespace { path: ns, source })?;
    // Opened after `setns`: the rootfs path resolves in the container's mount namespace.
    let outcomes =
        Rootfs::open_below(sys, &location.base, &location.below)?.bind_nodes(&requests)?;
    Ok(NodeReport {
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

    fn options() -> NodeOptions {
        NodeOptions {
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

    /// A resolved device node, as `cdi::edits` gives it.
    fn resolved(path: &str, major: i64, minor: i64, mode: u32, access: &str) -> ResolvedNode {
        ResolvedNode {
            path: path.into(),
            host_path: None,
            kind: "c".into(),
            major,
            minor,
            file_mode: Some(mode),
            uid: None,
            gid: None,
            access: access.into(),
        }
    }

    /// The nodes of `/dev/kfd` and a render node owned by 1000:44 with access `rw`.
    fn injected() -> Vec<ResolvedNode> {
        vec![
            resolved("/dev/kfd", 511, 0, 438, "rwm"),
            ResolvedNode {
                uid: Some(1000),
                gid: Some(44),
                ..resolved("/dev/dri/renderD129", 226, 129, 432, "rw")
            },
        ]
    }

    /// `config()` with `injected()` already in it, as a precreate hook would have left it.
    fn already_injected() -> Value {
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
        devices_to_add(&config(), &injected()).expect("devices to add")
    }

    #[test]
    fn added_devices_are_the_resolved_nodes_the_config_lacks() {
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
                    host_path: Some("/dev/kfd".into()),
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
                    host_path: Some("/dev/dri/renderD129".into()),
                },
            ]
        );
        assert!(
            devices_to_add(&already_injected(), &injected())
                .expect("same")
                .is_empty()
        );
    }

    /// The devices and rules of the config go through hash sets (the difference of two configs
    /// scanned every old device for each new one: quadratic in the size of linux.devices, issue
    /// 12 item 3).
    #[test]
    fn a_long_device_list_is_compared_in_one_pass() {
        let many = |n: i64| -> Vec<Value> {
            (0..n)
                .map(|i| json!({"path": format!("/dev/x{i}"), "type": "c", "major": 1, "minor": i}))
                .collect()
        };
        let rules = |n: i64| -> Vec<Value> {
            (0..n)
                .map(
                    |i| json!({"allow": true, "type": "c", "major": 1, "minor": i, "access": "rw"}),
                )
                .collect()
        };
        let mut before = config();
        before["linux"]["devices"] = json!(many(20_000));
        before["linux"]["resources"]["devices"] = json!(rules(20_000));
        let nodes: Vec<ResolvedNode> = (0..20_001)
            .map(|i| ResolvedNode {
                file_mode: None,
                ..resolved(&format!("/dev/x{i}"), 1, i, 0, "rw")
            })
            .collect();
        let added = devices_to_add(&before, &nodes[20_000..]).expect("devices to add");
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].container_path, PathBuf::from("/dev/x20000"));
        assert_eq!(added[0].access, Access::parse("rw").expect("rw"));
    }

    #[test]
    fn fifo_cannot_be_added_at_prestart() {
        let fifo = ResolvedNode {
            kind: "p".into(),
            ..resolved("/dev/p", 0, 0, 0o644, "rwm")
        };
        let err = devices_to_add(&config(), &[fifo]).expect_err("fifo");
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
        assert_eq!(report, NodeReport::default());
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
        fake.fail("/proc/42/ns/user", Errno::EPERM);
        let mut opts = options();
        opts.privilege = Privilege::Unprivileged;
        let err =
            inject(&fake, &opts, &state(Some(42)), &config(), &devices()).expect_err("rootless");
        assert!(
            err.to_string().contains(
                "runs as an unprivileged user and cannot enter the container's user namespace /proc/42/ns/user (EPERM"
            ),
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
            rootfs_seen_by_the_hook(&config, Path::new("/bundle"), Path::new("/proc"), 1),
            Some(RootfsLocation {
                base: "/".into(),
                below: "abs/rootfs".into()
            })
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

    /// Issue 12 item 9: a bundle whose rootfs is a symlink made the hook create nodes in the
    /// symlink's target; runc refuses such a bundle (`invalid rootfs`), and so does the hook,
    /// before anything changes.
    #[test]
    fn symlinked_rootfs_is_refused_before_anything_changes() {
        let fake = host();
        fake.add(
            "/proc/42/root/bundle/rootfs",
            FakeEntry::Symlink("/etc".into()),
        );
        fake.add("/proc/42/root/etc/dev", FakeEntry::Dir);
        let err = inject(&fake, &options(), &state(Some(42)), &config(), &devices())
            .expect_err("symlinked rootfs");
        assert_eq!(
            err.to_string(),
            "refusing the container rootfs /proc/42/root/bundle/rootfs: /proc/42/root/bundle/rootfs is a symlink (runc refuses such a bundle as an invalid rootfs; point root.path at the directory itself)"
        );
        assert!(fake.ops().is_empty());

        // A symlink further up an absolute root.path is refused too; the rootless path as well.
        let fake = host();
        fake.add("/proc/42/root/abs", FakeEntry::Symlink("/etc".into()));
        let mut absolute = config();
        absolute["root"]["path"] = json!("/abs/rootfs");
        let err = inject(&fake, &options(), &state(Some(42)), &absolute, &devices())
            .expect_err("symlink above the rootfs");
        assert!(
            err.to_string()
                .contains(": /proc/42/root/abs is a symlink (runc refuses"),
            "{err}"
        );
        assert!(fake.ops().is_empty());
        let fake = host();
        fake.add("/bundle/rootfs", FakeEntry::Symlink("/etc".into()));
        let mut with_hosts = devices();
        for device in &mut with_hosts {
            device.host_path = Some("/host/dev/kfd".into());
        }
        let mut opts = options();
        opts.privilege = Privilege::NamespacedRoot;
        let err = inject(&fake, &opts, &state(Some(42)), &config(), &with_hosts)
            .expect_err("rootless, symlinked rootfs");
        assert!(
            err.to_string()
                .contains("/bundle/rootfs: /bundle/rootfs is a symlink"),
            "{err}"
        );
    }

    #[test]
    fn the_rootfs_path_below_the_bundle_is_what_root_path_adds() {
        let location = |root: &str| {
            let config = json!({"root": {"path": root}});
            rootfs_location(&config, Path::new("/run/b")).expect("root.path")
        };
        let split = |base: &str, below: &str| RootfsLocation {
            base: base.into(),
            below: below.into(),
        };
        assert_eq!(location("rootfs"), split("/run/b", "rootfs"));
        assert_eq!(
            location("./images/./rootfs"),
            split("/run/b", "images/rootfs")
        );
        assert_eq!(
            location("/var/lib/x/merged"),
            split("/", "var/lib/x/merged")
        );
        assert_eq!(location("../other/rootfs"), split("/", "run/other/rootfs"));
        assert_eq!(location("/../../x"), split("/", "x"));
        assert_eq!(rootfs_location(&json!({}), Path::new("/run/b")), None);
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

    /// [`host`] with the rootfs's `/dev` and host nodes behind [`devices`] (as `host_path`).
    fn host_with_host_nodes() -> (Fake, Vec<DeviceToAdd>) {
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
        (fake, with_hosts)
    }

    #[test]
    fn namespaced_root_bind_mounts_inside_the_container_mount_namespace() {
        let (fake, with_hosts) = host_with_host_nodes();
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
    fn unprivileged_hook_joins_the_user_namespace_it_owns_then_bind_mounts() {
        let (fake, with_hosts) = host_with_host_nodes();
        let mut opts = options();
        opts.privilege = Privilege::Unprivileged;
        let report = inject(&fake, &opts, &state(Some(42)), &config(), &with_hosts)
            .expect("rootless runtime's own user");
        assert!(report.bind_mounted);
        let ops = fake.ops();
        assert_eq!(
            ops[..2],
            [
                Op::EnterUserNamespace("/proc/42/ns/user".into()),
                Op::EnterMountNamespace("/proc/42/ns/mnt".into())
            ]
        );
        assert!(ops.contains(&Op::BindMount(
            "/host/dev/dri/renderD129".into(),
            "/bundle/rootfs/dev/dri/renderD129".into()
        )));
        assert!(
            !ops.iter()
                .any(|op| matches!(op, Op::Write(..) | Op::Mknod(..))),
            "no cgroup write, no mknod"
        );
    }

    #[test]
    fn namespaced_root_without_host_paths_is_refused_before_entering() {
        let fake = host();
        let mut opts = options();
        opts.privilege = Privilege::NamespacedRoot;
        let mut devices = devices();
        for device in &mut devices {
            device.host_path = None;
        }
        let err =
            inject(&fake, &opts, &state(Some(42)), &config(), &devices).expect_err("no host path");
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
