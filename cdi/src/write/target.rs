//! What a write to a path replaces: the file at the end of its symlinks, which must be a
//! regular file or missing (see the rules in [`super`]).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::SFlag;

use super::WriteError;

/// What a path holds, in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A directory.
    Directory,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A FIFO (named pipe).
    Fifo,
    /// A Unix socket.
    Socket,
    /// A symbolic link (where none is followed).
    Symlink,
}

impl PathKind {
    /// What an `st_mode` describes; `None` for a regular file.
    pub fn of(mode: u32) -> Option<Self> {
        let kind = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
        Some(match kind {
            SFlag::S_IFDIR => PathKind::Directory,
            SFlag::S_IFCHR => PathKind::CharDevice,
            SFlag::S_IFBLK => PathKind::BlockDevice,
            SFlag::S_IFIFO => PathKind::Fifo,
            SFlag::S_IFSOCK => PathKind::Socket,
            SFlag::S_IFLNK => PathKind::Symlink,
            _ => return None,
        })
    }
}

impl PathKind {
    /// What it is called in messages: `a directory`, `a character device`, ...
    pub fn text(self) -> &'static str {
        match self {
            PathKind::Directory => "a directory",
            PathKind::CharDevice => "a character device",
            PathKind::BlockDevice => "a block device",
            PathKind::Fifo => "a FIFO",
            PathKind::Socket => "a socket",
            PathKind::Symlink => "a symbolic link",
        }
    }
}

impl std::fmt::Display for PathKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

/// The most symlinks followed for one path (Linux's own limit).
const MAX_LINKS: usize = 40;

/// The file a write to `path` replaces: `path` itself, or the end of the chain of symlinks at it.
/// Each link must belong to the caller or root; the end must exist when a link was followed.
/// Directories on the way are not checked: they are where the file lives.
pub fn resolve(path: &Path) -> Result<PathBuf, WriteError> {
    let caller = nix::unistd::geteuid().as_raw();
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound && current == path => {
                return Ok(current);
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(WriteError::DanglingSymlink {
                    path: path.into(),
                    target: current,
                });
            }
            Err(source) => {
                return Err(WriteError::Follow {
                    path: path.into(),
                    source,
                });
            }
        };
        if !meta.file_type().is_symlink() {
            return Ok(current);
        }
        if meta.uid() != caller && meta.uid() != 0 {
            return Err(WriteError::ForeignSymlink {
                path: path.into(),
                link: current,
                owner: meta.uid(),
            });
        }
        let link = fs::read_link(&current).map_err(|source| WriteError::Follow {
            path: path.into(),
            source,
        })?;
        current = match current.parent() {
            Some(dir) => dir.join(link),
            None => link,
        };
    }
    Err(WriteError::Follow {
        path: path.into(),
        source: io::Error::from(Errno::ELOOP),
    })
}

/// Checks, without writing, that [`write_file`](super::write_file) may write `path`: resolves it as
/// [`resolve`] does and refuses a target that is not a regular file. Returns the target. A
/// command calls it before its other work so that a wrong path is its first and only error.
pub fn check_target(path: &Path) -> Result<PathBuf, WriteError> {
    let target = resolve(path)?;
    match fs::symlink_metadata(&target) {
        Ok(meta) => match PathKind::of(meta.mode()) {
            None => Ok(target),
            Some(kind) => Err(WriteError::NotRegular {
                path: path.into(),
                target: (target != path).then(|| target.clone()),
                kind,
            }),
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(target),
        Err(source) => Err(WriteError::Inspect {
            path: target,
            source,
        }),
    }
}
