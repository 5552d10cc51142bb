//! Reading and writing CDI spec files as YAML or JSON.
//!
//! Parsing is strict, like the reference library: unknown fields, duplicate keys, missing required
//! fields and wrong types are errors that name the field and the line. YAML is read the way Go's
//! YAML 1.1 reader (`sigs.k8s.io/yaml`) reads it, and a plain scalar that reader would turn into
//! different text (`yes` into `true`, `0755` into `493`) is refused rather than read differently.
//! Writing quotes every YAML string scalar, so no reader can reinterpret `on`, `0755` or `1_000`.
//!
//! A file that fails to parse may not be a spec at all (a spec-dir entry can be anything), so a
//! parse error shows positions and field names only: keys that do not look like names
//! ([`crate::text::name`]) are shown as `<key>`, and the parsers' quoted values (`string "..."`,
//! ``integer `5` ``) are dropped. Only the YAML 1.1 check, which runs on a file that parsed as a
//! spec, quotes the scalar it refuses.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::spec::Spec;

mod redact;
pub(crate) mod strict;
mod yaml11;

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
///
/// ```
/// use cdi::codec::{parse, to_string, Format};
///
/// let yaml = b"cdiVersion: '0.5.0'\nkind: amd.com/gpu\ndevices:\n- name: 0\n  containerEdits:\n    deviceNodes: [{path: /dev/kfd}]\n";
/// let spec = parse(yaml, Format::Yaml)?;
/// assert_eq!(spec.devices[0].name, "0");
/// assert!(to_string(&spec, Format::Yaml).contains("- name: '0'"));
///
/// let error = parse(b"cdiVersion: '0.5.0'\nkind: amd.com/gpu\ndevices: []\nextra: 1\n", Format::Yaml)
///     .unwrap_err();
/// assert_eq!(error.to_string(), "line 4 column 1: extra: unknown field `extra`, expected one of \
///     cdiVersion, kind, annotations, devices, containerEdits");
/// # Ok::<(), cdi::codec::CodecError>(())
/// ```
pub fn parse(bytes: &[u8], format: Format) -> Result<Spec, CodecError> {
    match format {
        Format::Yaml => parse_yaml(bytes),
        Format::Json => parse_json(bytes),
    }
}

fn parse_yaml(bytes: &[u8]) -> Result<Spec, CodecError> {
    // Legacy octal reads `fileMode: 0666` as 438, as Go's YAML 1.1 reader does.
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
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
    let spec = result.map_err(|error| {
        let location = error.location();
        let message = strip_position(&error.to_string(), " at line ");
        CodecError {
            format: Format::Yaml,
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message: with_field(field.as_deref(), &message),
        }
    })?;
    // A well-formed spec can still hold plain scalars that Go's YAML 1.1 reader would change
    // (`yes`, `0755`) in string fields: refuse those rather than disagree with Go.
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Some(found) = yaml11::find_ambiguous(text)
    {
        return Err(CodecError {
            format: Format::Yaml,
            line: Some(found.line),
            column: Some(found.column),
            message: format!(
                "{}: {}",
                redact::shown_path(&found.field),
                crate::text::escape(&found.message)
            ),
        });
    }
    Ok(spec)
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
    result.map_err(|error| CodecError {
        format: Format::Json,
        line: (error.line() > 0).then(|| error.line() as u64),
        column: (error.column() > 0).then(|| error.column() as u64),
        message: with_field(
            Some(&field),
            &strip_position(&error.to_string(), " at line "),
        ),
    })
}

