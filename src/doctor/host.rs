//! Host checks: the amdgpu driver and KFD, the GPUs in KFD topology, and whether their device
//! nodes exist and can be opened by the user who will run containers.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{CheckId, Finding, HostRoots, Section, Subject, fail, info, ok, warn};
use crate::discover::{self, Properties};

/// What KFD topology says about the GPUs, as far as doctor needs it.
#[derive(Debug, Default)]
struct Topology {
    /// Render minors of the GPU nodes, in node order.
    render_minors: Vec<u32>,
    /// Nodes whose properties could not be read, with the error.
    unreadable: Vec<(PathBuf, io::Error)>,
}

fn read_topology(roots: &HostRoots) -> io::Result<Topology> {
    let nodes = roots.sysfs_root.join("class/kfd/kfd/topology/nodes");
    let mut entries: Vec<(u32, PathBuf)> = fs::read_dir(&nodes)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    entries.sort();
    let mut topology = Topology::default();
    for (_, dir) in entries {
        let path = dir.join("properties");
        match fs::read_to_string(&path) {
            Ok(text) => {
                // Unlike discovery, doctor counts a GPU node whatever its vendor and however
                // damaged its other lines: it reports what it can read.
                let properties = Properties::parse_skipping_malformed(text);
                if properties.is_gpu_node() {
                    let minor = properties.get("drm_render_minor").unwrap_or(0);
                    topology
                        .render_minors
                        .push(u32::try_from(minor).unwrap_or(u32::MAX));
                }
            }
            Err(err) => topology.unreadable.push((path, err)),
        }
    }
    Ok(topology)
}

/// The driver section: AMD GPUs on the PCI bus, module loaded, KFD present, GPUs in topology.
pub(super) fn driver(roots: &HostRoots) -> Section {
    let kfd = roots.sysfs_root.join("class/kfd/kfd");
    let mut findings = vec![pci_gpus(roots, kfd.is_dir())];
    let module = roots.sysfs_root.join("module/amdgpu");
    let bound = roots.sysfs_root.join("bus/pci/drivers/amdgpu");
    if module.is_dir() || bound.is_dir() {
        findings.push(ok(CheckId::DRIVER_MODULE, "amdgpu kernel driver is loaded"));
    } else {
        findings.push(fail(
            CheckId::DRIVER_MODULE,
            format!(
                "amdgpu kernel driver is not loaded ({} is missing)",
                roots.show(&module)
            ),
            "install the amdgpu driver (distribution kernel or amdgpu-dkms) and run `modprobe amdgpu`",
        ));
    }
    if !kfd.is_dir() {
        findings.push(fail(
            CheckId::DRIVER_KFD,
            format!(
                "KFD compute interface is missing ({} does not exist)",
                roots.show(&kfd)
            ),
            "load the amdgpu driver on a kernel built with CONFIG_HSA_AMD (all distribution kernels are)",
        ));
        return Section::new("driver", findings);
    }
    let dev = fs::read_to_string(kfd.join("dev")).unwrap_or_default();
    findings.push(ok(
        CheckId::DRIVER_KFD,
        format!("KFD compute interface is present (device {})", dev.trim()),
    ));
    match read_topology(roots) {
        Ok(topology) => {
            for (path, err) in &topology.unreadable {
                findings.push(fail(
                    CheckId::DRIVER_TOPOLOGY,
                    format!("cannot read {}: {err}", roots.show(path)),
                    "run doctor on the host or in a privileged container: KFD hides GPUs outside the reader's device cgroup",
                ));
            }
            if topology.render_minors.is_empty() {
                findings.push(fail(
                    CheckId::DRIVER_GPUS,
                    "no GPU in KFD topology",
                    "check `dmesg | grep amdgpu` for a failed GPU initialisation (firmware missing, unsupported GPU)",
                ));
            } else {
                findings.push(ok(
                    CheckId::DRIVER_GPUS,
                    format!("{} GPU(s) in KFD topology", topology.render_minors.len()),
                ));
            }
        }
        Err(err) => findings.push(fail(
            CheckId::DRIVER_TOPOLOGY,
            format!(
                "cannot read KFD topology {}: {err}",
                roots.show(&kfd.join("topology/nodes"))
            ),
            "run doctor on the host or in a privileged container with /sys mounted",
        )),
    }
    Section::new("driver", findings)
}

