//! The privileged operations the prestart hook performs (node creation inside an untrusted rootfs,
//! cgroup file writes, eBPF device programs), behind one small trait so the policy in
//! [`crate::rootfs`], [`crate::cgroup`] and [`crate::nodes`] is unit-tested with a recording
//! fake and only the end-to-end tests need root.
//!
//! Every path operation inside a rootfs is relative to a directory handle and names exactly one
//! component: the policy layer walks paths itself and never hands a multi-component path to the
//! kernel, so a symlink planted in the rootfs cannot redirect an operation to the host.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

use crate::cgroup::bpf;

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
        let fd = nix::fcntl::open(ns, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNS)
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

impl RealSyscalls {
    fn open_dir_readonly(&self, path: &Path) -> Result<OwnedFd, Errno> {
        nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    }
}

/// One operation recorded by [`Fake`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `mkdirat(dir/name, mode)`.
    Mkdir(PathBuf, u32),
    /// `mknodat(path, node)`.
    Mknod(PathBuf, NodeSpec),
    /// `fchownat(path, uid, gid)`.
    Chown(PathBuf, u32, u32),
    /// An empty file was created as a mount target.
    CreateFile(PathBuf),
    /// `source` was bind-mounted onto the path.
    BindMount(PathBuf, PathBuf),
    /// The mount namespace was entered.
    EnterMountNamespace(PathBuf),
    /// A write to a control file.
    Write(PathBuf, String),
    /// A device program was loaded (its instruction count).
    BpfLoad(usize),
    /// A program was attached, replacing the given id.
    BpfAttach(PathBuf, Option<u32>),
    /// The program with this id was detached.
    BpfDetach(PathBuf, u32),
}

/// An entry of the fake file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeEntry {
    /// A directory.
    Dir,
    /// A symlink with its target (never followed by the fake).
    Symlink(String),
    /// A regular file with its contents.
    File(String),
    /// A device node.
    Node(FileStat),
}

/// A recording fake: an in-memory file system keyed by absolute path, loaded programs, and the
/// list of mutating operations in order. Errors can be injected per path.
#[derive(Debug, Default)]
pub struct Fake {
    /// The file system.
    pub entries: RefCell<BTreeMap<PathBuf, FakeEntry>>,
    /// Mutating operations, in order.
    pub ops: RefCell<Vec<Op>>,
    /// Programs attached per cgroup path (ids).
    pub attached: RefCell<BTreeMap<PathBuf, Vec<u32>>>,
    /// Instructions of every loaded program, by id (ids start at 100).
    pub programs: RefCell<BTreeMap<u32, Vec<u64>>>,
    /// Errors to return for operations on these paths.
    pub failures: RefCell<BTreeMap<PathBuf, Errno>>,
}

impl Fake {
    /// An empty fake with `/` as a directory.
    #[must_use]
    pub fn new() -> Self {
        let fake = Self::default();
        fake.entries
            .borrow_mut()
            .insert(PathBuf::from("/"), FakeEntry::Dir);
        fake
    }

    /// Adds an entry (and its missing parents as directories).
    pub fn add(&self, path: impl AsRef<Path>, entry: FakeEntry) {
        let path = path.as_ref();
        let mut entries = self.entries.borrow_mut();
        for ancestor in path.ancestors().skip(1) {
            entries
                .entry(ancestor.to_path_buf())
                .or_insert(FakeEntry::Dir);
        }
        entries.insert(path.to_path_buf(), entry);
    }

    /// Makes operations on `path` fail with `errno`.
    pub fn fail(&self, path: impl AsRef<Path>, errno: Errno) {
        self.failures
            .borrow_mut()
            .insert(path.as_ref().to_path_buf(), errno);
    }

    /// The recorded mutating operations.
    #[must_use]
    pub fn ops(&self) -> Vec<Op> {
        self.ops.borrow().clone()
    }

    fn check(&self, path: &Path) -> Result<(), Errno> {
        match self.failures.borrow().get(path) {
            Some(errno) => Err(*errno),
            None => Ok(()),
        }
    }

    fn entry(&self, path: &Path) -> Option<FakeEntry> {
        self.entries.borrow().get(path).cloned()
    }

    /// Adds `entry` at `path` unless something is there (`EEXIST`), recording `op(path)`.
    fn create_new(
        &self,
        path: PathBuf,
        entry: FakeEntry,
        op: impl FnOnce(PathBuf) -> Op,
    ) -> Result<(), Errno> {
        self.check(&path)?;
        if self.entry(&path).is_some() {
            return Err(Errno::EEXIST);
        }
        self.entries.borrow_mut().insert(path.clone(), entry);
        self.ops.borrow_mut().push(op(path));
        Ok(())
    }
}

