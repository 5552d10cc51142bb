//! Creating device nodes inside a container's root filesystem, which is untrusted: its image
//! may contain symlinks such as `dev -> /host/dir` or `dev/dri -> ../../etc`.
//!
//! Every path is walked one component at a time from a handle on the rootfs, and each directory
//! is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)` (see
//! [`crate::syscalls`]), so nothing is ever resolved outside the rootfs. The policy is stricter
//! than "stay inside": a symlink anywhere on the way to a node is refused with an error, and all
//! nodes are checked before the first one is created, so a refused request creates nothing.

use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

use crate::syscalls::{FileKind, FileStat, NodeSpec, Syscalls};

/// One device node to create in the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeToCreate {
    /// Absolute path inside the container, e.g. `/dev/dri/renderD129`.
    pub container_path: PathBuf,
    /// Type, numbers and permission bits (from the host node).
    pub node: NodeSpec,
    /// Owner (host uid, already mapped through any user namespace).
    pub uid: u32,
    /// Group (host gid, already mapped through any user namespace).
    pub gid: u32,
}

/// What happened to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOutcome {
    /// The node was created.
    Created,
    /// An identical device node was already there.
    AlreadyPresent,
}

/// Errors creating nodes in a rootfs.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The container path is not a plain absolute path.
    #[error("refusing device path {path}: it must be absolute without `.` or `..` components")]
    InvalidPath {
        /// The container path.
        path: PathBuf,
    },
    /// The rootfs could not be opened.
    #[error("cannot open the container rootfs {path}: {source}")]
    OpenRoot {
        /// The rootfs path as seen by the hook.
        path: PathBuf,
        /// The cause.
        source: Errno,
    },
    /// The rootfs path passes through a symlink.
    #[error(
        "refusing the container rootfs {rootfs}: {component} is a symlink (runc refuses such a bundle as an invalid rootfs; point root.path at the directory itself)"
    )]
    SymlinkedRoot {
        /// The rootfs path as seen by the hook.
        rootfs: PathBuf,
        /// The symlink on its way.
        component: PathBuf,
    },
    /// A directory on the way is a symlink.
    #[error(
        "refusing to create {node} in {rootfs}: {component} is a symlink (device nodes are never created through symlinks in the container image)"
    )]
    Symlink {
        /// The rootfs.
        rootfs: PathBuf,
        /// The node requested.
        node: PathBuf,
        /// The offending path inside the container.
        component: PathBuf,
    },
    /// A directory on the way is something else.
    #[error("refusing to create {node} in {rootfs}: {component} is not a directory")]
    NotDirectory {
        /// The rootfs.
        rootfs: PathBuf,
        /// The node requested.
        node: PathBuf,
        /// The offending path inside the container.
        component: PathBuf,
    },
    /// Something that is not the same device already exists where the node should go.
    #[error("refusing to replace {node} in {rootfs}: {found} is already there")]
    Occupied {
        /// The rootfs.
        rootfs: PathBuf,
        /// The node requested.
        node: PathBuf,
        /// What was found, e.g. `a regular file` or `character device 1:3`.
        found: String,
    },
    /// A system call failed.
    #[error("cannot {op} {path} in {rootfs}: {source}")]
    Syscall {
        /// The operation, e.g. `create device node`.
        op: &'static str,
        /// The rootfs.
        rootfs: PathBuf,
        /// The path inside the container.
        path: PathBuf,
        /// The cause.
        source: Errno,
    },
}

fn components(path: &Path) -> Result<Vec<String>, RootfsError> {
    let invalid = || RootfsError::InvalidPath {
        path: path.to_path_buf(),
    };
    let mut parts = Vec::new();
    let mut iter = path.components();
    if iter.next() != Some(Component::RootDir) {
        return Err(invalid());
    }
    for component in iter {
        match component {
            Component::Normal(name) => parts.push(name.to_str().ok_or_else(invalid)?.to_string()),
            _ => return Err(invalid()),
        }
    }
    if parts.is_empty() {
        return Err(invalid());
    }
    Ok(parts)
}

