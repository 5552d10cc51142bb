//! Reading and writing CDI spec files as YAML or JSON.
//!
//! Parsing is strict, like the reference library: unknown fields, duplicate keys, missing required
//! fields and wrong types are errors that name the field and the line. Writing quotes every YAML
//! string scalar so that YAML 1.1 readers (Go's `sigs.k8s.io/yaml`) cannot reinterpret `on`,
//! `0755` or `1_000` as something other than a string.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::spec::Spec;

/// The two serialisations of a CDI spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// YAML (`*.yaml`); Go consumers read it as YAML 1.1.
    Yaml,
    /// JSON (`*.json`).
    Json,
}

impl Format {
    /// The format a spec file's name implies: `.json` is JSON, everything else YAML.
    pub fn from_path(path: &Path) -> Format {
        match path.extension() {
            Some(ext) if ext == "json" => Format::Json,
            _ => Format::Yaml,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
        })
    }
}

/// Why bytes are not a CDI spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", position(*.line, *.column))]
pub struct CodecError {
    /// The format that was being parsed.
    pub format: Format,
    /// 1-based line of the problem, when known.
    pub line: Option<u64>,
    /// 1-based column of the problem, when known.
    pub column: Option<u64>,
    /// What is wrong, naming the field where possible.
    pub message: String,
}

fn position(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("line {line} column {column}: "),
        (Some(line), None) => format!("line {line}: "),
        _ => String::new(),
    }
}

/// Why a spec file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a well-formed CDI spec.
    #[error("cannot parse {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: CodecError,
    },
}

impl LoadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::Read { path, .. } | LoadError::Parse { path, .. } => path,
        }
    }
}

/// Parses a spec strictly from YAML or JSON bytes.
pub fn parse(bytes: &[u8], format: Format) -> Result<Spec, CodecError> {
    match format {
        Format::Yaml => parse_yaml(bytes),
        Format::Json => parse_json(bytes),
    }
}

fn parse_yaml(bytes: &[u8]) -> Result<Spec, CodecError> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        no_schema: true,
        with_snippet: false,
    };
    serde_saphyr::from_slice_with_options(bytes, options).map_err(|error| {
        let location = error.location();
        CodecError {
            format: Format::Yaml,
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message: one_line(&error.to_string()),
        }
    })
}

fn parse_json(bytes: &[u8]) -> Result<Spec, CodecError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let known = error.line() > 0;
        CodecError {
            format: Format::Json,
            line: known.then(|| error.line() as u64),
            column: known.then(|| error.column() as u64),
            message: one_line(&strip_json_position(&error.to_string())),
        }
    })
}

/// serde_json appends ` at line L column C`; the position is reported separately.
fn strip_json_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads and parses a spec file, choosing the format from its extension.
pub fn load(path: &Path) -> Result<Spec, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&bytes, Format::from_path(path)).map_err(|source| LoadError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Serialises a spec as YAML (every string quoted) or pretty JSON, ending with a newline.
pub fn to_string(spec: &Spec, format: Format) -> String {
    match format {
        Format::Yaml => {
            let options = serde_saphyr::ser_options! {
                quote_all: true,
            };
            let mut text = serde_saphyr::to_string_with_options(spec, options)
                .expect("a Spec has only strings, integers, lists and string maps");
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        }
        Format::Json => {
            let mut text = serde_json::to_string_pretty(spec)
                .expect("a Spec has only strings, integers, lists and string maps");
            text.push('\n');
            text
        }
    }
}
