//! The privileged operations the prestart hook performs (node creation inside an untrusted rootfs,
//! cgroup file writes, eBPF device programs), behind one small trait so the policy in
//! [`crate::rootfs`], [`crate::cgroup`] and [`crate::nodes`] is unit-tested with a recording
//! fake and only the end-to-end tests need root. The fake ([`fake`]) is built for this crate's
//! tests and, through the `fake-syscalls` feature, for the tests of the crates above; never into
//! a release binary.
//!
//! Every path operation inside a rootfs is relative to a directory handle and names exactly one
//! component: the policy layer walks paths itself and never hands a multi-component path to the
//! kernel, so a symlink planted in the rootfs cannot redirect an operation to the host.

use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

use crate::cgroup::bpf;

#[cfg(any(test, feature = "fake-syscalls"))]
pub mod fake;
#[cfg(any(test, feature = "fake-syscalls"))]
pub use fake::{Fake, FakeEntry, Op};

/// The kind of a file as seen by `lstat`, reduced to what the hook decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Anything else: regular file, fifo, socket.
    Other,
}

/// What `lstat` reports about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// File kind.
    pub kind: FileKind,
    /// Device major number (devices only, else 0).
    pub major: u64,
    /// Device minor number (devices only, else 0).
    pub minor: u64,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// A device node to create with `mknodat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpec {
    /// Character or block device (other kinds are rejected by the caller).
    pub kind: FileKind,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits, applied exactly (the umask does not apply).
    pub mode: u32,
}

/// The privileged operations, with the real implementation in [`RealSyscalls`] and a recording fake in
/// [`Fake`].
pub trait Syscalls {
    /// A handle on an opened directory.
    type Dir;
    /// A handle on a loaded eBPF program.
    type Program;

    /// Opens a trusted directory path (the rootfs itself, possibly through `/proc/<pid>/root`).
    fn open_dir(&self, path: &Path) -> Result<Self::Dir, Errno>;
    /// Opens the single component `name` below `dir` as a directory, refusing symlinks and any
    /// escape from `dir` (`openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
    /// RESOLVE_NO_SYMLINKS`, or `O_NOFOLLOW` when `openat2` is unavailable).
    fn open_dir_at(&self, dir: &Self::Dir, name: &str) -> Result<Self::Dir, Errno>;
    /// `lstat` of the single component `name` below `dir`; `Ok(None)` when it does not exist.
    fn stat_at(&self, dir: &Self::Dir, name: &str) -> Result<Option<FileStat>, Errno>;
    /// Creates the directory `name` below `dir` (`mkdirat`).
    fn mkdir_at(&self, dir: &Self::Dir, name: &str, mode: u32) -> Result<(), Errno>;
    /// Creates the device node `name` below `dir` (`mknodat`) with exactly `node.mode`.
    fn mknod_at(&self, dir: &Self::Dir, name: &str, node: NodeSpec) -> Result<(), Errno>;
    /// Changes the owner of `name` below `dir` without following a symlink (`fchownat`).
    fn chown_at(&self, dir: &Self::Dir, name: &str, uid: u32, gid: u32) -> Result<(), Errno>;
    /// Creates the empty regular file `name` below `dir` (`O_CREAT | O_EXCL | O_NOFOLLOW`), to
    /// serve as a bind-mount target.
    fn create_file_at(&self, dir: &Self::Dir, name: &str) -> Result<(), Errno>;
    /// Bind-mounts the trusted host path `source` onto `name` below `dir`, never following a
    /// symlink at `name` (the target is opened first and mounted through its descriptor).
    fn bind_mount_at(&self, source: &Path, dir: &Self::Dir, name: &str) -> Result<(), Errno>;
    /// Joins the mount namespace `ns` (`/proc/<pid>/ns/mnt`); the process must be
    /// single-threaded. Paths resolve in that namespace afterwards.
    fn enter_mount_namespace(&self, ns: &Path) -> Result<(), Errno>;
    /// Joins the user namespace `ns` (`/proc/<pid>/ns/user`): the kernel allows it to a
    /// single-threaded process whose effective uid owns that namespace (a rootless runtime's
    /// user), which then holds every capability there.
    fn enter_user_namespace(&self, ns: &Path) -> Result<(), Errno>;
    /// `lstat` of a trusted host path (the host device node).
    fn stat(&self, path: &Path) -> Result<FileStat, Errno>;
    /// Reads a small text file (`/proc/<pid>/cgroup`, mountinfo).
    fn read_to_string(&self, path: &Path) -> std::io::Result<String>;
    /// Writes `contents` to an existing file in one `write` (cgroup control files).
    fn write_file(&self, path: &Path, contents: &str) -> std::io::Result<()>;
    /// Ids of the `BPF_CGROUP_DEVICE` programs attached directly to a cgroup2 directory.
    fn bpf_query_device_programs(&self, cgroup: &Path) -> Result<Vec<u32>, Errno>;
    /// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program.
    fn bpf_load_device_program(&self, instructions: &[u64]) -> Result<Self::Program, Errno>;
    /// Attaches `program` to a cgroup with `BPF_F_ALLOW_MULTI`, atomically replacing the program
    /// with id `replace` when given (`BPF_F_REPLACE`).
    fn bpf_attach_device_program(
        &self,
        cgroup: &Path,
        program: &Self::Program,
        replace: Option<u32>,
    ) -> Result<(), Errno>;
    /// Detaches the program with id `id` from a cgroup.
    fn bpf_detach_device_program(&self, cgroup: &Path, id: u32) -> Result<(), Errno>;
}

/// The real system calls.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSyscalls;

