//! Atomic file replacement: the one writer for CDI specs, the engine configs `configure` edits
//! and the OCI bundle configs the runtime wrapper rewrites.
//!
//! Docker and containerd watch the spec directories and reload on every write or rename of a
//! `*.json`/`*.yaml` file, so a spec must appear complete in one step: the bytes go to a temp file
//! with a non-spec extension (`.<name>.tmp-<pid>-<n>`) in the SAME directory (a file renamed in
//! from another directory is not noticed by the watchers), which is given its final mode, synced
//! and renamed over the target; then the directory is synced. Identical content is not rewritten,
//! so re-running a generator does not wake every watcher.
//!
//! What may be replaced, whoever asks:
//! - **Only a regular file, or nothing.** A character or block device, FIFO, socket or directory
//!   at the path is refused with [`WriteError::NotRegular`] before anything is written, and left
//!   as it is: `--output /dev/null` must not turn the host's `/dev/null` into a file.
//! - **A symlink is written at its target.** [`write_file`] follows a symlink at the path (hop by
//!   hop) and replaces the file it names atomically in that file's own directory, so a config
//!   kept as a link by configuration management stays a link. A link is followed only when it
//!   belongs to the caller or to root (the rule the kernel's `fs.protected_symlinks` applies in
//!   sticky directories, here everywhere), and a link to a missing file is refused: neither is
//!   something a careful admin has, both are how a symlink attack looks.
//! - **Permission bits only.** The new file gets `mode & 0o777`: setuid, setgid and sticky bits
//!   are never set, and never carried over from a replaced file ([`Mode::KeepOr`]).
//!
//! [`write_in`] does the same relative to a directory the caller opened once (the wrapper pins
//! the bundle directory that way): the check, the temp file, the rename and the clean-up all
//! name the file relative to that descriptor, so a path that is swapped meanwhile cannot redirect
//! any of them. There a symlink at the name is refused, not followed.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode as NixMode, SFlag};
use nix::unistd::UnlinkatFlags;

use crate::codec::{self, Format};
use crate::spec::Spec;

mod target;

pub use target::{PathKind, check_target, resolve};

/// The mode of spec files: world-readable, as engines running as other users must read them.
pub const SPEC_MODE: u32 = 0o644;

/// The permission bits a written file may get: no setuid, setgid or sticky bit, ever.
pub const PERMISSION_BITS: u32 = 0o777;

/// What [`write_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file was created or replaced.
    Written,
    /// The file already had these bytes and this mode; nothing was touched.
    Unchanged,
}

/// The permission bits of the written file (always masked with [`PERMISSION_BITS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// These bits, whatever the replaced file had.
    Exactly(u32),
    /// The replaced file's permission bits; these for a new file.
    KeepOr(u32),
}

/// How [`write_file`] and [`write_in`] write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// The new file's permission bits.
    pub mode: Mode,
    /// A lasting file in a lasting directory (a spec, an engine config): sync the file before
    /// and the directory after the rename, so the new content survives a crash, and remove the
    /// temp files killed writers left beside it. A file that is read a moment later and is
    /// worthless after a crash (an OCI bundle's config, whose directory goes with its container)
    /// skips both: a sync costs milliseconds, the sweep a directory listing per container.
    pub durable: bool,
}

impl WriteOptions {
    /// Durable, with exactly `mode`.
    pub fn exactly(mode: u32) -> Self {
        WriteOptions {
            mode: Mode::Exactly(mode),
            durable: true,
        }
    }
}

