//! Writing engine configs safely: a one-time backup of the original, atomic replacement that keeps
//! the file mode, the ledger of what amdgpu-cdi changed (`<config>.amdgpu-cdi.json`), and the lock
//! that serialises concurrent runs on one config (`.<config name>.amdgpu-cdi.lock` beside it).
//!
//! The atomic write is `cdi::write::write_file` (temp file in the same directory, fsync, rename,
//! fsync of the directory), with its rules: only a regular file (or a new path) is replaced, a
//! symlinked config is written at its target, and only permission bits are kept. Reads refuse
//! what is not a regular file too, so a FIFO or a device at a config path neither hangs nor feeds
//! `configure`.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cdi::write::{Mode, PathKind, WriteError, WriteOptions};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::engines::change::{self, Change};

/// Why reading or writing a config, its backup or its ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading a file failed.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// Creating the directory of a file failed.
    #[error("cannot create directory {dir}: {error} (run as root?)")]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// A config path holds something other than a regular file (a device, FIFO, socket or
    /// directory), or a symlink that is not followed; it is left as it is.
    #[error(transparent)]
    Refused(WriteError),
    /// A file to read is not a regular file.
    #[error("cannot read {path}: it is {kind}, not a regular file (it was left as it is)")]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What is there instead.
        kind: PathKind,
    },
    /// Writing a file atomically failed (the file is untouched).
    #[error("cannot update {path} (run as root?)")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        error: WriteError,
    },
    /// Removing a file failed.
    #[error("cannot remove {path}: {error}")]
    Remove {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// The lock file beside a config could not be created or locked.
    #[error("cannot lock {path}: {error} (run as root?)")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// The ledger exists but is not ours or is damaged.
    #[error(
        "cannot parse {path}: {error} (fix or delete it: it records what amdgpu-cdi changed; the original config is in the .amdgpu-cdi.bak file beside it)"
    )]
    Ledger {
        /// The ledger file.
        path: PathBuf,
        /// The JSON error.
        error: serde_json::Error,
    },
}

/// Reads a file (following symlinks); `None` when it does not exist. Anything but a regular file
/// is refused without being opened, and checked again once open: a FIFO does not make the read
/// wait for a writer, a device does not feed it.
pub fn read_optional(path: &Path) -> Result<Option<String>, PersistError> {
    let read_err = |error: io::Error| PersistError::Read {
        path: path.to_path_buf(),
        error,
    };
    let refuse_special = |meta: fs::Metadata| match PathKind::of(meta.mode()) {
        None => Ok(()),
        Some(kind) => Err(PersistError::NotRegular {
            path: path.to_path_buf(),
            kind,
        }),
    };
    match fs::metadata(path) {
        Ok(meta) => refuse_special(meta)?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(read_err(error)),
    }
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err)?;
    refuse_special(file.metadata().map_err(read_err)?)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_err)?;
    Ok(Some(text))
}

/// The file a write to `path` replaces: `path`, or the file a symlink at it leads to (see
/// `cdi::write::resolve` for which symlinks are followed). Anything but a regular file there is
/// refused (`cdi::write::check_target`).
pub fn resolve(path: &Path) -> Result<PathBuf, PersistError> {
    cdi::write::check_target(path).map_err(PersistError::Refused)
}

/// `<file>.amdgpu-cdi.bak`: the file as it was before amdgpu-cdi first changed it.
pub fn backup_path(path: &Path) -> PathBuf {
    suffixed(path, ".amdgpu-cdi.bak")
}

/// `<file>.amdgpu-cdi.json`: the ledger of changes amdgpu-cdi made to the file.
pub fn ledger_path(path: &Path) -> PathBuf {
    suffixed(path, ".amdgpu-cdi.json")
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// `<dir>/.<name>.amdgpu-cdi.lock`: the lock file of `<dir>/<name>` (hidden, and no engine reads
/// files with that extension from a config or drop-in directory).
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or(path.as_os_str()));
    name.push(".amdgpu-cdi.lock");
    parent_dir(path).join(name)
}

