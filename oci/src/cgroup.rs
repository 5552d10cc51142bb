//! Allowing new device nodes in a running container's device cgroup.
//!
//! The container's cgroups come from `/proc/<pid>/cgroup` and the hierarchies' mount points from
//! mountinfo (both injectable). On cgroup v1 the hook writes `c MAJ:MIN rwm` to `devices.allow`.
//! On cgroup v2 a runtime restricts devices with an eBPF program attached to the container's
//! cgroup; the hook rebuilds the runtime's policy with the new nodes added (see
//! [`program`]), loads it and swaps it in the way runc 1.1 does (`BPF_F_ALLOW_MULTI`, with
//! `BPF_F_REPLACE` when there is exactly one old program, else attach then detach the old ones).
//! On a hybrid host both can apply: the kernel checks the v2 programs and then the v1 controller.

pub(crate) mod bpf;
pub mod program;

use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::syscalls::Syscalls;
use program::{DeviceRule, Policy, ProgramError};

/// Where to look for a process's cgroups.
#[derive(Debug, Clone)]
pub struct CgroupRoots {
    /// The proc file system, normally `/proc`.
    pub proc_root: PathBuf,
    /// The mount table to find cgroup hierarchies in, normally `/proc/self/mountinfo`.
    pub mountinfo: PathBuf,
}

impl Default for CgroupRoots {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
        }
    }
}

/// A process's device cgroups on the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceCgroups {
    /// Its directory in the cgroup v1 `devices` hierarchy, when that is mounted.
    pub v1: Option<PathBuf>,
    /// Its directory in the cgroup v2 hierarchy, when that is mounted.
    pub v2: Option<PathBuf>,
}

/// What [`allow`] changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowOutcome {
    /// The v1 `devices.allow` file written to.
    pub v1_allow_file: Option<PathBuf>,
    /// The v2 cgroup whose device program was replaced.
    pub v2_replaced: Option<PathBuf>,
}

/// Errors of the device cgroup update.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `/proc/<pid>/cgroup` could not be read.
    #[error("cannot read {path}: {source} (has the container process exited?)")]
    ReadProc {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The mount table could not be read.
    #[error("cannot read {path}: {source}")]
    ReadMountinfo {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The process is in no device cgroup this hook can change.
    #[error(
        "cannot find a device cgroup for process {pid}: neither a cgroup v1 devices hierarchy nor cgroup v2 is mounted where {mountinfo} says"
    )]
    NoDeviceCgroup {
        /// The container process.
        pid: i32,
        /// The mount table read.
        mountinfo: PathBuf,
    },
    /// A cgroup path is not below the hierarchy's mount root (the hook sees another namespace).
    #[error(
        "cgroup {cgroup} of process {pid} is outside the mounted hierarchy root {root} (is the hook running in another cgroup namespace?)"
    )]
    OutsideMount {
        /// The container process.
        pid: i32,
        /// The cgroup path from `/proc/<pid>/cgroup`.
        cgroup: String,
        /// The mount's root.
        root: String,
    },
    /// Writing a v1 rule failed.
    #[error("cannot allow {rule} in {path}: {source}")]
    WriteAllow {
        /// The `devices.allow` file.
        path: PathBuf,
        /// The rule written.
        rule: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Querying the v2 device programs failed.
    #[error(
        "cannot list the device programs of cgroup {path}: {source} (the hook needs CAP_SYS_ADMIN or CAP_BPF)"
    )]
    BpfQuery {
        /// The cgroup directory.
        path: PathBuf,
        /// The cause.
        source: Errno,
    },
    /// The new policy cannot be compiled.
    #[error("cannot build the device program for cgroup {path}: {source}")]
    Compile {
        /// The cgroup directory.
        path: PathBuf,
        /// The cause.
        source: ProgramError,
    },
    /// The kernel refused the new program.
    #[error("cannot load the device program for cgroup {path}: {source}")]
    BpfLoad {
        /// The cgroup directory.
        path: PathBuf,
        /// The cause.
        source: Errno,
    },
    /// Attaching the new program failed (the old one is still in place).
    #[error("cannot attach the device program to cgroup {path}: {source}")]
    BpfAttach {
        /// The cgroup directory.
        path: PathBuf,
        /// The cause.
        source: Errno,
    },
    /// Detaching an old program failed (both are attached: every device both allow works).
    #[error(
        "cannot detach the old device program {id} from cgroup {path}: {source} (the new devices stay denied while it is attached)"
    )]
    BpfDetach {
        /// The cgroup directory.
        path: PathBuf,
        /// The old program's id.
        id: u32,
        /// The cause.
        source: Errno,
    },
}

