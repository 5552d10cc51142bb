//! The recording fake of [`Syscalls`]: an in-memory file system, loaded programs and the list of
//! mutating operations, for unit tests of the policy above the trait. Compiled only for tests
//! (this crate's, and others' through the `fake-syscalls` feature).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::{FileKind, FileStat, NodeSpec, Syscalls};

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
    /// The user namespace was entered.
    EnterUserNamespace(PathBuf),
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

    fn record(&self, op: Op) {
        self.ops.borrow_mut().push(op);
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
        self.record(op(path));
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
        self.record(Op::Chown(path, uid, gid));
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
        self.record(Op::BindMount(source.to_path_buf(), path));
        Ok(())
    }

    fn enter_mount_namespace(&self, ns: &Path) -> Result<(), Errno> {
        self.check(ns)?;
        self.record(Op::EnterMountNamespace(ns.to_path_buf()));
        Ok(())
    }

    fn enter_user_namespace(&self, ns: &Path) -> Result<(), Errno> {
        self.check(ns)?;
        self.record(Op::EnterUserNamespace(ns.to_path_buf()));
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
        self.record(Op::Write(path.to_path_buf(), contents.to_string()));
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
        self.record(Op::BpfLoad(instructions.len()));
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
        self.record(Op::BpfAttach(cgroup.to_path_buf(), replace));
        Ok(())
    }

    fn bpf_detach_device_program(&self, cgroup: &Path, id: u32) -> Result<(), Errno> {
        self.check(cgroup)?;
        let mut attached = self.attached.borrow_mut();
        let list = attached.entry(cgroup.to_path_buf()).or_default();
        let pos = list.iter().position(|p| *p == id).ok_or(Errno::ENOENT)?;
        list.remove(pos);
        self.record(Op::BpfDetach(cgroup.to_path_buf(), id));
        Ok(())
    }
}