/// Why a file could not be written. The target is untouched and no temp file is left behind.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target path has no file name (e.g. `/` or `..`).
    #[error("cannot write {path}: the path does not name a file")]
    NotAFilePath {
        /// The target.
        path: PathBuf,
    },
    /// The spec file name has neither a `.json` nor a `.yaml` extension.
    #[error("cannot write spec {path}: the file name must end in .json or .yaml")]
    UnknownFormat {
        /// The target.
        path: PathBuf,
    },
    /// The spec's directory could not be created.
    #[error("cannot create spec directory {dir}")]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The path (or the file a symlink at it leads to) is not a regular file.
    #[error("cannot write {path}: {}{kind}, not a regular file (it was left as it is)", via_text(.target.as_deref()))]
    NotRegular {
        /// The path the caller named.
        path: PathBuf,
        /// The file a symlink at `path` leads to, when it was followed.
        target: Option<PathBuf>,
        /// What is there instead.
        kind: PathKind,
    },
    /// A symlink at the path belongs to someone else than the caller and root.
    #[error(
        "cannot write {path}: {link} is a symbolic link owned by uid {owner}, neither the caller \
         nor root (replace the link with the file, or remove it)"
    )]
    ForeignSymlink {
        /// The path the caller named.
        path: PathBuf,
        /// The link (`path` or a link it leads to).
        link: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// A symlink at the path leads to nothing.
    #[error(
        "cannot write {path}: it is a symbolic link to {target}, which does not exist (create \
         the file or remove the link)"
    )]
    DanglingSymlink {
        /// The path the caller named.
        path: PathBuf,
        /// The missing file.
        target: PathBuf,
    },
    /// Following the path's symlinks failed (a loop, an unreadable link or directory).
    #[error("cannot follow {path}")]
    Follow {
        /// The path the caller named.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// What the path holds could not be checked.
    #[error("cannot inspect {path}")]
    Inspect {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A step of writing the temp file failed.
    #[error("cannot {step} temp file {temp} for {path}")]
    Temp {
        /// What was attempted: `create`, `write`, `sync`, `chmod`.
        step: &'static str,
        /// The temp file.
        temp: PathBuf,
        /// The target.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The rename over the target failed.
    #[error("cannot rename {temp} to {path}")]
    Rename {
        /// The temp file.
        temp: PathBuf,
        /// The target.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The directory could not be synced after the rename (the new file is in place, but may not
    /// survive a crash).
    #[error("cannot sync directory {dir} after writing {path}")]
    SyncDir {
        /// The directory.
        dir: PathBuf,
        /// The target.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

impl WriteError {
    /// Whether the path was refused for what it is (not a regular file, a symlink that is not
    /// followed) rather than failing while being written.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            WriteError::NotRegular { .. }
                | WriteError::ForeignSymlink { .. }
                | WriteError::DanglingSymlink { .. }
                | WriteError::Follow { .. }
        )
    }
}

fn via_text(target: Option<&Path>) -> String {
    match target {
        Some(target) => format!("it leads to {}, ", target.display()),
        None => "it is ".to_string(),
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically and durably with permission bits `mode`; see
/// [`write_file`].
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<WriteOutcome, WriteError> {
    write_file(path, bytes, WriteOptions::exactly(mode))
}

/// Writes `bytes` to `path` atomically, unless the file already holds exactly these bytes with
/// this mode. The parent directory must exist.
///
/// `path` must be a regular file or missing; a symlink is followed to the file it names (see the
/// module documentation for the rules), which is then replaced in its own directory. The new file
/// belongs to the calling user; the owner, extended attributes and hard links of a file it
/// replaces are not carried over.
pub fn write_file(
    path: &Path,
    bytes: &[u8],
    options: WriteOptions,
) -> Result<WriteOutcome, WriteError> {
    let target = resolve(path)?;
    let (dir, name) = split(&target)?;
    let dir_fd = match open_dir(&dir) {
        Ok(fd) => fd,
        Err(source) => {
            return Err(WriteError::Temp {
                step: "create",
                temp: dir.join(temp_name(name)),
                path: target.clone(),
                source,
            });
        }
    };
    let place = Destination {
        dir: dir_fd.as_fd(),
        dir_path: &dir,
        name,
        path: target.clone(),
        named: path,
    };
    write_at(&place, bytes, options)
}

/// Writes `bytes` atomically as `name` inside the directory `dir` (opened by the caller;
/// `dir_path` names it in errors), with the rules of [`write_file`] except that a symlink at
/// `name` is refused rather than followed. Every step names the file relative to `dir`.
pub fn write_in(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &OsStr,
    bytes: &[u8],
    options: WriteOptions,
) -> Result<WriteOutcome, WriteError> {
    let path = dir_path.join(name);
    let plain = !name.is_empty() && name != "." && name != ".." && !name.as_bytes().contains(&b'/');
    if !plain {
        return Err(WriteError::NotAFilePath { path });
    }
    let place = Destination {
        dir,
        dir_path,
        name,
        path: path.clone(),
        named: &path,
    };
    write_at(&place, bytes, options)
}

/// Serialises `spec` in the format its extension names (`.json` or `.yaml`) and writes it with
/// [`write_spec_text`].
pub fn write_spec(path: &Path, spec: &Spec) -> Result<WriteOutcome, WriteError> {
    let format = match path.extension() {
        Some(ext) if ext == "json" || ext == "yaml" => Format::from_path(path),
        _ => return Err(WriteError::UnknownFormat { path: path.into() }),
    };
    write_spec_text(path, &codec::to_string(spec, format))
}

/// Writes the text of a spec (serialised by the caller, who may add a leading comment) with
/// [`write_atomic`] and mode 0644, creating the directory (0755) if needed.
pub fn write_spec_text(path: &Path, text: &str) -> Result<WriteOutcome, WriteError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir {
            dir: dir.into(),
            source,
        })?;
    }
    write_atomic(path, text.as_bytes(), SPEC_MODE)
}

/// The directory (`.` for a bare name) and the file name of `path`.
fn split(path: &Path) -> Result<(PathBuf, &OsStr), WriteError> {
    let name = path
        .file_name()
        .ok_or_else(|| WriteError::NotAFilePath { path: path.into() })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// Opens a directory for `*at` calls (and its sync), following symlinks on the way as any path
/// lookup does.
pub fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        NixMode::empty(),
    )
    .map_err(io::Error::from)
}

/// One file to write, named relative to an open directory.
struct Destination<'a> {
    dir: BorrowedFd<'a>,
    dir_path: &'a Path,
    name: &'a OsStr,
    /// `dir_path/name`, for messages.
    path: PathBuf,
    /// The path the caller named (a symlink leading to `path`, or `path`).
    named: &'a Path,
}

