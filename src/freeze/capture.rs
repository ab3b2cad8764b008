//! Bounded capture of a child's output (mostly the VM's stderr), drained while stdout flows.
//!
//! The output is untrusted: it may be a 100 MiB flood, escape sequences, invalid UTF-8 or
//! megabytes without a newline. Whatever comes in, memory stays bounded: the log file keeps
//! a head and a tail, a ring keeps the last lines, the batch for the front end is a count
//! over that ring. Bytes are escaped only when handed out, so a flood costs a line split
//! and a copy into the ring, nothing more.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::sanitize::escape_bytes;

/// How many "file changed as we read it" paths are kept; the rest are only counted.
pub const MAX_CHANGED_FILES: usize = 1000;
/// What [`OutputCapture::tail`] says when the child printed nothing (or only whitespace).
pub const NO_OUTPUT: &str = "<no stderr>";
/// The read size of [`drain`].
pub const DRAIN_CHUNK: usize = 64 * 1024;

/// GNU tar's warning for a file that changed while archived (exit status 1, not fatal).
const CHANGED_SUFFIX: &[u8] = b": file changed as we read it";

#[derive(Debug, Clone, Copy)]
pub struct CaptureLimits {
    /// Bytes kept from the start of the output in the log file.
    pub log_head: u64,
    /// Bytes kept from the end of the output in the log file (held in memory until finish).
    pub log_tail: u64,
    /// Lines kept in memory for [`OutputCapture::tail`] and batches.
    pub ring_lines: usize,
    /// Most lines in one batch; older ones are counted as dropped.
    pub batch_lines: usize,
    /// Longer lines are cut into pieces of this many bytes, each a line.
    pub max_line: usize,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        Self {
            log_head: 1 << 20,
            log_tail: 1 << 20,
            ring_lines: 200,
            batch_lines: 200,
            max_line: 4096,
        }
    }
}

/// What [`OutputCapture::finish`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Every byte pushed.
    pub total_bytes: u64,
    /// Bytes left out of the log file between head and tail (0 without a log file).
    pub dropped_bytes: u64,
    /// Size of the log file, marker included.
    pub log_bytes: u64,
}

/// A fixed-size ring of the last bytes, filled by slice copies.
#[derive(Debug, Default)]
struct ByteRing {
    buf: Vec<u8>,
    cap: usize,
    /// Index of the oldest byte once the buffer is full; 0 before.
    start: usize,
}

impl ByteRing {
    fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
            start: 0,
        }
    }

    fn push(&mut self, mut s: &[u8]) {
        if self.cap == 0 || s.is_empty() {
            return;
        }
        if s.len() >= self.cap {
            s = &s[s.len() - self.cap..];
            self.buf.clear();
            self.start = 0;
        }
        if self.buf.len() < self.cap {
            // Allocated only once the output outgrows the head, and never beyond `cap`.
            self.buf.reserve_exact(self.cap - self.buf.len());
            let n = (self.cap - self.buf.len()).min(s.len());
            self.buf.extend_from_slice(&s[..n]);
            s = &s[n..];
            if s.is_empty() {
                return;
            }
        }
        // Full: overwrite the oldest bytes, wrapping at most once as s.len() < cap here.
        let first = (self.cap - self.start).min(s.len());
        self.buf[self.start..self.start + first].copy_from_slice(&s[..first]);
        let rest = &s[first..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.start = (self.start + s.len()) % self.cap;
    }

    /// The kept bytes, oldest first.
    fn as_slices(&self) -> (&[u8], &[u8]) {
        let (newer, older) = self.buf.split_at(self.start);
        (older, newer)
    }

    fn len(&self) -> usize {
        self.buf.len()
    }
}

/// Captures one output stream; see the module docs.
#[derive(Debug)]
pub struct OutputCapture {
    limits: CaptureLimits,
    /// None for in-memory captures, after a write error, and after finish.
    log: Option<File>,
    log_bytes: u64,
    /// Bytes of the head section seen so far (written unless the log failed).
    head_len: u64,
    head_ends_line: bool,
    /// The bytes after the head, last `log_tail` of them.
    tail: ByteRing,
    total: u64,
    /// Whether anything but whitespace came.
    seen_text: bool,
    /// The line still waiting for its newline, at most `max_line` bytes.
    partial: Vec<u8>,
    /// The last `ring_lines` lines, raw; buffers are reused as lines rotate through.
    lines: VecDeque<Vec<u8>>,
    /// Lines completed since the last batch.
    unsent: u64,
    changed: Vec<String>,
    changed_more: u64,
    summary: Option<CaptureSummary>,
    /// Drops lines that are the tool's, not the command's (smolvm's wheel note).
    filter: Option<crate::smolvm::note::NoteFilter>,
}

