//! Discovery of a WSL2 host, where ROCm reaches the GPU through the DirectX paravirtual device
//! `/dev/dxg` instead of KFD (docs/wsl.md).
//!
//! Under WSL2 there is no `/dev/kfd` and no `/dev/dri`: the `dxgkrnl` driver binds the virtual
//! machine's VMBus channels and offers one misc character device, `/dev/dxg`, for every adapter
//! the Windows host shares. ROCm's DXG thunk (`librocdxg`, loaded by the HSA runtime when
//! `HSA_ENABLE_DXG_DETECTION=1`) talks to it through Microsoft's DXCore library, which WSL mounts
//! at `/usr/lib/wsl/lib/libdxcore.so`.
//!
//! # What is read
//!
//! | what | where |
//! |---|---|
//! | no KFD | `<sysfs>/class/kfd` does not exist |
//! | `/dev/dxg` numbers | `<sysfs>/class/misc/dxg/dev`, else `stat` of `<dev-root>/dev/dxg` |
//! | adapters | `<sysfs>/bus/vmbus/devices/*/class_id` equal to dxgkrnl's per-GPU channel id |
//! | confirmation | `<proc>/version` naming a Microsoft kernel, or `<proc>/sys/fs/binfmt_misc/WSLInterop*` |
//! | DXCore | `<wsl-lib-root>/lib/libdxcore.so` |
//!
//! The adapters are counted, not identified: dxgkrnl's VMBus channels do not say which vendor an
//! adapter is, and `/dev/dxg` gives a container every adapter at once. So a WSL spec has the
//! `all` device, and `0` only when exactly one adapter is shared.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::reader::dev_numbers;
use super::{DiscoverOptions, FoundNode};

/// The DirectX paravirtual device as containers and the host see it.
pub const DXG_PATH: &str = "/dev/dxg";

/// Where WSL mounts the Windows host's user-mode GPU libraries and driver store.
pub const WSL_LIB_ROOT: &str = "/usr/lib/wsl";

/// Microsoft's DXCore library, relative to [`WSL_LIB_ROOT`]: `librocdxg` opens it by name.
pub const DXCORE: &str = "lib/libdxcore.so";

/// dxgkrnl's VMBus class id of a per-GPU (virtual GPU) channel, as sysfs shows `class_id`.
pub const VGPU_CLASS_ID: &str = "{6e382d18-3336-4f4b-acc4-2b7703d4df4a}";

/// Which kind of host to discover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DiscoveryMode {
    /// KFD when `class/kfd` exists, else WSL when `/dev/dxg` does, else KFD's errors.
    #[default]
    Auto,
    /// A Linux host with the amdgpu driver: `/dev/kfd` and render nodes.
    Kfd,
    /// A WSL2 distribution: `/dev/dxg` and the DXCore library.
    Wsl,
}

/// Where WSL discovery looks, beside [`DiscoverOptions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WslOptions {
    /// The proc mount, normally `/proc`: only read to confirm a WSL kernel.
    pub proc_root: PathBuf,
    /// Where the WSL libraries are, normally `/usr/lib/wsl`; specs mount from under it.
    pub lib_root: PathBuf,
}

impl Default for WslOptions {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            lib_root: PathBuf::from(WSL_LIB_ROOT),
        }
    }
}

/// A WSL2 host as a spec needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WslHost {
    /// `/dev/dxg`.
    pub dxg: FoundNode,
    /// Adapters dxgkrnl has a channel for (any vendor), 0 when none are listed.
    pub adapters: usize,
    /// The host path of `libdxcore.so` (under the lib root).
    pub dxcore: PathBuf,
    /// Whether that file exists.
    pub dxcore_found: bool,
}

/// A WSL host plus what looked wrong but did not stop discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WslDiscovery {
    /// The host.
    pub host: WslHost,
    /// One line each, lower-case.
    pub warnings: Vec<String>,
}

/// Why a WSL host could not be discovered.
#[derive(Debug, thiserror::Error)]
pub enum WslError {
    /// Neither sysfs nor the dev root has `dxg`.
    #[error(
        "no DirectX GPU device: neither {} nor {} exists (under WSL2 it appears when the Windows \
         host has a GPU driver with WSL support; see docs/wsl.md)",
        sysfs.display(),
        node.display()
    )]
    NoDxg {
        /// `<sysfs>/class/misc/dxg`.
        sysfs: PathBuf,
        /// `<dev-root>/dev/dxg`.
        node: PathBuf,
    },
    /// A file that exists could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A `dev` file that is not `MAJOR:MINOR`.
    #[error("{} is not MAJOR:MINOR: {found:?}", path.display())]
    BadDev {
        /// The file.
        path: PathBuf,
        /// What it holds (truncated).
        found: String,
    },
    /// A relative lib root: specs mount from under it and engines resolve relative paths from
    /// their own directory.
    #[error(
        "--wsl-lib-root {} is not absolute (specs mount the DXCore library from under it, and \
         engines resolve a relative path from their own directory)",
        path.display()
    )]
    RelativeLibRoot {
        /// The value given.
        path: PathBuf,
    },
}

