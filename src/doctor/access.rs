//! Access checks: what keeps a container from using GPU nodes it was given, or sends a GPU request
//! elsewhere. SELinux's `container_use_devices` boolean; a spec with groups (`additionalGids`,
//! cdiVersion 0.7.0) read by an engine too old for that version; a spec pinning a `fileMode` that
//! Docker's CDI applies to `root:root` nodes; rootless users outside the nodes' group; and
//! NVIDIA's claim on Docker's `--gpus` (reported in the docker section, as `docker.gpus`).
//!
//! Everything is read from files under doctor's roots: selinuxfs under the root (it is its own
//! file system, mounted at `/sys/fs/selinux`, not part of the sysfs tree `--sysfs-root` names),
//! `/etc/subuid`, `/etc/passwd` and `/etc/group` under the root, the nodes under the dev root.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use cdi::version::V0_7_0;

use super::engine_checks::EngineFacts;
use super::host::{identity, read_groups};
use super::specs::{GpuSpecFile, SpecScan};
use super::{
    CheckId, EngineCheck, Finding, HostRoots, Section, Status, Subject, fail, info, ok,
    take_consequences, warn,
};
use crate::engines::Engine;
use crate::engines::releases::EngineVersion;
use crate::generate::GenerateOptions;
use crate::generate::record;

/// The access section; `None` when no check has anything to say. `engine_sections` are the engine
/// sections: an engine's refusal of a spec because of its groups moves under the finding that
/// names the groups as the cause.
pub(super) fn section(
    roots: &HostRoots,
    subject: &Subject,
    specs: &SpecScan,
    engines: &[EngineFacts],
    engine_sections: &mut [Section],
) -> Option<Section> {
    let mut findings: Vec<Finding> = selinux(roots, engines).into_iter().collect();
    findings.extend(spec_groups(roots, specs, engines, engine_sections));
    findings.extend(docker_file_modes(roots, specs, engines));
    findings.extend(rootless_groups(roots, subject));
    (!findings.is_empty()).then(|| Section::new("container access", findings))
}

/// `container_use_devices` is off under an enforcing SELinux: a failure naming the engines found
/// here that label their containers (without any engine found, the ones that can); a note when
/// every engine found leaves its containers unlabelled, which SELinux does not confine.
fn use_devices_off(engines: &[EngineFacts]) -> Finding {
    let labelling: Vec<&str> = engines
        .iter()
        .filter(|facts| facts.selinux_labels)
        .map(|facts| facts.engine.name())
        .collect();
    let confined = match labelling.as_slice() {
        [] if !engines.is_empty() => {
            let found: Vec<&str> = engines.iter().map(|facts| facts.engine.name()).collect();
            return info(
                CheckId::ACCESS_SELINUX,
                format!(
                    "SELinux is enforcing and {USE_DEVICES} is off, but no engine here is \
                     configured to label its containers ({}), so none is denied its GPU nodes; \
                     one that labels them (dockerd started with --selinux-enabled too) would \
                     need `setsebool -P {USE_DEVICES}=1`",
                    found.join(", ")
                ),
            );
        }
        [] => "confined containers (podman, CRI-O, Docker with selinux-enabled)".to_string(),
        names => format!("the containers {} labels", names.join(" and ")),
    };
    fail(
        CheckId::ACCESS_SELINUX,
        format!(
            "SELinux is enforcing and {USE_DEVICES} is off: {confined} are denied /dev/kfd and \
             the render nodes they are given"
        ),
        format!(
            "`setsebool -P {USE_DEVICES}=1` (or, per container, `--security-opt label=disable`)"
        ),
    )
}

/// Where selinuxfs is mounted on the host.
const SELINUXFS: &str = "/sys/fs/selinux";

/// The boolean that lets SELinux-confined containers (`container_t`) use host devices.
const USE_DEVICES: &str = "container_use_devices";

