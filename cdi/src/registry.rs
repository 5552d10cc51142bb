//! The spec-dir registry: every CDI device the spec directories provide, resolved the way the
//! engines resolve them, and injection of requested devices into an OCI config.
//!
//! Loading mirrors the reference Go library (`pkg/cdi/cache.go`, `spec-dirs.go`):
//! - directories are scanned in order; a later directory has a higher priority, and a device it
//!   provides replaces the same qualified name from an earlier one silently;
//! - only regular entries directly inside a directory whose name ends in `.json` or `.yaml` are
//!   read (no `.yml`, no recursion), in file-name order;
//! - a file that cannot be read, parsed or validated is recorded as an error and skipped; the
//!   other files still load;
//! - the same qualified name in two files of the same directory is a conflict: the name is
//!   dropped entirely (even if a higher-priority directory also provides it, as in the Go
//!   library) and an error naming both files is recorded;
//! - a missing directory is not an error.
//!
//! Deliberate differences: an unreadable directory is recorded as an error (Go skips it
//! silently), a device requested twice is injected once, and validation uses this crate's
//! rules, which know versions up to 1.1.0 and also reject a declared version below what the
//! content needs.
//!
//! Spec-dir entries are read under one rule ([`read_entry`]), because the reader is often root
//! and a spec dir may be writable by others (`--spec-dir /tmp/x`): an entry is read only when it
//! is a regular file, or a symbolic link to a regular file made by root, by the reading user, or
//! by the owner of its target. Anything else (a FIFO, which would block Go's reader forever; a
//! device; a link to a directory, a device, or another user's file) is recorded as an error
//! naming the entry, and nothing is read from it. Go follows every link; a link one user plants
//! to another user's file is the only spec a Go engine would load and this crate refuses, and it
//! says so.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use serde_json::Value;

use crate::codec::{self, LoadError};
use crate::edits::{self, EditError};
use crate::spec::{Device, Spec};
use crate::validate::{self, Problem};

/// Where static specs live; the lowest priority.
pub const STATIC_DIR: &str = "/etc/cdi";
/// Where generated specs live; the highest priority by default.
pub const DYNAMIC_DIR: &str = "/var/run/cdi";

/// A problem found while loading the spec directories. None of them stops the loading.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A spec directory exists but could not be listed.
    #[error("cannot read spec directory {}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A spec file could not be read or parsed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A spec file parsed but breaks CDI rules.
    #[error("invalid spec {}: {}", path.display(), join_problems(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Everything wrong with it.
        problems: Vec<Problem>,
    },
    /// A spec-dir entry that is not read (see [`read_entry`]).
    #[error("refusing to read {}: {reason}", path.display())]
    Refused {
        /// The entry.
        path: PathBuf,
        /// Why.
        reason: Refusal,
    },
    /// Two files of the same directory provide the same device; neither provides it.
    #[error(
        "conflicting device {device}: provided by both {} and {} (same directory, so the device is \
         ignored; remove it from one file)",
        first.display(),
        second.display()
    )]
    Conflict {
        /// The qualified device name.
        device: String,
        /// The file that provided it first.
        first: PathBuf,
        /// The file that provided it again.
        second: PathBuf,
    },
}

impl RegistryError {
    /// The file (or directory) the error is about; for a conflict, the second file.
    pub fn path(&self) -> &Path {
        match self {
            RegistryError::ReadDir { dir, .. } => dir,
            RegistryError::Load(err) => err.path(),
            RegistryError::Invalid { path, .. } | RegistryError::Refused { path, .. } => path,
            RegistryError::Conflict { second, .. } => second,
        }
    }
}

