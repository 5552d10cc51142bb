//! How text taken from input is shown in messages and log lines, so that input can neither forge
//! a line nor leak through an error.
//!
//! - [`escape`] is the one escaping function: every control character (and every Unicode line
//!   separator or bidirectional override) becomes a visible escape such as `\n` or `\u{1b}`, so
//!   one message stays one line and reads in order. It leaves everything else alone, backslashes
//!   included, so escaping twice changes nothing: libraries escape what they quote, and the edges
//!   (log writers, the binaries' error lines) escape whole lines again without harm.
//! - [`name`] shows a key read from a file that may not be what it claims (a spec-dir entry can
//!   point anywhere): only when it looks like a field name, and truncated. Values from such a file
//!   are never shown.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::write::PathKind;

/// The longest name [`name`] shows in full; longer names are cut to this many characters.
pub const NAME_LIMIT: usize = 32;

/// `text` with every control character, Unicode line or paragraph separator and bidirectional
/// control replaced by an escape (`\n`, `\r`, `\t`, else `\u{hex}`). Borrowed when nothing needs
/// escaping; idempotent.
///
/// ```
/// use cdi::text::escape;
///
/// assert_eq!(escape("1\n2026-01-01T00:00:00Z info FORGED"), "1\\n2026-01-01T00:00:00Z info FORGED");
/// assert_eq!(escape("tab\tesc\u{1b}[31m"), "tab\\tesc\\u{1b}[31m");
/// assert_eq!(escape(&escape("a\nb")), escape("a\nb"));
/// ```
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// True for the characters [`escape`] replaces.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' // line and paragraph separators
                | '\u{061c}' | '\u{200e}' | '\u{200f}' // bidirectional marks
                | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' // embeddings, overrides, isolates
        )
}

/// A key from untrusted input as it may be shown: `Some` when it looks like a field or annotation
/// name (ASCII letters, digits, `_`, `-`, `.` and `/`), cut to [`NAME_LIMIT`] characters with `...`
/// after; `None` for anything else (a line of `/etc/shadow` read as a YAML key, for example).
///
/// ```
/// use cdi::text::name;
///
/// assert_eq!(name("deviceNodes").as_deref(), Some("deviceNodes"));
/// assert_eq!(name("root:$y$j9T$hash:19000:0:99999:7::"), None);
/// assert_eq!(name(&"a".repeat(40)).as_deref(), Some(&*format!("{}...", "a".repeat(32))));
/// ```
pub fn name(text: &str) -> Option<String> {
    let name_like = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
    if !name_like {
        return None;
    }
    if text.len() <= NAME_LIMIT {
        Some(text.to_owned())
    } else {
        Some(format!("{}...", &text[..NAME_LIMIT]))
    }
}

/// What kind of file a `st_mode` describes, for messages that refuse it: `a regular file`, the
/// words of its [`PathKind`] (`a directory`, `a FIFO`, ...), or `a special file` for a type
/// neither knows.
pub fn file_type(st_mode: u32) -> &'static str {
    use nix::sys::stat::SFlag;
    match PathKind::of(st_mode) {
        Some(kind) => kind.text(),
        None if st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits() => "a regular file",
        None => "a special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in [
            "",
            "amd.com/gpu=0",
            "C:\\path \"quoted\" ünïcödé",
            "0,1 2-3",
        ] {
            assert!(
                matches!(escape(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn every_line_break_and_control_is_escaped() {
        assert_eq!(escape("a\r\nb"), "a\\r\\nb");
        assert_eq!(escape("\u{0}\u{7f}\u{85}"), "\\u{0}\\u{7f}\\u{85}");
        assert_eq!(escape("x\u{2028}y\u{2029}z"), "x\\u{2028}y\\u{2029}z");
        assert_eq!(escape("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(escape("\u{2066}a\u{2069}"), "\\u{2066}a\\u{2069}");
    }

    #[test]
    fn escaped_text_has_no_line_breaks_and_escaping_is_idempotent() {
        let nasty: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let once = escape(&nasty).into_owned();
        assert_eq!(once.lines().count(), 1);
        assert!(!once.chars().any(needs_escape));
        assert_eq!(escape(&once), once);
    }

    #[test]
    fn file_types_are_named() {
        use std::os::unix::fs::MetadataExt;
        let mode = |p: &str| std::fs::symlink_metadata(p).expect("stat").mode();
        assert_eq!(file_type(mode("/")), "a directory");
        assert_eq!(file_type(mode("/dev/null")), "a character device");
        assert_eq!(file_type(mode("/proc/self")), "a symbolic link");
        assert_eq!(file_type(mode("/proc/self/status")), "a regular file");
        assert_eq!(file_type(0o010_644), "a FIFO");
    }

    #[test]
    fn names_are_shown_only_when_they_look_like_names() {
        assert_eq!(name("extra").as_deref(), Some("extra"));
        assert_eq!(
            name("example.com/key_1-a").as_deref(),
            Some("example.com/key_1-a")
        );
        for hidden in ["", "a b", "root:x:0:0", "key\n", "ключ", "x=y", "$HOME"] {
            assert_eq!(name(hidden), None, "{hidden:?}");
        }
        let long = "x".repeat(NAME_LIMIT + 1);
        assert_eq!(name(&long), Some(format!("{}...", &long[..NAME_LIMIT])));
        assert_eq!(
            name(&long[..NAME_LIMIT]).as_deref(),
            Some(&long[..NAME_LIMIT])
        );
    }
}