fn describe(stat: &FileStat) -> String {
    match stat.kind {
        FileKind::Directory => "a directory".to_string(),
        FileKind::Symlink => "a symlink".to_string(),
        FileKind::CharDevice => format!("character device {}:{}", stat.major, stat.minor),
        FileKind::BlockDevice => format!("block device {}:{}", stat.major, stat.minor),
        FileKind::Other => "a regular file or other non-device file".to_string(),
    }
}

/// Creates device nodes in a rootfs.
pub struct Rootfs<'a, S: Syscalls> {
    sys: &'a S,
    root: S::Dir,
    display: PathBuf,
}

/// Where a node goes: the handle of its parent directory (`None` for the rootfs itself), the
/// node's name in it, and its path inside the container.
type ParentDir<D> = (Option<D>, String, PathBuf);

impl<'a, S: Syscalls> Rootfs<'a, S> {
    /// Opens the rootfs at `path` (e.g. `/proc/<pid>/root/<bundle rootfs>`).
    pub fn open(sys: &'a S, path: &Path) -> Result<Self, RootfsError> {
        let root = sys.open_dir(path).map_err(|source| RootfsError::OpenRoot {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            sys,
            root,
            display: path.to_path_buf(),
        })
    }

    /// Opens the rootfs at `base` joined with `below`: `base` is trusted (a directory the runtime
    /// named, possibly through `/proc/<pid>/root`) and opened following symlinks; every
    /// component of `below` (from the config's `root.path`) is opened without following one, as
    /// runc refuses a rootfs path through a symlink. `below` holds only plain names.
    pub fn open_below(sys: &'a S, base: &Path, below: &Path) -> Result<Self, RootfsError> {
        let display = base.join(below);
        let open_error = |source| RootfsError::OpenRoot {
            path: display.clone(),
            source,
        };
        let mut dir = sys.open_dir(base).map_err(open_error)?;
        let mut walked = base.to_path_buf();
        for component in below.components() {
            let Component::Normal(name) = component else {
                return Err(open_error(Errno::EINVAL));
            };
            let name = name.to_str().ok_or_else(|| open_error(Errno::EINVAL))?;
            walked.push(name);
            let next = match sys.open_dir_at(&dir, name) {
                Ok(next) => next,
                Err(source) => {
                    return Err(match sys.stat_at(&dir, name) {
                        Ok(Some(stat)) if stat.kind == FileKind::Symlink => {
                            RootfsError::SymlinkedRoot {
                                rootfs: display.clone(),
                                component: walked,
                            }
                        }
                        _ => open_error(source),
                    });
                }
            };
            dir = next;
        }
        Ok(Self {
            sys,
            root: dir,
            display,
        })
    }

    fn syscall(&self, op: &'static str, path: PathBuf) -> impl FnOnce(Errno) -> RootfsError {
        let rootfs = self.display.clone();
        move |source| RootfsError::Syscall {
            op,
            rootfs,
            path,
            source,
        }
    }

    /// Checks one node without changing anything: `Ok(true)` when an identical node exists.
    fn check(&self, request: &NodeToCreate) -> Result<bool, RootfsError> {
        let Some((dir, leaf, here)) = self.walk_to_parent(request, false)? else {
            return Ok(false);
        };
        match self.stat(dir.as_ref().unwrap_or(&self.root), &leaf, &here)? {
            None => Ok(false),
            Some(stat) => self.identical(&stat, request).map(|()| true),
        }
    }

    fn stat(&self, dir: &S::Dir, name: &str, here: &Path) -> Result<Option<FileStat>, RootfsError> {
        self.sys
            .stat_at(dir, name)
            .map_err(self.syscall("inspect", here.to_path_buf()))
    }

    fn expect_directory(
        &self,
        stat: &FileStat,
        request: &NodeToCreate,
        here: &Path,
    ) -> Result<(), RootfsError> {
        match stat.kind {
            FileKind::Directory => Ok(()),
            FileKind::Symlink => Err(RootfsError::Symlink {
                rootfs: self.display.clone(),
                node: request.container_path.clone(),
                component: here.to_path_buf(),
            }),
            _ => Err(RootfsError::NotDirectory {
                rootfs: self.display.clone(),
                node: request.container_path.clone(),
                component: here.to_path_buf(),
            }),
        }
    }

