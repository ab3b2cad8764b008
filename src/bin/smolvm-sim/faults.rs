//! The text and shapes of injected faults: floods, hostile stderr, cut archives.

use std::io::{self, Read, Seek, SeekFrom};

/// What GNU tar says when a live file changes under it (exit 1, not fatal).
pub const TAR_CHANGED: &[u8] = b"tar: ./var/log/app.log: file changed as we read it\n";

/// Stderr meant to attack a terminal: an OSC title, a screen clear, colours, bells,
/// backspaces, a carriage return, invalid UTF-8 and one very long line.
pub fn hostile_stderr() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"tar: \x1b]0;pwned\x07./etc/shadow: Cannot open: Permission denied\n");
    v.extend_from_slice(b"\x1b[2J\x1b[H\x1b[31mtar: screen cleared\x1b[0m\n");
    v.extend_from_slice(
        b"tar: bell\x07 backspace\x08\x08 nul\x00 del\x7f csi\x9b31m cr\rOVERWRITTEN\n",
    );
    v.extend_from_slice(b"tar: ./home/node/\xff\xfe\xc3\x28invalid-utf8: Cannot stat\n");
    v.extend_from_slice(b"tar: ");
    v.extend(std::iter::repeat_n(b'A', 100_000));
    v.extend_from_slice(b": long line\n");
    v
}

/// Exactly `len` bytes of tar-like warning lines, numbered from `*line`; every line starts
/// with `tar: ` and ends with a newline (when `len` allows).
pub fn flood_text(len: u64, line: &mut u64) -> Vec<u8> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let mut v = Vec::with_capacity(len);
    let mut last_start = 0;
    loop {
        let next = format!(
            "tar: ./srv/cache/blob-{:08}: Cannot open: Permission denied\n",
            *line
        );
        if v.len() + next.len() > len {
            break;
        }
        last_start = v.len();
        v.extend_from_slice(next.as_bytes());
        *line += 1;
    }
    let left = len - v.len();
    if left == 0 {
        return v;
    }
    // Fill the rest with one padded line, merged into the previous one if too short.
    let start = if left < 7 && !v.is_empty() {
        last_start
    } else {
        v.len()
    };
    v.truncate(start);
    let width = len - start;
    let mut pad = b"tar: ".to_vec();
    pad.resize(width.saturating_sub(1).max(pad.len()), b'.');
    pad.truncate(width.saturating_sub(1));
    pad.push(b'\n');
    v.extend_from_slice(&pad);
    v
}

/// Where a `len`-byte archive is cut: half-way, in the middle of a 512-byte block, so the
/// member there is incomplete and the end-of-archive blocks are missing.
pub fn cut_point(len: u64) -> u64 {
    if len < 2048 {
        len / 2
    } else {
        len / 2 / 512 * 512 + 256
    }
}

/// Reads its source to a temp file first, then serves only the part before `cut_point`:
/// a real tar's length is unknown until it ends.
pub struct CutAfterSpool<R> {
    inner: Option<R>,
    spooled: Option<io::Take<std::fs::File>>,
}

impl<R: Read> CutAfterSpool<R> {
    pub fn new(inner: R) -> Self {
        CutAfterSpool {
            inner: Some(inner),
            spooled: None,
        }
    }
}

impl<R: Read> Read for CutAfterSpool<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(mut inner) = self.inner.take() {
            let mut file = tempfile::tempfile()?;
            let len = io::copy(&mut inner, &mut file)?;
            file.seek(SeekFrom::Start(0))?;
            self.spooled = Some(file.take(cut_point(len)));
        }
        match self.spooled.as_mut() {
            Some(f) => f.read(buf),
            None => Ok(0),
        }
    }
}

/// Faults of `machine ls` set for one call by `SMOLVM_SIM_LS_FAULT` (so a test can give
/// one command a hostile smolvm): `duplicate` lists every machine twice,
/// `stdout-flood=BYTES` prints an endless-looking JSON array, `stderr-flood=BYTES` floods
/// stderr and fails, `linger=SECS` leaves a child holding stdout after exiting 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LsFault {
    Duplicate,
    StdoutFlood(u64),
    StderrFlood(u64),
    Linger(u64),
}

pub fn ls_fault() -> Option<LsFault> {
    let v = std::env::var("SMOLVM_SIM_LS_FAULT").ok()?;
    let (name, n) = v.split_once('=').unwrap_or((v.as_str(), "0"));
    let n: u64 = n.parse().ok()?;
    match name {
        "duplicate" => Some(LsFault::Duplicate),
        "stdout-flood" => Some(LsFault::StdoutFlood(n)),
        "stderr-flood" => Some(LsFault::StderrFlood(n)),
        "linger" => Some(LsFault::Linger(n)),
        _ => None,
    }
}

/// Writes `len` bytes made by `chunk` to `out` a MiB at a time (never all in memory).
pub fn flood(out: &mut impl io::Write, len: u64, mut chunk: impl FnMut(u64) -> Vec<u8>) {
    let mut left = len;
    while left > 0 {
        let n = left.min(1 << 20);
        if out.write_all(&chunk(n)).is_err() {
            return;
        }
        left -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_is_exact_and_line_shaped() {
        for len in [1000, 4096, 64 * 1024 + 3, 62, 63, 64, 65, 66, 67, 68, 130] {
            let mut n = 0;
            let t = flood_text(len, &mut n);
            assert_eq!(t.len() as u64, len);
            assert_eq!(t.last(), Some(&b'\n'));
            assert!(
                t.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .all(|l| l.starts_with(b"tar: ")),
                "{len}"
            );
        }
    }

    #[test]
    fn cut_is_mid_block_and_before_the_end() {
        let c = cut_point(20480);
        assert_eq!(c % 512, 256);
        assert!(c < 20480 - 1024);
    }
}
