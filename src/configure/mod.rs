//! `amdgpu-cdi configure`: set up Docker, containerd, CRI-O and podman for AMD GPUs without
//! breaking their existing configuration.
//!
//! The work is split in three steps so each can be tested on its own:
//! 1. [`ConfigureOptions::new`] validates what the user asked for before anything touches the system.
//! 2. [`plan`] reads the config files and computes their new text with the engine modules'
//!    pure edit functions (`(original text, settings) -> new text`, see [`docker`],
//!    [`containerd`], [`crio`], [`podman`]).
//! 3. [`execute`] writes the plan (backup once, atomic write, ledger) or, for `--dry-run`, only
//!    renders it as a unified diff.
//!
//! A run that writes takes the config's [`lock`] before step 2 and keeps it until step 3 is done,
//! so concurrent runs on one config read and write it one after the other.
//!
//! Docker and containerd configs are edited in place and a ledger (`<config>.amdgpu-cdi.json`)
//! records what amdgpu-cdi set and what was there before, so `--remove` undoes exactly that, in
//! place, keeping whatever else the user changed since (see [`change`]; the original bytes come
//! back from the backup only when nothing else changed, see `remove_in_place`). CRI-O, podman and containerd 2.x with `imports` get a drop-in file that belongs
//! wholly to amdgpu-cdi and is deleted by `--remove`.

pub mod change;
pub mod containerd;
pub mod crio;
pub mod docker;
pub mod persist;
pub mod podman;
#[cfg(test)]
mod strategies;
mod toml_tree;

use std::fmt;
use std::path::{Path, PathBuf};

use change::{Change, ChangeError};
use persist::{FileLock, Ledger, PersistError};

/// First line of every drop-in amdgpu-cdi writes; a drop-in without it is not touched.
pub const DROPIN_HEADER: &str = "# Written by `amdgpu-cdi configure`; \
    `amdgpu-cdi configure <engine> --remove` deletes this file.\n";

/// The hooks.d directory amdgpu-cdi's packages install their hook configs into.
pub const HOOKS_DIR: &str = "/usr/share/containers/oci/hooks.d";

/// The CDI spec directories every engine reads by default.
pub const STANDARD_CDI_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

/// The default runtime name (`docker run --runtime amd`).
pub const DEFAULT_RUNTIME_NAME: &str = "amd";

/// Where the wrapper is installed by the packages.
pub const DEFAULT_RUNTIME_PATH: &str = "/usr/bin/amdgpu-container-runtime";

/// A container engine `configure` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Docker Engine (`daemon.json`).
    Docker,
    /// containerd (`config.toml`, version 2 or 3).
    Containerd,
    /// CRI-O (a `crio.conf.d` drop-in).
    Crio,
    /// Podman (a `containers.conf.d` drop-in).
    Podman,
}

impl Engine {
    /// The file `configure` edits when `--config` is not given.
    pub fn default_config(self) -> &'static Path {
        Path::new(match self {
            Engine::Docker => "/etc/docker/daemon.json",
            Engine::Containerd => "/etc/containerd/config.toml",
            Engine::Crio => "/etc/crio/crio.conf.d/99-amdgpu-cdi.conf",
            Engine::Podman => "/etc/containers/containers.conf.d/99-amdgpu-cdi.conf",
        })
    }

    /// What the user must do for the engine to read the new configuration.
    pub fn restart_hint(self) -> &'static str {
        match self {
            Engine::Docker => "restart Docker to apply: systemctl restart docker",
            Engine::Containerd => "restart containerd to apply: systemctl restart containerd",
            Engine::Crio => "restart CRI-O to apply: systemctl restart crio",
            Engine::Podman => "podman reads the new configuration on its next command",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Docker => "docker",
            Engine::Containerd => "containerd",
            Engine::Crio => "crio",
            Engine::Podman => "podman",
        })
    }
}

/// What to write into an engine config (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEntry {
    /// Name of the runtime entry (`amd`).
    pub runtime_name: String,
    /// Absolute path of `amdgpu-container-runtime`.
    pub runtime_path: PathBuf,
    /// Make the wrapper the engine's default runtime.
    pub set_as_default: bool,
    /// Extra CDI spec directories (absolute).
    pub cdi_spec_dirs: Vec<PathBuf>,
}

impl RuntimeEntry {
    /// The spec directories as strings.
    pub fn spec_dir_strings(&self) -> Vec<String> {
        self.cdi_spec_dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        RuntimeEntry {
            runtime_name: DEFAULT_RUNTIME_NAME.to_string(),
            runtime_path: PathBuf::from(DEFAULT_RUNTIME_PATH),
            set_as_default: false,
            cdi_spec_dirs: Vec::new(),
        }
    }
}

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

