//! The one line smolvm prints that is not about our command: the PyPI wheel's binary,
//! `smol/smol-vmm`, starts every call with
//! `note: no packed assets found for 'smol-vmm' (looked for a 'smol-vmm.smolmachine' …`
//! on stderr, because a binary of that shape could be a packed `.smolmachine` launcher.
//! It names the resolved executable, so a symlink called `smolvm` prints the same note.
//! Exactly that line is dropped, and only when the program is that binary; any other
//! line, or the note of a binary with another name, passes untouched.

use std::path::Path;

/// The file name of the smolvm binary in the `smolmachines` wheel.
pub const WHEEL_BINARY: &str = "smol-vmm";

/// The note's text (without its newline) as smolvm 1.32 prints it for `binary`.
pub fn note_for(binary: &str) -> String {
    format!(
        "note: no packed assets found for '{binary}' (looked for a '{binary}.smolmachine' \
         sidecar next to the executable); running as the plain smolvm CLI. If this is a \
         packed binary, keep its .smolmachine file alongside it."
    )
}

/// Whether `program` (followed through symlinks) is the wheel's binary.
pub fn is_wheel_binary(program: &Path) -> bool {
    let resolved = std::fs::canonicalize(program).ok().or_else(|| {
        // A bare name is looked up on PATH by the OS; do the same here.
        if program.components().count() != 1 {
            return None;
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
    });
    resolved.is_some_and(|p| p.file_name().is_some_and(|n| n == WHEEL_BINARY))
}

/// Drops whole lines equal to the wheel's note from a stream that arrives in chunks of
/// any size (smolvm writes the note in several pieces). Bytes that might begin the note
/// are held back until a line tells either way.
#[derive(Debug, Clone)]
pub struct NoteFilter {
    /// The note with its newline.
    line: Vec<u8>,
    /// Bytes at the start of the current line that so far match `line`.
    held: Vec<u8>,
    /// At the start of a line (or inside a held prefix).
    matching: bool,
}

impl NoteFilter {
    pub fn new() -> NoteFilter {
        let mut line = note_for(WHEEL_BINARY).into_bytes();
        line.push(b'\n');
        NoteFilter {
            line,
            held: Vec::new(),
            matching: true,
        }
    }

    /// A filter for `program`'s stderr, or None when it is not the wheel's binary.
    pub fn for_program(program: &Path) -> Option<NoteFilter> {
        is_wheel_binary(program).then(NoteFilter::new)
    }

    /// Appends `chunk` to `out`, less any complete note line.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        while !chunk.is_empty() {
            if self.matching {
                let want = &self.line[self.held.len()..];
                let n = want.iter().zip(chunk).take_while(|(a, b)| a == b).count();
                if n == want.len() {
                    // The whole note: dropped, and the next line starts here.
                    self.held.clear();
                    chunk = &chunk[n..];
                    continue;
                }
                if n == chunk.len() {
                    self.held.extend_from_slice(chunk);
                    return;
                }
                // Not the note after all: what was held is ordinary output.
                out.append(&mut self.held);
                self.matching = false;
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    out.extend_from_slice(&chunk[..=p]);
                    chunk = &chunk[p + 1..];
                    self.matching = true;
                }
                None => {
                    out.extend_from_slice(chunk);
                    return;
                }
            }
        }
    }

    /// Hands back what is still held (the stream ended inside a would-be note).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
    }

    /// The whole of `bytes`, filtered.
    pub fn strip(bytes: &[u8]) -> Vec<u8> {
        let mut f = NoteFilter::new();
        let mut out = Vec::with_capacity(bytes.len());
        f.feed(bytes, &mut out);
        f.finish(&mut out);
        out
    }
}

impl Default for NoteFilter {
    fn default() -> Self {
        NoteFilter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> String {
        note_for(WHEEL_BINARY) + "\n"
    }

    #[test]
    fn drops_the_note_in_any_chunking() {
        let input = format!("{}Error: vm not found: x\n{}tail", note(), note());
        for size in [1, 2, 7, 64, 4096] {
            let mut f = NoteFilter::new();
            let mut out = Vec::new();
            for c in input.as_bytes().chunks(size) {
                f.feed(c, &mut out);
            }
            f.finish(&mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "Error: vm not found: x\ntail"
            );
        }
    }

    #[test]
    fn keeps_everything_else() {
        let other = note_for("othername") + "\n";
        let partial = &note()[..40];
        let cases = [
            other.clone(),
            format!("x{}", note()),
            format!("{}\n", note().trim_end_matches('\n').to_string() + " more"),
            partial.to_string(),
            format!("{partial}\nnext\n"),
            String::new(),
        ];
        for c in cases {
            assert_eq!(NoteFilter::strip(c.as_bytes()), c.as_bytes(), "{c:?}");
        }
    }

    #[test]
    fn only_the_wheel_binary() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join(WHEEL_BINARY);
        std::fs::write(&bin, b"").unwrap();
        let link = dir.path().join("smolvm");
        std::os::unix::fs::symlink(&bin, &link).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, b"").unwrap();
        assert!(is_wheel_binary(&bin));
        assert!(is_wheel_binary(&link));
        assert!(!is_wheel_binary(&other));
        assert!(!is_wheel_binary(&dir.path().join("missing")));
        assert!(NoteFilter::for_program(&other).is_none());
    }
}
