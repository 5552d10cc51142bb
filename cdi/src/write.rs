//! Atomic file writes for spec files and the configs other tools read while we write them.
//!
//! Docker and containerd watch the spec directories and reload on every write or rename of a
//! `*.json`/`*.yaml` file, so a spec must appear complete in one step: the bytes go to a temp file
//! with a non-spec extension (`.<name>.tmp-<pid>-<n>`) in the SAME directory (a file renamed in
//! from another directory is not noticed by the watchers), which is synced, given its final mode
//! and renamed over the target; then the directory is synced. Identical content is not rewritten,
//! so re-running a generator does not wake every watcher.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::codec::{self, Format};
use crate::spec::Spec;

/// The mode of spec files: world-readable, as engines running as other users must read them.
pub const SPEC_MODE: u32 = 0o644;

/// What [`write_atomic`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file was created or replaced.
    Written,
    /// The file already had these bytes and this mode; nothing was touched.
    Unchanged,
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

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically with permission bits `mode`, unless the file already holds
/// exactly these bytes with this mode. The parent directory must exist.
///
/// The new file belongs to the calling user; the owner, extended attributes and hard links of a
/// file it replaces are not carried over, and a symlink at `path` is replaced, not followed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<WriteOutcome, WriteError> {
    let name = path
        .file_name()
        .ok_or_else(|| WriteError::NotAFilePath { path: path.into() })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    remove_stale_temps(&dir, name, Path::new("/proc"));
    if is_unchanged(path, bytes, mode) {
        return Ok(WriteOutcome::Unchanged);
    }
    let temp = TempFile {
        path: dir.join(temp_name(name)),
        keep: false,
    };
    let temp_err = |step: &'static str| {
        let temp = temp.path.clone();
        move |source| WriteError::Temp {
            step,
            temp,
            path: path.into(),
            source,
        }
    };

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp.path)
        .map_err(temp_err("create"))?;
    file.write_all(bytes).map_err(temp_err("write"))?;
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(temp_err("chmod"))?;
    file.sync_all().map_err(temp_err("sync"))?;
    drop(file);

    fs::rename(&temp.path, path).map_err(|source| WriteError::Rename {
        temp: temp.path.clone(),
        path: path.into(),
        source,
    })?;
    let mut temp = temp;
    temp.keep = true;

    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| WriteError::SyncDir {
            dir: dir.clone(),
            path: path.into(),
            source,
        })?;
    Ok(WriteOutcome::Written)
}

/// Serialises `spec` in the format its extension names (`.json` or `.yaml`) and writes it with
/// [`write_atomic`] and mode 0644, creating the directory (0755) if needed.
pub fn write_spec(path: &Path, spec: &Spec) -> Result<WriteOutcome, WriteError> {
    let format = match path.extension() {
        Some(ext) if ext == "json" || ext == "yaml" => Format::from_path(path),
        _ => return Err(WriteError::UnknownFormat { path: path.into() }),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir {
            dir: dir.into(),
            source,
        })?;
    }
    write_atomic(path, codec::to_string(spec, format).as_bytes(), SPEC_MODE)
}

/// `.<name>.tmp-<pid>-<n>`: hidden, unique within the process, and not a spec extension, so the
/// watchers of Docker and containerd ignore writes to it.
fn temp_name(name: &std::ffi::OsStr) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id())
}

/// How old a dead writer's temp file must be before [`remove_stale_temps`] deletes it.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Removes the `.<name>.tmp-<pid>-<n>` files that writers killed between creating their temp file
/// and renaming it (SIGKILL, a crash) left next to `<name>`. Engines ignore them (not a spec
/// extension), but they would pile up in a persistent directory like /etc/cdi. A file is removed
/// only when no process `<pid>` exists under `proc` AND it is older than [`STALE_AFTER`], so a
/// live writer in another pid namespace keeps its file. Best effort: errors are ignored, and
/// nothing is removed when `proc` is not mounted.
fn remove_stale_temps(dir: &Path, name: &std::ffi::OsStr, proc: &Path) {
    if !proc.join("self").exists() {
        return;
    }
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let own_pid = std::process::id().to_string();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
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
        let stale = entry.metadata().is_ok_and(|meta| {
            meta.is_file()
                && meta
                    .modified()
                    .ok()
                    .and_then(|time| time.elapsed().ok())
                    .is_some_and(|age| age >= STALE_AFTER)
        });
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn is_unchanged(path: &Path, bytes: &[u8], mode: u32) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.permissions().mode() & 0o7777 != mode & 0o7777 {
        return false;
    }
    meta.len() == bytes.len() as u64 && fs::read(path).is_ok_and(|old| old == bytes)
}

/// The temp file, removed when dropped unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: the file may not exist if creating it failed.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

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
        assert_eq!(entries(dir.path()), ["example.com-device.yaml"]);
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

    #[test]
    fn replaces_a_symlink_instead_of_writing_through_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        fs::write(&target, "x").expect("write target");
        let link = dir.path().join("spec.json");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert_eq!(
            write_atomic(&link, b"x", 0o644).expect("write"),
            WriteOutcome::Written
        );
        assert!(fs::symlink_metadata(&link).expect("stat").is_file());
        assert_eq!(fs::read(&target).expect("read"), b"x");
    }

    #[test]
    fn failure_leaves_target_and_directory_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Renaming a file over a non-empty directory fails after the temp file was written.
        let path = dir.path().join("busy.json");
        fs::create_dir(&path).expect("mkdir");
        fs::write(path.join("inside"), "").expect("write");
        let err = write_atomic(&path, b"{}", 0o644).expect_err("rename over a directory");
        assert!(matches!(err, WriteError::Rename { .. }), "{err}");
        assert_eq!(entries(dir.path()), ["busy.json"]);
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
        assert_eq!(entries(dir.path()), ["new"]);
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
        remove_stale_temps(dir.path(), std::ffi::OsStr::new("a.yaml"), proc.path());
        assert_eq!(
            entries(dir.path()),
            [
                ".a.yaml.tmp-4242-0",
                ".a.yaml.tmp-999999-1",
                ".a.yaml.tmp-x-0",
                ".b.yaml.tmp-999999-0"
            ]
        );
        // Without a mounted /proc nothing is removed.
        make(".a.yaml.tmp-999999-0", Some(old));
        remove_stale_temps(dir.path(), std::ffi::OsStr::new("a.yaml"), dir.path());
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