/// The pure result of configuring a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Edited {
    /// The new text (the original, byte for byte, when nothing changed).
    pub text: String,
    /// What was changed.
    pub changes: Vec<Change>,
}

/// The pure result of removing recorded changes from a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Reverted {
    /// The new text.
    pub text: String,
    /// Dotted keys left alone because they changed since amdgpu-cdi set them.
    pub kept: Vec<String>,
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

/// Reads the engine's files and computes the plan. Take the [`lock`] first when the plan is to be
/// executed.
pub fn plan(options: &ConfigureOptions) -> Result<Plan, ConfigureError> {
    // Edit the file a symlinked config points to: renaming over the link would replace it.
    // The writer follows the same link the same way; a link it would refuse is refused here,
    // before anything is read.
    let options = &ConfigureOptions {
        config: persist::resolve(&options.config)?,
        ..options.clone()
    };
    let mut plan = Plan {
        engine: options.engine,
        remove: options.remove,
        files: Vec::new(),
        kept: Vec::new(),
    };
    match (options.engine, options.remove) {
        (Engine::Docker, false) => {
            plan.files.push(in_place(&options.config, |text| {
                docker::configure(text, &options.settings)
            })?);
        }
        (Engine::Containerd, false) => plan_containerd(options, &mut plan)?,
        (Engine::Crio | Engine::Podman, false) => {
            let main = main_config(options.engine, &options.config);
            let main_text = match &main {
                Some(path) => persist::read_optional(path)?,
                None => None,
            };
            let text = match options.engine {
                Engine::Crio => crio::dropin(&options.settings, main_text.as_deref()),
                _ => podman::dropin(&options.settings, main_text.as_deref()),
            }
            .map_err(|error| ConfigureError::Edit {
                path: main.clone().unwrap_or_default(),
                error,
            })?;
            plan.files.push(dropin_write(&options.config, text)?);
        }
        (Engine::Docker | Engine::Containerd, true) => {
            let engine = if options.engine == Engine::Docker {
                &DOCKER
            } else {
                &CONTAINERD
            };
            if let Some(edit) = remove_in_place(&options.config, engine, &mut plan.kept)? {
                plan.files.push(edit);
            }
            if options.engine == Engine::Containerd
                && let Some(edit) = dropin_delete(&containerd_dropin(&options.config))?
            {
                plan.files.push(edit);
            }
        }
        (Engine::Crio | Engine::Podman, true) => {
            if let Some(edit) = dropin_delete(&options.config)? {
                plan.files.push(edit);
            }
        }
    }
    Ok(plan)
}

fn plan_containerd(options: &ConfigureOptions, plan: &mut Plan) -> Result<(), ConfigureError> {
    let path = &options.config;
    let original = persist::read_optional(path)?;
    let edit_err = |error| ConfigureError::Edit {
        path: path.clone(),
        error,
    };
    let layout = containerd::layout(original.as_deref().unwrap_or("")).map_err(edit_err)?;
    if layout.version == Some(containerd::ConfigVersion::V3) && !layout.imports.is_empty() {
        let dropin = containerd_dropin(path);
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        plan.files.push(in_place(path, |text| {
            containerd::ensure_imported(text, &dropin, &dir)
        })?);
        let text = containerd::dropin(&options.settings).map_err(|error| ConfigureError::Edit {
            path: dropin.clone(),
            error,
        })?;
        plan.files.push(dropin_write(&dropin, text)?);
    } else {
        plan.files.push(in_place(path, |text| {
            containerd::configure(text, &options.settings)
        })?);
    }
    Ok(())
}

/// `<config dir>/conf.d/99-amdgpu-cdi.toml`: containerd 2.x drop-in.
pub fn containerd_dropin(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or(Path::new("/"))
        .join("conf.d")
        .join("99-amdgpu-cdi.toml")
}

/// The engine's main config next to a drop-in directory (`crio.conf`, `containers.conf`).
fn main_config(engine: Engine, dropin: &Path) -> Option<PathBuf> {
    let name = match engine {
        Engine::Crio => "crio.conf",
        Engine::Podman => "containers.conf",
        _ => return None,
    };
    Some(dropin.parent()?.parent()?.join(name))
}