impl OutputCapture {
    /// Creates (truncates) the log file at `log_path`, readable by its owner only.
    pub fn create(log_path: &Path, limits: CaptureLimits) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(log_path)?;
        let mut capture = Self::in_memory(limits);
        capture.log = Some(file);
        capture.tail = ByteRing::new(usize::try_from(limits.log_tail).unwrap_or(usize::MAX));
        Ok(capture)
    }

    /// A capture that keeps no file (for short queries); same API otherwise.
    pub fn in_memory(limits: CaptureLimits) -> Self {
        let limits = CaptureLimits {
            max_line: limits.max_line.max(1),
            ..limits
        };
        Self {
            limits,
            log: None,
            log_bytes: 0,
            head_len: 0,
            head_ends_line: true,
            tail: ByteRing::new(0),
            total: 0,
            seen_text: false,
            partial: Vec::with_capacity(limits.max_line.min(64 * 1024)),
            lines: VecDeque::with_capacity(limits.ring_lines.min(4096)),
            unsent: 0,
            changed: Vec::new(),
            changed_more: 0,
            summary: None,
            filter: None,
        }
    }

    /// Passes every push through `filter` first (see [`crate::smolvm::note`]).
    pub fn with_filter(mut self, filter: Option<crate::smolvm::note::NoteFilter>) -> Self {
        self.filter = filter;
        self
    }

    /// Takes the next bytes. Lines end at `\n` (a `\r` before it is dropped); a line longer
    /// than `max_line` is cut into pieces, each a line. A failed log write is returned once,
    /// then the log is abandoned and capture goes on in memory.
    pub fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        let filtered;
        let bytes = match self.filter.as_mut() {
            Some(f) => {
                let mut out = Vec::with_capacity(bytes.len());
                f.feed(bytes, &mut out);
                filtered = out;
                &filtered[..]
            }
            None => bytes,
        };
        if bytes.is_empty() {
            return Ok(());
        }
        self.total += bytes.len() as u64;
        if !self.seen_text {
            self.seen_text = bytes.iter().any(|b| !b.is_ascii_whitespace());
        }
        self.split_lines(bytes);
        self.write_log(bytes)
    }

    fn split_lines(&mut self, mut bytes: &[u8]) {
        // Lines followed by `ring_lines` more newlines in this chunk would leave the ring
        // before the chunk ends, so they are only counted: a flood of short lines then
        // costs a newline search per line, not a copy.
        let newlines: usize = bytes.iter().map(|&b| usize::from(b == b'\n')).sum();
        let mut skip_ring = newlines.saturating_sub(self.limits.ring_lines);
        while let Some(i) = find_newline(bytes) {
            let line = &bytes[..i];
            bytes = &bytes[i + 1..];
            let keep = skip_ring == 0;
            skip_ring = skip_ring.saturating_sub(1);
            if self.partial.is_empty() && line.len() <= self.limits.max_line {
                // The common case: a whole line in this chunk, emitted without a copy.
                self.emit(strip_cr(line), keep);
            } else {
                self.extend_partial(line, keep);
                self.flush_partial(keep);
            }
        }
        self.extend_partial(bytes, true);
    }

    /// Appends to the pending line, emitting a piece each time it reaches `max_line`.
    fn extend_partial(&mut self, mut s: &[u8], keep: bool) {
        loop {
            let room = self.limits.max_line - self.partial.len();
            if s.len() <= room {
                self.partial.extend_from_slice(s);
                return;
            }
            self.partial.extend_from_slice(&s[..room]);
            s = &s[room..];
            let piece = std::mem::take(&mut self.partial);
            self.emit(&piece, keep);
            self.partial = piece;
            self.partial.clear();
        }
    }

    fn flush_partial(&mut self, keep: bool) {
        let line = std::mem::take(&mut self.partial);
        self.emit(strip_cr(&line), keep);
        self.partial = line;
        self.partial.clear();
    }

    /// Counts a line and looks for tar's warning in it; `keep` puts it in the ring.
    fn emit(&mut self, line: &[u8], keep: bool) {
        self.unsent += 1;
        if line.ends_with(CHANGED_SUFFIX) {
            self.note_changed(&line[..line.len() - CHANGED_SUFFIX.len()]);
        }
        if !keep || self.limits.ring_lines == 0 {
            return;
        }
        let mut slot = if self.lines.len() >= self.limits.ring_lines {
            self.lines.pop_front().unwrap_or_default()
        } else {
            Vec::new()
        };
        slot.clear();
        slot.extend_from_slice(line);
        self.lines.push_back(slot);
    }

    /// `body` is `tar: PATH`; the program name ends at the first ": " (tar escapes any
    /// colon in PATH, so it cannot hold ": ").
    fn note_changed(&mut self, body: &[u8]) {
        let Some(i) = body.windows(2).position(|w| w == b": ") else {
            return;
        };
        if self.changed.len() < MAX_CHANGED_FILES {
            self.changed.push(escape_bytes(&body[i + 2..]));
        } else {
            self.changed_more += 1;
        }
    }

    fn write_log(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(file) = self.log.as_mut() else {
            return Ok(());
        };
        let room = self.limits.log_head.saturating_sub(self.head_len);
        let (head, rest) =
            bytes.split_at(usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len()));
        if let Some(&last) = head.last() {
            self.head_len += head.len() as u64;
            self.head_ends_line = last == b'\n';
            if let Err(e) = file.write_all(head) {
                self.abandon_log();
                return Err(e);
            }
            self.log_bytes += head.len() as u64;
        }
        self.tail.push(rest);
        Ok(())
    }

    fn abandon_log(&mut self) {
        self.log = None;
        self.tail = ByteRing::new(0);
    }

    /// The lines completed since the last call (escaped, newest last, at most
    /// `batch_lines`, and at most `ring_lines` as they come from the ring), with how many
    /// older ones were left out. None if no line completed. A pending partial line is not
    /// included until [`finish`](Self::finish) flushes it.
    pub fn take_batch(&mut self) -> Option<(Vec<String>, u64)> {
        if self.unsent == 0 {
            return None;
        }
        let keep = usize::try_from(self.unsent)
            .unwrap_or(usize::MAX)
            .min(self.limits.batch_lines)
            .min(self.lines.len());
        let batch: Vec<String> = self
            .lines
            .iter()
            .skip(self.lines.len() - keep)
            .map(|l| escape_bytes(l))
            .collect();
        let dropped = self.unsent - keep as u64;
        self.unsent = 0;
        Some((batch, dropped))
    }

    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// No bytes at all, or only whitespace.
    pub fn is_empty(&self) -> bool {
        !self.seen_text
    }

    /// The last `n` lines (escaped, joined with '\n'), the pending partial line included;
    /// [`NO_OUTPUT`] when nothing but whitespace was captured.
    pub fn tail(&self, n: usize) -> String {
        if self.is_empty() {
            return NO_OUTPUT.to_string();
        }
        let partial = (!self.partial.is_empty()).then_some(&self.partial);
        let from_ring = n
            .saturating_sub(usize::from(partial.is_some()))
            .min(self.lines.len());
        let mut shown: Vec<String> = self
            .lines
            .iter()
            .skip(self.lines.len() - from_ring)
            .chain(partial)
            .map(|l| escape_bytes(l))
            .collect();
        // n == 0 with a partial line: nothing asked for.
        shown.truncate(n);
        shown.join("\n")
    }

    /// Whether any kept line (or the partial one) contains `needle`, compared raw.
    pub fn tail_contains(&self, needle: &str) -> bool {
        let needle = needle.as_bytes();
        if needle.is_empty() {
            return true;
        }
        self.lines
            .iter()
            .chain(std::iter::once(&self.partial))
            .any(|l| l.windows(needle.len()).any(|w| w == needle))
    }

    /// Paths tar reported as "file changed as we read it" (escaped), and how many more
    /// were not kept.
    pub fn changed_files(&self) -> (&[String], u64) {
        (&self.changed, self.changed_more)
    }

    /// Flushes the pending partial line into the ring and the next batch, and completes the
    /// log: the kept tail, preceded by a `[… N bytes dropped …]` line if the output did not
    /// fit. Meant to be called once, after the stream ended; later calls return the same
    /// summary and later pushes reach only memory.
    pub fn finish(&mut self) -> io::Result<CaptureSummary> {
        if let Some(summary) = &self.summary {
            return Ok(summary.clone());
        }
        if let Some(mut f) = self.filter.take() {
            let mut held = Vec::new();
            f.finish(&mut held);
            self.push(&held)?;
        }
        if !self.partial.is_empty() {
            self.flush_partial(true);
        }
        let kept = self.tail.len() as u64;
        let dropped = if self.log.is_some() {
            self.total - self.head_len - kept
        } else {
            0
        };
        if let Some(file) = self.log.as_mut() {
            let marker = if dropped == 0 {
                String::new()
            } else {
                // The marker gets a line of its own even when the head stops mid-line.
                let newline = if self.head_ends_line { "" } else { "\n" };
                format!("{newline}[… {dropped} bytes dropped …]\n")
            };
            let (older, newer) = self.tail.as_slices();
            let written = file
                .write_all(marker.as_bytes())
                .and_then(|()| file.write_all(older))
                .and_then(|()| file.write_all(newer))
                .and_then(|()| file.flush());
            self.abandon_log();
            written?;
            self.log_bytes += marker.len() as u64 + kept;
        }
        let summary = CaptureSummary {
            total_bytes: self.total,
            dropped_bytes: dropped,
            log_bytes: self.log_bytes,
        };
        self.summary = Some(summary.clone());
        Ok(summary)
    }
}

