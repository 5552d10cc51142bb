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

/// Finds plain YAML scalars in string fields that Go's YAML 1.1 reader would read as different
/// text.
///
/// `sigs.k8s.io/yaml` resolves plain scalars with YAML 1.1 rules and then turns numbers and
/// booleans back into strings for string fields: `yes` becomes `"true"`, `0755` becomes `"493"`
/// and `1_000` becomes `"1000"`. A plain `0` or `true` reads the same either way and is accepted;
/// anything whose meaning would change must be quoted, so that this crate and Go never disagree
/// on what a spec says.
mod yaml11 {
    use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

    /// Fields whose values are numbers or booleans, where YAML 1.1 resolution is wanted.
    const NON_STRING_FIELDS: &[&str] = &[
        "major",
        "minor",
        "fileMode",
        "uid",
        "gid",
        "timeout",
        "additionalGids",
        "enableMonitoring",
    ];

    /// A plain scalar whose YAML 1.1 reading differs from its text.
    pub(super) struct Ambiguous {
        pub(super) line: u64,
        pub(super) column: u64,
        pub(super) field: String,
        pub(super) message: String,
    }

    enum Frame {
        Map {
            path: String,
            /// Inside an `annotations` map every key and value is a string.
            free_form: bool,
            key: Option<String>,
            expecting_key: bool,
        },
        Seq {
            path: String,
            field: Option<String>,
            index: usize,
        },
    }

    /// Where the next node goes: its path, the field it belongs to, whether it is a mapping key.
    struct Slot {
        path: String,
        field: Option<String>,
        free_form: bool,
        is_key: bool,
    }

    fn next_slot(stack: &mut [Frame]) -> Option<Slot> {
        match stack.last_mut()? {
            Frame::Map {
                path,
                free_form,
                key,
                expecting_key,
            } => {
                let slot = if *expecting_key {
                    Slot {
                        path: path.clone(),
                        field: None,
                        free_form: *free_form,
                        is_key: true,
                    }
                } else {
                    let name = key.clone().unwrap_or_else(|| "?".to_owned());
                    Slot {
                        path: if path.is_empty() {
                            name.clone()
                        } else {
                            format!("{path}.{name}")
                        },
                        field: key.clone(),
                        free_form: *free_form,
                        is_key: false,
                    }
                };
                *expecting_key = !*expecting_key;
                Some(slot)
            }
            Frame::Seq { path, field, index } => {
                let slot = Slot {
                    path: format!("{path}[{index}]"),
                    field: field.clone(),
                    free_form: false,
                    is_key: false,
                };
                *index += 1;
                Some(slot)
            }
        }
    }

