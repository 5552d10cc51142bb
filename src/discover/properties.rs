//! Parser for KFD topology `properties` files: one `key value` pair per line, values decimal.

use std::ops::Range;

/// The parsed key/value pairs of one KFD topology node. The keys stay in one copy of the file's
/// text (a node has about 40 of them and discovery reads up to a few hundred nodes, so one
/// allocation per key would dominate), and a lookup scans them: the last of repeated keys wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Properties {
    text: String,
    values: Vec<(Range<usize>, u64)>,
}

/// Why a `properties` file could not be parsed: the 1-based line number and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseProblem {
    pub(crate) line: usize,
    pub(crate) text: String,
}

impl Properties {
    /// Parses the text of a `properties` file. Blank lines are ignored; anything else that is not
    /// `key <decimal>` is a problem, because a half-understood node must not become a GPU.
    pub(crate) fn parse(text: &str) -> Result<Self, ParseProblem> {
        let mut values = Vec::with_capacity(48);
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            let mut fields = trimmed.split_ascii_whitespace();
            let parsed = match (fields.next(), fields.next(), fields.next()) {
                (Some(key), Some(value), None) => value.parse::<u64>().ok().map(|v| (key, v)),
                _ => None,
            };
            match parsed {
                Some((key, value))
                    if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    // `key` is a slice of `text`: its offset is the distance between the pointers.
                    let start = key.as_ptr() as usize - text.as_ptr() as usize;
                    values.push((start..start + key.len(), value));
                }
                _ => {
                    return Err(ParseProblem {
                        line: number + 1,
                        text: trimmed.chars().take(60).collect(),
                    });
                }
            }
        }
        Ok(Self {
            text: text.to_string(),
            values,
        })
    }

    /// The value of `key`, when present.
    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        self.values
            .iter()
            .rev()
            .find(|(range, _)| self.text.get(range.clone()) == Some(key))
            .map(|(_, value)| *value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_value_lines() {
        let props = Properties::parse("cpu_cores_count 0\nsimd_count 304\n\ndomain 1\n")
            .expect("valid properties");
        assert_eq!(props.get("simd_count"), Some(304));
        assert_eq!(props.get("domain"), Some(1));
        assert_eq!(props.get("unique_id"), None);
    }

    #[test]
    fn rejects_garbage_with_its_line() {
        let problem = Properties::parse("simd_count 4\nvendor_id 0x1002\n").expect_err("hex value");
        assert_eq!(
            problem,
            ParseProblem {
                line: 2,
                text: "vendor_id 0x1002".into()
            }
        );
        let problem = Properties::parse("\u{0}\u{1}garbage").expect_err("binary");
        assert_eq!(problem.line, 1);
        assert!(Properties::parse("a 1 2").is_err());
        assert!(Properties::parse("lonely").is_err());
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let props = Properties::parse("  simd_count 4\nsimd_count 8 \n").expect("valid properties");
        assert_eq!(props.get("simd_count"), Some(8));
        assert_eq!(props.get("simd"), None);
    }

    #[test]
    fn accepts_values_beyond_u32() {
        let props = Properties::parse("unique_id 18446744073709551615").expect("u64 max");
        assert_eq!(props.get("unique_id"), Some(u64::MAX));
    }
}
