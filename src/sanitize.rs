//! Making bytes from the VM safe to show on a terminal.
//!
//! The VM is an untrusted workspace: its stderr and its file names may carry escape
//! sequences (OSC title changes, screen clears) or invalid UTF-8. Nothing it prints
//! reaches the operator's terminal without passing through [`escape_bytes`].

use std::fmt::Write as _;

/// Renders arbitrary bytes as printable text: valid UTF-8 is kept, control characters,
/// bidi overrides and invalid bytes are made visible as `\xNN` / `\u{NNNN}` escapes.
/// Tabs become four spaces so columns stay predictable.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        escape_str_into(chunk.valid(), &mut out);
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// As [`escape_bytes`], but keeps line breaks: for whole logs shown line by line.
/// A `\r` before `\n` is dropped (CRLF output), any other is made visible.
pub fn escape_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut lines = bytes.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.push_str(&escape_bytes(line));
        if lines.peek().is_some() {
            out.push('\n');
        }
    }
    out
}

/// As [`escape_bytes`], for text already known to be UTF-8 (e.g. a machine name).
pub fn escape_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_str_into(s, &mut out);
    out
}

/// Makes text that should already be escaped (a record read back from disk) safe to
/// print without escaping it twice: backslashes stay, anything that could act on a
/// terminal is escaped.
pub fn guard(s: &str) -> String {
    let acts = |c: char| {
        c.is_control()
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
    };
    if !s.chars().any(acts) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if acts(c) {
            escape_str_into(c.encode_utf8(&mut [0; 4]), &mut out);
        } else {
            out.push(c);
        }
    }
    out
}

fn escape_str_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\t' => out.push_str("    "),
            // Doubled, so that a literal `\x1b` from the guest cannot pass for an escaped ESC.
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            // C1 controls (0x80-0x9f) can start escape sequences on some terminals.
            c if ('\u{80}'..='\u{9f}').contains(&c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            // Bidi overrides and isolates can make text read differently from what it is.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_osc_clear_and_invalid_utf8() {
        let raw = b"a\x1b]0;pwned\x07b\x1b[2J\xff\xfe ok \xc3\xa9";
        let shown = escape_bytes(raw);
        assert_eq!(shown, "a\\x1b]0;pwned\\x07b\\x1b[2J\\xff\\xfe ok \u{e9}");
        assert!(!shown.bytes().any(|b| b < 0x20 || b == 0x7f));
    }

    #[test]
    fn escapes_c1_and_bidi_and_expands_tabs() {
        assert_eq!(
            escape_str("x\u{9b}y\u{202e}z\tw"),
            "x\\u{9b}y\\u{202e}z    w"
        );
    }

    #[test]
    fn escape_text_keeps_lines_only() {
        assert_eq!(
            escape_text(b"a\r\nb\x1b[2J\nc\rd\n"),
            "a\nb\\x1b[2J\nc\\x0dd\n"
        );
    }

    #[test]
    fn literal_backslashes_cannot_pass_for_escapes() {
        assert_eq!(escape_bytes(br"lit\x1b"), r"lit\\x1b");
    }

    #[test]
    fn guard_escapes_what_acts_and_keeps_escapes() {
        assert_eq!(guard("a\\x1b\u{1b}[2J\u{202e}"), "a\\x1b\\x1b[2J\\u{202e}");
    }

    #[test]
    fn keeps_plain_text() {
        assert_eq!(
            escape_bytes("héllo wörld ./a b/c".as_bytes()),
            "héllo wörld ./a b/c"
        );
    }
}