/// SELinux enforcing with `container_use_devices` off denies confined containers the GPU nodes
/// they were given; which engines confine theirs is in `engines`. No selinuxfs means no SELinux:
/// nothing to say.
fn selinux(roots: &HostRoots, engines: &[EngineFacts]) -> Option<Finding> {
    let dir = roots.host(SELINUXFS);
    let enforce_path = dir.join("enforce");
    let enforce = match fs::read_to_string(&enforce_path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
        Err(err) => {
            return Some(info(
                CheckId::ACCESS_SELINUX,
                format!(
                    "SELinux not checked: cannot read {}: {err}",
                    roots.show(&enforce_path)
                ),
            ));
        }
    };
    match enforce.trim() {
        "1" => {}
        "0" => {
            return Some(info(
                CheckId::ACCESS_SELINUX,
                "SELinux is permissive: it logs containers' use of the GPU nodes but does not \
                 deny it",
            ));
        }
        other => {
            return Some(info(
                CheckId::ACCESS_SELINUX,
                format!(
                    "SELinux not checked: {} holds \"{}\", not 0 or 1",
                    roots.show(&enforce_path),
                    cdi::text::escape(other)
                ),
            ));
        }
    }
    let boolean_path = dir.join("booleans").join(USE_DEVICES);
    // "current pending", e.g. "0 1" after `setsebool` without a commit; the current value counts.
    let current = match fs::read_to_string(&boolean_path) {
        Ok(text) => text.split_whitespace().next().map(str::to_string),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Some(info(
                CheckId::ACCESS_SELINUX,
                format!(
                    "SELinux is enforcing and its policy has no {USE_DEVICES} boolean; if \
                     confined containers are denied the GPU nodes, run them with \
                     `--security-opt label=disable`"
                ),
            ));
        }
        Err(err) => {
            return Some(info(
                CheckId::ACCESS_SELINUX,
                format!(
                    "SELinux is enforcing; {USE_DEVICES} not checked: cannot read {}: {err}",
                    roots.show(&boolean_path)
                ),
            ));
        }
    };
    Some(match current.as_deref() {
        Some("1") => ok(
            CheckId::ACCESS_SELINUX,
            format!(
                "SELinux is enforcing and {USE_DEVICES} is on: confined containers may use the GPU nodes"
            ),
        ),
        Some("0") => use_devices_off(engines),
        _ => info(
            CheckId::ACCESS_SELINUX,
            format!(
                "SELinux is enforcing; {USE_DEVICES} not checked: {} holds no 0 or 1",
                roots.show(&boolean_path)
            ),
        ),
    })
}