/// One line of mountinfo, reduced to what matters here.
#[derive(Debug)]
struct MountLine {
    root: String,
    mount_point: PathBuf,
    fs_type: String,
    super_options: String,
}

fn unescape(field: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo (three octal digits).
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        if let Some(value) = escaped {
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(MountLine {
                root: unescape(left.get(3)?),
                mount_point: PathBuf::from(unescape(left.get(4)?)),
                fs_type: (*right.first()?).to_string(),
                super_options: right.get(2).copied().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// The directory of cgroup `cgroup` under `mount`, or `None` for the root cgroup: a process in
/// the root cgroup is not confined by a device cgroup of its own, and the root's policy (v1
/// allow-all, v2 programs someone else attached) belongs to the host, not the container.
fn join_below(pid: i32, mount: &MountLine, cgroup: &str) -> Result<Option<PathBuf>, CgroupError> {
    if cgroup == "/" {
        return Ok(None);
    }
    let outside = || CgroupError::OutsideMount {
        pid,
        cgroup: cgroup.to_string(),
        root: mount.root.clone(),
    };
    let root = mount.root.trim_end_matches('/');
    let rest = cgroup.strip_prefix(root).ok_or_else(outside)?;
    if !(rest.is_empty() || rest.starts_with('/')) || rest.split('/').any(|c| c == "..") {
        return Err(outside());
    }
    Ok(Some(mount.mount_point.join(rest.trim_start_matches('/'))))
}

/// Finds the device cgroups of process `pid` (none when it is in the root cgroups).
pub fn locate<S: Syscalls>(
    sys: &S,
    roots: &CgroupRoots,
    pid: i32,
) -> Result<DeviceCgroups, CgroupError> {
    let proc_path = roots.proc_root.join(pid.to_string()).join("cgroup");
    let memberships = sys
        .read_to_string(&proc_path)
        .map_err(|source| CgroupError::ReadProc {
            path: proc_path.clone(),
            source,
        })?;
    let mountinfo =
        sys.read_to_string(&roots.mountinfo)
            .map_err(|source| CgroupError::ReadMountinfo {
                path: roots.mountinfo.clone(),
                source,
            })?;
    let mounts = parse_mountinfo(&mountinfo);
    let mut found = DeviceCgroups::default();
    let mut mounted = false;
    for line in memberships.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            if let Some(mount) = mounts.iter().find(|m| m.fs_type == "cgroup2") {
                mounted = true;
                found.v2 = join_below(pid, mount, path)?;
            }
        } else if controllers.split(',').any(|c| c == "devices")
            && let Some(mount) = mounts.iter().find(|m| {
                m.fs_type == "cgroup" && m.super_options.split(',').any(|o| o == "devices")
            })
        {
            mounted = true;
            found.v1 = join_below(pid, mount, path)?;
        }
    }
    if !mounted {
        return Err(CgroupError::NoDeviceCgroup {
            pid,
            mountinfo: roots.mountinfo.clone(),
        });
    }
    Ok(found)
}

/// Allows `new` in the device cgroups of a container.
///
/// `base` are the rules the runtime built its policy from (the config's
/// `linux.resources.devices` plus the runtime's implicit defaults): on cgroup v2 the new program
/// enforces `base` followed by `new`. A v2 cgroup without device programs is left alone (nothing
/// restricts devices there; on a hybrid host the runtime uses the v1 controller).
pub fn allow<S: Syscalls>(
    sys: &S,
    cgroups: &DeviceCgroups,
    base: &[DeviceRule],
    new: &[DeviceRule],
) -> Result<AllowOutcome, CgroupError> {
    let mut outcome = AllowOutcome::default();
    if let Some(dir) = &cgroups.v1 {
        let path = dir.join("devices.allow");
        for rule in new {
            let line = rule.v1_line();
            sys.write_file(&path, &line)
                .map_err(|source| CgroupError::WriteAllow {
                    path: path.clone(),
                    rule: line.clone(),
                    source,
                })?;
        }
        outcome.v1_allow_file = Some(path);
    }
    if let Some(dir) = &cgroups.v2 {
        let old = sys
            .bpf_query_device_programs(dir)
            .map_err(|source| CgroupError::BpfQuery {
                path: dir.clone(),
                source,
            })?;
        if !old.is_empty() {
            replace_program(sys, dir, &old, base, new)?;
            outcome.v2_replaced = Some(dir.clone());
        }
    }
    Ok(outcome)
}

fn replace_program<S: Syscalls>(
    sys: &S,
    dir: &Path,
    old: &[u32],
    base: &[DeviceRule],
    new: &[DeviceRule],
) -> Result<(), CgroupError> {
    let rules: Vec<DeviceRule> = base.iter().chain(new).copied().collect();
    let instructions =
        Policy::from_rules(&rules)
            .compile()
            .map_err(|source| CgroupError::Compile {
                path: dir.to_path_buf(),
                source,
            })?;
    let program = sys
        .bpf_load_device_program(&instructions)
        .map_err(|source| CgroupError::BpfLoad {
            path: dir.to_path_buf(),
            source,
        })?;
    let replace = match old {
        [only] => Some(*only),
        _ => None,
    };
    sys.bpf_attach_device_program(dir, &program, replace)
        .map_err(|source| CgroupError::BpfAttach {
            path: dir.to_path_buf(),
            source,
        })?;
    if replace.is_none() {
        for id in old {
            sys.bpf_detach_device_program(dir, *id)
                .map_err(|source| CgroupError::BpfDetach {
                    path: dir.to_path_buf(),
                    id: *id,
                    source,
                })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::program::{Access, DeviceType};
    use super::*;
    use crate::syscalls::{Fake, FakeEntry, Op};

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A cgroup2 mount of the hierarchy's `/outer`, at a mount point with an escaped space.
    const OUTER_MOUNTINFO: &str =
        "50 1 0:40 /outer /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n";

    fn roots() -> CgroupRoots {
        CgroupRoots {
            proc_root: PathBuf::from("/proc"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
        }
    }

    /// A host whose mounts are `mountinfo` and whose processes are in the cgroups of `procs`,
    /// each a pid and its `/proc/<pid>/cgroup`.
    fn host(mountinfo: &str, procs: &[(u32, &str)]) -> Fake {
        let fake = Fake::new();
        fake.add("/proc/self/mountinfo", FakeEntry::File(mountinfo.into()));
        for (pid, cgroup) in procs {
            fake.add(
                format!("/proc/{pid}/cgroup"),
                FakeEntry::File((*cgroup).into()),
            );
        }
        fake
    }

    /// A container in the cgroup2 hierarchy only, at `dir`.
    fn only_v2(dir: impl Into<PathBuf>) -> DeviceCgroups {
        DeviceCgroups {
            v1: None,
            v2: Some(dir.into()),
        }
    }

    fn gpu_rule() -> DeviceRule {
        DeviceRule::allow_device(DeviceType::Char, 226, 129, Access::ALL)
    }

    #[test]
    fn hybrid_host_finds_both_hierarchies() {
        let fake = host(
            HYBRID_MOUNTINFO,
            &[(42, "5:devices:/ctr\n4:memory:/ctr\n0::/ctr\n")],
        );
        let found = locate(&fake, &roots(), 42).expect("locate");
        assert_eq!(found.v1, Some(PathBuf::from("/sys/fs/cgroup/devices/ctr")));
        assert_eq!(found.v2, Some(PathBuf::from("/sys/fs/cgroup/unified/ctr")));
    }

    #[test]
    fn mount_roots_are_stripped_and_escapes_decoded() {
        let fake = host(OUTER_MOUNTINFO, &[(7, "0::/outer/inner\n")]);
        let found = locate(&fake, &roots(), 7).expect("locate");
        assert_eq!(found.v2, Some(PathBuf::from("/sys/fs/my cgroup/inner")));
        assert_eq!(found.v1, None);
    }

    #[test]
    fn cgroup_outside_the_mount_root_is_refused() {
        let fake = host(OUTER_MOUNTINFO, &[(7, "0::/elsewhere\n")]);
        let err = locate(&fake, &roots(), 7).expect_err("outside");
        assert!(matches!(err, CgroupError::OutsideMount { .. }), "{err}");
    }

    #[test]
    fn root_cgroups_are_never_changed() {
        let fake = host(HYBRID_MOUNTINFO, &[(3, "5:devices:/\n0::/\n")]);
        let found = locate(&fake, &roots(), 3).expect("locate");
        assert_eq!(found, DeviceCgroups::default());
        allow(&fake, &found, &[], &[gpu_rule()]).expect("nothing to allow");
        assert!(fake.ops().is_empty());
    }

    #[test]
    fn no_cgroup_hierarchy_is_an_error() {
        let fake = host("", &[(3, "0::/ctr\n")]);
        let err = locate(&fake, &roots(), 3).expect_err("nothing mounted");
        assert!(matches!(err, CgroupError::NoDeviceCgroup { .. }), "{err}");
    }

    #[test]
    fn gone_process_is_a_clear_error() {
        let fake = host(HYBRID_MOUNTINFO, &[]);
        let err = locate(&fake, &roots(), 999).expect_err("gone");
        assert_eq!(
            err.to_string(),
            "cannot read /proc/999/cgroup: entity not found (has the container process exited?)"
        );
    }

    #[test]
    fn v1_writes_one_rule_per_node() {
        let fake = Fake::new();
        fake.add(
            "/cg/devices/ctr/devices.allow",
            FakeEntry::File(String::new()),
        );
        let cgroups = DeviceCgroups {
            v1: Some(PathBuf::from("/cg/devices/ctr")),
            v2: None,
        };
        let kfd = DeviceRule::allow_device(DeviceType::Char, 511, 0, Access::ALL);
        allow(&fake, &cgroups, &[], &[kfd, gpu_rule()]).expect("allow");
        assert_eq!(
            fake.ops(),
            vec![
                Op::Write("/cg/devices/ctr/devices.allow".into(), "c 511:0 rwm".into()),
                Op::Write(
                    "/cg/devices/ctr/devices.allow".into(),
                    "c 226:129 rwm".into()
                ),
            ]
        );
    }

    #[test]
    fn v2_without_programs_is_left_alone() {
        let fake = Fake::new();
        let cgroups = only_v2("/cg/unified/ctr");
        let outcome = allow(&fake, &cgroups, &[], &[gpu_rule()]).expect("allow");
        assert_eq!(outcome.v2_replaced, None);
        assert!(fake.ops().is_empty());
    }

    #[test]
    fn v2_single_program_is_replaced_atomically() {
        let fake = Fake::new();
        let dir = PathBuf::from("/cg/unified/ctr");
        fake.attached.borrow_mut().insert(dir.clone(), vec![7]);
        let cgroups = only_v2(&dir);
        allow(&fake, &cgroups, &[], &[gpu_rule()]).expect("allow");
        let ops = fake.ops();
        assert!(matches!(ops[0], Op::BpfLoad(_)));
        assert_eq!(ops[1], Op::BpfAttach(dir.clone(), Some(7)));
        assert_eq!(ops.len(), 2);
        assert_eq!(fake.attached.borrow()[&dir], vec![100]);
        let program = fake.programs.borrow()[&100].clone();
        assert_eq!(program::interpret(&program, 2, 226, 129, 2), 1);
        assert_eq!(program::interpret(&program, 2, 226, 128, 2), 0);
    }

    #[test]
    fn v2_several_programs_are_all_detached_after_attach() {
        let fake = Fake::new();
        let dir = PathBuf::from("/cg/unified/ctr");
        fake.attached.borrow_mut().insert(dir.clone(), vec![7, 8]);
        let cgroups = only_v2(&dir);
        allow(&fake, &cgroups, &[], &[gpu_rule()]).expect("allow");
        assert_eq!(
            fake.ops()[1..],
            [
                Op::BpfAttach(dir.clone(), None),
                Op::BpfDetach(dir.clone(), 7),
                Op::BpfDetach(dir.clone(), 8),
            ]
        );
        assert_eq!(fake.attached.borrow()[&dir], vec![100]);
    }

    #[test]
    fn v2_query_failure_is_an_error_not_a_silent_success() {
        let fake = Fake::new();
        let dir = PathBuf::from("/cg/unified/ctr");
        fake.fail(&dir, Errno::EPERM);
        let cgroups = only_v2(&dir);
        let err = allow(&fake, &cgroups, &[], &[gpu_rule()]).expect_err("eperm");
        assert_eq!(
            err.to_string(),
            "cannot list the device programs of cgroup /cg/unified/ctr: EPERM: Operation not permitted (the hook needs CAP_SYS_ADMIN or CAP_BPF)"
        );
    }
}
