//! Finds plain YAML scalars in string fields that Go's YAML 1.1 reader would read as different
//! text.
//!
//! `sigs.k8s.io/yaml` resolves plain scalars with YAML 1.1 rules and then turns numbers and
//! booleans back into strings for string fields: `yes` becomes `"true"`, `0755` becomes `"493"`
//! and `1_000` becomes `"1000"`. A plain `0` or `true` reads the same either way and is accepted;
//! anything whose meaning would change must be quoted, so that this crate and Go never disagree
//! on what a spec says.

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
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Some("false".to_owned());
        }
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
        Some((whole, fraction)) => digits(whole) && fraction.bytes().all(|b| b.is_ascii_digit()),
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
