//! An OCI bundle's `config.json`, read and rewritten as a `serde_json::Value` so unknown fields
//! and key order survive.
//!
//! A [`Bundle`] is the bundle directory opened once. The config is read and rewritten relative to
//! that descriptor, so a `--bundle` path that is a symlink (runc follows one, and so does
//! [`Bundle::open`]) swapped to another directory in between cannot make the rewrite land in a
//! directory other than the one read. `config.json` itself must be a regular file: a symlink,
//! FIFO or device there is refused, never followed, opened for reading or replaced.
//!
//! The rewrite is `cdi::write::write_in`, the workspace's one atomic writer: temp file in the
//! bundle directory, rename over the config, the old file's permission bits only (never its
//! setuid, setgid or sticky bits, which a root-owned rewrite would otherwise hand to whoever
//! owned the old file). There is no fsync: the runtime reads the file a moment later from the
//! page cache, and after a crash the container being created is gone anyway; a sync would cost
//! milliseconds on every container start.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use cdi::write::{Mode, PathKind, WriteError, WriteOptions};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode as NixMode;
use serde_json::Value;

use crate::state::{CappedReadError, STDIN_LIMIT, read_capped};

/// The config's file name inside a bundle.
pub const CONFIG_NAME: &str = "config.json";

/// Errors reading or writing a bundle's config.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The config could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The config path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config was larger than [`STDIN_LIMIT`].
    #[error("{path} is larger than {limit} bytes (is it really an OCI config?)")]
    TooLarge {
        /// The config path (or `stdin`).
        path: PathBuf,
        /// The cap in bytes.
        limit: u64,
    },
    /// The config was not a JSON object.
    #[error("cannot parse {path} as an OCI runtime config: {reason}")]
    Parse {
        /// The config path (or `stdin`).
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The config is not a regular file.
    #[error(
        "cannot read {path}: it is {kind}, not a regular file (runtimes read config.json as a file)"
    )]
    NotRegular {
        /// The config path.
        path: PathBuf,
        /// What is there instead.
        kind: PathKind,
    },
    /// Writing the new config failed; the old one is untouched.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// A bundle directory, opened once: every read and write of its config is relative to it.
#[derive(Debug)]
pub struct Bundle {
    dir: OwnedFd,
    path: PathBuf,
}

impl Bundle {
    /// Opens the bundle directory at `path`, following symlinks as runc does. A bundle that
    /// cannot be opened is reported as its config that cannot be read (what the caller wanted).
    pub fn open(path: &Path) -> Result<Self, BundleError> {
        let dir = cdi::write::open_dir(path).map_err(|source| BundleError::Read {
            path: config_path(path),
            source,
        })?;
        Ok(Bundle {
            dir,
            path: path.to_path_buf(),
        })
    }

    /// The path the bundle was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<bundle>/config.json`, for messages.
    pub fn config_path(&self) -> PathBuf {
        config_path(&self.path)
    }