    fn open_child(
        &self,
        dir: &S::Dir,
        name: &str,
        request: &NodeToCreate,
        here: &Path,
    ) -> Result<S::Dir, RootfsError> {
        self.sys
            .open_dir_at(dir, name)
            .map_err(|source| match source {
                // Replaced by a symlink since the stat: still refused.
                Errno::ELOOP => RootfsError::Symlink {
                    rootfs: self.display.clone(),
                    node: request.container_path.clone(),
                    component: here.to_path_buf(),
                },
                Errno::ENOTDIR => RootfsError::NotDirectory {
                    rootfs: self.display.clone(),
                    node: request.container_path.clone(),
                    component: here.to_path_buf(),
                },
                source => RootfsError::Syscall {
                    op: "open directory",
                    rootfs: self.display.clone(),
                    path: here.to_path_buf(),
                    source,
                },
            })
    }

    fn identical(&self, stat: &FileStat, request: &NodeToCreate) -> Result<(), RootfsError> {
        if stat.kind == request.node.kind
            && stat.major == request.node.major
            && stat.minor == request.node.minor
        {
            Ok(())
        } else {
            Err(RootfsError::Occupied {
                rootfs: self.display.clone(),
                node: request.container_path.clone(),
                found: describe(stat),
            })
        }
    }

    /// Creates all `requests`, after checking every one of them: on any refusal nothing is
    /// created. Missing parent directories are created with mode 0755.
    pub fn create_nodes(&self, requests: &[NodeToCreate]) -> Result<Vec<NodeOutcome>, RootfsError> {
        let present = requests
            .iter()
            .map(|request| self.check(request))
            .collect::<Result<Vec<bool>, _>>()?;
        requests
            .iter()
            .zip(present)
            .map(|(request, present)| {
                if present {
                    Ok(NodeOutcome::AlreadyPresent)
                } else {
                    self.create(request)
                }
            })
            .collect()
    }

    /// Walks to the parent directory of `request`, creating missing directories (mode 0755):
    /// returns its handle (`None` for the rootfs itself), the leaf name and the node's path.
    fn parent(&self, request: &NodeToCreate) -> Result<ParentDir<S::Dir>, RootfsError> {
        self.walk_to_parent(request, true)?
            .ok_or_else(|| RootfsError::InvalidPath {
                path: request.container_path.clone(),
            })
    }