fn in_place(
    path: &Path,
    edit: impl FnOnce(&str) -> Result<Edited, ChangeError>,
) -> Result<FileEdit, ConfigureError> {
    let before = persist::read_optional(path)?;
    let edited = edit(before.as_deref().unwrap_or("")).map_err(|error| ConfigureError::Edit {
        path: path.to_path_buf(),
        error,
    })?;
    let ledger = if edited.changes.is_empty() {
        LedgerAction::Keep
    } else {
        let old = persist::load_ledger(path)?;
        LedgerAction::Write(old.after_run(before.as_deref(), &edited.text, edited.changes))
    };
    let after = if before.is_none() && edited.text.is_empty() {
        None
    } else {
        Some(edited.text)
    };
    Ok(FileEdit {
        path: path.to_path_buf(),
        before,
        after,
        backup: true,
        ledger,
    })
}

/// The engine functions `--remove` needs for a config edited in place.
struct InPlace {
    revert: fn(&str, &[Change]) -> Result<Reverted, ChangeError>,
    is_empty: fn(&str) -> bool,
    same_meaning: fn(&str, &str) -> bool,
}

const DOCKER: InPlace = InPlace {
    revert: docker::remove,
    is_empty: docker::is_empty,
    same_meaning: docker::same_meaning,
};

const CONTAINERD: InPlace = InPlace {
    revert: containerd::remove,
    is_empty: containerd::is_empty,
    same_meaning: containerd::same_meaning,
};

/// Plans the undo of the ledger's changes, in place: only what the ledger says amdgpu-cdi added
/// goes, everything else in the file stays (keys, comments, layout the user changed since).
///
/// The backup's bytes are written back instead (the original formatting returns, a Docker
/// byte order mark included) only when nothing else changed ([`persist::untouched_original`])
/// and the undo means the same as the backup.
fn remove_in_place(
    path: &Path,
    engine: &InPlace,
    kept: &mut Vec<String>,
) -> Result<Option<FileEdit>, ConfigureError> {
    let ledger = persist::load_ledger(path)?;
    if ledger.changes.is_empty() {
        return Ok(None);
    }
    let before = persist::read_optional(path)?;
    let after = match &before {
        None => None,
        Some(text) => {
            let reverted =
                (engine.revert)(text, &ledger.changes).map_err(|error| ConfigureError::Edit {
                    path: path.to_path_buf(),
                    error,
                })?;
            kept.extend(
                reverted
                    .kept
                    .iter()
                    .map(|k| format!("{}: {k}", path.display())),
            );
            if ledger.created_file && (engine.is_empty)(&reverted.text) {
                None
            } else {
                Some(match persist::untouched_original(path, &ledger, text)? {
                    Some(original) if (engine.same_meaning)(&original, &reverted.text) => original,
                    _ => reverted.text,
                })
            }
        }
    };
    Ok(Some(FileEdit {
        path: path.to_path_buf(),
        before,
        after,
        backup: false,
        ledger: LedgerAction::Delete,
    }))
}

fn dropin_write(path: &Path, text: String) -> Result<FileEdit, ConfigureError> {
    let before = persist::read_optional(path)?;
    if before
        .as_deref()
        .is_some_and(|b| !b.starts_with(DROPIN_HEADER))
    {
        return Err(ConfigureError::NotOurs(path.to_path_buf()));
    }
    Ok(FileEdit {
        path: path.to_path_buf(),
        before,
        after: Some(text),
        backup: false,
        ledger: LedgerAction::Keep,
    })
}

fn dropin_delete(path: &Path) -> Result<Option<FileEdit>, ConfigureError> {
    match persist::read_optional(path)? {
        None => Ok(None),
        Some(text) if !text.starts_with(DROPIN_HEADER) => {
            Err(ConfigureError::NotOurs(path.to_path_buf()))
        }
        Some(text) => Ok(Some(FileEdit {
            path: path.to_path_buf(),
            before: Some(text),
            after: None,
            backup: false,
            ledger: LedgerAction::Keep,
        })),
    }
}

/// The starting list for a drop-in: the value of `key` in the engine's main config, else the
/// engine's `defaults`, plus `ours` (each entry once, order kept).
pub(crate) fn merged_list(
    main_config: Option<&str>,
    key: &[String],
    defaults: &[&str],
    ours: &[String],
) -> Result<Vec<String>, ChangeError> {
    let inherited = match main_config {
        Some(text) => toml_tree::string_list(text, key)?,
        None => None,
    };
    let mut list = inherited.unwrap_or_else(|| defaults.iter().map(|d| (*d).to_string()).collect());
    for item in ours {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
    Ok(list)
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