/// The `generate` command that rewrites `file` with the options recorded on its first line (the
/// defaults when it records none), changed by `change`.
fn regenerate(
    roots: &HostRoots,
    file: &GpuSpecFile,
    change: impl FnOnce(&mut GenerateOptions),
) -> String {
    let command = roots.generate_command(&file.path);
    match &file.recorded {
        Some(Ok(options)) => {
            let mut options = options.clone();
            change(&mut options);
            let arguments = record::arguments(&options);
            if arguments.is_empty() {
                command
            } else {
                format!("{command} {}", arguments.join(" "))
            }
        }
        _ => command,
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// A spec with groups needs cdiVersion 0.7.0; an engine that reads it but predates 0.7.0 skips the
/// whole spec. The engine's own `spec-version` failure for that file is folded under this one.
fn spec_groups(
    roots: &HostRoots,
    specs: &SpecScan,
    engines: &[EngineFacts],
    engine_sections: &mut [Section],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for file in specs
        .files
        .iter()
        .filter(|f| f.invalid.is_none() && f.groups)
    {
        let too_old: Vec<(&EngineFacts, EngineVersion)> = engines
            .iter()
            .filter(|e| e.reads(roots, &file.path))
            .filter_map(|e| {
                let first = e.engine.first_accepting(V0_7_0)?;
                (e.version < first).then_some((e, first))
            })
            .collect();
        if too_old.is_empty() {
            continue;
        }
        let shown = roots.show(&file.path);
        let rejecting: Vec<String> = too_old
            .iter()
            .map(|(e, first)| format!("{} {} (needs {first})", e.engine, e.version))
            .collect();
        let upgrades: Vec<String> = too_old
            .iter()
            .map(|(e, first)| format!("{} to {first}", e.engine))
            .collect();
        let command = regenerate(roots, file, |options| {
            options.additional_gids = false;
            options.cdi_version = None;
        });
        let mut finding = fail(
            CheckId::ACCESS_SPEC_GROUPS,
            format!(
                "{shown} gives containers the nodes' groups (additionalGids), which need \
                 cdiVersion {V0_7_0}: {} {} the whole spec",
                and_list(&rejecting),
                if too_old.len() == 1 {
                    "rejects it and skips"
                } else {
                    "reject it and skip"
                }
            ),
            format!(
                "regenerate it without groups: `{command}` (root engines give a non-root \
                 container its nodes without them, docs/requests.md), or upgrade {}",
                and_list(&upgrades)
            ),
        );
        // The engine's refusal of this file, which says only which version it lacks.
        let of_file = format!(" of {shown} ");
        finding
            .consequences
            .extend(take_consequences(engine_sections, |_, f| {
                f.status == Status::Fail
                    && too_old
                        .iter()
                        .any(|(e, _)| f.check == EngineCheck::SPEC_VERSION.of(e.engine))
                    && f.message.contains(&of_file)
            }));
        findings.push(finding);
    }
    findings
}

/// Docker's CDI creates device nodes `root:root` with the spec's `fileMode`: a mode without
/// read-write for others locks out every non-root container user (docs/requests.md).
fn docker_file_modes(roots: &HostRoots, specs: &SpecScan, engines: &[EngineFacts]) -> Vec<Finding> {
    let Some(docker) = engines
        .iter()
        .find(|e| e.engine == Engine::Docker && e.cdi_on)
    else {
        return Vec::new();
    };
    // A spec Docker refuses for its version gives no nodes at all; the docker section says so.
    let accepted = |file: &&GpuSpecFile| {
        file.version
            .is_some_and(|v| Engine::Docker.accepts(docker.version, v))
    };
    let mut findings = Vec::new();
    for file in specs
        .files
        .iter()
        .filter(|f| f.invalid.is_none() && docker.reads(roots, &f.path))
        .filter(accepted)
    {
        let mut modes: Vec<u32> = file
            .file_modes
            .iter()
            .map(|(_, mode)| *mode)
            .filter(|mode| mode & 0o006 != 0o006)
            .collect();
        if modes.is_empty() {
            continue;
        }
        let count = modes.len();
        modes.sort_unstable();
        modes.dedup();
        let modes: Vec<String> = modes.iter().map(|m| format!("{m:04o}")).collect();
        let command = regenerate(roots, file, |options| options.pin_device_numbers = false);
        findings.push(warn(
            CheckId::ACCESS_DOCKER_FILE_MODE,
            format!(
                "{} sets fileMode {} on {count} device node(s): docker {} creates them root:root \
                 with that mode, so a container running as a non-root user cannot open them",
                roots.show(&file.path),
                modes.join(", "),
                docker.version
            ),
            format!("regenerate it without pinned numbers and modes: `{command}`"),
        ));
    }
    findings
}

/// The host's GPU nodes (`/dev/kfd` and every `/dev/dri/renderD*` under the dev root) that only
/// their group can open, by group id, in path order.
fn group_only_nodes(roots: &HostRoots) -> Vec<(u32, Vec<PathBuf>)> {
    let dri = roots.dev_root.join("dev/dri");
    let mut paths = vec![roots.dev_root.join("dev/kfd")];
    if let Ok(entries) = fs::read_dir(&dri) {
        let mut render: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("renderD"))
            .map(|e| e.path())
            .collect();
        render.sort();
        paths.extend(render);
    }
    let mut by_group: Vec<(u32, Vec<PathBuf>)> = Vec::new();
    for path in paths {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.mode();
        if mode & 0o006 == 0o006 || mode & 0o060 != 0o060 {
            continue;
        }
        match by_group.iter_mut().find(|(gid, _)| *gid == meta.gid()) {
            Some((_, nodes)) => nodes.push(path),
            None => by_group.push((meta.gid(), vec![path])),
        }
    }
    by_group
}

/// The users `/etc/subuid` gives subordinate ids, the ones who can run rootless podman, in file
/// order, each once.
fn subordinate_users(roots: &HostRoots) -> Vec<String> {
    let text = fs::read_to_string(roots.host("/etc/subuid")).unwrap_or_default();
    let mut users: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(user) = line.split(':').next().filter(|u| !u.is_empty()) else {
            continue;
        };
        if !users.iter().any(|u| u == user) {
            users.push(user.to_string());
        }
    }
    users
}

