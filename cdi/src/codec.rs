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
    // `no_schema` makes an unquoted `0`, `yes` or `1.0` in a string field an error, as Go's
    // YAML 1.1 reader turns those into numbers and booleans; legacy octal reads `0666` as 438
    // there, so it does here.
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        no_schema: true,
        legacy_octal_numbers: true,
        with_snippet: false,
    };
    let mut field = None;
    let result = serde_saphyr::with_deserializer_from_slice_with_options(bytes, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|error| {
            field = Some(error.path().to_string());
            error.into_inner()
        })
    });
    result.map_err(|error| {
        let location = error.location();
        let message = strip_position(&error.to_string(), " at line ");
        CodecError {
            format: Format::Yaml,
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message: with_field(field.as_deref(), &message),
        }
    })
}

fn parse_json(bytes: &[u8]) -> Result<Spec, CodecError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut field = String::new();
    let result = serde_path_to_error::deserialize(&mut de)
        .map_err(|error| {
            field = error.path().to_string();
            error.into_inner()
        })
        .and_then(|spec| de.end().map(|()| spec));
    result.map_err(|error| {
        let known = error.line() > 0;
        CodecError {
            format: Format::Json,
            line: known.then(|| error.line() as u64),
            column: known.then(|| error.column() as u64),
            message: with_field(
                Some(&field),
                &strip_position(&error.to_string(), " at line "),
            ),
        }
    })
}

/// Both parsers append ` at line L column C`; the position is reported separately.
fn strip_position(message: &str, marker: &str) -> String {
    match message.rfind(marker) {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// Prefixes the message with the field path, unless the error is about the document as a whole.
fn with_field(field: Option<&str>, message: &str) -> String {
    let message = reword(&one_line(message));
    // A `?` segment stands for a map key that could not be read (e.g. a duplicate key).
    let field = field
        .map(|f| f.trim_end_matches('?').trim_end_matches('.'))
        .filter(|f| !f.is_empty());
    match field {
        Some(field) => format!("{field}: {message}"),
        None => message,
    }
}

/// Turns the YAML parser's wording into this crate's: lower-case, no API advice.
fn reword(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("The string value [")
        && let Some(value) = rest.strip_suffix("] must be quoted")
    {
        return format!(
            "{value} must be quoted to be a string (YAML 1.1 readers such as Go's take it as a \
             number, boolean or null)"
        );
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("duplicate key `{key}`");
    }
    if message.starts_with("multiple YAML documents detected") {
        return "more than one YAML document (a spec file holds exactly one)".to_owned();
    }
    removed_field_hint(message)
}

/// `enableCMT`/`enableMBM` existed in CDI 0.7.0 to 1.0.0 and were replaced in 1.1.0.
fn removed_field_hint(message: &str) -> String {
    if message.starts_with("unknown field `enableCMT`")
        || message.starts_with("unknown field `enableMBM`")
    {
        format!("{message} (CDI 1.1.0 replaced enableCMT and enableMBM with enableMonitoring)")
    } else {
        message.to_owned()
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