/// Why a spec-dir entry is not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The entry is not a regular file.
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    /// The entry is a symbolic link to something other than a regular file.
    #[error("it is a symbolic link to {0}, not to a regular file")]
    LinkToNonRegular(&'static str),
    /// The entry is a symbolic link that a user other than root, the reader and the target's
    /// owner made.
    #[error(
        "it is a symbolic link made by uid {link_owner} to a file of uid {target_owner} (a link in \
         a spec dir is followed only when root, the reading user or the target's owner made it)"
    )]
    ForeignLink {
        /// The link's owner.
        link_owner: u32,
        /// The target's owner.
        target_owner: u32,
    },
}

fn join_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why devices could not be injected. The config is unchanged whenever one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// At least one requested name is not a device the registry provides.
    #[error(
        "unresolvable CDI device{} {} (available: {})",
        if names.len() == 1 { "" } else { "s" },
        crate::text::escape(&names.join(", ")),
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    Unresolvable {
        /// The names that could not be resolved.
        names: Vec<String>,
        /// Every qualified name the registry provides.
        available: Vec<String>,
    },
    /// Applying the edits failed.
    #[error("cannot inject CDI devices {}", crate::text::escape(&names.join(", ")))]
    Edit {
        /// The requested names.
        names: Vec<String>,
        /// The failure.
        #[source]
        source: EditError,
    },
}

/// A successfully loaded and validated spec file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFile {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The index of its directory in the registry's directory list (higher wins).
    pub priority: usize,
    /// The spec.
    pub spec: Spec,
}

/// One device the registry resolves, with the file that provides it.
#[derive(Debug, Clone, Copy)]
pub struct DeviceEntry<'a> {
    /// The qualified name, `vendor/class=name`.
    pub name: &'a str,
    /// The providing spec file.
    pub file: &'a SpecFile,
    /// The device in that spec.
    pub device: &'a Device,
}

/// The devices of a set of spec directories, loaded once.
#[derive(Debug, Default)]
pub struct Registry {
    dirs: Vec<PathBuf>,
    specs: Vec<SpecFile>,
    devices: BTreeMap<String, (usize, usize)>,
    errors: Vec<RegistryError>,
}

impl Registry {
    /// `/etc/cdi` then `/var/run/cdi`, the engines' default.
    pub fn default_dirs() -> Vec<PathBuf> {
        vec![PathBuf::from(STATIC_DIR), PathBuf::from(DYNAMIC_DIR)]
    }

