//! The grammar of a GPU request such as `AMD_VISIBLE_DEVICES=0,2-3,GPU-1a2b`: keywords (`all`,
//! `none`, `void`), indices, inclusive ranges, ROCm unique ids (`GPU-<hex>`, `0x<hex>`, bare hex
//! longer than 8 digits), PCI addresses (`0000:03:00.0` or `03:00.0`) and CDI names
//! (`amd.com/gpu=<name>`). Entries are comma-separated, spaces around them are ignored. Parsing is
//! strict: one bad entry rejects the whole value, so a container never starts with fewer GPUs
//! than it asked for.

use std::collections::HashSet;
use std::fmt;

use cdi::text::escape;

use crate::discover::PciSelector;
use crate::naming::KIND;

/// What a request value asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `void`, empty or unset: leave the container alone.
    Void,
    /// `none`: no GPU nodes.
    None,
    /// A list of entries; `all` is one of them.
    Devices(Vec<Entry>),
}

/// One entry of a request list, with the text it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry as written, trimmed.
    pub text: String,
    /// What it selects.
    pub selector: Selector,
}

/// What one entry selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `all`: every GPU.
    All,
    /// An index in amdgpu-cdi's order, e.g. `2`.
    Index(usize),
    /// An inclusive index range, e.g. `0-3`.
    Range(usize, usize),
    /// A ROCm unique id, e.g. `GPU-1a2b3c4d5e6f7a8b`.
    UniqueId(u64),
    /// A PCI address; `domain` is `None` in the short form `03:00.0`.
    Pci(PciSelector),
    /// A CDI device name of kind `amd.com/gpu`: the part after `=`.
    CdiName(String),
}

/// Why a request value is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// An entry is not any form of the grammar.
    #[error("invalid entry \"{}\": {reason}", escape(entry))]
    Invalid {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `none` or `void` combined with other entries.
    #[error("{keyword:?} cannot be combined with other entries")]
    KeywordInList {
        /// The keyword.
        keyword: String,
    },
}

/// What valid entries look like, for error messages.
pub const VALID_FORMS: &str = "valid: all, none, void, indices (0,2), ranges (0-3), unique ids \
    (GPU-<hex>, 0x<hex>, or more than 8 hex digits), PCI addresses (0000:03:00.0 or 03:00.0), \
    CDI names (amd.com/gpu=<name>)";

/// Parses a request value. An unset variable is [`Selection::Void`] too; the caller decides.
pub fn parse(value: &str) -> Result<Selection, GrammarError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(Selection::Void);
    }
    let raw: Vec<&str> = trimmed.split(',').map(str::trim).collect();
    if let [only] = raw.as_slice() {
        if only.eq_ignore_ascii_case("void") {
            return Ok(Selection::Void);
        }
        if only.eq_ignore_ascii_case("none") {
            return Ok(Selection::None);
        }
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(raw.len());
    let mut seen: HashSet<Selector> = HashSet::with_capacity(raw.len());
    for text in raw {
        if text.eq_ignore_ascii_case("void") || text.eq_ignore_ascii_case("none") {
            return Err(GrammarError::KeywordInList {
                keyword: text.to_ascii_lowercase(),
            });
        }
        let selector = parse_entry(text)?;
        if seen.insert(selector.clone()) {
            entries.push(Entry {
                text: text.to_string(),
                selector,
            });
        }
    }
    Ok(Selection::Devices(entries))
}