    /// Reads the config's bytes (at most [`STDIN_LIMIT`]). Anything but a regular file is
    /// refused before it is opened, and checked again once open (it may have been swapped).
    pub fn read_config(&self) -> Result<Vec<u8>, BundleError> {
        let path = self.config_path();
        let read_err = |errno: nix::errno::Errno| BundleError::Read {
            path: path.clone(),
            source: std::io::Error::from(errno),
        };
        let stat = nix::sys::stat::fstatat(&self.dir, CONFIG_NAME, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(read_err)?;
        self.refuse_special(stat.st_mode)?;
        let fd = nix::fcntl::openat(
            &self.dir,
            CONFIG_NAME,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            NixMode::empty(),
        )
        .map_err(|errno| match errno {
            nix::errno::Errno::ELOOP => BundleError::NotRegular {
                path: path.clone(),
                kind: PathKind::Symlink,
            },
            errno => read_err(errno),
        })?;
        let stat = nix::sys::stat::fstat(&fd).map_err(read_err)?;
        self.refuse_special(stat.st_mode)?;
        read_bytes_from(fs::File::from(fd), &path)
    }

    fn refuse_special(&self, mode: u32) -> Result<(), BundleError> {
        match PathKind::of(mode) {
            None => Ok(()),
            Some(kind) => Err(BundleError::NotRegular {
                path: self.config_path(),
                kind,
            }),
        }
    }

    /// Replaces the config atomically, in the directory it was read from, keeping the old
    /// file's permission bits (0644 when there was none). On error the old config is untouched
    /// and no temp file is left behind.
    pub fn write_config(&self, config: &Value) -> Result<(), BundleError> {
        let options = WriteOptions {
            mode: Mode::KeepOr(0o644),
            durable: false,
        };
        cdi::write::write_in(
            self.dir.as_fd(),
            &self.path,
            CONFIG_NAME.as_ref(),
            &to_bytes(config),
            options,
        )?;
        Ok(())
    }
}

/// The path of the config inside a bundle directory.
pub fn config_path(bundle: &Path) -> PathBuf {
    bundle.join(CONFIG_NAME)
}

/// Parses OCI config bytes into a JSON object; `path` names the source in errors. Keys the
/// runtime's Go decoder would read differently are refused ([`crate::oci_config::parse`]).
pub fn parse_config(bytes: &[u8], path: &Path) -> Result<Value, BundleError> {
    let value = crate::oci_config::parse(bytes).map_err(|e| parse_error(path, &e))?;
    if !value.is_object() {
        return Err(not_an_object(path));
    }
    Ok(value)
}

/// Checks that the bytes are a JSON object without building it, at a fraction of the cost of
/// [`parse_config`]: a caller with nothing to change in a config still refuses a broken one,
/// with `parse_config`'s own message. Only `parse_config`'s value and key checks are skipped
/// (numbers beyond `f64`, lone UTF-16 surrogates in escapes, a key given twice or an OCI field
/// spelled in another case, see [`crate::oci_config::parse`]): such a config goes to the runtime,
/// which judges it as it would without amdgpu-cdi.
pub fn check_config(bytes: &[u8], path: &Path) -> Result<(), BundleError> {
    let well_formed = std::str::from_utf8(bytes).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
    let object = bytes.iter().find(|b| !b" \t\r\n".contains(b)) == Some(&b'{');
    if well_formed && object {
        return Ok(());
    }
    // Broken: parsing it again gives the same message as `parse_config`.
    parse_config(bytes, path).map(drop)
}

fn parse_error(path: &Path, error: &serde_json::Error) -> BundleError {
    BundleError::Parse {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

fn not_an_object(path: &Path) -> BundleError {
    BundleError::Parse {
        path: path.to_path_buf(),
        reason: "the top level is not a JSON object".to_string(),
    }
}

/// Reads an OCI config's bytes from `reader` (the precreate hook's stdin), at most
/// [`STDIN_LIMIT`] bytes; `what` names the source in errors.
pub fn read_bytes_from(reader: impl std::io::Read, what: &Path) -> Result<Vec<u8>, BundleError> {
    read_capped(reader, STDIN_LIMIT).map_err(|e| match e {
        CappedReadError::Io(source) => BundleError::Read {
            path: what.to_path_buf(),
            source,
        },
        CappedReadError::TooLarge(limit) => BundleError::TooLarge {
            path: what.to_path_buf(),
            limit,
        },
    })
}

/// Reads the bytes of `<bundle>/config.json` (see [`Bundle::read_config`]), returning its path
/// too.
pub fn read_bytes(bundle: &Path) -> Result<(PathBuf, Vec<u8>), BundleError> {
    let bundle = Bundle::open(bundle)?;
    let bytes = bundle.read_config()?;
    Ok((bundle.config_path(), bytes))
}

/// Serializes a config the way runtimes expect it: compact JSON, key order kept.
pub fn to_bytes(config: &Value) -> Vec<u8> {
    // Serializing a `Value` into a Vec cannot fail: its map keys are strings.
    serde_json::to_vec(config).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::names;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn checking_fails_with_the_parse_error_and_is_lenient_only_on_values_and_keys() {
        let inputs: [&[u8]; 17] = [
            br#"{"ociVersion":"1.0.2","process":{"env":["A=1"]}}"#,
            b" \n{}\n",
            b"[1,2]",
            b"42",
            b"\"config\"",
            b"{not json",
            b"{}x",
            b"",
            b"{\"a\":1,}",
            b"{\"a\":\"\\q\"}",
            b"{\"a\":1e400}",
            b"\xef\xbb\xbf{}",
            br#"{"a":"\ud800"}"#,
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\x01\"}",
            br#"{"a":1,"a":2}"#,
            br#"{"ROOT":{}}"#,
        ];
        let path = Path::new("stdin");
        let mut lenient = Vec::new();
        for input in inputs {
            let text = String::from_utf8_lossy(input);
            let parsed = parse_config(input, path)
                .map(drop)
                .map_err(|e| e.to_string());
            match check_config(input, path).map_err(|e| e.to_string()) {
                Ok(()) if parsed.is_err() => lenient.push(text),
                checked => assert_eq!(checked, parsed, "{text}"),
            }
        }
        assert_eq!(
            lenient,
            [
                r#"{"a":1e400}"#,
                r#"{"a":"\ud800"}"#,
                r#"{"a":1,"a":2}"#,
                r#"{"ROOT":{}}"#
            ]
        );
    }

    #[test]
    fn rewriting_keeps_unknown_fields_key_order_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let original =
            r#"{"ociVersion":"1.0.2","zeta":{"b":1,"a":2},"process":{"env":["A=1"]},"alpha":[]}"#;
        fs::write(config_path(dir.path()), original).expect("write config");
        fs::set_permissions(config_path(dir.path()), fs::Permissions::from_mode(0o600))
            .expect("chmod");
        let (path, bytes) = read_bytes(dir.path()).expect("read config");
        let config = parse_config(&bytes, &path).expect("parse config");
        Bundle::open(dir.path())
            .expect("open bundle")
            .write_config(&config)
            .expect("write config");
        let written = fs::read_to_string(config_path(dir.path())).expect("read back");
        assert_eq!(written, original);
        let mode = fs::metadata(config_path(dir.path()))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("readdir").collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn a_missing_config_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read_bytes(dir.path()).expect_err("missing config");
        assert!(err.to_string().contains("config.json"), "{err}");
    }

    #[test]
    fn a_non_object_config_is_refused() {
        let err = parse_config(b"[1]", Path::new("stdin")).expect_err("array");
        assert_eq!(
            err.to_string(),
            "cannot parse stdin as an OCI runtime config: the top level is not a JSON object"
        );
    }

    /// Issue 12, item 7: a `--bundle` symlink flipped to another directory between the read and
    /// the write made root replace that directory's config (and leave temp files there).
    #[test]
    fn a_bundle_link_swapped_between_read_and_write_does_not_redirect_the_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["mine", "victim"] {
            fs::create_dir(dir.path().join(name)).expect("mkdir");
            fs::write(
                dir.path().join(name).join(CONFIG_NAME),
                format!(r#"{{"who":"{name}"}}"#),
            )
            .expect("write config");
        }
        let link = dir.path().join("bundle");
        symlink("mine", &link).expect("symlink");
        let bundle = Bundle::open(&link).expect("open bundle");
        let bytes = bundle.read_config().expect("read");
        let mut config = parse_config(&bytes, &bundle.config_path()).expect("parse");
        // The attacker's swap, done the way a race would: a new link renamed over the old one.
        symlink("victim", dir.path().join("flip")).expect("symlink");
        fs::rename(dir.path().join("flip"), &link).expect("swap");
        config["injected"] = Value::Bool(true);
        bundle.write_config(&config).expect("write");
        assert_eq!(
            fs::read_to_string(dir.path().join("mine/config.json")).expect("read"),
            r#"{"who":"mine","injected":true}"#
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("victim/config.json")).expect("read"),
            r#"{"who":"victim"}"#
        );
        assert_eq!(names(&dir.path().join("victim")), ["config.json"]);
        assert_eq!(names(&dir.path().join("mine")), ["config.json"]);
    }

    /// Issue 12, item 8: the rewrite kept `mode & 0o7777`, so an attacker-owned 06777 config
    /// became a root-owned setuid and setgid file.
    #[test]
    fn the_rewrite_keeps_permission_bits_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = config_path(dir.path());
        fs::write(&path, "{}").expect("write config");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o6777)).expect("chmod");
        let bundle = Bundle::open(dir.path()).expect("open bundle");
        bundle
            .write_config(&serde_json::json!({"a": 1}))
            .expect("write config");
        let mode = fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o7777, 0o777);
    }

    /// A config.json that is a symlink, FIFO or directory is neither read nor replaced.
    #[test]
    fn a_config_that_is_not_a_regular_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        type Make = fn(&Path);
        let cases: [(&str, Make); 3] = [
            ("a symbolic link", |p| {
                symlink("/etc/hostname", p).expect("symlink");
            }),
            ("a FIFO", |p| {
                nix::unistd::mkfifo(p, NixMode::from_bits_truncate(0o600)).expect("mkfifo");
            }),
            ("a directory", |p| fs::create_dir(p).expect("mkdir")),
        ];
        for (kind, make) in cases {
            let bundle_dir = dir.path().join(kind.replace(' ', "-"));
            fs::create_dir(&bundle_dir).expect("mkdir");
            let path = config_path(&bundle_dir);
            make(&path);
            let bundle = Bundle::open(&bundle_dir).expect("open bundle");
            let err = bundle.read_config().expect_err("refused");
            assert_eq!(
                err.to_string(),
                format!(
                    "cannot read {}: it is {kind}, not a regular file (runtimes read config.json \
                     as a file)",
                    path.display()
                )
            );
            let err = bundle
                .write_config(&serde_json::json!({}))
                .expect_err("refused");
            assert!(
                err.to_string()
                    .contains(&format!("it is {kind}, not a regular file")),
                "{err}"
            );
            assert_eq!(names(&bundle_dir), ["config.json"]);
        }
    }
}