fn write_at(
    place: &Destination<'_>,
    bytes: &[u8],
    options: WriteOptions,
) -> Result<WriteOutcome, WriteError> {
    let existing = existing_file(place)?;
    let mode = match (options.mode, &existing) {
        (Mode::KeepOr(_), Some(stat)) => stat.st_mode,
        (Mode::KeepOr(mode) | Mode::Exactly(mode), _) => mode,
    } & PERMISSION_BITS;
    if options.durable {
        remove_stale_temps(place.dir, place.name, Path::new("/proc"));
    }
    if let Some(stat) = &existing
        && is_unchanged(place, stat, bytes, mode)
    {
        return Ok(WriteOutcome::Unchanged);
    }
    let temp_name = temp_name(place.name);
    let temp = TempFile {
        dir: place.dir,
        name: OsString::from(&temp_name),
        keep: false,
    };
    let temp_path = place.dir_path.join(&temp_name);
    let temp_err = |step: &'static str| {
        let temp = temp_path.clone();
        move |source| WriteError::Temp {
            step,
            temp,
            path: place.path.clone(),
            source,
        }
    };

    let fd = nix::fcntl::openat(
        place.dir,
        temp.name.as_os_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        NixMode::from_bits_truncate(0o600),
    )
    .map_err(|errno| temp_err("create")(io::Error::from(errno)))?;
    let mut file = File::from(fd);
    file.write_all(bytes).map_err(temp_err("write"))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(temp_err("chmod"))?;
    if options.durable {
        file.sync_all().map_err(temp_err("sync"))?;
    }
    drop(file);

    #[cfg(test)]
    tests::before_rename();
    nix::fcntl::renameat(place.dir, temp.name.as_os_str(), place.dir, place.name).map_err(
        |errno| WriteError::Rename {
            temp: temp_path.clone(),
            path: place.path.clone(),
            source: io::Error::from(errno),
        },
    )?;
    let mut temp = temp;
    temp.keep = true;

    if options.durable {
        nix::unistd::fsync(place.dir).map_err(|errno| WriteError::SyncDir {
            dir: place.dir_path.to_path_buf(),
            path: place.path.clone(),
            source: io::Error::from(errno),
        })?;
    }
    Ok(WriteOutcome::Written)
}

