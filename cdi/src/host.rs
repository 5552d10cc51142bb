//! How this crate looks at host paths: what a path named by a spec is (a character or block
//! device with its numbers, a FIFO, anything else), with or without following symbolic links.
//!
//! [`edits`](crate::edits) fills device nodes from the host node itself ([`HostFs::lstat`]: a
//! symlink is refused, not followed); [`audit`](crate::audit) looks where the engines would look
//! ([`HostFs::stat`]: links followed). Both take a [`HostFs`], so tests (and `doctor --root`)
//! answer for another host; [`LiveHostFs`] is this machine.

use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{FileStat, SFlag};

/// `path` with `.` and `..` resolved by text alone, as a kernel lookup without symlinks would
/// resolve them (`..` never climbs above `/`; repeated slashes fold).
#[must_use]
pub fn lexically_clean(path: &Path) -> PathBuf {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => clean.push("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            Component::Normal(name) => clean.push(name),
        }
    }
    clean
}

/// The file type of a host path, as far as CDI cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A FIFO.
    Fifo,
    /// Anything else: regular file, directory, socket, symlink (when not followed).
    Other,
}

impl NodeType {
    /// The letter CDI and OCI use for a device type (`c`, `b`, `p`); `None` for [`NodeType::Other`].
    #[must_use]
    pub fn letter(self) -> Option<&'static str> {
        match self {
            Self::Char => Some("c"),
            Self::Block => Some("b"),
            Self::Fifo => Some("p"),
            Self::Other => None,
        }
    }
}

/// What a host path is: its type, device numbers (zero unless a device) and permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostNode {
    /// The file type.
    pub kind: NodeType,
    /// Major device number.
    pub major: u64,
    /// Minor device number.
    pub minor: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub permissions: u32,
}

impl HostNode {
    /// A character device with these numbers (permission bits 0o666).
    #[must_use]
    pub fn char_device(major: u64, minor: u64) -> Self {
        Self {
            kind: NodeType::Char,
            major,
            minor,
            permissions: 0o666,
        }
    }

    /// A block device with these numbers (permission bits 0o660).
    #[must_use]
    pub fn block_device(major: u64, minor: u64) -> Self {
        Self {
            kind: NodeType::Block,
            major,
            minor,
            permissions: 0o660,
        }
    }

    fn from_stat(st: &FileStat) -> Self {
        let format = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let kind = if format == SFlag::S_IFCHR {
            NodeType::Char
        } else if format == SFlag::S_IFBLK {
            NodeType::Block
        } else if format == SFlag::S_IFIFO {
            NodeType::Fifo
        } else {
            NodeType::Other
        };
        Self {
            kind,
            major: nix::sys::stat::major(st.st_rdev),
            minor: nix::sys::stat::minor(st.st_rdev),
            permissions: st.st_mode & 0o7777,
        }
    }
}

/// The host's file system as far as specs need to look at it.
pub trait HostFs {
    /// What `path` itself is (`lstat`: a symlink is [`NodeType::Other`]).
    ///
    /// # Errors
    /// The error of `lstat`, e.g. `ENOENT`.
    fn lstat(&self, path: &Path) -> Result<HostNode, Errno>;

    /// What `path` is after following symbolic links (`stat`).
    ///
    /// # Errors
    /// The error of `stat`, e.g. `ENOENT`.
    fn stat(&self, path: &Path) -> Result<HostNode, Errno>;
}

/// This machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveHostFs;

impl HostFs for LiveHostFs {
    fn lstat(&self, path: &Path) -> Result<HostNode, Errno> {
        nix::sys::stat::lstat(path).map(|st| HostNode::from_stat(&st))
    }

    fn stat(&self, path: &Path) -> Result<HostNode, Errno> {
        nix::sys::stat::stat(path).map(|st| HostNode::from_stat(&st))
    }
}

/// The crate's test fake: a host whose listed paths are nodes (the same with or without following
/// links); every other path does not exist.
#[cfg(test)]
pub(crate) struct FakeHostFs(pub(crate) std::collections::BTreeMap<&'static str, HostNode>);

#[cfg(test)]
impl HostFs for FakeHostFs {
    fn lstat(&self, path: &Path) -> Result<HostNode, Errno> {
        self.stat(path)
    }

    fn stat(&self, path: &Path) -> Result<HostNode, Errno> {
        let found = path.to_str().and_then(|p| self.0.get(p));
        found.copied().ok_or(Errno::ENOENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_host_tells_links_from_nodes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &link).expect("symlink");
        let null = LiveHostFs.stat(&link).expect("stat");
        assert_eq!((null.kind, null.major, null.minor), (NodeType::Char, 1, 3));
        assert_eq!(
            LiveHostFs.lstat(&link).expect("lstat").kind,
            NodeType::Other
        );
        assert_eq!(
            LiveHostFs.lstat(Path::new("/dev/null")).expect("lstat"),
            null
        );
        assert_eq!(
            LiveHostFs.lstat(&dir.path().join("missing")),
            Err(Errno::ENOENT)
        );
    }
}