fn fake_stat(entry: &FakeEntry) -> FileStat {
    match entry {
        FakeEntry::Node(st) => *st,
        other => FileStat {
            kind: match other {
                FakeEntry::Dir => FileKind::Directory,
                FakeEntry::Symlink(_) => FileKind::Symlink,
                _ => FileKind::Other,
            },
            major: 0,
            minor: 0,
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
    }
}

impl Syscalls for Fake {
    type Dir = PathBuf;
    type Program = u32;

    fn open_dir(&self, path: &Path) -> Result<PathBuf, Errno> {
        self.check(path)?;
        match self.entry(path) {
            Some(FakeEntry::Dir) => Ok(path.to_path_buf()),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn open_dir_at(&self, dir: &PathBuf, name: &str) -> Result<PathBuf, Errno> {
        let path = dir.join(name);
        self.check(&path)?;
        match self.entry(&path) {
            Some(FakeEntry::Dir) => Ok(path),
            Some(FakeEntry::Symlink(_)) => Err(Errno::ELOOP),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn stat_at(&self, dir: &PathBuf, name: &str) -> Result<Option<FileStat>, Errno> {
        let path = dir.join(name);
        self.check(&path)?;
        Ok(self.entry(&path).as_ref().map(fake_stat))
    }

    fn mkdir_at(&self, dir: &PathBuf, name: &str, mode: u32) -> Result<(), Errno> {
        self.create_new(dir.join(name), FakeEntry::Dir, |path| Op::Mkdir(path, mode))
    }

    fn mknod_at(&self, dir: &PathBuf, name: &str, node: NodeSpec) -> Result<(), Errno> {
        let st = FileStat {
            kind: node.kind,
            major: node.major,
            minor: node.minor,
            mode: node.mode,
            uid: 0,
            gid: 0,
        };
        self.create_new(dir.join(name), FakeEntry::Node(st), |path| {
            Op::Mknod(path, node)
        })
    }

    fn chown_at(&self, dir: &PathBuf, name: &str, uid: u32, gid: u32) -> Result<(), Errno> {
        let path = dir.join(name);
        self.check(&path)?;
        let mut entries = self.entries.borrow_mut();
        match entries.get_mut(&path) {
            Some(FakeEntry::Node(st)) => {
                st.uid = uid;
                st.gid = gid;
            }
            Some(_) => {}
            None => return Err(Errno::ENOENT),
        }
        self.ops.borrow_mut().push(Op::Chown(path, uid, gid));
        Ok(())
    }

    fn create_file_at(&self, dir: &PathBuf, name: &str) -> Result<(), Errno> {
        self.create_new(
            dir.join(name),
            FakeEntry::File(String::new()),
            Op::CreateFile,
        )
    }

    fn bind_mount_at(&self, source: &Path, dir: &PathBuf, name: &str) -> Result<(), Errno> {
        let path = dir.join(name);
        self.check(&path)?;
        let Some(FakeEntry::File(_)) = self.entry(&path) else {
            return Err(Errno::ELOOP);
        };
        let mounted = self.entry(source).ok_or(Errno::ENOENT)?;
        self.entries.borrow_mut().insert(path.clone(), mounted);
        self.ops
            .borrow_mut()
            .push(Op::BindMount(source.to_path_buf(), path));
        Ok(())
    }

    fn enter_mount_namespace(&self, ns: &Path) -> Result<(), Errno> {
        self.check(ns)?;
        self.ops
            .borrow_mut()
            .push(Op::EnterMountNamespace(ns.to_path_buf()));
        Ok(())
    }

    fn stat(&self, path: &Path) -> Result<FileStat, Errno> {
        self.check(path)?;
        self.entry(path)
            .as_ref()
            .map(fake_stat)
            .ok_or(Errno::ENOENT)
    }

    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        self.check(path)?;
        match self.entry(path) {
            Some(FakeEntry::File(text)) => Ok(text),
            Some(_) => Err(std::io::Error::from_raw_os_error(libc::EISDIR)),
            None => Err(std::io::ErrorKind::NotFound.into()),
        }
    }

    fn write_file(&self, path: &Path, contents: &str) -> std::io::Result<()> {
        self.check(path)?;
        if self.entry(path).is_none() {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        self.ops
            .borrow_mut()
            .push(Op::Write(path.to_path_buf(), contents.to_string()));
        Ok(())
    }

    fn bpf_query_device_programs(&self, cgroup: &Path) -> Result<Vec<u32>, Errno> {
        self.check(cgroup)?;
        Ok(self
            .attached
            .borrow()
            .get(cgroup)
            .cloned()
            .unwrap_or_default())
    }

    fn bpf_load_device_program(&self, instructions: &[u64]) -> Result<u32, Errno> {
        let mut programs = self.programs.borrow_mut();
        let id = 100 + u32::try_from(programs.len()).map_err(|_| Errno::E2BIG)?;
        programs.insert(id, instructions.to_vec());
        self.ops.borrow_mut().push(Op::BpfLoad(instructions.len()));
        Ok(id)
    }

    fn bpf_attach_device_program(
        &self,
        cgroup: &Path,
        program: &u32,
        replace: Option<u32>,
    ) -> Result<(), Errno> {
        self.check(cgroup)?;
        let mut attached = self.attached.borrow_mut();
        let list = attached.entry(cgroup.to_path_buf()).or_default();
        if let Some(old) = replace {
            let pos = list.iter().position(|id| *id == old).ok_or(Errno::ENOENT)?;
            list[pos] = *program;
        } else {
            list.push(*program);
        }
        self.ops
            .borrow_mut()
            .push(Op::BpfAttach(cgroup.to_path_buf(), replace));
        Ok(())
    }

    fn bpf_detach_device_program(&self, cgroup: &Path, id: u32) -> Result<(), Errno> {
        self.check(cgroup)?;
        let mut attached = self.attached.borrow_mut();
        let list = attached.entry(cgroup.to_path_buf()).or_default();
        let pos = list.iter().position(|p| *p == id).ok_or(Errno::ENOENT)?;
        list.remove(pos);
        self.ops
            .borrow_mut()
            .push(Op::BpfDetach(cgroup.to_path_buf(), id));
        Ok(())
    }
}