/// The status of the regular file at the place, `None` when there is none; anything else there
/// is refused.
fn existing_file(place: &Destination<'_>) -> Result<Option<FileStat>, WriteError> {
    match nix::sys::stat::fstatat(place.dir, place.name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => match PathKind::of(stat.st_mode) {
            None => Ok(Some(stat)),
            Some(kind) => Err(WriteError::NotRegular {
                path: place.named.to_path_buf(),
                target: (place.named != place.path).then(|| place.path.clone()),
                kind,
            }),
        },
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(WriteError::Inspect {
            path: place.path.clone(),
            source: io::Error::from(errno),
        }),
    }
}

/// Whether the regular file at the place holds exactly `bytes` with exactly `mode` (permission
/// bits and no others).
fn is_unchanged(place: &Destination<'_>, stat: &FileStat, bytes: &[u8], mode: u32) -> bool {
    if stat.st_mode & 0o7777 != mode || u64::try_from(stat.st_size).ok() != Some(bytes.len() as u64)
    {
        return false;
    }
    let Ok(fd) = nix::fcntl::openat(
        place.dir,
        place.name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        NixMode::empty(),
    ) else {
        return false;
    };
    let mut file = File::from(fd);
    let is_regular = file.metadata().is_ok_and(|m| m.is_file());
    let mut old = Vec::with_capacity(bytes.len());
    is_regular
        && Read::by_ref(&mut file)
            .take(bytes.len() as u64 + 1)
            .read_to_end(&mut old)
            .is_ok()
        && old == bytes
}

/// `.<name>.tmp-<pid>-<n>`: hidden, unique within the process, and not a spec extension, so the
/// watchers of Docker and containerd ignore writes to it.
fn temp_name(name: &OsStr) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id())
}