/// The directory of `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// An exclusive `flock` on the lock file of one config, held until dropped. Every `configure` run
/// that writes a config (and its backup, ledger and drop-in) holds it from the first read to the
/// last write, so two runs on one file act one after the other and neither loses the other's
/// change. The lock is on a file of its own because the config is replaced by rename: a lock on
/// the old inode would not stop a run that opened the new one.
///
/// The lock file is removed on release, while still locked. A run that opened it before then
/// and locks it afterwards finds that the path no longer names the inode it locked and starts
/// over, so at most one run at a time holds the lock of the current file.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    /// Unlocked and closed when the lock is dropped.
    _flock: Flock<File>,
}

impl FileLock {
    /// Waits for and takes the lock of `config`, creating its directory (0755) when missing.
    pub fn acquire(config: &Path) -> Result<Self, PersistError> {
        let path = lock_path(config);
        let failed = |error: io::Error| PersistError::Lock {
            path: path.clone(),
            error,
        };
        let dir = parent_dir(config);
        fs::create_dir_all(dir).map_err(|error| PersistError::CreateDir {
            dir: dir.to_path_buf(),
            error,
        })?;
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path)
                .map_err(failed)?;
            let locked = loop {
                match Flock::lock(file, FlockArg::LockExclusive) {
                    Ok(locked) => break locked,
                    Err((unlocked, nix::errno::Errno::EINTR)) => file = unlocked,
                    Err((_, errno)) => return Err(failed(io::Error::from(errno))),
                }
            };
            let held = locked.metadata().map_err(failed)?;
            match fs::symlink_metadata(&path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(FileLock {
                        path,
                        _flock: locked,
                    });
                }
                // Removed (or removed and made again) by the run that held it: start over.
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(failed(error)),
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Removed while still locked (see the type's documentation); the flock goes with the
        // descriptor right after. A lock file left behind (no permission) is harmless: the next
        // run locks and removes it.
        let _ = fs::remove_file(&self.path);
    }
}

/// Copies `original` to the backup path unless a backup exists already (the first backup holds
/// the file as it was before amdgpu-cdi ever touched it, so it is never overwritten). Returns the
/// backup path when one was written.
pub fn backup_once(path: &Path, original: &str) -> Result<Option<PathBuf>, PersistError> {
    let backup = backup_path(path);
    if backup.exists() {
        return Ok(None);
    }
    // Permission bits only: a setuid config must not give a setuid backup.
    let mode = fs::metadata(path).map_or(0o600, |m| m.permissions().mode());
    write_atomic(&backup, original.as_bytes(), Mode::Exactly(mode))?;
    Ok(Some(backup))
}

/// Replaces `path` with `bytes` atomically: a temp file in the same directory is written, synced
/// and renamed over the target, then the directory is synced. The permission bits are the
/// existing file's (never its setuid, setgid or sticky bits), `default_mode` for a new file.
/// Missing parent directories are created (0755).
pub fn write_keeping_mode(
    path: &Path,
    bytes: &[u8],
    default_mode: u32,
) -> Result<(), PersistError> {
    write_atomic(path, bytes, Mode::KeepOr(default_mode))
}