/// Whether `options` describe a WSL2 host in `auto` mode: no KFD in sysfs, and `dxg` in sysfs or
/// a `/dev/dxg` character device under the dev root.
pub fn looks_like_wsl(options: &DiscoverOptions) -> bool {
    !options.sysfs_root.join("class/kfd").exists()
        && (options.sysfs_root.join("class/misc/dxg").exists() || dxg_is_char_device(options))
}

fn dxg_under_root(options: &DiscoverOptions) -> PathBuf {
    options.dev_root.join(DXG_PATH.trim_start_matches('/'))
}

fn dxg_is_char_device(options: &DiscoverOptions) -> bool {
    std::fs::metadata(dxg_under_root(options)).is_ok_and(|m| m.file_type().is_char_device())
}

/// Discovers the WSL host under `options` and `wsl`.
pub fn discover_wsl(options: &DiscoverOptions, wsl: &WslOptions) -> Result<WslDiscovery, WslError> {
    if !wsl.lib_root.is_absolute() {
        return Err(WslError::RelativeLibRoot {
            path: wsl.lib_root.clone(),
        });
    }
    let mut warnings = Vec::new();
    let dxg = dxg_node(options, &mut warnings)?;
    let adapters = count_adapters(&options.sysfs_root.join("bus/vmbus/devices"))?;
    if adapters == 0 {
        warnings.push(format!(
            "no virtual GPU is listed in {}: the spec has only the `all` device",
            options.sysfs_root.join("bus/vmbus/devices").display()
        ));
    }
    if let Some(problem) = not_wsl_kernel(&wsl.proc_root) {
        warnings.push(problem);
    }
    let dxcore = wsl.lib_root.join(DXCORE);
    let dxcore_found = dxcore.is_file();
    Ok(WslDiscovery {
        host: WslHost {
            dxg,
            adapters,
            dxcore,
            dxcore_found,
        },
        warnings,
    })
}

/// `/dev/dxg` with the sysfs numbers (else those of the node), group and mode from the node.
fn dxg_node(options: &DiscoverOptions, warnings: &mut Vec<String>) -> Result<FoundNode, WslError> {
    let sysfs_dev = options.sysfs_root.join("class/misc/dxg/dev");
    let from_sysfs = match std::fs::read_to_string(&sysfs_dev) {
        Ok(text) => Some(parse_dev(&sysfs_dev, &text)?),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(WslError::Read {
                path: sysfs_dev,
                source,
            });
        }
    };
    let node_path = dxg_under_root(options);
    use nix::sys::stat::SFlag;
    let stat = nix::sys::stat::stat(&node_path).ok();
    let is_char = |st: &nix::sys::stat::FileStat| {
        SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR
    };
    if stat.as_ref().is_some_and(|st| !is_char(st)) {
        warnings.push(format!("{} is not a character device", node_path.display()));
    }
    let from_node = stat.filter(is_char).map(|st| {
        (
            u32::try_from(nix::sys::stat::major(st.st_rdev)).unwrap_or(u32::MAX),
            u32::try_from(nix::sys::stat::minor(st.st_rdev)).unwrap_or(u32::MAX),
        )
    });
    let (major, minor) = match (from_sysfs, from_node) {
        (Some(sysfs), Some(node)) if sysfs != node => {
            warnings.push(format!(
                "{} is {}:{} but {} says {}:{}; the spec uses the sysfs numbers",
                node_path.display(),
                node.0,
                node.1,
                sysfs_dev.display(),
                sysfs.0,
                sysfs.1
            ));
            sysfs
        }
        (Some(numbers), _) | (None, Some(numbers)) => numbers,
        (None, None) => {
            return Err(WslError::NoDxg {
                sysfs: options.sysfs_root.join("class/misc/dxg"),
                node: node_path,
            });
        }
    };
    Ok(FoundNode {
        path: PathBuf::from(DXG_PATH),
        major,
        minor,
        gid: stat.map(|st| st.st_gid),
        file_mode: stat.map(|st| st.st_mode & 0o7777),
    })
}