fn file_stat(st: &nix::sys::stat::FileStat) -> FileStat {
    let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let kind = match fmt {
        SFlag::S_IFDIR => FileKind::Directory,
        SFlag::S_IFLNK => FileKind::Symlink,
        SFlag::S_IFCHR => FileKind::CharDevice,
        SFlag::S_IFBLK => FileKind::BlockDevice,
        _ => FileKind::Other,
    };
    let (major, minor) = match kind {
        FileKind::CharDevice | FileKind::BlockDevice => (
            nix::sys::stat::major(st.st_rdev),
            nix::sys::stat::minor(st.st_rdev),
        ),
        _ => (0, 0),
    };
    FileStat {
        kind,
        major,
        minor,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
    }
}

impl Syscalls for RealSyscalls {
    type Dir = OwnedFd;
    type Program = OwnedFd;

    fn open_dir(&self, path: &Path) -> Result<OwnedFd, Errno> {
        nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    }

    fn open_dir_at(&self, dir: &OwnedFd, name: &str) -> Result<OwnedFd, Errno> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let how = OpenHow::new().flags(flags).resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_SYMLINKS,
        );
        match nix::fcntl::openat2(dir, name, how) {
            // openat2 appeared in Linux 5.6; one component with O_NOFOLLOW is equally safe.
            Err(Errno::ENOSYS) => nix::fcntl::openat(dir, name, flags, Mode::empty()),
            other => other,
        }
    }

    fn stat_at(&self, dir: &OwnedFd, name: &str) -> Result<Option<FileStat>, Errno> {
        match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(file_stat(&st))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn mkdir_at(&self, dir: &OwnedFd, name: &str, mode: u32) -> Result<(), Errno> {
        nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(mode))
    }

    fn mknod_at(&self, dir: &OwnedFd, name: &str, node: NodeSpec) -> Result<(), Errno> {
        let kind = match node.kind {
            FileKind::BlockDevice => SFlag::S_IFBLK,
            _ => SFlag::S_IFCHR,
        };
        // The hook is single-threaded: clearing the umask around the call gives the exact mode
        // without a racy chmod on a path inside the untrusted rootfs.
        let old = nix::sys::stat::umask(Mode::empty());
        let result = nix::sys::stat::mknodat(
            dir,
            name,
            kind,
            Mode::from_bits_truncate(node.mode),
            nix::sys::stat::makedev(node.major, node.minor),
        );
        nix::sys::stat::umask(old);
        result
    }

    fn chown_at(&self, dir: &OwnedFd, name: &str, uid: u32, gid: u32) -> Result<(), Errno> {
        nix::unistd::fchownat(
            dir,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    }

    fn create_file_at(&self, dir: &OwnedFd, name: &str) -> Result<(), Errno> {
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        nix::fcntl::openat(dir, name, flags, Mode::empty()).map(drop)
    }

    fn bind_mount_at(&self, source: &Path, dir: &OwnedFd, name: &str) -> Result<(), Errno> {
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let how = OpenHow::new().flags(flags).resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_SYMLINKS,
        );
        let target = match nix::fcntl::openat2(dir, name, how) {
            Err(Errno::ENOSYS) => nix::fcntl::openat(dir, name, flags, Mode::empty()),
            other => other,
        }?;
        let st = nix::sys::stat::fstat(&target)?;
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
            return Err(Errno::ELOOP);
        }
        let through = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&target));
        nix::mount::mount(
            Some(source),
            through.as_str(),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
    }

    fn enter_mount_namespace(&self, ns: &Path) -> Result<(), Errno> {
        enter_namespace(ns, CloneFlags::CLONE_NEWNS)
    }

    fn enter_user_namespace(&self, ns: &Path) -> Result<(), Errno> {
        enter_namespace(ns, CloneFlags::CLONE_NEWUSER)
    }

    fn stat(&self, path: &Path) -> Result<FileStat, Errno> {
        nix::sys::stat::lstat(path).map(|st| file_stat(&st))
    }

    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        fs::read_to_string(path)
    }

    fn write_file(&self, path: &Path, contents: &str) -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).open(path)?;
        file.write_all(contents.as_bytes())
    }

    fn bpf_query_device_programs(&self, cgroup: &Path) -> Result<Vec<u32>, Errno> {
        let dir = self.open_dir_readonly(cgroup)?;
        bpf::query_device_programs(&dir)
    }

    fn bpf_load_device_program(&self, instructions: &[u64]) -> Result<OwnedFd, Errno> {
        bpf::load_device_program(instructions)
    }

    fn bpf_attach_device_program(
        &self,
        cgroup: &Path,
        program: &OwnedFd,
        replace: Option<u32>,
    ) -> Result<(), Errno> {
        let dir = self.open_dir_readonly(cgroup)?;
        let old = replace.map(bpf::program_by_id).transpose()?;
        bpf::attach_device_program(&dir, program, old.as_ref())
    }

    fn bpf_detach_device_program(&self, cgroup: &Path, id: u32) -> Result<(), Errno> {
        let dir = self.open_dir_readonly(cgroup)?;
        let program = bpf::program_by_id(id)?;
        bpf::detach_device_program(&dir, &program)
    }
}

/// `setns` into the namespace file `ns` (`/proc/<pid>/ns/...`), which must be of type `kind`.
fn enter_namespace(ns: &Path, kind: CloneFlags) -> Result<(), Errno> {
    let fd = nix::fcntl::open(ns, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    nix::sched::setns(fd, kind)
}

impl RealSyscalls {
    fn open_dir_readonly(&self, path: &Path) -> Result<OwnedFd, Errno> {
        nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    }
}