/// How old a dead writer's temp file must be before [`remove_stale_temps`] deletes it.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Removes the `.<name>.tmp-<pid>-<n>` files that writers killed between creating their temp file
/// and renaming it (SIGKILL, a crash) left next to `<name>` in `dir`. Engines ignore them (not a
/// spec extension), but they would pile up in a persistent directory like /etc/cdi. A file is
/// removed only when no process `<pid>` exists under `proc` AND it is a regular file older than
/// [`STALE_AFTER`], so a live writer in another pid namespace keeps its file. Best effort: errors
/// are ignored, and nothing is removed when `proc` is not mounted.
fn remove_stale_temps(dir: BorrowedFd<'_>, name: &OsStr, proc: &Path) {
    if !proc.join("self").exists() {
        return;
    }
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let own_pid = std::process::id().to_string();
    let Ok(mut entries) = Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        NixMode::empty(),
    ) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.iter().flatten() {
        let Some(rest) = entry
            .file_name()
            .to_str()
            .ok()
            .and_then(|n| n.strip_prefix(&prefix))
        else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        if pid.parse::<u32>().is_err() || n.parse::<u64>().is_err() || pid == own_pid {
            continue;
        }
        if proc.join(pid).exists() {
            continue;
        }
        let file_name = entry.file_name();
        let stale = nix::sys::stat::fstatat(dir, file_name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|stat| {
                let modified = SystemTime::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(stat.st_mtime).unwrap_or(0));
                SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG
                    && now
                        .duration_since(modified)
                        .is_ok_and(|age| age >= STALE_AFTER)
            });
        if stale {
            let _ = nix::unistd::unlinkat(dir, file_name, UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// The temp file, removed when dropped unless it was renamed into place.
struct TempFile<'a> {
    dir: BorrowedFd<'a>,
    name: OsString,
    keep: bool,
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: the file may not exist if creating it failed.
            let _ =
                nix::unistd::unlinkat(self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::names;
    use std::cell::RefCell;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    thread_local! {
        /// Run by the writer right before its rename (in this thread's next write only).
        static BEFORE_RENAME: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    /// The test seam: called by [`write_at`] between writing the temp file and the rename.
    pub(super) fn before_rename() {
        if let Some(action) = BEFORE_RENAME.with(|slot| slot.borrow_mut().take()) {
            action();
        }
    }

    /// The replaced file's permission bits, 0644 for a new file; not synced.
    const KEEP: WriteOptions = WriteOptions {
        mode: Mode::KeepOr(0o644),
        durable: false,
    };

    #[test]
    fn writes_with_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("example.com-device.yaml");
        assert_eq!(
            write_atomic(&path, b"one", 0o644).expect("write"),
            WriteOutcome::Written
        );
        assert_eq!(fs::read(&path).expect("read"), b"one");
        assert_eq!(fs::metadata(&path).expect("stat").mode() & 0o7777, 0o644);
        assert_eq!(names(dir.path()), ["example.com-device.yaml"]);
    }

    #[test]
    fn identical_bytes_are_not_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        write_atomic(&path, b"{}", 0o644).expect("write");
        let inode = fs::metadata(&path).expect("stat").ino();
        assert_eq!(
            write_atomic(&path, b"{}", 0o644).expect("write"),
            WriteOutcome::Unchanged
        );
        assert_eq!(fs::metadata(&path).expect("stat").ino(), inode);
        assert_eq!(
            write_atomic(&path, b"{}", 0o600).expect("write"),
            WriteOutcome::Written
        );
        assert_ne!(fs::metadata(&path).expect("stat").ino(), inode);
        assert_eq!(fs::metadata(&path).expect("stat").mode() & 0o7777, 0o600);
        assert_eq!(
            write_atomic(&path, b"{ }", 0o600).expect("write"),
            WriteOutcome::Written
        );
        assert_eq!(fs::read(&path).expect("read"), b"{ }");
    }

    /// Until issue 12 a symlink was replaced by a regular file; now the file it names is written,
    /// in its own directory, and the link stays.
    #[test]
    fn a_symlink_is_written_at_its_target_in_the_targets_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("managed");
        fs::create_dir(&real).expect("mkdir");
        let target = real.join("daemon.json");
        fs::write(&target, "old").expect("write target");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).expect("chmod");
        // A chain of two links, the first relative.
        std::os::unix::fs::symlink(&target, dir.path().join("second")).expect("symlink");
        let link = dir.path().join("daemon.json");
        std::os::unix::fs::symlink("second", &link).expect("symlink");
        let options = WriteOptions {
            durable: true,
            ..KEEP
        };
        assert_eq!(
            write_file(&link, b"new", options).expect("write"),
            WriteOutcome::Written
        );
        assert!(fs::symlink_metadata(&link).expect("lstat").is_symlink());
        assert_eq!(fs::read(&target).expect("read"), b"new");
        assert_eq!(fs::metadata(&target).expect("stat").mode() & 0o7777, 0o640);
        assert_eq!(names(&real), ["daemon.json"]);
        assert_eq!(names(dir.path()), ["daemon.json", "managed", "second"]);
        assert_eq!(resolve(&link).expect("resolve"), target);
    }

    #[test]
    fn a_symlink_to_nothing_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("spec.json");
        std::os::unix::fs::symlink("missing/spec.json", &link).expect("symlink");
        let err = write_atomic(&link, b"{}", 0o644).expect_err("dangling");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot write {}: it is a symbolic link to {}, which does not exist (create the \
                 file or remove the link)",
                link.display(),
                dir.path().join("missing/spec.json").display()
            )
        );
        assert_eq!(names(dir.path()), ["spec.json"]);
        let looping = dir.path().join("loop.json");
        std::os::unix::fs::symlink("loop.json", &looping).expect("symlink");
        let err = write_atomic(&looping, b"{}", 0o644).expect_err("loop");
        assert!(matches!(err, WriteError::Follow { .. }), "{err}");
    }

    /// FIFOs, sockets and directories (devices need root: tests/e2e/special_files.rs) are refused
    /// before anything is written, directly and behind a symlink.
    #[test]
    fn special_files_are_refused_and_left_untouched() {
        let files = crate::files::not_regular_files("fifo.yaml", "socket.yaml", "dir.yaml");
        let link = files.dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&files.fifo, &link).expect("symlink");
        let cases = [
            (&files.fifo, "it is a FIFO".to_string()),
            (&files.socket, "it is a socket".to_string()),
            (&files.directory, "it is a directory".to_string()),
            (
                &link,
                format!("it leads to {}, a FIFO", files.fifo.display()),
            ),
        ];
        for (path, what) in cases {
            let err = write_atomic(path, b"x", 0o644).expect_err("refused");
            assert_eq!(
                err.to_string(),
                format!(
                    "cannot write {}: {what}, not a regular file (it was left as it is)",
                    path.display()
                )
            );
        }
        assert_eq!(
            names(files.dir.path()),
            ["dir.yaml", "fifo.yaml", "link.yaml", "socket.yaml"]
        );
        assert!(
            fs::symlink_metadata(&files.fifo)
                .expect("lstat")
                .file_type()
                .is_fifo()
        );
        assert!(
            fs::read_dir(&files.directory)
                .expect("dir")
                .next()
                .is_none()
        );
    }

    #[test]
    fn only_permission_bits_are_written_or_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        fs::write(&path, "{}").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o6777)).expect("chmod");
        // Even the same bytes are rewritten: the setuid and setgid bits must go.
        assert_eq!(
            write_file(&path, b"{}", KEEP).expect("write"),
            WriteOutcome::Written
        );
        assert_eq!(fs::metadata(&path).expect("stat").mode() & 0o7777, 0o777);
        write_atomic(&path, b"{}", 0o4755).expect("write");
        assert_eq!(fs::metadata(&path).expect("stat").mode() & 0o7777, 0o755);
    }

    /// `write_in` names everything relative to the directory it was given: renaming that
    /// directory and putting another in its place does not redirect the write.
    #[test]
    fn write_in_stays_in_the_directory_it_was_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bundle = dir.path().join("bundle");
        fs::create_dir(&bundle).expect("mkdir");
        let fd = open_dir(&bundle).expect("open dir");
        fs::rename(&bundle, dir.path().join("moved")).expect("rename");
        fs::create_dir(&bundle).expect("mkdir again");
        write_in(fd.as_fd(), &bundle, "config.json".as_ref(), b"{}", KEEP).expect("write");
        assert_eq!(names(&bundle), Vec::<String>::new());
        assert_eq!(names(&dir.path().join("moved")), ["config.json"]);
        // A symlink at the name is not followed but refused.
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("moved/link")).expect("ln");
        let err = write_in(fd.as_fd(), &bundle, "link".as_ref(), b"{}", KEEP).expect_err("symlink");
        assert!(
            err.to_string()
                .ends_with(": it is a symbolic link, not a regular file (it was left as it is)"),
            "{err}"
        );
        for name in ["", ".", "..", "a/b"] {
            assert!(matches!(
                write_in(fd.as_fd(), &bundle, name.as_ref(), b"", KEEP),
                Err(WriteError::NotAFilePath { .. })
            ));
        }
    }

    #[test]
    fn failure_leaves_target_and_directory_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Renaming a file over a non-empty directory fails after the temp file was written (a
        // directory there from the start is refused before: it appears right before the rename).
        let path = dir.path().join("busy.json");
        let busy = path.clone();
        BEFORE_RENAME.with(|slot| {
            *slot.borrow_mut() = Some(Box::new(move || {
                fs::create_dir(&busy).expect("mkdir");
                fs::write(busy.join("inside"), "").expect("write");
            }));
        });
        let err = write_atomic(&path, b"{}", 0o644).expect_err("rename over a directory");
        assert!(matches!(err, WriteError::Rename { .. }), "{err}");
        assert_eq!(names(dir.path()), ["busy.json"]);
        let err =
            write_atomic(&dir.path().join("missing/x.json"), b"{}", 0o644).expect_err("no dir");
        assert!(
            err.to_string().starts_with("cannot create temp file "),
            "{err}"
        );
        assert!(matches!(
            write_atomic(Path::new("/"), b"", 0o644),
            Err(WriteError::NotAFilePath { .. })
        ));
    }

    fn sample_spec() -> Spec {
        let mut spec: Spec = codec::parse(
            br#"{"cdiVersion": "0.5.0", "kind": "example.com/device",
                "devices": [{"name": "0", "containerEdits": {"env": ["MODE=on"]}}]}"#,
            Format::Json,
        )
        .expect("sample spec parses");
        spec.devices[0]
            .container_edits
            .env
            .push("OCTAL=0755".into());
        spec
    }

    #[test]
    fn write_spec_picks_the_format_by_extension_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = sample_spec();
        for name in ["new/example.com-device.yaml", "new/example.com-device.json"] {
            let path = dir.path().join(name);
            assert_eq!(
                write_spec(&path, &spec).expect("write"),
                WriteOutcome::Written
            );
            assert_eq!(
                write_spec(&path, &spec).expect("rewrite"),
                WriteOutcome::Unchanged
            );
            assert_eq!(
                fs::metadata(&path).expect("stat").mode() & 0o7777,
                SPEC_MODE
            );
            assert_eq!(codec::load(&path).expect("load back"), spec);
        }
        let yaml =
            fs::read_to_string(dir.path().join("new/example.com-device.yaml")).expect("read");
        assert!(yaml.contains("cdiVersion: '0.5.0'"), "{yaml}");
        let json =
            fs::read_to_string(dir.path().join("new/example.com-device.json")).expect("read");
        assert!(json.starts_with('{'), "{json}");
        let err = write_spec(&dir.path().join("spec.yml"), &spec).expect_err("yml refused");
        assert!(matches!(err, WriteError::UnknownFormat { .. }), "{err}");
        assert_eq!(names(dir.path()), ["new"]);
    }

    #[test]
    fn stale_temp_files_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc = tempfile::tempdir().expect("fake /proc");
        fs::create_dir(proc.path().join("self")).expect("self");
        fs::create_dir(proc.path().join("4242")).expect("a live pid");
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        let make = |name: &str, age: Option<std::time::SystemTime>| {
            let path = dir.path().join(name);
            let file = File::create(&path).expect("create");
            if let Some(time) = age {
                file.set_modified(time).expect("set mtime");
            }
        };
        make(".a.yaml.tmp-999999-0", Some(old)); // dead writer, old: removed
        make(".a.yaml.tmp-999999-1", None); // dead writer, fresh: kept
        make(".a.yaml.tmp-4242-0", Some(old)); // live writer: kept
        make(".b.yaml.tmp-999999-0", Some(old)); // another file's temp: kept
        make(".a.yaml.tmp-x-0", Some(old)); // not our pattern: kept
        let fd = open_dir(dir.path()).expect("open dir");
        remove_stale_temps(fd.as_fd(), std::ffi::OsStr::new("a.yaml"), proc.path());
        assert_eq!(
            names(dir.path()),
            [
                ".a.yaml.tmp-4242-0",
                ".a.yaml.tmp-999999-1",
                ".a.yaml.tmp-x-0",
                ".b.yaml.tmp-999999-0"
            ]
        );
        // Without a mounted /proc nothing is removed.
        make(".a.yaml.tmp-999999-0", Some(old));
        remove_stale_temps(fd.as_fd(), std::ffi::OsStr::new("a.yaml"), dir.path());
        assert!(dir.path().join(".a.yaml.tmp-999999-0").exists());
    }

    #[test]
    fn temp_name_is_not_a_spec_extension() {
        let first = temp_name("a.yaml".as_ref());
        let second = temp_name("a.yaml".as_ref());
        assert_ne!(first, second);
        assert!(first.starts_with(".a.yaml.tmp-"), "{first}");
        for name in [first, second] {
            let ext = Path::new(&name).extension().expect("extension");
            assert!(ext != "yaml" && ext != "json", "{name}");
        }
    }
}
