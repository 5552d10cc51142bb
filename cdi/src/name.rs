//! Qualified CDI device names, `vendor/class=name`, and the rules for each part.
//!
//! The rules follow the reference library, with one deliberate tightening: a one-character vendor
//! or class is rejected, because released Go libraries crash on it instead of reporting an error.

use std::fmt;

/// A fully qualified device name, `vendor/class=name`, e.g. `amd.com/gpu=0`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualifiedName {
    /// The vendor, e.g. `amd.com`.
    pub vendor: String,
    /// The device class, e.g. `gpu`.
    pub class: String,
    /// The device name within the spec, e.g. `0`.
    pub name: String,
}

impl QualifiedName {
    /// The spec kind this device belongs to, `vendor/class`.
    pub fn kind(&self) -> String {
        format!("{}/{}", self.vendor, self.class)
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}={}", self.vendor, self.class, self.name)
    }
}

/// Why a vendor, class, device name, kind or qualified name is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A qualified name lacks `/` or `=`, or one of its parts is empty.
    #[error("invalid device {input:?}: expected vendor/class=name, e.g. amd.com/gpu=0")]
    Unqualified {
        /// The text given.
        input: String,
    },
    /// A kind is not `vendor/class`.
    #[error("invalid kind {input:?}: expected vendor/class, e.g. amd.com/gpu")]
    BadKind {
        /// The text given.
        input: String,
    },
    /// The part is empty.
    #[error("invalid {part}: empty")]
    Empty {
        /// Which part: `vendor`, `class` or `device name`.
        part: &'static str,
    },
    /// The part is a single character, which released reference libraries crash on.
    #[error(
        "invalid {part} {value:?}: must be at least 2 characters (released CDI libraries crash on one)"
    )]
    TooShort {
        /// Which part: `vendor` or `class`.
        part: &'static str,
        /// The offending value.
        value: String,
    },
    /// The first character is not allowed there.
    #[error("invalid {part} {value:?}: must start with {expected}")]
    BadStart {
        /// Which part.
        part: &'static str,
        /// The offending value.
        value: String,
        /// What the first character may be.
        expected: &'static str,
    },
    /// The last character is not allowed there.
    #[error("invalid {part} {value:?}: must end with a letter or digit")]
    BadEnd {
        /// Which part.
        part: &'static str,
        /// The offending value.
        value: String,
    },
    /// A character in the middle is not allowed.
    #[error("invalid {part} {value:?}: character {bad:?} not allowed (use {allowed})")]
    BadChar {
        /// Which part.
        part: &'static str,
        /// The offending value.
        value: String,
        /// The first character that is not allowed.
        bad: char,
        /// What is allowed in the middle.
        allowed: &'static str,
    },
}

/// Parses `vendor/class=name`: split at the first `=`, then the left side at the first `/`, and
/// validate each part.
pub fn parse_qualified_name(s: &str) -> Result<QualifiedName, NameError> {
    let unqualified = || NameError::Unqualified {
        input: s.to_owned(),
    };
    let (kind, name) = s.split_once('=').ok_or_else(unqualified)?;
    let (vendor, class) = kind.split_once('/').ok_or_else(unqualified)?;
    if vendor.is_empty() || class.is_empty() || name.is_empty() {
        return Err(unqualified());
    }
    validate_vendor(vendor)?;
    validate_class(class)?;
    validate_device_name(name)?;
    Ok(QualifiedName {
        vendor: vendor.to_owned(),
        class: class.to_owned(),
        name: name.to_owned(),
    })
}

/// Splits a spec kind `vendor/class` at the first `/` and validates both parts.
pub fn parse_kind(kind: &str) -> Result<(String, String), NameError> {
    let (vendor, class) = kind
        .split_once('/')
        .filter(|(vendor, class)| !vendor.is_empty() && !class.is_empty())
        .ok_or_else(|| NameError::BadKind {
            input: kind.to_owned(),
        })?;
    validate_vendor(vendor)?;
    validate_class(class)?;
    Ok((vendor.to_owned(), class.to_owned()))
}

/// Checks a vendor: a letter, then `[A-Za-z0-9_.-]`, ending in a letter or digit; at least 2
/// characters.
pub fn validate_vendor(vendor: &str) -> Result<(), NameError> {
    validate_label("vendor", vendor)
}

/// Checks a class: a letter, then `[A-Za-z0-9_.-]`, ending in a letter or digit; at least 2
/// characters. A `.` in the class needs CDI 0.6.0 (see [`crate::version`]).
pub fn validate_class(class: &str) -> Result<(), NameError> {
    validate_label("class", class)
}

fn validate_label(part: &'static str, value: &str) -> Result<(), NameError> {
    check_start(part, value, char::is_ascii_alphabetic, "a letter")?;
    if value.chars().nth(1).is_none() {
        return Err(NameError::TooShort {
            part,
            value: value.to_owned(),
        });
    }
    check_middle_and_end(
        part,
        value,
        |c| matches!(c, '_' | '.' | '-'),
        "letters, digits, _ . -",
    )
}

/// Checks a device name: starts and ends with a letter or digit, `[A-Za-z0-9_.:-]` in between.
/// `0`, `0000:03:00.0` and `GPU-1a2b` are valid.
pub fn validate_device_name(name: &str) -> Result<(), NameError> {
    let part = "device name";
    check_start(part, name, char::is_ascii_alphanumeric, "a letter or digit")?;
    check_middle_and_end(
        part,
        name,
        |c| matches!(c, '_' | '.' | ':' | '-'),
        "letters, digits, _ . : -",
    )
}

