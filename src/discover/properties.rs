//! Parser for KFD topology `properties` files: one `key value` pair per line, values decimal.
//! Discovery and `doctor` both read topology through it: discovery strictly, `doctor` skipping
//! lines it cannot read, so that a damaged node is still diagnosed.

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

/// What the parser does with a line that is not `key <decimal>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnMalformed {
    /// Stop with a [`ParseProblem`].
    Reject,
    /// Leave the line out.
    Skip,
}

impl Properties {
    /// Parses the text of a `properties` file. Blank lines are ignored; anything else that is not
    /// `key <decimal>` is a problem, because a half-understood node must not become a GPU.
    pub(crate) fn parse(text: String) -> Result<Self, ParseProblem> {
        Self::parse_with(text, OnMalformed::Reject)
    }

    /// Parses the text of a `properties` file, leaving out the lines that are not
    /// `key <decimal>`: for diagnosis, which reports what it can read of a damaged node.
    pub(crate) fn parse_skipping_malformed(text: String) -> Self {
        // Only `OnMalformed::Reject` returns a problem.
        Self::parse_with(text, OnMalformed::Skip).unwrap_or_default()
    }

    fn parse_with(text: String, on_malformed: OnMalformed) -> Result<Self, ParseProblem> {
        let mut values = Vec::with_capacity(48);
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut number = 0;
        // The lines of `str::lines` (a final `\n` ends the last line rather than starting one);
        // a `\r` before a `\n` stays on the line, where the slow path trims it.
        while start < bytes.len() {
            number += 1;
            if let Some((key_len, value, end)) = canonical_line(bytes, start) {
                values.push((start..start + key_len, value));
                start = end + 1;
                continue;
            }
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |i| start + i);
            let line = &text[start..end];
            let trimmed = line.trim();
            if !trimmed.is_empty() {
                let mut fields = trimmed.split_ascii_whitespace();
                let parsed = match (fields.next(), fields.next(), fields.next()) {
                    (Some(key), Some(value), None) => value.parse::<u64>().ok().map(|v| (key, v)),
                    _ => None,
                };
                match parsed {
                    Some((key, value)) if key.bytes().all(is_key_byte) => {
                        // `key` is a slice of `text`: its offset is the pointers' distance.
                        let offset = key.as_ptr() as usize - text.as_ptr() as usize;
                        values.push((offset..offset + key.len(), value));
                    }
                    _ if on_malformed == OnMalformed::Skip => {}
                    _ => {
                        return Err(ParseProblem {
                            line: number,
                            text: trimmed.chars().take(60).collect(),
                        });
                    }
                }
            }
            start = end + 1;
        }
        Ok(Self { text, values })
    }

    /// The value of `key`, when present.
    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        self.values
            .iter()
            .rev()
            .find(|(range, _)| self.text.get(range.clone()) == Some(key))
            .map(|(_, value)| *value)
    }

    /// True for a GPU node: CPU nodes have no SIMDs (and `gpu_id` 0).
    pub(crate) fn is_gpu_node(&self) -> bool {
        self.get("simd_count").unwrap_or(0) != 0
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The kernel's own spelling of the line at `start`: `key value` with one space and a decimal
/// value that fits, then `\n` or the end. Returns the key's length, the value and where the line
/// ends, in one pass over its bytes. Anything else (other spacing, `+`, overflow, garbage) is
/// `None` and goes through the general parser, which reads it the same way or reports it.
fn canonical_line(bytes: &[u8], start: usize) -> Option<(usize, u64, usize)> {
    let mut i = start;
    while bytes.get(i).is_some_and(|&b| is_key_byte(b)) {
        i += 1;
    }
    if i == start || bytes.get(i) != Some(&b' ') {
        return None;
    }
    let key_len = i - start;
    i += 1;
    let digits = i;
    let mut value: u64 = 0;
    while let Some(&b) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        i += 1;
    }
    if i == digits || bytes.get(i).is_some_and(|&b| b != b'\n') {
        return None;
    }
    Some((key_len, value, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_value_lines() {
        let props = Properties::parse("cpu_cores_count 0\nsimd_count 304\n\ndomain 1\n".into())
            .expect("valid properties");
        assert_eq!(props.get("simd_count"), Some(304));
        assert_eq!(props.get("domain"), Some(1));
        assert_eq!(props.get("unique_id"), None);
    }

    #[test]
    fn rejects_garbage_with_its_line() {
        let problem =
            Properties::parse("simd_count 4\nvendor_id 0x1002\n".into()).expect_err("hex value");
        assert_eq!(
            problem,
            ParseProblem {
                line: 2,
                text: "vendor_id 0x1002".into()
            }
        );
        let problem = Properties::parse("\u{0}\u{1}garbage".into()).expect_err("binary");
        assert_eq!(problem.line, 1);
        assert!(Properties::parse("a 1 2".into()).is_err());
        assert!(Properties::parse("lonely".into()).is_err());
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let props =
            Properties::parse("  simd_count 4\nsimd_count 8 \n".into()).expect("valid properties");
        assert_eq!(props.get("simd_count"), Some(8));
        assert_eq!(props.get("simd"), None);
    }

    #[test]
    fn odd_spacing_and_line_ends_read_like_the_canonical_form() {
        let text = "a 1\r\n\t b\t2 \n\n\u{b}c 3\nd +4\ne 18446744073709551615";
        let props = Properties::parse(text.to_string()).expect("valid properties");
        for (key, value) in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", u64::MAX)] {
            assert_eq!(props.get(key), Some(value), "{key}");
        }
        let problem =
            Properties::parse("a 1\n\nb 18446744073709551616\n".into()).expect_err("overflow");
        assert_eq!(problem.line, 3);
        assert_eq!(problem.text, "b 18446744073709551616");
        let problem = Properties::parse("a 1\r\nb-c 2\r\n".into()).expect_err("bad key");
        assert_eq!((problem.line, problem.text.as_str()), (2, "b-c 2"));
        assert!(Properties::parse("a  1".into()).is_ok());
        assert!(Properties::parse("a 1 ".into()).is_ok());
        assert!(Properties::parse("a 1x".into()).is_err());
    }

    #[test]
    fn skipping_malformed_lines_keeps_the_readable_ones() {
        let text = "simd_count 4\nvendor_id 0x1002\ngarbage\n\u{0}\ndrm_render_minor 128\n";
        let props = Properties::parse_skipping_malformed(text.to_string());
        assert_eq!(props.get("simd_count"), Some(4));
        assert_eq!(props.get("drm_render_minor"), Some(128));
        assert_eq!(props.get("vendor_id"), None);
        assert!(props.is_gpu_node());
        assert!(Properties::parse(text.to_string()).is_err());
    }

    #[test]
    fn cpu_nodes_have_no_simds() {
        let cpu = Properties::parse("cpu_cores_count 64\nsimd_count 0\n".into()).expect("cpu");
        assert!(!cpu.is_gpu_node());
        assert!(!Properties::default().is_gpu_node());
        let gpu = Properties::parse("simd_count 304\n".into()).expect("gpu");
        assert!(gpu.is_gpu_node());
    }

    #[test]
    fn accepts_values_beyond_u32() {
        let props = Properties::parse("unique_id 18446744073709551615".into()).expect("u64 max");
        assert_eq!(props.get("unique_id"), Some(u64::MAX));
    }
}