    /// Returns the first plain scalar in a string field that Go would read differently, if any.
    /// Syntax errors are left to the deserialiser, which reports them with more context.
    pub(super) fn find_ambiguous(text: &str) -> Option<Ambiguous> {
        let mut stack: Vec<Frame> = Vec::new();
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else {
                return None;
            };
            match event {
                Event::Scalar(value, style, _, tag) => {
                    let Some(slot) = next_slot(&mut stack) else {
                        continue;
                    };
                    if slot.is_key
                        && let Some(Frame::Map { key, .. }) = stack.last_mut()
                    {
                        *key = Some(value.to_string());
                    }
                    let numeric = !slot.free_form
                        && slot
                            .field
                            .as_deref()
                            .is_some_and(|f| NON_STRING_FIELDS.contains(&f));
                    if style != ScalarStyle::Plain || tag.is_some() || numeric {
                        continue;
                    }
                    if let Some(reading) = go_reading(&value)
                        && reading != value.as_ref()
                    {
                        let what = match reading.as_str() {
                            "true" | "false" => format!("the boolean {reading}"),
                            number => format!("the number {number}"),
                        };
                        return Some(Ambiguous {
                            line: span.start.line() as u64,
                            column: span.start.col() as u64 + 1,
                            field: slot.path,
                            message: format!(
                                "quote {value:?}: Go's YAML 1.1 reader takes a plain {value} as \
                                 {what}"
                            ),
                        });
                    }
                }
                Event::MappingStart(..) => {
                    let slot = next_slot(&mut stack);
                    let (path, free_form) = match slot {
                        Some(slot) => {
                            let annotations = slot.field.as_deref() == Some("annotations");
                            (slot.path, annotations && !slot.free_form)
                        }
                        None => (String::new(), false),
                    };
                    stack.push(Frame::Map {
                        path,
                        free_form,
                        key: None,
                        expecting_key: true,
                    });
                }
                Event::SequenceStart(..) => {
                    let slot = next_slot(&mut stack);
                    let (path, field) = match slot {
                        Some(slot) => (slot.path, slot.field),
                        None => (String::new(), None),
                    };
                    stack.push(Frame::Seq {
                        path,
                        field,
                        index: 0,
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::Alias(_) => {
                    next_slot(&mut stack);
                }
                _ => {}
            }
        }
        None
    }

    /// The text a plain scalar becomes in a Go string field after go-yaml v2 resolves it with
    /// YAML 1.1 rules and `sigs.k8s.io/yaml` formats numbers and booleans back into text.
    /// `None` when it stays a string as written, or is null (left to the deserialiser).
    fn go_reading(text: &str) -> Option<String> {
        match text {
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
                return Some("true".to_owned());
            }
            "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False"
            | "FALSE" => return Some("false".to_owned()),
            "" | "~" | "null" | "Null" | "NULL" => return None,
            ".nan" | ".NaN" | ".NAN" => return Some("NaN".to_owned()),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                return Some("+Inf".to_owned());
            }
            "-.inf" | "-.Inf" | "-.INF" => return Some("-Inf".to_owned()),
            _ => {}
        }
        let first = text.chars().next()?;
        if first == '.' {
            // go-yaml hands these straight to strconv.ParseFloat, underscores and all.
            if text.contains('_') || !is_yaml_float(text) {
                return None;
            }
            return go_float_text(text);
        }
        if !(first.is_ascii_digit() || matches!(first, '+' | '-')) {
            return None;
        }
        let plain: String = text.chars().filter(|&c| c != '_').collect();
        if let Some(value) = go_parse_int(&plain) {
            return Some(value.to_string());
        }
        if is_yaml_float(&plain) {
            return go_float_text(&plain);
        }
        None
    }

    /// Go's `strconv.FormatFloat(v, 'g', -1, 32)` of a decimal literal; `None` when it is out of
    /// range, which go-yaml leaves as a string.
    fn go_float_text(literal: &str) -> Option<String> {
        let value: f64 = literal.parse().ok()?;
        if !value.is_finite() {
            return None;
        }
        let single = value as f32; // Go formats with 32-bit precision too.
        if single.is_infinite() {
            return Some(if single > 0.0 { "+Inf" } else { "-Inf" }.to_owned());
        }
        let scientific = format!("{single:e}");
        let (mantissa, exponent) = scientific.split_once('e')?;
        let exponent: i32 = exponent.parse().ok()?;
        // Shortest 'g' formatting switches to an exponent below 1e-4 and from 1e6 on.
        if (-4..6).contains(&exponent) {
            Some(format!("{single}"))
        } else {
            let sign = if exponent < 0 { '-' } else { '+' };
            Some(format!("{mantissa}e{sign}{:02}", exponent.abs()))
        }
    }

    /// Go's `strconv.ParseInt(s, 0, 64)`, falling back to `ParseUint`: optional sign, then
    /// `0x`, `0o`, `0b` or a leading `0` (octal) prefix, else decimal.
    fn go_parse_int(s: &str) -> Option<i128> {
        let (negative, digits) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let lower = digits.to_ascii_lowercase();
        let (radix, body) = if let Some(rest) = lower.strip_prefix("0x") {
            (16, rest)
        } else if let Some(rest) = lower.strip_prefix("0b") {
            (2, rest)
        } else if let Some(rest) = lower.strip_prefix("0o") {
            (8, rest)
        } else if lower.len() > 1 && lower.starts_with('0') {
            (8, &lower[1..])
        } else {
            (10, lower.as_str())
        };
        if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        let magnitude = u64::from_str_radix(body, radix).ok()?;
        let value = if negative {
            -i128::from(magnitude)
        } else {
            i128::from(magnitude)
        };
        let fits = i64::try_from(value).is_ok() || (!negative && value <= i128::from(u64::MAX));
        fits.then_some(value)
    }