fn write_atomic(path: &Path, bytes: &[u8], mode: Mode) -> Result<(), PersistError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|error| PersistError::CreateDir {
            dir: dir.to_path_buf(),
            error,
        })?;
    }
    let options = WriteOptions {
        mode,
        durable: true,
    };
    match cdi::write::write_file(path, bytes, options) {
        Ok(_) => Ok(()),
        Err(error) if error.is_refusal() => Err(PersistError::Refused(error)),
        Err(error) => Err(PersistError::Write {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// Removes a file; absent is fine.
pub fn remove_file(path: &Path) -> Result<(), PersistError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(PersistError::Remove {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// What amdgpu-cdi changed in one config file, kept beside it for `--remove`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Which tool wrote the ledger (always `amdgpu-cdi configure`).
    pub written_by: String,
    /// Whether the config file did not exist before amdgpu-cdi wrote it (then `--remove` deletes
    /// it once nothing else is left in it).
    #[serde(default)]
    pub created_file: bool,
    /// The changes, oldest first.
    pub changes: Vec<Change>,
    /// [`digest`] of the file before amdgpu-cdi first changed it (absent for a file it created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// [`digest`] of the file as amdgpu-cdi last wrote it, kept only while nobody else has
    /// changed the file since the first change: then `--remove` may put back the original's
    /// bytes. Absent once another edit was seen (and in ledgers of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
}

impl Ledger {
    /// A ledger holding `changes`, without digests.
    pub fn new(created_file: bool, changes: Vec<Change>) -> Self {
        Ledger {
            written_by: "amdgpu-cdi configure".to_string(),
            created_file,
            changes,
            original: None,
            written: None,
        }
    }
}

impl Ledger {
    /// The ledger after a run that changed the file from `before` (`None`: absent) to `after`,
    /// making `changes`; `self` is the ledger before the run (empty when there was none).
    pub fn after_run(self, before: Option<&str>, after: &str, changes: Vec<Change>) -> Ledger {
        let first = self.changes.is_empty();
        // Whether the file still holds nothing but amdgpu-cdi's edits of the original: true for
        // a first change, else only when nobody changed the file since amdgpu-cdi last wrote it.
        let untouched = first || (self.written.is_some() && self.written == before.map(digest));
        Ledger {
            created_file: if first {
                before.is_none()
            } else {
                self.created_file
            },
            original: if first {
                before.map(digest)
            } else {
                self.original
            },
            written: untouched.then(|| digest(after)),
            ..Ledger::new(false, change::merge(self.changes, changes))
        }
    }
}

/// The backup of `path` when `current` (the file's text now) holds nothing but amdgpu-cdi's
/// edits of it, as the ledger's digests tell: the file is byte for byte what amdgpu-cdi last
/// wrote, each of its runs found the file as the previous one left it, and the backup is the
/// file the ledger started from. `None` otherwise (and for ledgers without digests).
pub fn untouched_original(
    path: &Path,
    ledger: &Ledger,
    current: &str,
) -> Result<Option<String>, PersistError> {
    if ledger.written != Some(digest(current)) || ledger.original.is_none() {
        return Ok(None);
    }
    let backup = read_optional(&backup_path(path))?;
    Ok(backup.filter(|original| ledger.original == Some(digest(original))))
}

/// A digest of a file's bytes (FNV-1a, 64 bits) for the ledger: enough to tell whether a file
/// is still the one amdgpu-cdi wrote. Not a defence against someone forging a collision: who can
/// edit the config needs no collision to change it.
pub fn digest(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("fnv1a64:{hash:016x}")
}

/// Loads the ledger of `config`; an empty one when there is none.
pub fn load_ledger(config: &Path) -> Result<Ledger, PersistError> {
    let path = ledger_path(config);
    match read_optional(&path)? {
        None => Ok(Ledger::default()),
        Some(text) => {
            serde_json::from_str(&text).map_err(|error| PersistError::Ledger { path, error })
        }
    }
}

/// Renders a ledger as the bytes written to disk.
pub fn render_ledger(ledger: &Ledger) -> String {
    let mut text = serde_json::to_string_pretty(ledger).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;

    #[test]
    fn atomic_write_keeps_the_mode_of_the_replaced_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        fs::write(&path, "{}").expect("write");
        fs::set_permissions(&path, Permissions::from_mode(0o640)).expect("chmod");
        write_keeping_mode(&path, b"{\"a\": 1}", 0o644).expect("atomic write");
        let meta = fs::metadata(&path).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_to_string(&path).expect("read"), "{\"a\": 1}");
        let leftovers = fs::read_dir(dir.path()).expect("readdir").count();
        assert_eq!(leftovers, 1, "no temp file left behind");
    }

    #[test]
    fn the_lock_file_is_hidden_beside_the_config() {
        assert_eq!(
            lock_path(Path::new("/etc/docker/daemon.json")),
            Path::new("/etc/docker/.daemon.json.amdgpu-cdi.lock")
        );
        assert_eq!(
            lock_path(Path::new("config.toml")),
            Path::new("./.config.toml.amdgpu-cdi.lock")
        );
    }

    #[test]
    fn a_second_lock_waits_for_the_first_and_the_lock_file_goes_with_the_last() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration;

        let dir = tempfile::tempdir().expect("tempdir");
        // The config's directory does not exist yet: taking the lock creates it.
        let config = dir.path().join("etc/daemon.json");
        let first = FileLock::acquire(&config).expect("first lock");
        assert!(first.path().is_file());
        let taken = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (config, taken) = (config.clone(), Arc::clone(&taken));
            std::thread::spawn(move || {
                let second = FileLock::acquire(&config).expect("second lock");
                taken.store(true, Ordering::SeqCst);
                second
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !taken.load(Ordering::SeqCst),
            "the second lock did not wait"
        );
        let path = first.path().to_path_buf();
        drop(first);
        // The waiter locked the removed file, saw that, and locked a new one.
        let second = waiter.join().expect("waiter");
        assert!(taken.load(Ordering::SeqCst));
        assert!(path.is_file(), "the second holder's lock file");
        drop(second);
        assert!(!path.exists(), "the lock file is removed on release");
        let left: Vec<_> = fs::read_dir(dir.path().join("etc"))
            .expect("readdir")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn backup_is_written_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        fs::write(&path, "a = 1\n").expect("write");
        assert!(backup_once(&path, "a = 1\n").expect("backup").is_some());
        assert!(
            backup_once(&path, "a = 2\n")
                .expect("second backup")
                .is_none()
        );
        assert_eq!(
            fs::read_to_string(backup_path(&path)).expect("read"),
            "a = 1\n"
        );
    }

    #[test]
    fn the_ledger_trusts_the_backup_only_while_nobody_else_edited_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        let set = |value: &str| Change::Set {
            key: vec!["a".to_string()],
            before: None,
            after: serde_json::Value::String(value.to_string()),
        };
        fs::write(backup_path(&path), "x = 1\n").expect("backup");
        // First run on an existing file, second run on the file as the first left it.
        let first = Ledger::default().after_run(Some("x = 1\n"), "x = 1\na = 1\n", vec![set("1")]);
        assert_eq!(first.original, Some(digest("x = 1\n")));
        assert!(!first.created_file);
        let second = first.after_run(Some("x = 1\na = 1\n"), "x = 1\na = 2\n", vec![set("2")]);
        assert_eq!(second.written, Some(digest("x = 1\na = 2\n")));
        let untouched = untouched_original(&path, &second, "x = 1\na = 2\n").expect("read");
        assert_eq!(untouched.as_deref(), Some("x = 1\n"));
        // A user edit since the last run: the file no longer matches.
        let edited = "# mine\nx = 1\na = 2\n";
        assert_eq!(
            untouched_original(&path, &second, edited).expect("read"),
            None
        );
        // A run on the edited file keeps the edit in what it writes: the backup is out of date
        // for good.
        let third = second.after_run(Some(edited), "# mine\nx = 1\na = 3\n", vec![set("3")]);
        assert_eq!(third.written, None);
        assert_eq!(
            untouched_original(&path, &third, "# mine\nx = 1\na = 3\n").expect("read"),
            None
        );
        // A backup that is not the file the ledger started from is not restored either.
        let other = Ledger::default().after_run(Some("y = 1\n"), "y = 1\na = 1\n", vec![set("1")]);
        assert_eq!(
            untouched_original(&path, &other, "y = 1\na = 1\n").expect("read"),
            None
        );
        // A ledger of an earlier version has no digests.
        let legacy = Ledger::new(false, vec![set("1")]);
        assert_eq!(
            untouched_original(&path, &legacy, "x = 1\na = 1\n").expect("read"),
            None
        );
        assert_eq!(digest(""), "fnv1a64:cbf29ce484222325");
    }
}