/// The first `\n`, eight bytes at a time (std has no public memchr).
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w) ^ NEWLINES;
        // A zero byte in x (a newline) sets its high bit; the lowest set bit is exact.
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Drains `reader` into the shared capture until EOF, in [`DRAIN_CHUNK`] reads into one
/// buffer, locking only to push each chunk. Returns the bytes read. A failed log write
/// does not stop the draining (a child blocked on a full pipe would stall its stdout
/// too): it is returned once EOF is reached.
pub async fn drain<R: AsyncRead + Unpin>(
    mut reader: R,
    capture: Arc<Mutex<OutputCapture>>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; DRAIN_CHUNK];
    let mut total = 0u64;
    let mut log_error = None;
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        // A panic elsewhere while holding the lock leaves the capture usable: keep going.
        let pushed = capture
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(&buf[..n]);
        if let Err(e) = pushed {
            log_error.get_or_insert(e);
        }
    }
    match log_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn small() -> CaptureLimits {
        CaptureLimits {
            log_head: 1000,
            log_tail: 2000,
            ring_lines: 20,
            batch_lines: 5,
            max_line: 64,
        }
    }

    /// Deterministic output with lines of varied length, some longer than `max_line`.
    fn flood(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 97 {
                    0..=2 => b'\n',
                    3 => 0x1b,
                    4 => 0xff,
                    n => b'a' + (n % 26) as u8,
                }
            })
            .collect()
    }

    fn push_chunked(c: &mut OutputCapture, data: &[u8]) {
        let mut rest = data;
        let mut step = 1usize;
        while !rest.is_empty() {
            // Varying chunk sizes, 1 byte to ~70 KB.
            step = (step * 7 + 13) % 70_001 + 1;
            let n = step.min(rest.len());
            c.push(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
    }

    fn assert_safe(s: &str) {
        assert!(
            !s.bytes().any(|b| b < 0x20 || b == 0x7f),
            "control byte in {s:?}"
        );
    }

    #[test]
    fn byte_ring_keeps_the_last_bytes() {
        let data = flood(50_000);
        for cap in [1, 7, 512, 4096] {
            let mut ring = ByteRing::new(cap);
            let (mut pos, mut step) = (0, 1usize);
            while pos < data.len() {
                step = (step * 31 + 7) % (3 * cap + 2);
                let end = (pos + step).min(data.len());
                ring.push(&data[pos..end]);
                pos = end;
                let (older, newer) = ring.as_slices();
                let kept = [older, newer].concat();
                assert_eq!(kept, data[pos.saturating_sub(cap)..pos], "cap {cap}");
            }
            assert!(ring.buf.capacity() <= cap);
        }
    }

    #[test]
    fn find_newline_agrees_with_a_byte_search() {
        let data = flood(20_000);
        for start in 0..300 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 100, 5000] {
                let s = &data[start..(start + len).min(data.len())];
                assert_eq!(find_newline(s), s.iter().position(|&b| b == b'\n'));
            }
        }
        assert_eq!(find_newline(&[0x0b, 0x8a, 0x09, 0x01, 0x0a]), Some(4));
    }

    #[test]
    fn small_output_is_kept_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage.log");
        let mut c = OutputCapture::create(&path, small()).unwrap();
        let data = b"hello\nwor\x1bld\r\nno newline";
        c.push(&data[..3]).unwrap();
        c.push(&data[3..]).unwrap();
        let summary = c.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(
            summary,
            CaptureSummary {
                total_bytes: data.len() as u64,
                dropped_bytes: 0,
                log_bytes: data.len() as u64
            }
        );
        assert_eq!(c.finish().unwrap(), summary, "finish is idempotent");
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn log_keeps_everything_up_to_head_plus_tail() {
        let dir = tempfile::tempdir().unwrap();
        let limits = small();
        let fits = flood(3000);
        for (extra, dropped) in [(0usize, 0u64), (1, 1)] {
            let path = dir.path().join(format!("{extra}.log"));
            let mut c = OutputCapture::create(&path, limits).unwrap();
            let mut data = fits.clone();
            data.extend(std::iter::repeat_n(b'z', extra));
            push_chunked(&mut c, &data);
            let s = c.finish().unwrap();
            assert_eq!(s.dropped_bytes, dropped);
            let log = std::fs::read(&path).unwrap();
            assert_eq!(s.log_bytes, log.len() as u64);
            if dropped == 0 {
                assert_eq!(log, data);
            } else {
                assert!(log.starts_with(&data[..1000]));
                assert!(log.ends_with(&data[data.len() - 2000..]));
            }
        }
    }

    #[test]
    fn flood_log_is_head_marker_tail() {
        let dir = tempfile::tempdir().unwrap();
        for limits in [small(), CaptureLimits::default()] {
            let path = dir.path().join("flood.log");
            let mut c = OutputCapture::create(&path, limits).unwrap();
            let data = flood(10 << 20);
            push_chunked(&mut c, &data);
            let s = c.finish().unwrap();
            let (head, tail) = (limits.log_head as usize, limits.log_tail as usize);
            let n = data.len() - head - tail;
            let mut expected = data[..head].to_vec();
            if data[head - 1] != b'\n' {
                expected.push(b'\n');
            }
            expected.extend(format!("[… {n} bytes dropped …]\n").as_bytes());
            expected.extend(&data[data.len() - tail..]);
            let log = std::fs::read(&path).unwrap();
            let diff = log.iter().zip(&expected).position(|(a, b)| a != b);
            assert!(
                log == expected,
                "log differs at {diff:?}, lengths {} {}",
                log.len(),
                expected.len()
            );
            assert_eq!(
                s,
                CaptureSummary {
                    total_bytes: data.len() as u64,
                    dropped_bytes: n as u64,
                    log_bytes: expected.len() as u64
                }
            );
        }
    }

    #[test]
    fn memory_stays_bounded_in_a_flood() {
        let dir = tempfile::tempdir().unwrap();
        let limits = small();
        let mut c = OutputCapture::create(&dir.path().join("x.log"), limits).unwrap();
        let mut data = flood(4 << 20);
        data.extend(vec![b'q'; 1 << 20]);
        push_chunked(&mut c, &data);
        assert!(c.tail.buf.capacity() <= limits.log_tail as usize);
        assert!(c.lines.len() <= limits.ring_lines);
        assert!(c.lines.iter().all(|l| l.capacity() <= 2 * limits.max_line));
        assert!(c.partial.capacity() <= limits.max_line);
        c.finish().unwrap();
        assert_eq!(c.tail.buf.capacity(), 0, "the tail is freed once written");
        let (lines, dropped) = c.take_batch().unwrap();
        assert_eq!(lines.len(), limits.batch_lines);
        assert!(dropped > 10_000);
    }

    #[test]
    fn crlf_and_missing_final_newline() {
        let mut c = OutputCapture::in_memory(small());
        c.push(b"one\r\ntwo\r").unwrap();
        c.push(b"\nthr").unwrap();
        c.push(b"ee").unwrap();
        assert_eq!(c.take_batch(), Some((vec!["one".into(), "two".into()], 0)));
        assert_eq!(c.take_batch(), None, "a partial line waits");
        assert_eq!(c.tail(10), "one\ntwo\nthree");
        assert_eq!(c.tail(2), "two\nthree");
        assert_eq!(c.tail(0), "");
        c.finish().unwrap();
        assert_eq!(c.take_batch(), Some((vec!["three".into()], 0)));
        assert_eq!(c.tail(10), "one\ntwo\nthree");
        assert_eq!(c.finish().unwrap().log_bytes, 0);
    }

    #[test]
    fn long_line_without_newline_is_cut() {
        let limits = CaptureLimits {
            ring_lines: 300,
            batch_lines: 300,
            ..CaptureLimits::default()
        };
        let mut c = OutputCapture::in_memory(limits);
        let line = vec![b'a'; 1_000_000];
        for chunk in line.chunks(65536) {
            c.push(chunk).unwrap();
        }
        let (lines, dropped) = c.take_batch().unwrap();
        assert_eq!((lines.len(), dropped), (1_000_000 / 4096, 0));
        assert!(lines.iter().all(|l| l.len() == 4096));
        c.finish().unwrap();
        let (last, _) = c.take_batch().unwrap();
        assert_eq!(last, vec!["a".repeat(1_000_000 % 4096)]);
        // A line of exactly max_line and its newline make one line, not two.
        let mut c = OutputCapture::in_memory(limits);
        c.push(&[b'b'; 4096]).unwrap();
        c.push(b"\nc\n").unwrap();
        assert_eq!(
            c.take_batch().unwrap().0,
            vec!["b".repeat(4096), "c".into()]
        );
    }

    #[test]
    fn escapes_and_invalid_utf8_come_out_escaped() {
        let mut c = OutputCapture::in_memory(small());
        let nasty = b"\x1b]0;pwned\x07 \x1b[2J\xff\xfe\tend\x7f\r\x9b\n\
            tar: ./a\x1b[31m: file changed as we read it\n\x1b[?1049h";
        c.push(nasty).unwrap();
        let (lines, _) = c.take_batch().unwrap();
        assert_eq!(lines.len(), 2);
        lines.iter().for_each(|l| assert_safe(l));
        assert!(lines[0].contains("\\x1b]0;pwned\\x07"), "{}", lines[0]);
        let tail = c.tail(10);
        tail.split('\n').for_each(assert_safe);
        assert!(tail.ends_with("\\x1b[?1049h"), "{tail}");
        let (changed, _) = c.changed_files();
        assert_eq!(changed, ["./a\\x1b[31m"]);
        changed.iter().for_each(|p| assert_safe(p));
    }

    #[test]
    fn batches_keep_the_newest_and_count_the_rest() {
        let limits = CaptureLimits {
            ring_lines: 200,
            batch_lines: 200,
            ..CaptureLimits::default()
        };
        let mut c = OutputCapture::in_memory(limits);
        let text: String = (0..500).map(|i| format!("line {i}\n")).collect();
        c.push(text.as_bytes()).unwrap();
        let (lines, dropped) = c.take_batch().unwrap();
        assert_eq!((lines.len(), dropped), (200, 300));
        assert_eq!(lines[0], "line 300");
        assert_eq!(lines[199], "line 499");
        assert_eq!(c.take_batch(), None);
        c.push(b"x\n").unwrap();
        assert_eq!(c.take_batch(), Some((vec!["x".into()], 0)));
        // A batch never holds more than the ring.
        let mut c = OutputCapture::in_memory(small());
        c.push(text.as_bytes()).unwrap();
        let (lines, dropped) = c.take_batch().unwrap();
        assert_eq!((lines.len(), dropped), (5, 495));
        assert_eq!(lines[4], "line 499");
    }

    #[test]
    fn changed_files_are_picked_out_and_bounded() {
        let mut c = OutputCapture::in_memory(CaptureLimits::default());
        c.push(b"tar: ./var/log/app.log: file changed as we read it\n")
            .unwrap();
        c.push(b"tar: Removing leading `/' from member names\n")
            .unwrap();
        c.push(b"/usr/bin/tar: ./a\\: b: file changed as we read it\r\n")
            .unwrap();
        c.push(b"file changed as we read it\n").unwrap();
        assert_eq!(
            c.changed_files(),
            (
                &["./var/log/app.log".to_string(), "./a\\\\: b".to_string()][..],
                0
            )
        );
        for i in 0..MAX_CHANGED_FILES + 5 {
            c.push(format!("tar: ./f{i}: file changed as we read it\n").as_bytes())
                .unwrap();
        }
        let (paths, more) = c.changed_files();
        assert_eq!((paths.len(), more), (MAX_CHANGED_FILES, 7));
        assert_eq!(paths[2], "./f0");
    }

    #[test]
    fn empty_and_whitespace_say_no_stderr() {
        let mut c = OutputCapture::in_memory(small());
        assert!(c.is_empty());
        assert_eq!(c.tail(5), NO_OUTPUT);
        c.push(b" \n\t\r\n").unwrap();
        assert!(c.is_empty());
        assert_eq!(c.tail(5), "<no stderr>");
        c.push(b"x").unwrap();
        assert!(!c.is_empty());
        assert_eq!(c.total_bytes(), 6);
    }

    #[test]
    fn tail_contains_sees_the_cap_error() {
        let mut c = OutputCapture::in_memory(small());
        let cap = "streaming output exceeded 11534336 byte cap";
        assert!(!c.tail_contains(cap));
        c.push(b"Error: streaming output exceeded 11534336 byte cap; exec terminated")
            .unwrap();
        assert!(c.tail_contains(cap), "in the partial line");
        c.push(b" (output truncated)\nmore\n").unwrap();
        assert!(c.tail_contains(cap), "in a complete line");
        assert!(!c.tail_contains("absent"));
    }

    #[test]
    fn a_failing_log_does_not_stop_the_capture() {
        // Writes to /dev/full fail with ENOSPC.
        let mut c = OutputCapture::create(Path::new("/dev/full"), small()).unwrap();
        assert!(c.push(b"first\n").is_err());
        assert!(c.push(b"second\n").is_ok());
        assert_eq!(c.tail(5), "first\nsecond");
        let s = c.finish().unwrap();
        assert_eq!((s.total_bytes, s.log_bytes), (13, 0));
    }

    #[tokio::test]
    async fn drain_a_duplex_stream() {
        let (mut tx, rx) = tokio::io::duplex(4096);
        let capture = Arc::new(Mutex::new(OutputCapture::in_memory(small())));
        let task = tokio::spawn(drain(rx, capture.clone()));
        let data = flood(300_000);
        tokio::io::AsyncWriteExt::write_all(&mut tx, &data)
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut tx, b"\nlast line")
            .await
            .unwrap();
        drop(tx);
        assert_eq!(task.await.unwrap().unwrap(), data.len() as u64 + 10);
        let c = capture.lock().unwrap();
        assert!(c.tail(3).ends_with("\nlast line"));
    }

    #[tokio::test]
    async fn drain_a_real_pipe_flood_while_reading_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stderr.log");
        let capture = Arc::new(Mutex::new(
            OutputCapture::create(&path, CaptureLimits::default()).unwrap(),
        ));
        let mut child = tokio::process::Command::new("/bin/sh")
            .args(["-c", "yes x | head -c 5000000 >&2; echo done"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let task = tokio::spawn(drain(stderr, capture.clone()));
        let mut out = String::new();
        let mut stdout = child.stdout.take().unwrap();
        stdout.read_to_string(&mut out).await.unwrap();
        assert!(child.wait().await.unwrap().success());
        assert_eq!(task.await.unwrap().unwrap(), 5_000_000);
        assert_eq!(out, "done\n");
        let mut c = capture.lock().unwrap();
        let s = c.finish().unwrap();
        let n = 5_000_000 - (2 << 20);
        assert_eq!((s.total_bytes, s.dropped_bytes), (5_000_000, n));
        let log = std::fs::read(&path).unwrap();
        let marker = format!("[… {n} bytes dropped …]\n");
        assert_eq!(log.len(), (2 << 20) + marker.len());
        assert_eq!(&log[1 << 20..(1 << 20) + marker.len()], marker.as_bytes());
        assert_eq!(c.tail(2), "x\nx");
        let (lines, dropped) = c.take_batch().unwrap();
        assert_eq!((lines.len() as u64, dropped), (200, 2_500_000 - 200));
    }
}