/// The AMD display controllers and accelerators on the PCI bus, whatever their driver: none (and
/// no KFD) means the machine has no AMD GPU, the root cause of every other driver, device node
/// and spec failure.
fn pci_gpus(roots: &HostRoots, kfd_present: bool) -> Finding {
    /// Addresses shown before the list is cut short.
    const SHOWN: usize = 4;
    let pci = roots.sysfs_root.join("bus/pci/devices");
    match discover::amd_gpus_on_pci(&roots.sysfs_root) {
        Ok(gpus) if gpus.is_empty() && !kfd_present => fail(
            CheckId::DRIVER_PCI,
            format!(
                "no AMD GPU on this machine: {} has no AMD (vendor 0x1002) display controller or \
                 accelerator",
                roots.show(&pci)
            ),
            "nothing to fix here: containers can only get the AMD GPUs their host has; to try \
             amdgpu-cdi without one, pass --sysfs-root examples/hosts/<name>/sys (from the source \
             tree) to gpus, generate or doctor",
        ),
        Ok(gpus) if gpus.is_empty() => info(
            CheckId::DRIVER_PCI,
            format!(
                "{} has no AMD display controller or accelerator, but KFD is present",
                roots.show(&pci)
            ),
        ),
        Ok(gpus) => {
            let mut shown: Vec<String> = gpus.iter().take(SHOWN).map(ToString::to_string).collect();
            if gpus.len() > SHOWN {
                shown.push("...".into());
            }
            ok(
                CheckId::DRIVER_PCI,
                format!(
                    "{} AMD GPU(s) on the PCI bus: {}",
                    gpus.len(),
                    shown.join(", ")
                ),
            )
        }
        Err(err) => info(
            CheckId::DRIVER_PCI,
            format!(
                "AMD GPUs on the PCI bus not checked: cannot list {}: {err}",
                roots.show(&pci)
            ),
        ),
    }
}

/// Identity of the user whose node access is checked.
#[derive(Debug)]
pub(super) struct Identity {
    pub(super) name: String,
    pub(super) uid: u32,
    pub(super) gids: Vec<u32>,
}

/// `/etc/group` entries: (name, gid, members).
pub(super) fn read_groups(roots: &HostRoots) -> Vec<(String, u32, Vec<String>)> {
    let text = fs::read_to_string(roots.host("/etc/group")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?.to_string();
            let _password = fields.next()?;
            let gid = fields.next()?.parse().ok()?;
            let members = fields
                .next()
                .unwrap_or("")
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            Some((name, gid, members))
        })
        .collect()
}