fn invalid(entry: &str, reason: impl Into<String>) -> GrammarError {
    GrammarError::Invalid {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

/// Parses one trimmed, non-keyword entry.
pub fn parse_entry(text: &str) -> Result<Selector, GrammarError> {
    if text.is_empty() {
        return Err(invalid(text, "empty entry (a doubled or trailing comma?)"));
    }
    if text.eq_ignore_ascii_case("all") {
        return Ok(Selector::All);
    }
    if let Some((kind, name)) = text.split_once('=') {
        if kind != KIND {
            return Err(invalid(
                text,
                format!("not a CDI name of kind {KIND} (expected {KIND}=<name>)"),
            ));
        }
        if cdi::name::validate_device_name(name).is_err() {
            return Err(invalid(
                text,
                "a CDI device name starts and ends with a letter or digit, with letters, digits, \
                 '_', '.', ':' or '-' between",
            ));
        }
        return Ok(Selector::CdiName(name.to_string()));
    }
    if let Some(hex) =
        strip_prefix_ignore_case(text, "GPU-").or_else(|| strip_prefix_ignore_case(text, "0x"))
    {
        return parse_unique_id(hex).map_err(|reason| invalid(text, reason));
    }
    if text.contains(':') {
        return PciSelector::parse(text).map(Selector::Pci).ok_or_else(|| {
            invalid(
                text,
                "not a PCI address (expected domain:bus:device.function like 0000:03:00.0, or \
                 bus:device.function like 03:00.0)",
            )
        });
    }
    if let Some((start, end)) = text.split_once('-') {
        let (start, end) = (start.trim(), end.trim());
        let (Some(a), Some(b)) = (parse_index(start), parse_index(end)) else {
            return Err(invalid(text, "a range is two indices like 0-3"));
        };
        if a > b {
            return Err(invalid(text, "a range must not run backwards"));
        }
        return Ok(Selector::Range(a, b));
    }
    if text.len() > 8 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return parse_unique_id(text).map_err(|reason| invalid(text, reason));
    }
    if let Some(index) = parse_index(text) {
        return Ok(Selector::Index(index));
    }
    Err(invalid(text, "not a recognised form"))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn parse_index(text: &str) -> Option<usize> {
    if text.is_empty() || text.len() > 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_unique_id(hex: &str) -> Result<Selector, String> {
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a unique id is 1 to 16 hex digits".to_string());
    }
    u64::from_str_radix(hex, 16)
        .map(Selector::UniqueId)
        .map_err(|e| e.to_string())
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Index(i) => write!(f, "{i}"),
            Self::Range(a, b) => write!(f, "{a}-{b}"),
            Self::UniqueId(id) => write!(f, "GPU-{id:x}"),
            Self::Pci(p) => write!(f, "{p}"),
            Self::CdiName(name) => write!(f, "{KIND}={name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn selectors(value: &str) -> Vec<Selector> {
        match parse(value).expect("valid value") {
            Selection::Devices(entries) => entries.into_iter().map(|e| e.selector).collect(),
            other => panic!("expected devices, got {other:?}"),
        }
    }

    /// A long value is deduplicated through a set: comparing each entry with every kept one was
    /// quadratic in the number of distinct entries (issue 12 item 3).
    #[test]
    fn a_long_list_is_deduplicated_in_one_pass() {
        let found = selectors(&crate::request::tests::every_name_twice(100_000));
        assert_eq!(found.len(), 100_000);
        assert_eq!(found[99_999], Selector::CdiName("n99999".to_string()));
    }

    #[test]
    fn keywords() {
        for value in ["", "  ", "void", "VOID", " void "] {
            assert_eq!(parse(value), Ok(Selection::Void), "{value:?}");
        }
        assert_eq!(parse("none"), Ok(Selection::None));
        assert_eq!(selectors("all"), vec![Selector::All]);
        assert_eq!(selectors("ALL, 1"), vec![Selector::All, Selector::Index(1)]);
    }

    #[test]
    fn every_form() {
        let pci = |domain, bus| {
            Selector::Pci(PciSelector {
                domain,
                bus,
                device: 0,
                function: 0,
            })
        };
        assert_eq!(
            selectors(
                "0, 2 ,1-3,GPU-1A2B,0x1a2b3c,123456789abcdef0,0000:c3:00.0, 03:00.0,amd.com/gpu=gpu-x"
            ),
            vec![
                Selector::Index(0),
                Selector::Index(2),
                Selector::Range(1, 3),
                Selector::UniqueId(0x1a2b),
                Selector::UniqueId(0x1a2b3c),
                Selector::UniqueId(0x1234_5678_9abc_def0),
                pci(Some(0), 0xc3),
                pci(None, 3),
                Selector::CdiName("gpu-x".to_string()),
            ]
        );
    }

    #[test]
    fn duplicates_are_removed_keeping_the_first() {
        assert_eq!(
            selectors("1,0,1, 0x1f ,GPU-1F"),
            vec![
                Selector::Index(1),
                Selector::Index(0),
                Selector::UniqueId(0x1f)
            ]
        );
    }

    #[test]
    fn nine_decimal_digits_are_a_unique_id_not_an_index() {
        assert_eq!(
            selectors("123456789"),
            vec![Selector::UniqueId(0x1_2345_6789)]
        );
        assert_eq!(selectors("12345678"), vec![Selector::Index(12_345_678)]);
    }

    #[test]
    fn invalid_entries_are_named() {
        for (value, entry) in [
            ("0,x", "x"),
            ("0,,1", ""),
            ("1,", ""),
            ("3-1", "3-1"),
            ("1-", "1-"),
            ("-1", "-1"),
            ("GPU-", "GPU-"),
            ("GPU-xyz", "GPU-xyz"),
            ("0x12345678901234567", "0x12345678901234567"),
            ("abc", "abc"),
            ("nvidia.com/gpu=0", "nvidia.com/gpu=0"),
            ("amd.com/gpu=", "amd.com/gpu="),
            ("amd.com/gpu=-a", "amd.com/gpu=-a"),
            ("03:20.0", "03:20.0"),
            ("03:00.8", "03:00.8"),
            ("0000:03:00", "0000:03:00"),
            ("1:2:3:4.0", "1:2:3:4.0"),
            ("100:00.0", "100:00.0"),
        ] {
            match parse(value) {
                Err(GrammarError::Invalid { entry: e, .. }) => assert_eq!(e, entry, "{value:?}"),
                other => panic!("{value:?}: expected an invalid entry, got {other:?}"),
            }
        }
    }

    #[test]
    fn keywords_do_not_mix() {
        assert_eq!(
            parse("0,none"),
            Err(GrammarError::KeywordInList {
                keyword: "none".to_string()
            })
        );
        assert!(parse("void, 1").is_err());
    }

    #[test]
    fn error_text() {
        let err = parse("0, bogus").expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "invalid entry \"bogus\": not a recognised form"
        );
    }

    fn selector_strategy() -> impl Strategy<Value = Selector> {
        prop_oneof![
            Just(Selector::All),
            (0usize..100_000).prop_map(Selector::Index),
            (0usize..1000, 0usize..1000).prop_map(|(a, d)| Selector::Range(a, a + d)),
            any::<u64>().prop_map(Selector::UniqueId),
            (
                proptest::option::of(any::<u16>()),
                any::<u8>(),
                0u8..32,
                0u8..8
            )
                .prop_map(|(domain, bus, device, function)| {
                    Selector::Pci(PciSelector {
                        domain: domain.map(u32::from),
                        bus,
                        device,
                        function,
                    })
                }),
            "[a-zA-Z0-9]([a-zA-Z0-9_.:-]{0,10}[a-zA-Z0-9])?".prop_map(Selector::CdiName),
        ]
    }

    proptest! {
        /// Rendering selectors and parsing them back gives the same selectors, deduplicated,
        /// whatever the spacing around the commas.
        #[test]
        fn display_round_trips(list in proptest::collection::vec(selector_strategy(), 1..8),
                               pad in "[ ]{0,2}") {
            let value = list
                .iter()
                .map(|s| format!("{pad}{s}{pad}"))
                .collect::<Vec<_>>()
                .join(",");
            let mut expected: Vec<Selector> = Vec::new();
            for s in list {
                if !expected.contains(&s) {
                    expected.push(s);
                }
            }
            prop_assert_eq!(selectors(&value), expected);
        }

        /// Any string either parses or is rejected with an error; never a panic.
        #[test]
        fn arbitrary_input_never_panics(value in "\\PC{0,40}") {
            let _ = parse(&value);
        }

        /// Unique ids in every spelling parse to the same value.
        #[test]
        fn unique_id_spellings_agree(id in (1u64 << 36)..u64::MAX) {
            let forms = [format!("GPU-{id:x}"), format!("0x{id:X}"), format!("{id:x}")];
            for form in forms {
                prop_assert_eq!(selectors(&form), vec![Selector::UniqueId(id)]);
            }
        }
    }
}
