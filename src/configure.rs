//! `amdgpu-cdi configure`: set up Docker, containerd, CRI-O and podman for AMD GPUs without
//! breaking their existing configuration.
//!
//! The work is split in three steps so each can be tested on its own:
//! 1. [`ConfigureOptions::new`] validates what the user asked for before anything touches the system.
//! 2. [`plan`] reads the config files and computes their new text with the engine modules'
//!    pure edit functions (`(original text, settings) -> new text`, see
//!    [`crate::engines::docker`], [`crate::engines::containerd`], [`crate::engines::crio`],
//!    [`crate::engines::podman`]).
//! 3. [`execute`] writes the plan (backup once, atomic write, ledger) or, for `--dry-run`, only
//!    renders it as a unified diff.
//!
//! A run that writes takes the config's [`lock`] before step 2 and keeps it until step 3 is done,
//! so concurrent runs on one config read and write it one after the other.
//!
//! Docker and containerd configs are edited in place and a ledger (`<config>.amdgpu-cdi.json`)
//! records what amdgpu-cdi set and what was there before, so `--remove` undoes exactly that, in
//! place, keeping whatever else the user changed since (see [`crate::engines::change`]; the
//! original bytes come back from the backup only when nothing else changed, see `plan`). CRI-O,
//! podman and containerd 2.x with `imports` get a drop-in file that belongs wholly to amdgpu-cdi
//! and is deleted by `--remove`.

pub mod persist;
mod plan;

use std::path::{Path, PathBuf};

use persist::{FileLock, Ledger, PersistError};
pub use plan::plan;

use crate::engines::change::ChangeError;
use crate::engines::{Engine, RuntimeEntry};

/// The default runtime name (`docker run --runtime amd`).
pub const DEFAULT_RUNTIME_NAME: &str = "amd";

/// A validated `configure` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigureOptions {
    /// The engine.
    pub engine: Engine,
    /// The config file to edit (Docker, containerd) or the drop-in to write (CRI-O, podman).
    pub config: PathBuf,
    /// What to write.
    pub settings: RuntimeEntry,
    /// Undo instead of configure.
    pub remove: bool,
}

impl ConfigureOptions {
    /// Validates a request: the runtime name must be a plain name, paths must be absolute.
    pub fn new(
        engine: Engine,
        config: Option<PathBuf>,
        settings: RuntimeEntry,
        remove: bool,
    ) -> Result<Self, ConfigureError> {
        let name = &settings.runtime_name;
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err(ConfigureError::RuntimeName(name.clone()));
        }
        if !settings.runtime_path.is_absolute() {
            return Err(ConfigureError::RelativePath {
                what: "--runtime-path",
                path: settings.runtime_path.clone(),
            });
        }
        if let Some(dir) = settings.cdi_spec_dirs.iter().find(|d| !d.is_absolute()) {
            return Err(ConfigureError::RelativePath {
                what: "--cdi-spec-dir",
                path: dir.clone(),
            });
        }
        let reserved = [
            "runc",
            "io.containerd.runc.v2",
            "io.containerd.runtime.v1.linux",
        ];
        if engine == Engine::Docker && reserved.contains(&name.as_str()) {
            return Err(ConfigureError::ReservedName(name.clone()));
        }
        if engine == Engine::Podman && settings.set_as_default {
            return Err(ConfigureError::NotForEngine {
                option: "--set-as-default",
                engine,
                hint: "podman injects CDI devices itself: podman run --device amd.com/gpu=0",
            });
        }
        let config = config.unwrap_or_else(|| engine.default_config().to_path_buf());
        Ok(ConfigureOptions {
            engine,
            config,
            settings,
            remove,
        })
    }
}

/// Why `configure` failed. Nothing has been written when an error is returned by [`plan`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    /// The runtime name is not a plain name.
    #[error(
        "invalid runtime name {0:?}: use letters, digits, `-`, `_` and `.` only (for example `amd`)"
    )]
    RuntimeName(String),
    /// The runtime name is one Docker reserves for its built-in runtimes.
    #[error(
        "runtime name {0:?} is reserved by Docker (dockerd would not start): use another, e.g. `amd`"
    )]
    ReservedName(String),
    /// A path option is relative.
    #[error("{what} {path} is not absolute (engines run it from another directory)")]
    RelativePath {
        /// The option.
        what: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// An option that has no meaning for the engine.
    #[error("{option} does not apply to {engine} ({hint})")]
    NotForEngine {
        /// The option.
        option: &'static str,
        /// The engine.
        engine: Engine,
        /// What to do instead.
        hint: &'static str,
    },
    /// A config file could not be edited (does not parse, unexpected types, unsupported version).
    #[error("cannot configure {path}: {error} (the file was left untouched)")]
    Edit {
        /// The config file.
        path: PathBuf,
        /// What is wrong in it.
        error: ChangeError,
    },
    /// A drop-in path holds a file amdgpu-cdi did not write.
    #[error(
        "{0} exists and was not written by amdgpu-cdi; move it away or pass another --config path"
    )]
    NotOurs(PathBuf),
    /// Reading or writing files failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
}

