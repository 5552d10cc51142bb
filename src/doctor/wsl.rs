//! Doctor's checks for a WSL2 host (docs/wsl.md), which replace the driver and device node
//! sections there: a WSL kernel, `/dev/dxg` and who can open it, the adapters dxgkrnl sees, the
//! DXCore library WSL mounts, and what the container image must bring itself.

use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use super::{CheckId, Finding, HostRoots, Section, Subject, fail, host, info, ok, warn};
use crate::discover::DiscoverOptions;
use crate::discover::wsl::{
    DXCORE, DXG_PATH, WSL_LIB_ROOT, WslOptions, discover_wsl, looks_like_wsl,
};

/// Whether doctor inspects a WSL2 host: no KFD, and `dxg` in sysfs or under the dev root.
pub(super) fn is_wsl(roots: &HostRoots) -> bool {
    looks_like_wsl(&discover_options(roots))
}

/// What discovery is given for the host doctor inspects.
pub(super) fn discover_options(roots: &HostRoots) -> DiscoverOptions {
    DiscoverOptions {
        sysfs_root: roots.sysfs_root.clone(),
        dev_root: roots.dev_root.clone(),
    }
}

/// The WSL options that give the spec the host itself would get: `/proc` under the root, and
/// the library named by its host path (`/usr/lib/wsl`), whatever root doctor reads through.
pub(super) fn spec_options(roots: &HostRoots) -> WslOptions {
    WslOptions {
        proc_root: roots.host("/proc"),
        lib_root: PathBuf::from(WSL_LIB_ROOT),
    }
}

/// The WSL2 section.
pub(super) fn section(roots: &HostRoots, subject: &Subject) -> Section {
    let mut findings = Vec::new();
    let options = discover_options(roots);
    let wsl = WslOptions {
        proc_root: roots.host("/proc"),
        lib_root: roots.host(WSL_LIB_ROOT),
    };
    match discover_wsl(&options, &wsl) {
        Ok(discovery) => {
            let kernel_warning = discovery.warnings.iter().find(|w| w.contains("WSL kernel"));
            findings.push(match kernel_warning {
                Some(warning) => warn(
                    CheckId::WSL_KERNEL,
                    warning.clone(),
                    "run this inside a WSL2 distribution (`wsl --set-version <distro> 2` in \
                     Windows), or pass --root/--sysfs-root of one",
                ),
                None => ok(CheckId::WSL_KERNEL, "the kernel is WSL2's"),
            });
            findings.push(match discovery.host.adapters {
                0 => warn(
                    CheckId::WSL_ADAPTERS,
                    "dxgkrnl lists no virtual GPU on VMBus: Windows shares no GPU with WSL",
                    "install the AMD Windows driver (Adrenalin) with WSL support, then \
                     `wsl --update` and `wsl --shutdown` in Windows",
                ),
                1 => ok(
                    CheckId::WSL_ADAPTERS,
                    "one GPU shared by Windows: the spec has amd.com/gpu=0 and =all",
                ),
                n => info(
                    CheckId::WSL_ADAPTERS,
                    format!(
                        "{n} GPUs shared by Windows: /dev/dxg serves all of them, so the spec \
                         has only amd.com/gpu=all"
                    ),
                ),
            });
        }
        Err(err) => findings.push(fail(
            CheckId::WSL_DXG,
            crate::error_text::error_line(&err),
            "install the AMD Windows driver (Adrenalin) with WSL support, then `wsl --update` \
             and `wsl --shutdown` in Windows",
        )),
    }
    let node = roots.dev_root.join(DXG_PATH.trim_start_matches('/'));
    let is_char = std::fs::metadata(&node).map(|m| m.file_type().is_char_device());
    if let Ok(true) = is_char {
        findings.extend(host::access_findings(
            roots,
            subject,
            CheckId::WSL_DXG,
            &node,
        ));
    } else if is_char.is_ok() {
        findings.push(fail(
            CheckId::WSL_DXG,
            format!("{} is not a character device", roots.show(&node)),
            "remove it and restart the distribution (`wsl --shutdown` in Windows): WSL's init \
             creates the node, and engines reject anything but a device node",
        ));
    } else {
        findings.push(fail(
            CheckId::WSL_DXG,
            format!("{} does not exist", roots.show(&node)),
            "update WSL (`wsl --update` in Windows) and the AMD Windows driver; containers \
             reach the GPU only through this node",
        ));
    }
    let dxcore = roots.host(WSL_LIB_ROOT).join(DXCORE);
    findings.push(if dxcore.is_file() {
        ok(
            CheckId::WSL_DXCORE,
            format!("{} is present", roots.show(&dxcore)),
        )
    } else {
        fail(
            CheckId::WSL_DXCORE,
            format!("{} does not exist", roots.show(&dxcore)),
            "update WSL (`wsl --update` in Windows): WSL mounts Microsoft's DXCore library \
             there, and librocdxg cannot reach the GPU without it",
        )
    });
    findings.push(image_requirements());
    Section::new("WSL2 (DirectX GPU)", findings)
}

/// What the spec does not provide: the image's own ROCm user space.
fn image_requirements() -> Finding {
    info(
        CheckId::WSL_IMAGE,
        "the image must bring ROCm 7.1 or newer and librocdxg built from the same ROCm release \
         as its libhsa-runtime64 (the HSA runtime loads it when HSA_ENABLE_DXG_DETECTION=1, \
         which the spec sets); the spec mounts only /dev/dxg and libdxcore.so",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wsl2_example_host_gets_the_wsl_checks() {
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hosts/wsl2");
        let roots = HostRoots::under(&example, Vec::new());
        assert!(is_wsl(&roots));
        let section = section(&roots, &Subject::Invoker);
        let checks: Vec<(CheckId, super::super::Status)> = section
            .findings
            .iter()
            .map(|f| (f.check, f.status))
            .collect();
        use super::super::Status::{Fail, Info, Ok};
        // No dev/dxg in the example: the node check fails, the rest pass.
        assert_eq!(
            checks,
            [
                (CheckId::WSL_KERNEL, Ok),
                (CheckId::WSL_ADAPTERS, Ok),
                (CheckId::WSL_DXG, Fail),
                (CheckId::WSL_DXCORE, Ok),
                (CheckId::WSL_IMAGE, Info)
            ]
        );
    }

    /// Whoever runs the tests can open a node with mode 0666; a file is not a device node.
    #[test]
    fn access_to_dev_dxg_is_checked() {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hosts/wsl2");
        let (_dir, mut roots) = HostRoots::temp();
        roots.sysfs_root = example.join("sys");
        let node = roots.write_file("/dev/dxg", "");
        let finding = |roots: &HostRoots| {
            section(roots, &Subject::Invoker)
                .findings
                .into_iter()
                .find(|f| f.check == CheckId::WSL_DXG)
                .expect("a finding about /dev/dxg")
        };
        let found = finding(&roots);
        assert!(
            found.message.ends_with("is not a character device"),
            "{found:?}"
        );
        std::fs::remove_file(&node).expect("rm");
        let mode = Mode::from_bits_truncate(0o666);
        if mknod(&node, SFlag::S_IFCHR, mode, makedev(1, 3)).is_err() {
            return; // not root: mknod is refused
        }
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &node,
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .expect("chmod");
        let found = finding(&roots);
        assert_eq!(found.status, super::super::Status::Ok, "{found:?}");
        assert!(found.message.contains("can open it"), "{found:?}");
    }
}