/// The uid and groups of `subject`: the invoker's from the process, a named user's from
/// `/etc/passwd` (primary group) and `groups` (supplementary groups) under the root.
pub(super) fn identity(
    roots: &HostRoots,
    subject: &Subject,
    groups: &[(String, u32, Vec<String>)],
) -> Result<Identity, String> {
    let passwd = fs::read_to_string(roots.host("/etc/passwd")).unwrap_or_default();
    let entries: Vec<(&str, u32, u32)> = passwd
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some((
                *f.first()?,
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect();
    match subject {
        Subject::Invoker => {
            let uid = nix::unistd::getuid().as_raw();
            let mut gids: Vec<u32> = nix::unistd::getgroups()
                .unwrap_or_default()
                .iter()
                .map(|g| g.as_raw())
                .collect();
            gids.push(nix::unistd::getgid().as_raw());
            let name = entries
                .iter()
                .find(|e| e.1 == uid)
                .map_or_else(|| format!("uid {uid}"), |e| e.0.to_string());
            Ok(Identity { name, uid, gids })
        }
        Subject::User(name) => {
            let (_, uid, gid) = entries
                .iter()
                .find(|e| e.0 == name)
                .ok_or_else(|| format!("user {name} is not in /etc/passwd"))?;
            let mut gids = vec![*gid];
            gids.extend(
                groups
                    .iter()
                    .filter(|g| g.2.iter().any(|m| m == name))
                    .map(|g| g.1),
            );
            Ok(Identity {
                name: name.clone(),
                uid: *uid,
                gids,
            })
        }
    }
}

/// The device node section: `/dev/kfd` and each GPU's render node exist as character devices
/// and the subject can open them.
pub(super) fn device_nodes(roots: &HostRoots, subject: &Subject) -> Section {
    let mut findings = Vec::new();
    let groups = read_groups(roots);
    let identity = look_up(roots, subject, &groups, &mut findings);
    let mut nodes = vec![(CheckId::DEVICES_KFD, PathBuf::from("dev/kfd"))];
    match read_topology(roots) {
        Ok(topology) => nodes.extend(topology.render_minors.iter().map(|m| {
            (
                CheckId::DEVICES_RENDER,
                PathBuf::from(format!("dev/dri/renderD{m}")),
            )
        })),
        Err(_) => findings.push(info(
            CheckId::DEVICES_RENDER,
            "render nodes not checked: KFD topology is unavailable",
        )),
    }
    for (check, rel) in nodes {
        let path = roots.dev_root.join(&rel);
        findings.push(node_finding(
            roots,
            check,
            &path,
            identity.as_ref(),
            &groups,
        ));
    }
    Section::new("device nodes", findings)
}

/// Whether `subject` can open the device node at `path` (a real path), as one finding of
/// `check`; a user that cannot be looked up is a failure of its own.
pub(super) fn access_findings(
    roots: &HostRoots,
    subject: &Subject,
    check: CheckId,
    path: &Path,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let groups = read_groups(roots);
    let identity = look_up(roots, subject, &groups, &mut findings);
    findings.push(node_finding(roots, check, path, identity.as_ref(), &groups));
    findings
}

/// The identity of `subject` whose node access is checked; a user that cannot be looked up is a
/// failure pushed to `findings` (the nodes are then described, not judged).
fn look_up(
    roots: &HostRoots,
    subject: &Subject,
    groups: &[(String, u32, Vec<String>)],
    findings: &mut Vec<Finding>,
) -> Option<Identity> {
    match identity(roots, subject, groups) {
        Ok(identity) => Some(identity),
        Err(message) => {
            findings.push(fail(
                CheckId::DEVICES_USER,
                message,
                "pass an existing user name to --user",
            ));
            None
        }
    }
}

fn node_finding(
    roots: &HostRoots,
    check: CheckId,
    path: &Path,
    identity: Option<&Identity>,
    groups: &[(String, u32, Vec<String>)],
) -> Finding {
    let shown = roots.show(path);
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return fail(
                check,
                format!("{shown} does not exist"),
                "load the amdgpu driver; if it is loaded, check that udev (or the container's /dev mount) provides the node",
            );
        }
        Err(err) => {
            return fail(
                check,
                format!("cannot inspect {shown}: {err}"),
                "run doctor as root or on the host",
            );
        }
    };
    if !meta.file_type().is_char_device() {
        return fail(
            check,
            format!("{shown} is not a character device"),
            "remove the file and reload the amdgpu driver (`modprobe -r amdgpu && modprobe amdgpu`) or reboot; engines reject anything but a device node",
        );
    }
    let rdev = meta.rdev();
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    let mode = meta.mode() & 0o777;
    let group = groups
        .iter()
        .find(|g| g.1 == meta.gid())
        .map_or_else(|| format!("gid {}", meta.gid()), |g| g.0.clone());
    let described = format!("{shown} ({major}:{minor}, mode {mode:04o}, group {group})");
    let Some(identity) = identity else {
        return ok(check, described);
    };
    let can_open = identity.uid == 0
        || mode & 0o006 == 0o006
        || (identity.uid == meta.uid() && mode & 0o600 == 0o600)
        || (identity.gids.contains(&meta.gid()) && mode & 0o060 == 0o060);
    if can_open {
        ok(check, format!("{described}: {} can open it", identity.name))
    } else if mode & 0o060 == 0o060 {
        warn(
            check,
            format!(
                "{described}: {} is not in group {group}, so it cannot open it",
                identity.name
            ),
            format!(
                "`usermod -aG {group} {}` and log in again (rootless containers also need `--group-add keep-groups`)",
                identity.name
            ),
        )
    } else {
        warn(
            check,
            format!("{described}: {} cannot open it", identity.name),
            "give the group read/write access with a udev rule (MODE=\"0660\") and add the user to that group",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Doctor reads topology through discovery's parser with its lenient option: a GPU node is
    /// counted whatever its vendor, and a damaged line does not hide the node.
    #[test]
    fn topology_counts_gpu_nodes_of_any_vendor_and_reads_past_damaged_lines() {
        let (_dir, roots) = HostRoots::temp();
        let nodes = [
            ("0", "cpu_cores_count 64\nsimd_count 0\n"),
            (
                "1",
                "simd_count 304\nvendor_id 4098\ndrm_render_minor 128\n",
            ),
            (
                "2",
                "simd_count 80\nvendor_id 4318\nlocation_id 0x300\ndrm_render_minor 129\n",
            ),
            ("10", "garbage line\nsimd_count 8\n"),
        ];
        for (node, properties) in nodes {
            let path = format!("/sys/class/kfd/kfd/topology/nodes/{node}/properties");
            roots.write_file(&path, properties);
        }
        let topology = read_topology(&roots).expect("reads");
        assert_eq!(topology.render_minors, [128, 129, 0]);
        assert!(topology.unreadable.is_empty());
    }
}
