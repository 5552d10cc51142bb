//! File-system access for discovery, behind a trait so tests can inject failures that a fixture
//! tree cannot produce when the tests run as root (root ignores `chmod 000`), such as the EPERM a
//! KFD topology file returns inside a restricted device cgroup.

use std::io;
use std::path::{Path, PathBuf};

/// What `stat` says about a device node under the dev root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStat {
    /// True for a character device.
    pub is_char_device: bool,
    /// Major number of the device the node refers to.
    pub major: u32,
    /// Minor number of the device the node refers to.
    pub minor: u32,
    /// Owning group.
    pub gid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

/// A directory opened once, so that the files below it are opened relative to it: the kernel
/// then walks one or two path components per file instead of the whole path (a dozen or more
/// under a test root), which is most of the cost of opening a sysfs attribute.
#[derive(Debug)]
pub struct OpenDir {
    path: PathBuf,
    fd: Option<std::os::fd::OwnedFd>,
}

impl OpenDir {
    /// A directory known only by its path: relative reads go through the path-based ones.
    pub fn by_path(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            fd: None,
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The reads discovery makes. [`RealSysfs`] is the real file system; tests wrap it to inject
/// errors for chosen paths.
///
/// Every method but [`SysfsReader::read_to_string`] has a default: the real file system by path,
/// and the relative reads through the path-based ones. A test double therefore implements only
/// what it changes, and every file read, relative or not, reaches its `read_to_string`.
/// [`RealSysfs`] adds reads relative to opened directories.
pub trait SysfsReader {
    /// Reads a whole (small) file.
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// Lists the entry names of a directory, in no particular order (names that are not UTF-8
    /// are left out).
    fn read_dir_names(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
    /// Reads a symbolic link's target.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }
    /// Resolves every symbolic link in `path` (`realpath(3)`).
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }
    /// True when `path` is a directory (following symlinks).
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    /// `stat(2)` of a device node (following symlinks).
    fn stat(&self, path: &Path) -> io::Result<NodeStat> {
        use nix::sys::stat::{SFlag, major, minor, stat};
        let st = stat(path).map_err(io::Error::from)?;
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        Ok(NodeStat {
            is_char_device: kind == SFlag::S_IFCHR,
            major: u32::try_from(major(st.st_rdev)).unwrap_or(u32::MAX),
            minor: u32::try_from(minor(st.st_rdev)).unwrap_or(u32::MAX),
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
        })
    }
    /// Opens a directory for [`SysfsReader::read_at`] and [`SysfsReader::read_link_at`]. Never
    /// fails: a directory that cannot be opened is remembered by path, and the relative reads
    /// then report what the path-based ones report.
    fn open_dir(&self, path: &Path) -> OpenDir {
        OpenDir::by_path(path)
    }
    /// Reads the whole (small) file `name` below `dir`.
    fn read_at(&self, dir: &OpenDir, name: &str) -> io::Result<String> {
        self.read_to_string(&dir.path.join(name))
    }
    /// Reads the target of the symbolic link `name` below `dir`.
    fn read_link_at(&self, dir: &OpenDir, name: &str) -> io::Result<PathBuf> {
        self.read_link(&dir.path.join(name))
    }
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealSysfs;

impl SysfsReader for RealSysfs {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        read_file(std::fs::File::open(path)?)
    }

    fn open_dir(&self, path: &Path) -> OpenDir {
        use nix::fcntl::{OFlag, open};
        use nix::sys::stat::Mode;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        OpenDir {
            path: path.to_path_buf(),
            fd: open(path, flags, Mode::empty()).ok(),
        }
    }

    fn read_at(&self, dir: &OpenDir, name: &str) -> io::Result<String> {
        use nix::fcntl::{OFlag, openat};
        use nix::sys::stat::Mode;
        match &dir.fd {
            Some(fd) => {
                let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
                let file = openat(fd, name, flags, Mode::empty()).map_err(io::Error::from)?;
                read_file(std::fs::File::from(file))
            }
            None => self.read_to_string(&dir.path.join(name)),
        }
    }

    fn read_link_at(&self, dir: &OpenDir, name: &str) -> io::Result<PathBuf> {
        match &dir.fd {
            Some(fd) => nix::fcntl::readlinkat(fd, name)
                .map(PathBuf::from)
                .map_err(io::Error::from),
            None => self.read_link(&dir.path.join(name)),
        }
    }
}

/// The numbers of a sysfs `dev` file, `MAJOR:MINOR` (surrounding whitespace allowed).
pub(super) fn dev_numbers(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Reads an open (small) file to its end.
fn read_file(mut file: std::fs::File) -> io::Result<String> {
    // sysfs attributes are at most a page; reading without `std::fs::read_to_string`'s size
    // probe (an extra statx per file) keeps discovery at one open, read and close per file.
    // The page buffer is zeroed once per thread, not once per file (hundreds per discovery).
    use std::io::Read;
    thread_local! {
        static PAGE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 4096]);
    }
    let mut bytes = Vec::new();
    PAGE.with_borrow_mut(|chunk| -> io::Result<()> {
        loop {
            let n = file.read(chunk)?;
            bytes.extend_from_slice(&chunk[..n]);
            // A short read is the end: sysfs hands out an attribute in one read, and regular
            // files (fixtures) are read in full until their end.
            if n < chunk.len() {
                return Ok(());
            }
        }
    })?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
