//! What a parse error may show of a file that may not be a spec at all: field paths with keys
//! that do not look like names replaced by `<key>`, and parser messages without the values they
//! quote (see the module documentation of [`super`]).

/// A field path such as `devices[0].containerEdits.env[1]` or `annotations.example.com/key` with
/// every key that does not look like a name replaced by `<key>` and long names truncated.
pub(super) fn shown_path(path: &str) -> String {
    path.split('.')
        .map(|piece| {
            let key_end = piece.find('[').unwrap_or(piece.len());
            let (key, indices) = piece.split_at(key_end);
            let key = match key {
                "" | "?" => key.to_owned(),
                key => crate::text::name(key).unwrap_or_else(|| "<key>".to_owned()),
            };
            format!("{key}{}", crate::text::escape(indices))
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A parser message with every quoted value dropped: `invalid type: string "x", expected ...`
/// becomes `invalid type: string, expected ...`. A quoted key after `field` or `key` stays when
/// it looks like a name ([`crate::text::name`]). What follows `, expected` describes this crate's
/// types and is kept.
pub(super) fn without_values(message: &str) -> String {
    let (head, tail) = match message.find(", expected") {
        Some(at) => message.split_at(at),
        None => (message, ""),
    };
    let mut out = String::with_capacity(head.len());
    let mut rest = head;
    while let Some(open) = rest.find(['`', '"']) {
        out.push_str(&rest[..open]);
        let quote = rest.as_bytes()[open];
        let inner_start = open + 1;
        let close = if quote == b'`' {
            rest[inner_start..]
                .find(['`', '\''])
                .map(|i| inner_start + i)
        } else {
            closing_double_quote(&rest[inner_start..]).map(|i| inner_start + i)
        };
        let Some(close) = close else {
            rest = "";
            break;
        };
        let inner = &rest[inner_start..close];
        let names_a_key = {
            let before = out.trim_end();
            before.ends_with("field") || before.ends_with("key")
        };
        let shown = if names_a_key {
            crate::text::name(inner)
        } else {
            None
        };
        match shown {
            Some(name) => {
                let q = quote as char;
                out.push(q);
                out.push_str(&name);
                out.push(q);
            }
            None => {
                let kept = out.trim_end().len();
                out.truncate(kept);
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    let head = out.trim_end().trim_end_matches(':').trim_end();
    format!("{head}{tail}")
}

/// The index of the `"` closing a Rust- or Go-style quoted string whose opening quote was just
/// before `text`.
fn closing_double_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}