fn parse_dev(path: &Path, text: &str) -> Result<(u32, u32), WslError> {
    dev_numbers(text).ok_or_else(|| WslError::BadDev {
        path: path.to_path_buf(),
        found: text.trim().chars().take(60).collect(),
    })
}

/// The VMBus devices under `dir` whose `class_id` is dxgkrnl's per-GPU channel; 0 when `dir`
/// does not exist. A device whose `class_id` cannot be read is not counted.
fn count_adapters(dir: &Path) -> Result<usize, WslError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(WslError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    Ok(entries
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_to_string(entry.path().join("class_id"))
                .is_ok_and(|id| id.trim().eq_ignore_ascii_case(VGPU_CLASS_ID))
        })
        .count())
}

/// A warning when nothing under `proc_root` says this is a WSL kernel: `version` does not name
/// Microsoft and no `WSLInterop` binfmt entry exists (the name WSL's init registers; with systemd
/// also `WSLInterop-late`).
fn not_wsl_kernel(proc_root: &Path) -> Option<String> {
    let version_path = proc_root.join("version");
    let version = std::fs::read_to_string(&version_path).unwrap_or_default();
    let lower = version.to_ascii_lowercase();
    if lower.contains("microsoft") || lower.contains("wsl") {
        return None;
    }
    let binfmt = proc_root.join("sys/fs/binfmt_misc");
    let interop = std::fs::read_dir(&binfmt).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("WSLInterop"))
    });
    if interop {
        return None;
    }
    Some(format!(
        "{} does not name a WSL kernel and {} has no WSLInterop entry: writing a spec for the \
         DirectX GPU device anyway",
        version_path.display(),
        binfmt.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn fake(root: &Path, adapters: usize) -> (DiscoverOptions, WslOptions) {
        let sys = root.join("sys");
        write(&sys.join("class/misc/dxg/dev"), "10:124\n");
        for i in 0..adapters {
            write(
                &sys.join(format!("bus/vmbus/devices/gpu{i}/class_id")),
                &format!("{VGPU_CLASS_ID}\n"),
            );
        }
        write(
            &sys.join("bus/vmbus/devices/net/class_id"),
            "{f8615163-df3e-46c5-913f-f2d2f965ed0e}\n",
        );
        write(
            &root.join("proc/version"),
            "Linux version 6.6.87.2-microsoft-standard-WSL2\n",
        );
        write(&root.join("usr/lib/wsl/lib/libdxcore.so"), "");
        (
            DiscoverOptions {
                sysfs_root: sys,
                dev_root: root.join("nodev"),
            },
            WslOptions {
                proc_root: root.join("proc"),
                lib_root: root.join("usr/lib/wsl"),
            },
        )
    }

    #[test]
    fn a_wsl_tree_is_found_with_its_adapters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (options, wsl) = fake(dir.path(), 1);
        assert!(looks_like_wsl(&options));
        let found = discover_wsl(&options, &wsl).expect("discovers");
        assert_eq!(found.warnings, Vec::<String>::new());
        assert_eq!(found.host.adapters, 1);
        assert_eq!((found.host.dxg.major, found.host.dxg.minor), (10, 124));
        assert!(found.host.dxcore_found);
    }

    #[test]
    fn a_kernel_that_is_not_wsl_is_a_warning_and_kfd_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (options, wsl) = fake(dir.path(), 2);
        write(
            &wsl.proc_root.join("version"),
            "Linux version 6.1.0-18-amd64\n",
        );
        let found = discover_wsl(&options, &wsl).expect("discovers");
        assert_eq!(found.host.adapters, 2);
        assert_eq!(found.warnings.len(), 1, "{:?}", found.warnings);
        std::fs::create_dir_all(options.sysfs_root.join("class/kfd")).expect("mkdir");
        assert!(!looks_like_wsl(&options));
    }

    #[test]
    fn bad_input_is_one_line_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (options, wsl) = fake(dir.path(), 0);
        write(&options.sysfs_root.join("class/misc/dxg/dev"), "garbage\n");
        let err = discover_wsl(&options, &wsl).expect_err("bad dev");
        assert!(
            err.to_string().ends_with("is not MAJOR:MINOR: \"garbage\""),
            "{err}"
        );
        std::fs::remove_dir_all(options.sysfs_root.join("class/misc")).expect("rm");
        let err = discover_wsl(&options, &wsl).expect_err("no dxg");
        assert!(
            err.to_string().starts_with("no DirectX GPU device"),
            "{err}"
        );
        let relative = WslOptions {
            lib_root: "usr/lib/wsl".into(),
            ..wsl
        };
        let err = discover_wsl(&options, &relative).expect_err("relative");
        assert!(err.to_string().contains("is not absolute"), "{err}");
    }
}