    /// Loads every spec of `dirs` (later directories have higher priority).
    pub fn load(dirs: &[PathBuf]) -> Registry {
        let mut registry = Registry {
            dirs: dirs.to_vec(),
            ..Registry::default()
        };
        let mut conflicts = BTreeSet::new();
        for (priority, dir) in dirs.iter().enumerate() {
            let files = match spec_files(dir) {
                Ok(files) => files,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    registry.push_error(RegistryError::ReadDir {
                        dir: dir.clone(),
                        source,
                    });
                    continue;
                }
            };
            for path in files {
                match load_entry(&path) {
                    Ok(spec) => registry.add(
                        SpecFile {
                            path,
                            priority,
                            spec,
                        },
                        &mut conflicts,
                    ),
                    Err(err) => registry.push_error(err),
                }
            }
        }
        for name in conflicts {
            registry.devices.remove(&name);
        }
        registry
    }

    fn push_error(&mut self, err: RegistryError) {
        self.errors.push(err);
    }

    fn add(&mut self, file: SpecFile, conflicts: &mut BTreeSet<String>) {
        let index = self.specs.len();
        for (device_index, device) in file.spec.devices.iter().enumerate() {
            let name = format!("{}={}", file.spec.kind, device.name);
            if let Some(&(other, _)) = self.devices.get(&name) {
                let other = &self.specs[other];
                if other.priority == file.priority {
                    self.errors.push(RegistryError::Conflict {
                        device: name.clone(),
                        first: other.path.clone(),
                        second: file.path.clone(),
                    });
                    conflicts.insert(name);
                    continue;
                }
            }
            self.devices.insert(name, (index, device_index));
        }
        self.specs.push(file);
    }

    /// The directories this registry was loaded from, lowest priority first.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Every spec file that loaded and validated, in scan order.
    pub fn specs(&self) -> &[SpecFile] {
        &self.specs
    }

    /// Everything that went wrong while loading, in scan order.
    pub fn errors(&self) -> impl ExactSizeIterator<Item = &RegistryError> {
        self.errors.iter()
    }

    /// Every resolvable device, sorted by qualified name.
    pub fn devices(&self) -> impl Iterator<Item = DeviceEntry<'_>> {
        self.devices
            .iter()
            .map(|(name, &(spec, device))| self.entry(name, spec, device))
    }

    /// Looks up a qualified name.
    pub fn device(&self, name: &str) -> Option<DeviceEntry<'_>> {
        let (name, &(spec, device)) = self.devices.get_key_value(name)?;
        Some(self.entry(name, spec, device))
    }

    fn entry<'a>(&'a self, name: &'a str, spec: usize, device: usize) -> DeviceEntry<'a> {
        let file = &self.specs[spec];
        DeviceEntry {
            name,
            file,
            device: &file.spec.devices[device],
        }
    }

    /// Injects the named devices into `config`: each spec's own edits once (before its first
    /// requested device), then each device's edits. Any unresolvable name fails the whole call;
    /// on any error `config` is unchanged.
    pub fn inject(&self, config: &mut Value, names: &[String]) -> Result<(), ApplyError> {
        let mut unresolved = Vec::new();
        let mut seen_names = HashSet::new();
        let mut seen_specs = HashSet::new();
        let mut all = Vec::new();
        for name in names {
            if !seen_names.insert(name.as_str()) {
                continue;
            }
            let Some(&(spec, device)) = self.devices.get(name) else {
                unresolved.push(name.clone());
                continue;
            };
            let spec_edits = &self.specs[spec].spec;
            if seen_specs.insert(spec) {
                all.push(&spec_edits.container_edits);
            }
            all.push(&spec_edits.devices[device].container_edits);
        }
        if !unresolved.is_empty() {
            return Err(ApplyError::Unresolvable {
                names: unresolved,
                available: self.devices.keys().cloned().collect(),
            });
        }
        edits::apply_many(config, &all).map_err(|source| ApplyError::Edit {
            names: names.to_vec(),
            source,
        })?;
        Ok(())
    }
}

/// Loads a spec file and validates it, the check every file in a spec directory must pass.
pub fn load_checked(path: &Path) -> Result<Spec, RegistryError> {
    valid(codec::load(path)?, path)
}

/// Reads, parses and validates a spec-dir entry: [`read_entry`], then the checks of
/// [`load_checked`].
pub fn load_entry(path: &Path) -> Result<Spec, RegistryError> {
    let bytes = read_entry(path)?;
    valid(codec::parse_file(path, &bytes)?, path)
}