/// Both parsers append ` at line L column C`; the position is reported separately.
fn strip_position(message: &str, marker: &str) -> String {
    match message.rfind(marker) {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// Prefixes the message with the field path, unless the error is about the document as a whole;
/// both are redacted ([`redact`]).
fn with_field(field: Option<&str>, message: &str) -> String {
    let message = redact::without_values(&reword(&one_line(message)));
    // A `?` segment stands for a map key that could not be read (e.g. a duplicate key).
    let field = field
        .map(|f| f.trim_end_matches('?').trim_end_matches('.'))
        .filter(|f| !f.is_empty());
    match field {
        Some(field) => format!("{}: {message}", redact::shown_path(field)),
        None => message,
    }
}

/// Turns the YAML parser's wording into this crate's: lower-case, no API advice.
fn reword(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("duplicate key `{key}`");
    }
    if message == "unexpected end of input" {
        return "unexpected end of input (is the file empty or cut short?)".to_owned();
    }
    if message == "input is not valid UTF-8" {
        return "not valid UTF-8 (spec files must be UTF-8 text)".to_owned();
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
    parse_file(path, &bytes)
}

/// Parses the bytes read from the spec file `path`, choosing the format from its extension.
pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<Spec, LoadError> {
    parse(bytes, Format::from_path(path)).map_err(|source| LoadError::Parse {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "cdiVersion: \"0.3.0\"\nkind: vendor.com/device\ndevices:\n- name: dev0\n  containerEdits:\n    env: [A=1]\n";

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            Format::from_path(Path::new("/etc/cdi/a.json")),
            Format::Json
        );
        assert_eq!(
            Format::from_path(Path::new("/etc/cdi/a.yaml")),
            Format::Yaml
        );
        assert_eq!(Format::from_path(Path::new("/etc/cdi/a.yml")), Format::Yaml);
        assert_eq!(Format::from_path(Path::new("/etc/cdi/a")), Format::Yaml);
        assert_eq!(Format::from_path(Path::new("a.JSON")), Format::Yaml);
    }

    #[test]
    fn yaml_and_json_give_the_same_spec() {
        let yaml = parse(MINIMAL.as_bytes(), Format::Yaml).expect("yaml parses");
        let json = r#"{"cdiVersion":"0.3.0","kind":"vendor.com/device","devices":[{"name":"dev0","containerEdits":{"env":["A=1"]}}]}"#;
        assert_eq!(
            parse(json.as_bytes(), Format::Json).expect("json parses"),
            yaml
        );
        // JSON is YAML too, as Go reads it.
        assert_eq!(
            parse(json.as_bytes(), Format::Yaml).expect("json as yaml"),
            yaml
        );
    }

    #[test]
    fn errors_name_the_field_and_position() {
        let text = MINIMAL.replace("env: [A=1]", "env: [A=1]\n    devicenodes: []");
        let error = parse(text.as_bytes(), Format::Yaml).expect_err("unknown field");
        assert_eq!((error.line, error.column), (Some(7), Some(5)));
        assert!(
            error
                .to_string()
                .starts_with("line 7 column 5: devices[0].containerEdits.devicenodes: unknown field `devicenodes`"),
            "{error}"
        );
        let json = r#"{"cdiVersion":"0.3.0","kind":"k/k","devices":[{"name":"d","containerEdits":{"deviceNodes":[{"path":"/x","uid":-1}]}}]}"#;
        let error = parse(json.as_bytes(), Format::Json).expect_err("negative uid");
        assert!(
            error
                .message
                .starts_with("devices[0].containerEdits.deviceNodes[0].uid: invalid value"),
            "{error}"
        );
    }

    #[test]
    fn json_rejects_duplicate_annotation_keys_and_trailing_data() {
        let dup =
            r#"{"cdiVersion":"0.6.0","kind":"k/k","annotations":{"a":"1","a":"2"},"devices":[]}"#;
        let error = parse(dup.as_bytes(), Format::Json).expect_err("duplicate key");
        assert!(
            error.message.contains("duplicate annotation key \"a\""),
            "{error}"
        );
        let trailing = r#"{"cdiVersion":"0.3.0","kind":"k/k","devices":[]} {}"#;
        assert!(parse(trailing.as_bytes(), Format::Json).is_err());
    }

    #[test]
    fn yaml_accepts_a_utf8_bom_and_refuses_other_encodings() {
        let with_bom = format!("\u{feff}{MINIMAL}");
        assert!(parse(with_bom.as_bytes(), Format::Yaml).is_ok());
        let utf16 = [0xff, 0xfe, b'a', 0];
        let error = parse(&utf16, Format::Yaml).expect_err("UTF-16");
        assert_eq!(
            error.to_string(),
            "not valid UTF-8 (spec files must be UTF-8 text)"
        );
    }

    #[test]
    fn yaml_rejects_a_second_document() {
        let text = format!("{MINIMAL}---\n{MINIMAL}");
        let error = parse(text.as_bytes(), Format::Yaml).expect_err("two documents");
        assert!(
            error.message.contains("more than one YAML document"),
            "{error}"
        );
    }

    #[test]
    fn integers_and_booleans_must_not_be_quoted() {
        for (field, value) in [("major", "\"1\""), ("fileMode", "'438'"), ("uid", "\"0\"")] {
            let text = MINIMAL.replace(
                "env: [A=1]",
                &format!("deviceNodes:\n    - path: /dev/x\n      {field}: {value}"),
            );
            let error = parse(text.as_bytes(), Format::Yaml).expect_err("quoted integer");
            assert!(error.message.contains("invalid type: string"), "{error}");
        }
        let text = MINIMAL.replace("env: [A=1]", "intelRdt:\n      enableMonitoring: \"true\"");
        assert!(parse(text.as_bytes(), Format::Yaml).is_err());
        let text = MINIMAL.replace("env: [A=1]", "intelRdt:\n      enableMonitoring: yes");
        let spec = parse(text.as_bytes(), Format::Yaml).expect("YAML 1.1 boolean");
        assert_eq!(
            spec.devices[0]
                .container_edits
                .intel_rdt
                .as_ref()
                .map(|r| r.enable_monitoring),
            Some(true)
        );
    }

    #[test]
    fn yaml_reads_octal_file_modes_like_go() {
        let text = MINIMAL.replace(
            "env: [A=1]",
            "deviceNodes:\n    - path: /dev/x\n      fileMode: 0666",
        );
        let spec = parse(text.as_bytes(), Format::Yaml).expect("octal parses");
        assert_eq!(
            spec.devices[0].container_edits.device_nodes[0].file_mode,
            Some(0o666)
        );
    }

    #[test]
    fn load_names_the_file_in_every_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.yaml");
        let error = load(&missing).expect_err("no such file");
        assert!(matches!(error, LoadError::Read { .. }));
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot read {}: ", missing.display()))
        );
        assert_eq!(error.path(), missing);
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{").expect("write");
        let error = load(&broken).expect_err("broken");
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot parse {}: ", broken.display()))
        );
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, MINIMAL).expect("write");
        assert_eq!(load(&good).expect("loads").devices[0].name, "dev0");
    }

    #[test]
    fn long_and_multi_line_strings_survive_a_yaml_round_trip() {
        let mut spec = parse(MINIMAL.as_bytes(), Format::Yaml).expect("parses");
        let long = "word ".repeat(100);
        spec.annotations.insert("long".to_owned(), long.clone());
        spec.annotations
            .insert("lines".to_owned(), "a \n  b\n\n c  \n".to_owned());
        spec.devices[0].container_edits.env =
            vec![format!("LONG={long}"), "X=\t y \r\n".to_owned()];
        let text = to_string(&spec, Format::Yaml);
        assert_eq!(
            parse(text.as_bytes(), Format::Yaml).expect("re-parses"),
            spec,
            "{text}"
        );
    }

    #[test]
    fn written_yaml_quotes_every_string() {
        let mut spec = parse(MINIMAL.as_bytes(), Format::Yaml).expect("parses");
        spec.devices[0].container_edits.env = vec!["yes".to_owned(), "0755".to_owned()];
        let text = to_string(&spec, Format::Yaml);
        for line in text
            .lines()
            .filter(|l| l.contains(": ") || l.trim_start().starts_with("- "))
        {
            let value = line.rsplit_once(": ").map_or(line, |(_, v)| v);
            let value = value.trim_start().trim_start_matches("- ");
            assert!(
                value.starts_with(['\'', '"']),
                "unquoted scalar in {line:?}"
            );
        }
        assert!(text.ends_with('\n'));
        assert_eq!(
            parse(text.as_bytes(), Format::Yaml).expect("re-parses"),
            spec
        );
    }

    /// Issue 12 item 11: a spec-dir symlink to /etc/shadow made `validate` print its first line.
    /// Parse errors show positions and field names, never values.
    #[test]
    fn file_contents_in_errors_are_never_shown() {
        for (text, format, expected) in [
            (
                "root:$y$j9T$SECRETHASH:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
                Format::Yaml,
                "line 1 column 1: <key>: unknown field, expected one of cdiVersion, kind, \
                 annotations, devices, containerEdits",
            ),
            (
                "-----BEGIN SECRET KEY-----\nMIIEvSECRET+/=\n-----END SECRET KEY-----\n",
                Format::Yaml,
                "line 1 column 1: expected mapping start",
            ),
            (
                "\"SECRET\"",
                Format::Json,
                "line 1 column 8: invalid type: string, expected struct Spec",
            ),
            (
                "cdiVersion: '0.5.0'\nkind: a/b\ndevices:\n- name: a\n  containerEdits:\n    \
                 deviceNodes: [{path: /x, major: SECRET, uid: 1}]\n",
                Format::Yaml,
                "line 6 column 30: devices[0].containerEdits.deviceNodes[0].major: invalid type: \
                 string, expected an integer in the range of i64",
            ),
            (
                "{\"cdiVersion\": \"0.5.0\", \"kind\": 12345, \"devices\": []}",
                Format::Json,
                "line 1 column 37: kind: invalid type: integer, expected a string",
            ),
            (
                "\u{0}SECRET",
                Format::Yaml,
                "line 1 column 1: unexpected character",
            ),
            (
                "cdiVersion: '0.5.0'\nkind: a/b\nannotations:\n  SECRET:1: a\n  SECRET:1: b\n",
                Format::Yaml,
                "line 5 column 3: annotations: duplicate key",
            ),
            (
                "{\"annotations\": {\"SECRET 1\": \"a\", \"SECRET 1\": \"b\"}}",
                Format::Json,
                "line 1 column 44: annotations: duplicate annotation key",
            ),
            (
                "cdiVersion: '0.5.0'\nkind: a/b\nannotations: {\"SECRET:K\": [1]}\n",
                Format::Yaml,
                "line 3 column 27: annotations.<key>: expected string scalar",
            ),
        ] {
            let error = parse(text.as_bytes(), format).expect_err(text);
            assert_eq!(error.to_string(), expected, "{text:?}");
            assert!(!error.to_string().contains("SECRET"), "{error}");
        }
    }

    #[test]
    fn misspelt_field_names_are_still_named_and_long_ones_truncated() {
        let long = "x".repeat(50);
        let error =
            parse(format!("{long}: 1\n").as_bytes(), Format::Yaml).expect_err("unknown field");
        let shown = format!("{}...", &long[..crate::text::NAME_LIMIT]);
        assert_eq!(
            error.to_string(),
            format!(
                "line 1 column 1: {shown}: unknown field `{shown}`, expected one of cdiVersion, \
                 kind, annotations, devices, containerEdits"
            )
        );
        let error = parse(b"cdiVersion: '0.5.0'\nkind: a/b\nkind: c/d\n", Format::Yaml)
            .expect_err("duplicate");
        assert_eq!(error.to_string(), "line 3 column 1: duplicate key `kind`");
    }

    proptest::proptest! {
        /// Wherever a value sits in a file that is not a spec, the error does not show it.
        #[test]
        fn no_parse_error_shows_a_value(
            token in "[A-Za-z0-9]{12}",
            template in 0usize..9,
        ) {
            let secret = format!("S${token}");
            let (text, format) = match template {
                0 => (format!("{secret}: x\n"), Format::Yaml),
                1 => (format!("{secret}\n"), Format::Yaml),
                2 => (format!("\"{secret}\""), Format::Json),
                3 => (format!("{{\"{secret}\": 1}}"), Format::Json),
                4 => (format!("cdiVersion: {secret}\n"), Format::Yaml),
                5 => (format!("cdiVersion: '0.5.0'\nkind: [{secret}]\n"), Format::Yaml),
                6 => (format!("{{\"cdiVersion\": [\"{secret}\"]}}"), Format::Json),
                7 => (format!("annotations:\n  {secret}: [x]\n"), Format::Yaml),
                _ => (format!("devices:\n- {secret}\n"), Format::Yaml),
            };
            if let Err(error) = parse(text.as_bytes(), format) {
                let shown = error.to_string();
                proptest::prop_assert!(!shown.contains(&token), "{text:?} -> {shown}");
            }
        }
    }
}
