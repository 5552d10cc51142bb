//! An OCI bundle's `config.json`, read and rewritten as a `serde_json::Value` so unknown fields
//! and key order survive, and written atomically (temp file in the same directory, rename) so the
//! runtime never reads half a config. There is no fsync: the runtime reads the file a moment later
//! from the page cache, and after a crash the container being created is gone anyway; a sync
//! would cost milliseconds on every container start.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::state::{CappedReadError, STDIN_LIMIT, read_capped};

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
    /// Writing the new config failed; the old one is untouched.
    #[error("cannot write {path}")]
    Write {
        /// The file that failed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The path of the config inside a bundle directory.
pub fn config_path(bundle: &Path) -> PathBuf {
    bundle.join("config.json")
}

/// Parses OCI config bytes into a JSON object; `path` names the source in errors.
pub fn parse_config(bytes: &[u8], path: &Path) -> Result<Value, BundleError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| parse_error(path, &e))?;
    if !value.is_object() {
        return Err(not_an_object(path));
    }
    Ok(value)
}

/// Checks that the bytes are a JSON object without building it, at a fraction of the cost of
/// [`parse_config`]: a caller with nothing to change in a config still refuses a broken one,
/// with `parse_config`'s own message. Only `parse_config`'s value checks are skipped (numbers
/// beyond `f64`, lone UTF-16 surrogates in escapes): such a config goes to the runtime, which
/// judges it as it would without amdgpu-cdi.
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

/// Reads the bytes of `<bundle>/config.json`, returning its path too.
pub fn read_bytes(bundle: &Path) -> Result<(PathBuf, Vec<u8>), BundleError> {
    let path = config_path(bundle);
    let file = fs::File::open(&path).map_err(|source| BundleError::Read {
        path: path.clone(),
        source,
    })?;
    let bytes = read_bytes_from(file, &path)?;
    Ok((path, bytes))
}

/// Serializes a config the way runtimes expect it: compact JSON, key order kept.
pub fn to_bytes(config: &Value) -> Vec<u8> {
    // Serializing a `Value` into a Vec cannot fail: its map keys are strings.
    serde_json::to_vec(config).unwrap_or_default()
}

/// Replaces `<bundle>/config.json` atomically, keeping the old file's permission bits (0644 when
/// there was none). On error the old config is untouched and no temp file is left behind.
pub fn write_config(bundle: &Path, config: &Value) -> Result<(), BundleError> {
    let path = config_path(bundle);
    let mode = fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let tmp = bundle.join(format!(".config.json.amdgpu-cdi.{}", std::process::id()));
    let result = write_then_rename(&tmp, &path, &to_bytes(config), mode);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<(), BundleError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::Write { path, source }
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(err(tmp))?;
    file.write_all(bytes).map_err(err(tmp))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(err(tmp))?;
    drop(file);
    fs::rename(tmp, path).map_err(err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checking_fails_with_the_parse_error_and_is_lenient_only_on_values() {
        let inputs: [&[u8]; 15] = [
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
        assert_eq!(lenient, [r#"{"a":1e400}"#, r#"{"a":"\ud800"}"#]);
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
        write_config(dir.path(), &config).expect("write config");
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
}