/// A rootless engine bind-mounts the host's nodes, which keep their group: a user with subordinate
/// ids who is not in it cannot use the GPUs from rootless containers. The user doctor checks the
/// nodes for (`--user`) is left to the device node section, which says the same.
fn rootless_groups(roots: &HostRoots, subject: &Subject) -> Vec<Finding> {
    let users = subordinate_users(roots);
    if users.is_empty() {
        return Vec::new();
    }
    let nodes = group_only_nodes(roots);
    if nodes.is_empty() {
        return Vec::new();
    }
    let groups = read_groups(roots);
    let group_name = |gid: u32| {
        groups
            .iter()
            .find(|g| g.1 == gid)
            .map_or_else(|| format!("gid {gid}"), |g| g.0.clone())
    };
    let checked = identity(roots, subject, &groups).ok().map(|i| i.name);
    let mut findings = Vec::new();
    let mut members = Vec::new();
    let mut all_members = true;
    for user in &users {
        let Ok(who) = identity(roots, &Subject::User(user.clone()), &groups) else {
            continue;
        };
        if who.uid == 0 {
            continue;
        }
        let missing: Vec<&(u32, Vec<PathBuf>)> = nodes
            .iter()
            .filter(|(gid, _)| !who.gids.contains(gid))
            .collect();
        if missing.is_empty() {
            members.push(who.name);
            continue;
        }
        all_members = false;
        if checked.as_deref() == Some(who.name.as_str()) {
            continue;
        }
        for (gid, paths) in missing {
            let group = group_name(*gid);
            let shown: Vec<String> = paths.iter().map(|p| roots.show(p)).collect();
            findings.push(warn(
                CheckId::ACCESS_ROOTLESS_GROUP,
                format!(
                    "{user} has subordinate ids in /etc/subuid (rootless podman) but is not in \
                     group {group}, which owns {}: its rootless containers get the host's nodes \
                     with that group and cannot open them",
                    and_list(&shown)
                ),
                format!(
                    "`usermod -aG {group} {user}`, log in again, and run rootless containers with \
                     `--group-add keep-groups` (crun)"
                ),
            ));
        }
    }
    if all_members && !members.is_empty() {
        let groups: Vec<String> = nodes.iter().map(|(gid, _)| group_name(*gid)).collect();
        findings.push(ok(
            CheckId::ACCESS_ROOTLESS_GROUP,
            format!(
                "the rootless users in /etc/subuid ({}) are in group {}, which owns the GPU nodes",
                members.join(", "),
                and_list(&groups)
            ),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_english() {
        let items = |s: &[&str]| s.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        assert_eq!(and_list(&items(&["a"])), "a");
        assert_eq!(and_list(&items(&["a", "b"])), "a and b");
        assert_eq!(and_list(&items(&["a", "b", "c"])), "a, b and c");
    }

    #[test]
    fn subuid_users_are_listed_once_in_file_order() {
        let (_dir, roots) = HostRoots::temp();
        roots.write_file(
            "/etc/subuid",
            "# comment\nbob:100000:65536\n\nalice:165536:65536\nbob:231072:65536\n:1:2\n",
        );
        assert_eq!(subordinate_users(&roots), ["bob", "alice"]);
    }

    #[test]
    fn selinux_is_silent_without_selinuxfs_and_reads_the_current_value() {
        let (_dir, roots) = HostRoots::temp();
        assert_eq!(selinux(&roots, &[]), None);
        let boolean = format!("/sys/fs/selinux/booleans/{USE_DEVICES}");
        roots.write_file("/sys/fs/selinux/enforce", "1");
        roots.write_file(&boolean, "0 1");
        let finding = selinux(&roots, &[]).expect("a finding");
        assert_eq!(finding.status, Status::Fail, "{finding:?}");
        roots.write_file(&boolean, "1 0");
        assert_eq!(selinux(&roots, &[]).map(|f| f.status), Some(Status::Ok));
        roots.write_file("/sys/fs/selinux/enforce", "0");
        assert_eq!(selinux(&roots, &[]).map(|f| f.status), Some(Status::Info));
    }

    /// Facts of an engine found here that does or does not label its containers.
    fn found(engine: Engine, selinux_labels: bool) -> EngineFacts {
        EngineFacts {
            engine,
            version: EngineVersion::new(99, 0, 0),
            cdi_on: true,
            spec_dirs: Vec::new(),
            selinux_labels,
        }
    }

    #[test]
    fn use_devices_off_fails_only_where_an_engine_labels_its_containers() {
        let nobody = use_devices_off(&[
            found(Engine::Docker, false),
            found(Engine::Containerd, false),
        ]);
        assert_eq!(nobody.status, Status::Info, "{nobody:?}");
        assert!(
            nobody.message.contains(
                "no engine here is configured to label its containers (docker, containerd)"
            ),
            "{nobody:?}"
        );
        let podman = use_devices_off(&[found(Engine::Docker, false), found(Engine::Podman, true)]);
        assert_eq!(podman.status, Status::Fail, "{podman:?}");
        assert!(
            podman
                .message
                .contains(": the containers podman labels are denied"),
            "{podman:?}"
        );
        let both = use_devices_off(&[found(Engine::Docker, true), found(Engine::Crio, true)]);
        assert!(
            both.message
                .contains(": the containers docker and crio labels are denied"),
            "{both:?}"
        );
        let unknown = use_devices_off(&[]);
        assert_eq!(unknown.status, Status::Fail, "{unknown:?}");
        assert!(
            unknown
                .message
                .contains("confined containers (podman, CRI-O")
        );
    }
}