    /// Walks component by component (never following a symlink) to the parent directory of
    /// `request`. A missing directory is created (mode 0755) when `create` is set; otherwise the
    /// walk stops with `None`.
    fn walk_to_parent(
        &self,
        request: &NodeToCreate,
        create: bool,
    ) -> Result<Option<ParentDir<S::Dir>>, RootfsError> {
        let parts = components(&request.container_path)?;
        let (leaf, parents) = parts.split_last().ok_or_else(|| RootfsError::InvalidPath {
            path: request.container_path.clone(),
        })?;
        let mut here = PathBuf::from("/");
        let mut dir: Option<S::Dir> = None;
        for name in parents {
            here.push(name);
            let current = dir.as_ref().unwrap_or(&self.root);
            match self.stat(current, name, &here)? {
                Some(stat) => self.expect_directory(&stat, request, &here)?,
                None if !create => return Ok(None),
                None => match self.sys.mkdir_at(current, name, 0o755) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(source) => {
                        return Err(self.syscall("create directory", here.clone())(source));
                    }
                },
            }
            dir = Some(self.open_child(current, name, request, &here)?);
        }
        here.push(leaf);
        Ok(Some((dir, leaf.clone(), here)))
    }

    /// After `EEXIST`: accept what is there only if it is the identical device.
    fn existing(
        &self,
        dir: &S::Dir,
        leaf: &str,
        here: PathBuf,
        request: &NodeToCreate,
    ) -> Result<NodeOutcome, RootfsError> {
        match self.stat(dir, leaf, &here)? {
            Some(stat) => self
                .identical(&stat, request)
                .map(|()| NodeOutcome::AlreadyPresent),
            None => Err(self.syscall("create", here)(Errno::EEXIST)),
        }
    }

    fn create(&self, request: &NodeToCreate) -> Result<NodeOutcome, RootfsError> {
        let (dir, leaf, here) = self.parent(request)?;
        let current = dir.as_ref().unwrap_or(&self.root);
        match self.sys.mknod_at(current, &leaf, request.node) {
            Ok(()) => {}
            Err(Errno::EEXIST) => return self.existing(current, &leaf, here, request),
            Err(source) => return Err(self.syscall("create device node", here)(source)),
        }
        self.sys
            .chown_at(current, &leaf, request.uid, request.gid)
            .map_err(self.syscall("set the owner of", here))?;
        Ok(NodeOutcome::Created)
    }

    /// Bind-mounts host nodes into the rootfs instead of creating them (for a hook without
    /// `CAP_MKNOD` in the host user namespace, running in the container's mount namespace): each
    /// `(request, host path)` gets an empty file as mount point and the host node mounted on it.
    /// Like [`Rootfs::create_nodes`], everything is checked before anything changes; an
    /// identical device already there is accepted.
    pub fn bind_nodes(
        &self,
        requests: &[(NodeToCreate, PathBuf)],
    ) -> Result<Vec<NodeOutcome>, RootfsError> {
        let present = requests
            .iter()
            .map(|(request, _)| self.check(request))
            .collect::<Result<Vec<bool>, _>>()?;
        requests
            .iter()
            .zip(present)
            .map(|((request, host), present)| {
                if present {
                    return Ok(NodeOutcome::AlreadyPresent);
                }
                let (dir, leaf, here) = self.parent(request)?;
                let current = dir.as_ref().unwrap_or(&self.root);
                match self.sys.create_file_at(current, &leaf) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => return self.existing(current, &leaf, here, request),
                    Err(source) => {
                        return Err(self.syscall("create the mount point", here)(source));
                    }
                }
                self.sys
                    .bind_mount_at(host, current, &leaf)
                    .map_err(self.syscall("bind-mount the host node onto", here))?;
                Ok(NodeOutcome::Created)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::{Fake, FakeEntry, Op};

    const ROOT: &str = "/bundle/rootfs";

    fn render(minor: u64) -> NodeToCreate {
        NodeToCreate {
            container_path: PathBuf::from(format!("/dev/dri/renderD{minor}")),
            node: NodeSpec {
                kind: FileKind::CharDevice,
                major: 226,
                minor,
                mode: 0o666,
            },
            uid: 0,
            gid: 0,
        }
    }

    fn kfd() -> NodeToCreate {
        NodeToCreate {
            container_path: PathBuf::from("/dev/kfd"),
            node: NodeSpec {
                kind: FileKind::CharDevice,
                major: 511,
                minor: 0,
                mode: 0o666,
            },
            uid: 1000,
            gid: 1000,
        }
    }

    fn fake_rootfs() -> Fake {
        let fake = Fake::new();
        fake.add(format!("{ROOT}/dev"), FakeEntry::Dir);
        fake
    }

    /// Creating `nodes` in the rootfs of `fake` fails; the error, once checked that nothing was
    /// changed.
    fn refused(fake: &Fake, nodes: &[NodeToCreate]) -> RootfsError {
        let rootfs = Rootfs::open(fake, Path::new(ROOT)).expect("open");
        let err = rootfs.create_nodes(nodes).expect_err("refused");
        assert!(fake.ops().is_empty(), "nothing may be created: {err}");
        err
    }

    #[test]
    fn creates_missing_dri_and_nodes_with_owner() {
        let fake = fake_rootfs();
        let rootfs = Rootfs::open(&fake, Path::new(ROOT)).expect("open");
        let outcome = rootfs.create_nodes(&[kfd(), render(129)]).expect("create");
        assert_eq!(outcome, vec![NodeOutcome::Created, NodeOutcome::Created]);
        assert_eq!(
            fake.ops(),
            vec![
                Op::Mknod(format!("{ROOT}/dev/kfd").into(), kfd().node),
                Op::Chown(format!("{ROOT}/dev/kfd").into(), 1000, 1000),
                Op::Mkdir(format!("{ROOT}/dev/dri").into(), 0o755),
                Op::Mknod(
                    format!("{ROOT}/dev/dri/renderD129").into(),
                    render(129).node
                ),
                Op::Chown(format!("{ROOT}/dev/dri/renderD129").into(), 0, 0),
            ]
        );
    }

    #[test]
    fn identical_node_is_idempotent() {
        let fake = fake_rootfs();
        let rootfs = Rootfs::open(&fake, Path::new(ROOT)).expect("open");
        rootfs.create_nodes(&[render(128)]).expect("first");
        let before = fake.ops().len();
        let outcome = rootfs.create_nodes(&[render(128)]).expect("second");
        assert_eq!(outcome, vec![NodeOutcome::AlreadyPresent]);
        assert_eq!(fake.ops().len(), before);
    }

    #[test]
    fn dev_symlink_is_refused_and_nothing_created() {
        let fake = Fake::new();
        fake.add(
            format!("{ROOT}/dev"),
            FakeEntry::Symlink("/tmp/host".into()),
        );
        assert_eq!(
            refused(&fake, &[render(128)]).to_string(),
            "refusing to create /dev/dri/renderD128 in /bundle/rootfs: /dev is a symlink (device nodes are never created through symlinks in the container image)"
        );
    }

    #[test]
    fn dri_symlink_refuses_every_node_of_the_request() {
        let fake = fake_rootfs();
        fake.add(
            format!("{ROOT}/dev/dri"),
            FakeEntry::Symlink("../../etc".into()),
        );
        // kfd, which could be created, is not either.
        let err = refused(&fake, &[kfd(), render(128)]);
        assert!(
            matches!(err, RootfsError::Symlink { ref component, .. } if component == Path::new("/dev/dri")),
            "{err}"
        );
    }

    #[test]
    fn regular_file_in_place_of_node_is_refused() {
        let fake = fake_rootfs();
        fake.add(format!("{ROOT}/dev/kfd"), FakeEntry::File("x".into()));
        assert_eq!(
            refused(&fake, &[kfd()]).to_string(),
            "refusing to replace /dev/kfd in /bundle/rootfs: a regular file or other non-device file is already there"
        );
    }

    #[test]
    fn different_device_in_place_is_refused() {
        let fake = fake_rootfs();
        let rootfs = Rootfs::open(&fake, Path::new(ROOT)).expect("open");
        rootfs.create_nodes(&[render(128)]).expect("create");
        let mut other = render(128);
        other.node.minor = 130;
        let err = rootfs.create_nodes(&[other]).expect_err("different");
        assert!(
            err.to_string()
                .contains("character device 226:128 is already there"),
            "{err}"
        );
    }

    #[test]
    fn file_in_place_of_directory_is_refused() {
        let fake = fake_rootfs();
        fake.add(format!("{ROOT}/dev/dri"), FakeEntry::File(String::new()));
        let err = refused(&fake, &[render(128)]);
        assert!(matches!(err, RootfsError::NotDirectory { .. }), "{err}");
    }

    #[test]
    fn dot_dot_paths_are_refused() {
        let fake = fake_rootfs();
        let rootfs = Rootfs::open(&fake, Path::new(ROOT)).expect("open");
        let mut bad = kfd();
        bad.container_path = PathBuf::from("/dev/../../etc/kfd");
        let err = rootfs.create_nodes(&[bad.clone()]).expect_err("dotdot");
        assert!(matches!(err, RootfsError::InvalidPath { .. }), "{err}");
        bad.container_path = PathBuf::from("dev/kfd");
        assert!(rootfs.create_nodes(&[bad]).is_err());
    }

    #[test]
    fn missing_rootfs_is_a_clear_error() {
        let fake = Fake::new();
        let err = Rootfs::open(&fake, Path::new("/proc/4242/root/bundle/rootfs"))
            .err()
            .expect("missing");
        assert_eq!(
            err.to_string(),
            "cannot open the container rootfs /proc/4242/root/bundle/rootfs: ENOENT: No such file or directory"
        );
    }

    #[test]
    fn bind_mounts_host_nodes_onto_new_empty_files() {
        let fake = fake_rootfs();
        fake.add(
            "/dev/dri/renderD129",
            FakeEntry::Node(FileStat {
                kind: FileKind::CharDevice,
                major: 226,
                minor: 129,
                mode: 0o666,
                uid: 0,
                gid: 0,
            }),
        );
        let rootfs = Rootfs::open(&fake, Path::new(ROOT)).expect("open");
        let request = (render(129), PathBuf::from("/dev/dri/renderD129"));
        let outcome = rootfs
            .bind_nodes(std::slice::from_ref(&request))
            .expect("bind");
        assert_eq!(outcome, vec![NodeOutcome::Created]);
        let target = PathBuf::from(format!("{ROOT}/dev/dri/renderD129"));
        assert_eq!(
            fake.ops(),
            vec![
                Op::Mkdir(format!("{ROOT}/dev/dri").into(), 0o755),
                Op::CreateFile(target.clone()),
                Op::BindMount("/dev/dri/renderD129".into(), target),
            ]
        );
        let again = rootfs.bind_nodes(&[request]).expect("again");
        assert_eq!(again, vec![NodeOutcome::AlreadyPresent]);
    }

    #[test]
    fn bind_refuses_symlinks_like_create() {
        let fake = Fake::new();
        fake.add(format!("{ROOT}/dev"), FakeEntry::Symlink("/etc".into()));
        let rootfs = Rootfs::open(&fake, Path::new(ROOT)).expect("open");
        let err = rootfs
            .bind_nodes(&[(render(128), PathBuf::from("/dev/dri/renderD128"))])
            .expect_err("symlink");
        assert!(matches!(err, RootfsError::Symlink { .. }), "{err}");
        assert!(fake.ops().is_empty());
    }

    mod real {
        use super::*;
        use crate::syscalls::RealSyscalls;
        use std::os::unix::fs::symlink;

        #[test]
        fn real_symlinked_dev_is_refused_without_touching_the_target() {
            let tmp = tempfile::tempdir().expect("tempdir");
            let rootfs = tmp.path().join("rootfs");
            let outside = tmp.path().join("outside");
            std::fs::create_dir_all(&rootfs).expect("rootfs");
            std::fs::create_dir_all(&outside).expect("outside");
            symlink(&outside, rootfs.join("dev")).expect("symlink");
            let host = RealSyscalls;
            let opened = Rootfs::open(&host, &rootfs).expect("open");
            let err = opened.create_nodes(&[render(128)]).expect_err("refused");
            assert!(matches!(err, RootfsError::Symlink { .. }), "{err}");
            assert_eq!(std::fs::read_dir(&outside).expect("read").count(), 0);
        }

        #[test]
        fn real_relative_dri_symlink_is_refused() {
            let tmp = tempfile::tempdir().expect("tempdir");
            let rootfs = tmp.path().join("rootfs");
            std::fs::create_dir_all(rootfs.join("dev")).expect("dev");
            std::fs::create_dir_all(rootfs.join("etc")).expect("etc");
            symlink("../../etc", rootfs.join("dev/dri")).expect("symlink");
            let host = RealSyscalls;
            let opened = Rootfs::open(&host, &rootfs).expect("open");
            let err = opened.create_nodes(&[render(128)]).expect_err("refused");
            assert!(matches!(err, RootfsError::Symlink { .. }), "{err}");
            assert_eq!(
                std::fs::read_dir(rootfs.join("etc")).expect("read").count(),
                0
            );
        }

        #[test]
        fn real_regular_file_is_refused() {
            let tmp = tempfile::tempdir().expect("tempdir");
            let rootfs = tmp.path().join("rootfs");
            std::fs::create_dir_all(rootfs.join("dev")).expect("dev");
            std::fs::write(rootfs.join("dev/kfd"), "x").expect("file");
            let host = RealSyscalls;
            let opened = Rootfs::open(&host, &rootfs).expect("open");
            let err = opened.create_nodes(&[kfd()]).expect_err("refused");
            assert!(matches!(err, RootfsError::Occupied { .. }), "{err}");
        }
    }
}