/// `spec`, read from `path`, when it passes [`validate::validate`].
fn valid(spec: Spec, path: &Path) -> Result<Spec, RegistryError> {
    let problems = validate::validate(&spec);
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(RegistryError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// The bytes of a spec-dir entry, read only when it is a regular file or a symbolic link to a
/// regular file made by root, by this process's effective user, or by the target's owner (the
/// module documentation says why). The entry is inspected before it is opened, so a device or
/// FIFO is never opened; the open is non-blocking and the opened file is checked again.
pub fn read_entry(path: &Path) -> Result<Vec<u8>, RegistryError> {
    let read_error = |source: io::Error| {
        RegistryError::Load(LoadError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let refused = |reason: Refusal| RegistryError::Refused {
        path: path.to_path_buf(),
        reason,
    };
    let entry = std::fs::symlink_metadata(path).map_err(read_error)?;
    let link_owner = entry.file_type().is_symlink().then(|| entry.uid());
    let check = |meta: &std::fs::Metadata| match link_owner {
        None if !meta.is_file() => Err(refused(Refusal::NotRegular(crate::text::file_type(
            meta.mode(),
        )))),
        Some(_) if !meta.is_file() => Err(refused(Refusal::LinkToNonRegular(
            crate::text::file_type(meta.mode()),
        ))),
        Some(owner)
            if owner != 0 && owner != nix::unistd::geteuid().as_raw() && owner != meta.uid() =>
        {
            Err(refused(Refusal::ForeignLink {
                link_owner: owner,
                target_owner: meta.uid(),
            }))
        }
        _ => Ok(()),
    };
    match link_owner {
        Some(_) => check(&std::fs::metadata(path).map_err(read_error)?)?,
        None => check(&entry)?,
    }
    let mut flags = OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    if link_owner.is_none() {
        flags |= OFlag::O_NOFOLLOW;
    }
    let mut file: File = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(read_error)?;
    check(&file.metadata().map_err(read_error)?)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_error)?;
    Ok(bytes)
}

/// True for the file names the engines read from a spec directory: the text after the last dot
/// is `json` or `yaml` (Go's `filepath.Ext`).
pub fn is_spec_file_name(name: &str) -> bool {
    matches!(name.rsplit_once('.'), Some((_, "json" | "yaml")))
}

/// The spec files directly inside `dir`, sorted by name, as engines list a spec dir:
/// subdirectories and names that are not UTF-8 are skipped; which of the rest may be read is
/// [`read_entry`]'s to say.
pub fn spec_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_spec_file_name(name) {
            continue;
        }
        // Like Go's Walk: directories are skipped; what else is read is up to `read_entry`.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs;

    fn spec_text(kind: &str, devices: &[&str]) -> String {
        let devices: Vec<String> = devices
            .iter()
            .map(|d| {
                format!(r#"{{"name": "{d}", "containerEdits": {{"env": ["DEV_{d}={kind}"]}}}}"#)
            })
            .collect();
        format!(
            r#"{{"cdiVersion": "0.5.0", "kind": "{kind}", "containerEdits": {{"env": ["SPEC={kind}"]}}, "devices": [{}]}}"#,
            devices.join(", ")
        )
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        fs::create_dir_all(dir).expect("mkdir");
        let path = dir.join(name);
        fs::write(&path, text).expect("write spec");
        path
    }

    /// A symlink `dir/name` to `target`, `dir` created as needed.
    fn link(dir: &Path, name: &str, target: impl AsRef<Path>) -> PathBuf {
        fs::create_dir_all(dir).expect("mkdir");
        let path = dir.join(name);
        std::os::unix::fs::symlink(target, &path).expect("symlink");
        path
    }

    fn names(registry: &Registry) -> Vec<String> {
        registry.devices().map(|d| d.name.to_string()).collect()
    }

    fn error_texts(registry: &Registry) -> Vec<String> {
        registry.errors().map(ToString::to_string).collect()
    }

    #[test]
    fn loads_json_and_yaml_only_directly_inside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cdi");
        write(&dir, "a.json", &spec_text("example.com/json", &["a"]));
        write(
            &dir,
            "b.yaml",
            "cdiVersion: \"0.5.0\"\nkind: example.com/yaml\ndevices:\n- name: b\n  containerEdits:\n    env: [\"B=1\"]\n",
        );
        write(&dir, "c.yml", &spec_text("example.com/yml", &["c"]));
        write(&dir, "d.json.bak", &spec_text("example.com/bak", &["d"]));
        write(
            &dir.join("sub"),
            "e.json",
            &spec_text("example.com/sub", &["e"]),
        );
        let registry = Registry::load(std::slice::from_ref(&dir));
        assert_eq!(
            names(&registry),
            ["example.com/json=a", "example.com/yaml=b"]
        );
        assert_eq!(registry.errors().len(), 0);
        let entry = registry.device("example.com/yaml=b").expect("device");
        assert_eq!(entry.file.path, dir.join("b.yaml"));
        assert_eq!(entry.device.name, "b");
    }

    #[test]
    fn symlinked_spec_files_are_followed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let elsewhere = write(
            &tmp.path().join("store"),
            "real.json",
            &spec_text("example.com/dev", &["a"]),
        );
        let dir = tmp.path().join("cdi");
        let link = link(&dir, "link.json", &elsewhere);
        let registry = Registry::load(std::slice::from_ref(&dir));
        assert_eq!(
            registry.device("example.com/dev=a").expect("a").file.path,
            link
        );
    }

    #[test]
    fn spec_dir_fifos_devices_and_links_to_them_are_refused_without_blocking() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cdi");
        write(&dir, "good.json", &spec_text("example.com/dev", &["a"]));
        nix::unistd::mkfifo(
            &dir.join("fifo.yaml"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .expect("mkfifo");
        link(&dir, "null.json", "/dev/null");
        link(&dir, "dir.json", tmp.path());
        let registry = Registry::load(std::slice::from_ref(&dir));
        assert_eq!(names(&registry), ["example.com/dev=a"]);
        let shown =
            |name: &str, why: &str| format!("refusing to read {}: {why}", dir.join(name).display());
        assert_eq!(
            error_texts(&registry),
            [
                shown(
                    "dir.json",
                    "it is a symbolic link to a directory, not to a regular file"
                ),
                shown("fifo.yaml", "it is a FIFO, not a regular file"),
                shown(
                    "null.json",
                    "it is a symbolic link to a character device, not to a regular file"
                ),
            ]
        );
    }

    /// Issue 12 item 11: a privileged reader does not follow a link another user planted in a
    /// spec dir to a file that user could not read (`/etc/shadow`); links made by root, by the
    /// reader or by the target's owner are followed. Needs root to make files of other users.
    #[test]
    fn spec_dir_links_made_by_another_user_to_a_file_not_theirs_are_not_followed() {
        use std::os::unix::fs::{PermissionsExt, lchown};
        if !crate::skip::as_root(
            "spec_dir_links_made_by_another_user",
            "to make links owned by another user",
        ) {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let secret = write(
            tmp.path(),
            "shadow",
            "root:$y$j9T$SECRET:19000:0:99999:7:::\n",
        );
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
        let theirs = write(
            tmp.path(),
            "theirs.json",
            &spec_text("example.com/theirs", &["t"]),
        );
        lchown(&theirs, Some(65534), Some(65534)).expect("chown target");
        let dir = tmp.path().join("cdi");
        for (name, target) in [("planted.yaml", &secret), ("own.json", &theirs)] {
            let link = link(&dir, name, target);
            lchown(&link, Some(65534), Some(65534)).expect("chown link");
        }
        let registry = Registry::load(std::slice::from_ref(&dir));
        assert_eq!(names(&registry), ["example.com/theirs=t"]);
        assert_eq!(
            error_texts(&registry),
            [format!(
                "refusing to read {}: it is a symbolic link made by uid 65534 to a file of uid 0 \
                 (a link in a spec dir is followed only when root, the reading user or the \
                 target's owner made it)",
                dir.join("planted.yaml").display()
            )]
        );
    }

    #[test]
    fn missing_dirs_are_fine_and_defaults_are_static_then_dynamic() {
        let registry = Registry::load(&[PathBuf::from("/nonexistent/cdi")]);
        assert_eq!(registry.devices().count(), 0);
        assert_eq!(registry.errors().len(), 0);
        assert_eq!(
            Registry::default_dirs(),
            [PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")]
        );
    }

    #[test]
    fn later_dir_wins_silently() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let low = tmp.path().join("low");
        let high = tmp.path().join("high");
        write(&low, "x.json", &spec_text("example.com/dev", &["a", "b"]));
        write(&high, "x.json", &spec_text("example.com/dev", &["a"]));
        let registry = Registry::load(&[low.clone(), high.clone()]);
        assert_eq!(registry.errors().len(), 0);
        assert_eq!(
            registry.device("example.com/dev=a").expect("a").file.path,
            high.join("x.json")
        );
        assert_eq!(
            registry.device("example.com/dev=b").expect("b").file.path,
            low.join("x.json")
        );
    }

    #[test]
    fn same_dir_duplicates_drop_both_and_name_both_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cdi");
        let first = write(&dir, "1.json", &spec_text("example.com/dev", &["a", "b"]));
        let second = write(&dir, "2.yaml", &spec_text("example.com/dev", &["a", "c"]));
        let registry = Registry::load(&[dir]);
        assert_eq!(names(&registry), ["example.com/dev=b", "example.com/dev=c"]);
        assert_eq!(
            error_texts(&registry),
            [format!(
                "conflicting device example.com/dev=a: provided by both {} and {} (same directory, so the \
                 device is ignored; remove it from one file)",
                first.display(),
                second.display()
            )]
        );
    }

    #[test]
    fn a_lower_dir_conflict_hides_the_name_even_from_a_higher_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let low = tmp.path().join("low");
        let high = tmp.path().join("high");
        write(&low, "1.json", &spec_text("example.com/dev", &["a"]));
        write(&low, "2.json", &spec_text("example.com/dev", &["a"]));
        write(&high, "3.json", &spec_text("example.com/dev", &["a", "z"]));
        let registry = Registry::load(&[low, high]);
        assert_eq!(names(&registry), ["example.com/dev=z"]);
        assert_eq!(registry.errors().len(), 1);
    }

    #[test]
    fn broken_files_are_errors_and_hide_nothing_else() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cdi");
        let garbage = write(&dir, "a.json", "{not json");
        let invalid = write(&dir, "b.json", &spec_text("example.com/dev", &["-bad"]));
        write(&dir, "c.json", &spec_text("example.com/dev", &["good"]));
        let registry = Registry::load(&[dir]);
        assert_eq!(names(&registry), ["example.com/dev=good"]);
        let paths: Vec<&Path> = registry.errors().map(RegistryError::path).collect();
        assert_eq!(paths, [garbage.as_path(), invalid.as_path()]);
        assert!(matches!(
            registry.errors().nth(1),
            Some(RegistryError::Invalid { .. })
        ));
    }

    #[test]
    fn unreadable_dir_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = write(tmp.path(), "not-a-dir", "");
        let registry = Registry::load(std::slice::from_ref(&file));
        assert!(
            matches!(registry.errors().next(), Some(RegistryError::ReadDir { dir, .. }) if *dir == file)
        );
    }

    #[test]
    fn inject_applies_spec_edits_once_and_is_all_or_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cdi");
        write(&dir, "a.json", &spec_text("example.com/dev", &["a", "b"]));
        write(&dir, "b.json", &spec_text("example.com/other", &["x"]));
        let registry = Registry::load(&[dir]);
        let names = |n: &[&str]| n.iter().map(ToString::to_string).collect::<Vec<_>>();

        let mut config = json!({"ociVersion": "1.0.2", "process": {"env": ["PATH=/bin"]}});
        let err = registry
            .inject(
                &mut config,
                &names(&["example.com/dev=a", "example.com/dev=zz"]),
            )
            .expect_err("unknown device");
        assert_eq!(
            err.to_string(),
            "unresolvable CDI device example.com/dev=zz (available: example.com/dev=a, \
             example.com/dev=b, example.com/other=x)"
        );
        assert_eq!(
            config,
            json!({"ociVersion": "1.0.2", "process": {"env": ["PATH=/bin"]}})
        );

        registry
            .inject(
                &mut config,
                &names(&[
                    "example.com/dev=b",
                    "example.com/other=x",
                    "example.com/dev=a",
                    "example.com/dev=b",
                ]),
            )
            .expect("inject");
        assert_eq!(
            config["process"]["env"],
            json!([
                "PATH=/bin",
                "SPEC=example.com/other",
                "DEV_b=example.com/dev",
                "DEV_x=example.com/other",
                "DEV_a=example.com/dev"
            ])
        );
    }
}