/// Checks that `value` is not empty and starts with a character `first` accepts (`expected`
/// says which).
fn check_start(
    part: &'static str,
    value: &str,
    first: fn(&char) -> bool,
    expected: &'static str,
) -> Result<(), NameError> {
    match value.chars().next() {
        None => Err(NameError::Empty { part }),
        Some(c) if first(&c) => Ok(()),
        Some(_) => Err(NameError::BadStart {
            part,
            value: value.to_owned(),
            expected,
        }),
    }
}

fn check_middle_and_end(
    part: &'static str,
    value: &str,
    extra: impl Fn(char) -> bool,
    allowed: &'static str,
) -> Result<(), NameError> {
    let mut rest = value.chars().skip(1).peekable();
    while let Some(c) = rest.next() {
        let last = rest.peek().is_none();
        if c.is_ascii_alphanumeric() {
            continue;
        }
        if last && extra(c) {
            return Err(NameError::BadEnd {
                part,
                value: value.to_owned(),
            });
        }
        if !extra(c) {
            return Err(NameError::BadChar {
                part,
                value: value.to_owned(),
                bad: c,
                allowed,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `$call` returns an error matching `$error`.
    macro_rules! assert_fails {
        ($call:expr, $error:pat) => {{
            let result = $call;
            assert!(matches!(result, Err($error)), "{result:?}");
        }};
    }

    #[test]
    fn qualified_names_split_at_the_first_equals_then_the_first_slash() {
        let name = parse_qualified_name("amd.com/gpu=0").expect("valid");
        assert_eq!(
            (
                name.vendor.as_str(),
                name.class.as_str(),
                name.name.as_str()
            ),
            ("amd.com", "gpu", "0")
        );
        assert_eq!(name.to_string(), "amd.com/gpu=0");
        assert_eq!(name.kind(), "amd.com/gpu");
        // `=` after the first one belongs to the name (and is not allowed there).
        assert_fails!(
            parse_qualified_name("amd.com/gpu=a=b"),
            NameError::BadChar { bad: '=', .. }
        );
        // `/` after the first one belongs to the class (and is not allowed there).
        assert_fails!(
            parse_qualified_name("amd.com/gpu/x=0"),
            NameError::BadChar { bad: '/', .. }
        );
        // A `/` in the name does not move the vendor/class split.
        assert_fails!(
            parse_qualified_name("amd.com/gpu=a/b"),
            NameError::BadChar { bad: '/', .. }
        );
    }

    #[test]
    fn unqualified_names_are_rejected() {
        for input in [
            "",
            "gpu0",
            "amd.com/gpu",
            "amd.com=0",
            "/gpu=0",
            "amd.com/=0",
            "amd.com/gpu=",
        ] {
            assert_fails!(parse_qualified_name(input), NameError::Unqualified { .. });
        }
    }

    #[test]
    fn device_names_allow_pci_addresses_and_uuids() {
        for ok in [
            "0",
            "a",
            "gpu0",
            "0000:03:00.0",
            "GPU-1a2b",
            "a_b.c:d-e",
            "all",
        ] {
            assert_eq!(validate_device_name(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "", "-a", "a-", "_a", "a_", ":a", "a:", "a b", "a/b", "é", "a=b",
        ] {
            assert!(validate_device_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vendor_and_class_need_a_letter_first_and_two_characters() {
        for ok in ["amd.com", "ab", "a1", "vendor_x-y.z", "A.B"] {
            assert_eq!(validate_vendor(ok), Ok(()), "{ok:?}");
            assert_eq!(validate_class(ok), Ok(()), "{ok:?}");
        }
        assert_fails!(validate_vendor("a"), NameError::TooShort { .. });
        assert_fails!(validate_class("g"), NameError::TooShort { .. });
        assert_fails!(validate_vendor(""), NameError::Empty { .. });
        assert_fails!(validate_vendor("1a"), NameError::BadStart { .. });
        assert_fails!(validate_class("gpu-"), NameError::BadEnd { .. });
        assert_fails!(validate_class("gpu."), NameError::BadEnd { .. });
        assert_fails!(validate_vendor("a:b"), NameError::BadChar { bad: ':', .. });
        assert_fails!(validate_vendor("aé"), NameError::BadChar { bad: 'é', .. });
    }

    #[test]
    fn kinds_split_at_the_first_slash() {
        assert_eq!(
            parse_kind("amd.com/gpu"),
            Ok(("amd.com".to_owned(), "gpu".to_owned()))
        );
        assert_fails!(parse_kind("gpu"), NameError::BadKind { .. });
        assert_fails!(parse_kind("/gpu"), NameError::BadKind { .. });
        assert_fails!(parse_kind("a.com/"), NameError::BadKind { .. });
        assert_fails!(parse_kind("a.com/b/c"), NameError::BadChar { bad: '/', .. });
    }

    #[test]
    fn errors_read_as_one_lower_case_line() {
        let error = parse_qualified_name("amd.com/g=0").expect_err("one-character class");
        assert_eq!(
            error.to_string(),
            "invalid class \"g\": must be at least 2 characters (released CDI libraries crash on one)"
        );
        let error = parse_qualified_name("gpu0").expect_err("unqualified");
        assert_eq!(
            error.to_string(),
            "invalid device \"gpu0\": expected vendor/class=name, e.g. amd.com/gpu=0"
        );
    }
}
