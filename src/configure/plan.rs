//! Step 2 of `configure`: the engine's files read and their new text computed, per engine, with
//! the edit functions of [`crate::engines`]; nothing is written here.

use std::path::Path;

use super::persist;
use super::{ConfigureError, ConfigureOptions, FileEdit, LedgerAction, Plan};
use crate::engines::change::{Change, ChangeError};
use crate::engines::{
    self, DROPIN_HEADER, Edited, Engine, Reverted, RuntimeEntry, containerd, crio, docker, podman,
};

/// Reads the engine's files and computes the plan. Take the [`lock`](super::lock) first when the plan is to be
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
    match options.engine {
        Engine::Docker => plan_in_place(options, &DOCKER, &mut plan)?,
        Engine::Containerd => plan_containerd(options, &mut plan)?,
        Engine::Crio => plan_dropin(options, crio::dropin, &mut plan)?,
        Engine::Podman => plan_dropin(options, podman::dropin, &mut plan)?,
    }
    Ok(plan)
}

/// Docker, and containerd without a drop-in: the config edited in place, or the ledger's changes
/// undone.
fn plan_in_place(
    options: &ConfigureOptions,
    engine: &InPlace,
    plan: &mut Plan,
) -> Result<(), ConfigureError> {
    let path = &options.config;
    if options.remove {
        plan.files
            .extend(remove_in_place(path, engine, &mut plan.kept)?);
    } else {
        plan.files.push(in_place(path, |text| {
            (engine.configure)(text, &options.settings)
        })?);
    }
    Ok(())
}

/// CRI-O and podman: our drop-in written, its lists starting from the engine's main config; or
/// deleted.
fn plan_dropin(
    options: &ConfigureOptions,
    write: fn(&RuntimeEntry, Option<&str>) -> Result<String, ChangeError>,
    plan: &mut Plan,
) -> Result<(), ConfigureError> {
    if options.remove {
        plan.files.extend(dropin_delete(&options.config)?);
        return Ok(());
    }
    let main = engines::main_config(options.engine, &options.config);
    let main_text = match &main {
        Some(path) => persist::read_optional(path)?,
        None => None,
    };
    let text =
        write(&options.settings, main_text.as_deref()).map_err(|error| ConfigureError::Edit {
            path: main.clone().unwrap_or_default(),
            error,
        })?;
    plan.files.push(dropin_write(&options.config, text)?);
    Ok(())
}

/// containerd: config.toml edited in place, or (version 3 with `imports`) our drop-in written and
/// imported; for `--remove`, the ledger's changes undone and the drop-in deleted.
fn plan_containerd(options: &ConfigureOptions, plan: &mut Plan) -> Result<(), ConfigureError> {
    let path = &options.config;
    let dropin = containerd::dropin_path(path);
    if options.remove {
        plan_in_place(options, &CONTAINERD, plan)?;
        plan.files.extend(dropin_delete(&dropin)?);
        return Ok(());
    }
    let original = persist::read_optional(path)?;
    let edit_err = |error| ConfigureError::Edit {
        path: path.clone(),
        error,
    };
    let layout = containerd::layout(original.as_deref().unwrap_or("")).map_err(edit_err)?;
    if layout.version == Some(containerd::ConfigVersion::V3) && !layout.imports.is_empty() {
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
        plan_in_place(options, &CONTAINERD, plan)?;
    }
    Ok(())
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

/// The engine functions for a config edited in place.
struct InPlace {
    configure: fn(&str, &RuntimeEntry) -> Result<Edited, ChangeError>,
    revert: fn(&str, &[Change]) -> Result<Reverted, ChangeError>,
    is_empty: fn(&str) -> bool,
    same_meaning: fn(&str, &str) -> bool,
}

const DOCKER: InPlace = InPlace {
    configure: docker::configure,
    revert: docker::remove,
    is_empty: docker::is_empty,
    same_meaning: docker::same_meaning,
};

const CONTAINERD: InPlace = InPlace {
    configure: containerd::configure,
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