/// What to do with the ledger of a file.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerAction {
    /// Leave it.
    Keep,
    /// Write this ledger.
    Write(Ledger),
    /// Delete it.
    Delete,
}

/// One file of a plan: its text now and after (`None`: absent / to be deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct FileEdit {
    /// The file.
    pub path: PathBuf,
    /// Its text now.
    pub before: Option<String>,
    /// Its text after the plan.
    pub after: Option<String>,
    /// Save `<file>.amdgpu-cdi.bak` before the first change (user files, not our drop-ins).
    pub backup: bool,
    /// The ledger update.
    pub ledger: LedgerAction,
}

impl FileEdit {
    /// Whether the plan changes this file.
    pub fn changes(&self) -> bool {
        self.before != self.after
    }
}

/// Everything `configure` will do, computed without writing.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The engine.
    pub engine: Engine,
    /// Whether this plan removes amdgpu-cdi's configuration.
    pub remove: bool,
    /// The files, in write order.
    pub files: Vec<FileEdit>,
    /// For `--remove`: values left alone because the user changed them (`file: key`).
    pub kept: Vec<String>,
}

impl Plan {
    /// Whether executing the plan changes anything.
    pub fn changes(&self) -> bool {
        self.files.iter().any(FileEdit::changes)
    }
}

/// The lock of one `configure` target, held from [`plan`] to the end of [`execute`]; see
/// [`lock`].
#[derive(Debug)]
pub struct ConfigLock {
    /// `None` when there is nothing a run could write (see [`lock`]).
    _file: Option<FileLock>,
}

/// Waits for and takes the exclusive lock of the file `options` names (after following a
/// symlink, as [`plan`] does): `.<name>.amdgpu-cdi.lock` beside it, removed when the lock is
/// dropped. It covers everything a run on that file writes: the file, its backup and ledger and,
/// for containerd, the drop-in named after it. Hold it across [`plan`] and [`execute`]; a dry run
/// writes nothing and needs no lock.
///
/// `--remove` when the file's directory does not exist locks nothing (and creates nothing): there
/// is nothing to remove, whatever runs at the same time.
pub fn lock(options: &ConfigureOptions) -> Result<ConfigLock, ConfigureError> {
    let config = persist::resolve(&options.config)?;
    let dir_exists = config
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .is_none_or(Path::is_dir);
    let file = if options.remove && !dir_exists {
        None
    } else {
        Some(FileLock::acquire(&config)?)
    };
    Ok(ConfigLock { _file: file })
}

/// The unified diff of one file edit (`/dev/null` for a missing side).
pub fn diff(edit: &FileEdit) -> String {
    let before = edit.before.as_deref().unwrap_or("");
    let after = edit.after.as_deref().unwrap_or("");
    let name = edit.path.display().to_string();
    let old = if edit.before.is_some() {
        name.clone()
    } else {
        "/dev/null".to_string()
    };
    let new = if edit.after.is_some() {
        name
    } else {
        "/dev/null".to_string()
    };
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&old, &new)
        .to_string()
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing to do.
    Unchanged(PathBuf),
    /// Written (created or replaced); `backup` is set when the original was saved now.
    Written {
        /// The file.
        path: PathBuf,
        /// Where the original was saved.
        backup: Option<PathBuf>,
    },
    /// Deleted.
    Deleted(PathBuf),
}

/// Writes the plan: for each changed file a backup of the original (once), an atomic write or a
/// delete, then its ledger. Files are independent; an error stops at the file that failed. The
/// caller holds the [`lock`] taken before the plan was made.
pub fn execute(plan: &Plan) -> Result<Vec<Applied>, ConfigureError> {
    let mut outcomes = Vec::new();
    for edit in &plan.files {
        if !edit.changes() {
            if edit.ledger == LedgerAction::Delete {
                persist::remove_file(&persist::ledger_path(&edit.path))?;
            }
            outcomes.push(Applied::Unchanged(edit.path.clone()));
            continue;
        }
        let outcome = match (&edit.before, &edit.after) {
            (before, Some(after)) => {
                let backup = match before {
                    Some(original) if edit.backup => persist::backup_once(&edit.path, original)?,
                    _ => None,
                };
                persist::write_keeping_mode(&edit.path, after.as_bytes(), 0o644)?;
                Applied::Written {
                    path: edit.path.clone(),
                    backup,
                }
            }
            (_, None) => {
                persist::remove_file(&edit.path)?;
                Applied::Deleted(edit.path.clone())
            }
        };
        match &edit.ledger {
            LedgerAction::Keep => {}
            LedgerAction::Write(ledger) => persist::write_keeping_mode(
                &persist::ledger_path(&edit.path),
                persist::render_ledger(ledger).as_bytes(),
                0o644,
            )?,
            LedgerAction::Delete => {
                persist::remove_file(&persist::ledger_path(&edit.path))?;
                drop_redundant_backup(edit)?;
            }
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// After `--remove`, a backup equal to the restored file holds nothing more: delete it.
fn drop_redundant_backup(edit: &FileEdit) -> Result<(), PersistError> {
    let backup = persist::backup_path(&edit.path);
    if persist::read_optional(&backup)? == edit.after {
        persist::remove_file(&backup)?;
    }
    Ok(())
}
