//! How errors read on one line for users: the standard library prints an I/O error as
//! `No such file or directory (os error 2)`; users read `no such file or directory`, in the
//! lower-case style of every other message; and a control character that reached a message from
//! input (a request value, a file name) is escaped, so the line stays one line. Applied at the
//! edges (the binaries' error lines, the wrapper's and hooks' messages, `validate`'s problem
//! lines), never inside library errors.

/// The chain of `err` and its causes on one line, each cause once, in plain words.
pub fn error_line(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    plain_line(&text)
}

/// `text` as one plain line: control characters escaped ([`cdi::text::escape`]), then
/// [`plain_os_errors`].
pub fn plain_line(text: &str) -> String {
    plain_os_errors(&cdi::text::escape(text))
}

/// Rewrites every `Phrase (os error N)` in `text` as `phrase`: the operating system's message
/// (after the last `: ` before it) lower-cased at its start, the error number dropped.
pub fn plain_os_errors(text: &str) -> String {
    const MARK: &str = " (os error ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let (head, tail) = rest.split_at(at);
        let digits = tail[MARK.len()..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let close = MARK.len() + digits;
        if digits == 0 || tail.as_bytes().get(close) != Some(&b')') {
            out.push_str(&rest[..at + 1]);
            rest = &rest[at + 1..];
            continue;
        }
        let start = head.rfind(": ").map_or(0, |i| i + 2);
        out.push_str(&head[..start]);
        let mut phrase = head[start..].chars();
        if let Some(first) = phrase.next() {
            out.extend(first.to_lowercase());
            out.push_str(phrase.as_str());
        }
        rest = &tail[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_in_lower_case_without_their_number() {
        assert_eq!(
            plain_os_errors("cannot read /x: No such file or directory (os error 2)"),
            "cannot read /x: no such file or directory"
        );
        assert_eq!(
            plain_os_errors(
                "a: Permission denied (os error 13): then b: Is a directory (os error 21)"
            ),
            "a: permission denied: then b: is a directory"
        );
        assert_eq!(plain_os_errors("Broken pipe (os error 32)"), "broken pipe");
    }

    #[test]
    fn other_text_is_left_alone() {
        for text in [
            "fine",
            "x (os error )",
            "x (os error 12",
            "x (os error 1a)",
            "",
        ] {
            assert_eq!(plain_os_errors(text), text);
        }
    }

    #[test]
    fn lines_from_input_stay_one_line() {
        assert_eq!(
            plain_line(
                "bad value \"1\n2026-01-01T00:00:00Z FORGED\": No such file or directory (os error 2)"
            ),
            "bad value \"1\\n2026-01-01T00:00:00Z FORGED\": no such file or directory"
        );
    }

    #[test]
    fn io_error_chains_read_plainly() {
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(error_line(&err), "no such file or directory");
    }
}