    /// go-yaml v2's float pattern: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
    fn is_yaml_float(s: &str) -> bool {
        let s = s.strip_prefix(['-', '+']).unwrap_or(s);
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(at) => (&s[..at], Some(&s[at + 1..])),
            None => (s, None),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let mantissa_ok = match mantissa.split_once('.') {
            Some(("", fraction)) => digits(fraction),
            Some((whole, fraction)) => {
                digits(whole) && fraction.bytes().all(|b| b.is_ascii_digit())
            }
            None => digits(mantissa),
        };
        let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
        mantissa_ok && exponent_ok
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn go_reads_yaml_11_scalars_like_go_yaml_v2() {
            // What Go's sigs.k8s.io/yaml (Debian 12) puts in a string field for `s: <text>`.
            for (text, go) in [
                ("yes", "true"),
                ("Yes", "true"),
                ("y", "true"),
                ("N", "false"),
                ("off", "false"),
                ("TRUE", "true"),
                ("0", "0"),
                ("42", "42"),
                ("-12", "-12"),
                ("+5", "5"),
                ("-0", "0"),
                ("0755", "493"),
                ("08", "8"),
                ("0o17", "15"),
                ("0x1A", "26"),
                ("0X1a", "26"),
                ("0b101", "5"),
                ("1_000", "1000"),
                ("1__0", "10"),
                ("_1", "_1"),
                ("1_", "1"),
                ("1.0", "1"),
                ("1.5", "1.5"),
                ("1e3", "1000"),
                ("1E3", "1000"),
                (".5", "0.5"),
                ("5.", "5"),
                (".inf", "+Inf"),
                ("-.inf", "-Inf"),
                (".nan", "NaN"),
                ("12:30:00", "12:30:00"),
                ("2001-12-14", "2001-12-14"),
                (
                    "2001-12-14T21:59:43.10-05:00",
                    "2001-12-14T21:59:43.10-05:00",
                ),
                ("0000:03:00.0", "0000:03:00.0"),
                ("GPU-1a2b", "GPU-1a2b"),
                ("1.2.3", "1.2.3"),
                ("0.5.0", "0.5.0"),
                ("+", "+"),
                (".", "."),
                ("1e", "1e"),
                ("0x", "0x"),
                ("0b", "0b"),
                ("99999999999999999999", "1e+20"),
                ("18446744073709551615", "18446744073709551615"),
                ("9223372036854775808", "9223372036854775808"),
                ("-9223372036854775809", "-9.223372e+18"),
                ("0xFFFFFFFFFFFFFFFF", "18446744073709551615"),
                ("1e400", "1e400"),
                ("<<", "<<"),
                ("1234567.0", "1.234567e+06"),
                ("123456.0", "123456"),
                ("0.0001", "0.0001"),
                ("0.00001", "1e-05"),
                ("1.5e-7", "1.5e-07"),
                ("-0.0", "-0"),
                ("3.14159265358979", "3.1415927"),
                ("1000000.0", "1e+06"),
                ("16777217.0", "1.6777216e+07"),
                ("2.5e+10", "2.5e+10"),
            ] {
                let ours = go_reading(text).unwrap_or_else(|| text.to_owned());
                assert_eq!(ours, go, "{text}");
            }
            for null in ["", "~", "null", "Null", "NULL"] {
                assert_eq!(go_reading(null), None);
            }
        }

        #[test]
        fn only_string_fields_are_checked() {
            let ok = "devices:\n- name: '0'\n  containerEdits:\n    deviceNodes:\n    - path: /dev/x\n      fileMode: 0666\n      major: 0x10\n    additionalGids: [0755]\n";
            assert!(find_ambiguous(ok).is_none());
            let bad = "devices:\n- name: x\n  containerEdits:\n    env: [A=1, on]\n";
            let found = find_ambiguous(bad).expect("`on` in env is ambiguous");
            assert_eq!(found.field, "devices[0].containerEdits.env[1]");
            assert_eq!((found.line, found.column), (4, 16));
        }

        #[test]
        fn annotation_keys_and_values_are_strings_even_with_numeric_names() {
            let bad = "annotations:\n  major: 0755\n";
            let found = find_ambiguous(bad).expect("annotation values are strings");
            assert_eq!(found.field, "annotations.major");
            let bad_key = "annotations:\n  yes: x\n";
            assert!(find_ambiguous(bad_key).is_some());
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
