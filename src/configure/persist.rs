//! Writing engine configs safely: a one-time backup of the original, atomic replacement that keeps
//! the file mode, the ledger of what amdgpu-cdi changed (`<config>.amdgpu-cdi.json`), and the lock
//! that serialises concurrent runs on one config (`.<config name>.amdgpu-cdi.lock` beside it).
//!
//! The atomic write is `cdi::write::write_atomic` (temp file in the same directory, fsync, rename,
//! fsync of the directory).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::change::Change;

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
    /// Writing a file atomically failed (the file is untouched).
    #[error("cannot update {path} (run as root?)")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        error: cdi::write::WriteError,
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

/// Reads a file; `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, PersistError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(PersistError::Read {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// The target of `path` when it is a symlink (followed fully), else `path` itself.
pub fn resolve_symlink(path: &Path) -> PathBuf {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    }
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
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    write_atomic(&backup, original.as_bytes(), mode)?;
    Ok(Some(backup))
}

/// Replaces `path` with `bytes` atomically: a temp file in the same directory is written, synced
/// and renamed over the target, then the directory is synced. The mode is the existing file's,
/// `default_mode` for a new file. Missing parent directories are created (0755).
pub fn write_keeping_mode(
    path: &Path,
    bytes: &[u8],
    default_mode: u32,
) -> Result<(), PersistError> {
    let mode = fs::metadata(path).map_or(default_mode, |m| m.permissions().mode() & 0o7777);
    write_atomic(path, bytes, mode)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PersistError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|error| PersistError::CreateDir {
            dir: dir.to_path_buf(),
            error,
        })?;
    }
    cdi::write::write_atomic(path, bytes, mode).map_err(|error| PersistError::Write {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(())
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
}

impl Ledger {
    /// A ledger holding `changes`.
    pub fn new(created_file: bool, changes: Vec<Change>) -> Self {
        Ledger {
            written_by: "amdgpu-cdi configure".to_string(),
            created_file,
            changes,
        }
    }
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
}
