//! An incremental tar header scanner: counts entries, tracks the current path and checks
//! that the archive ends with its two zero blocks, without ever holding the stream.
//!
//! The archive comes from an untrusted guest, so every header is checked (checksum, size)
//! and the only data buffered is that of GNU long-name and pax headers, capped at
//! [`MAX_META_SIZE`]. File data is skipped arithmetically: nothing is done per data byte,
//! and a zero-copy caller may move it without feeding it at all (see
//! [`TarScanner::data_ahead`]).
//!
//! Where formats leave room for choice we follow Go's `archive/tar`, the reader the
//! Docker daemon uses to unpack the archive into the image.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::sanitize::escape_bytes;

const BLOCK: usize = 512;
const BLOCK_U64: u64 = BLOCK as u64;

/// The largest GNU long-name or pax header we read; larger ones are [`TarScanError::Corrupt`].
/// A real path is at most a few KiB; anything near this is a guest trying to exhaust memory.
pub const MAX_META_SIZE: u64 = 64 * 1024;

/// Why an archive is not a whole, well-formed tar.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TarScanError {
    #[error("archive ends early after {bytes} bytes{}", .inside.as_ref().map(|p| format!(", inside {p}")).unwrap_or_default())]
    Truncated {
        bytes: u64,
        /// Escaped path of the entry whose data was being read, if the cut fell in one.
        inside: Option<String>,
    },
    #[error("corrupt tar header at byte {offset}: {why}")]
    Corrupt { offset: u64, why: String },
}

/// What a whole archive held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanSummary {
    pub entries: u64,
    pub bytes: u64,
}

/// The meta headers whose data we must read (they describe the next entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaKind {
    /// GNU `L`: the next entry's path.
    LongName,
    /// GNU `K`: the next entry's link target; not needed, so not kept.
    LongLink,
    /// pax `x` (and Solaris `X`): records for the next entry.
    Pax,
    /// pax `g`: global records; validated, values ignored.
    GlobalPax,
}

impl MetaKind {
    fn from_typeflag(flag: u8) -> Option<Self> {
        match flag {
            b'L' => Some(Self::LongName),
            b'K' => Some(Self::LongLink),
            b'x' | b'X' => Some(Self::Pax),
            b'g' => Some(Self::GlobalPax),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a header block into `block`.
    Header,
    /// Inside an entry's data (padding included): skipped, never looked at.
    Data { left: u64 },
    /// Inside a meta header's data, which is read; then `pad` bytes of padding.
    Meta { kind: MetaKind, left: u64, pad: u64 },
    /// Old GNU sparse extension blocks follow the header, then `data` bytes of data.
    SparseExt { data: u64 },
    /// One zero block seen: the next block must be zero too.
    OneZero,
    /// Both zero blocks seen; whatever follows is ignored.
    Finished,
}

/// Incremental scanner; see the module docs.
#[derive(Debug)]
pub struct TarScanner {
    state: State,
    /// The block being assembled when a header arrives split across feeds.
    block: [u8; BLOCK],
    filled: usize,
    bytes: u64,
    entries: u64,
    /// Offset of the latest meta header, for errors found once its data is read.
    meta_offset: u64,
    /// Raw path of the latest entry; the buffers below are reused from entry to entry.
    path: Vec<u8>,
    has_path: bool,
    meta: Vec<u8>,
    long_name: Vec<u8>,
    has_long_name: bool,
    pax_path: Vec<u8>,
    has_pax_path: bool,
    pax_size: Option<u64>,
    /// The pending pax header carried GNU sparse records.
    pax_sparse: bool,
    /// Entries an OCI unpacker would not keep as they are.
    oci: OciWarnings,
    /// The first error; the stream cannot be resynchronised after it.
    error: Option<TarScanError>,
    /// Regular files named like credential files (see `crate::secrets`).
    credentials: crate::secrets::Findings,
    /// Bytes and entries per directory, when asked for ([`TarScanner::with_content`]).
    content: Option<crate::content::ContentTally>,
}

/// How many entry names of each kind a warning list keeps.
const WARN_NAMES: usize = 10;

/// Guest entries that an OCI unpacker would not keep as they are: a name starting `.wh.`
/// is a whiteout marker (it deletes files instead of being one), and sparse files (GNU
/// `S` entries, pax `GNU.sparse.*` records) are not restored by every unpacker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciWarnings {
    pub whiteouts: u64,
    pub sparse: u64,
    /// The first [`WARN_NAMES`] names of each kind, escaped.
    pub whiteout_names: Vec<String>,
    pub sparse_names: Vec<String>,
}

impl OciWarnings {
    /// One warning line per kind, naming the first entries and counting the rest.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (n, names, what) in [
            (
                self.whiteouts,
                &self.whiteout_names,
                "named .wh.* (an OCI unpacker reads them as whiteouts and drops them)",
            ),
            (
                self.sparse,
                &self.sparse_names,
                "stored as sparse files (not every OCI unpacker restores them)",
            ),
        ] {
            if n == 0 {
                continue;
            }
            let more = n.saturating_sub(names.len() as u64);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            out.push(format!(
                "{n} guest entries {what}: {}{tail}",
                names.join(", ")
            ));
        }
        out
    }
}

impl Default for TarScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl TarScanner {
    pub fn new() -> Self {
        Self {
            state: State::Header,
            block: [0; BLOCK],
            filled: 0,
            bytes: 0,
            entries: 0,
            meta_offset: 0,
            path: Vec::new(),
            has_path: false,
            meta: Vec::new(),
            long_name: Vec::new(),
            has_long_name: false,
            pax_path: Vec::new(),
            has_pax_path: false,
            pax_size: None,
            pax_sparse: false,
            oci: OciWarnings::default(),
            error: None,
            credentials: crate::secrets::Findings::default(),
            content: None,
        }
    }

    /// Also tallies bytes and entries per directory, for [`Self::content`].
    pub fn with_content(mut self) -> Self {
        self.content = Some(crate::content::ContentTally::new());
        self
    }

    /// The directories' bytes and entries so far, if tallied.
    pub fn content(&self) -> Option<crate::content::ContentSummary> {
        self.content.as_ref().map(|c| c.finish())
    }

    /// The regular files seen so far whose names say they hold credentials.
    pub fn take_credentials(&mut self) -> crate::secrets::Findings {
        std::mem::take(&mut self.credentials)
    }

    /// Entries seen so far that an OCI unpacker would not keep as they are.
    pub fn oci_warnings(&self) -> &OciWarnings {
        &self.oci
    }

    /// Feeds the next bytes of the stream, in any chunking. After an error every call
    /// returns that error again.
    pub fn feed(&mut self, buf: &[u8]) -> Result<(), TarScanError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.feed_inner(buf)
            .inspect_err(|e| self.error = Some(e.clone()))
    }

    fn feed_inner(&mut self, mut buf: &[u8]) -> Result<(), TarScanError> {
        while !buf.is_empty() {
            match self.state {
                State::Finished => {
                    self.bytes += buf.len() as u64;
                    return Ok(());
                }
                State::Data { left } => {
                    let n = left.min(buf.len() as u64);
                    self.consume_data(n);
                    buf = &buf[n as usize..];
                }
                State::Meta { kind, left, pad } => {
                    let n = if left > 0 { left } else { pad }.min(buf.len() as u64);
                    if left > 0 && kind != MetaKind::LongLink {
                        self.meta.extend_from_slice(&buf[..n as usize]);
                    }
                    buf = &buf[n as usize..];
                    self.bytes += n;
                    let (left, pad) = if left > 0 {
                        (left - n, pad)
                    } else {
                        (0, pad - n)
                    };
                    self.state = State::Meta { kind, left, pad };
                    if left == 0 && pad == 0 {
                        self.end_meta(kind)?;
                    }
                }
                State::Header | State::SparseExt { .. } | State::OneZero => {
                    let offset = self.bytes;
                    // Whole blocks straight from the caller's buffer: the common case.
                    if self.filled == 0 {
                        if let Some((block, rest)) = buf.split_first_chunk::<BLOCK>() {
                            self.bytes += BLOCK_U64;
                            buf = rest;
                            self.on_block(block, offset)?;
                            continue;
                        }
                    }
                    let n = (BLOCK - self.filled).min(buf.len());
                    self.block[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
                    self.filled += n;
                    self.bytes += n as u64;
                    buf = &buf[n..];
                    if self.filled == BLOCK {
                        self.filled = 0;
                        let block = self.block;
                        self.on_block(&block, offset - (BLOCK - n) as u64)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn consume_data(&mut self, n: u64) {
        if let State::Data { left } = self.state {
            self.bytes += n;
            self.state = if n >= left {
                State::Header
            } else {
                State::Data { left: left - n }
            };
        }
    }

    /// Bytes of entry data (padding included) that come next and need no inspection.
    /// A zero-copy caller may move up to this many without feeding them, then call
    /// [`skipped`](Self::skipped). 0 when the next bytes must be fed.
    pub fn data_ahead(&self) -> u64 {
        match self.state {
            State::Data { left } if self.error.is_none() => left,
            _ => 0,
        }
    }

    /// Records that `n <= data_ahead()` bytes went past without being fed. Skipping more
    /// than that loses track of the stream, so it becomes a sticky [`TarScanError::Corrupt`].
    pub fn skipped(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        match self.state {
            State::Data { left } if n <= left && self.error.is_none() => self.consume_data(n),
            State::Finished => self.bytes += n,
            _ => {
                if self.error.is_none() {
                    self.error = Some(TarScanError::Corrupt {
                        offset: self.bytes,
                        why: format!("{n} bytes skipped past the end of the entry data"),
                    });
                }
                self.bytes += n;
            }
        }
    }

    /// Total bytes consumed (fed + skipped).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Real entries seen (files, dirs, links, …), not counting long-name or pax headers.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Escaped path of the latest entry.
    pub fn current_path(&self) -> Option<String> {
        self.latest_path_bytes().map(escape_bytes)
    }

    /// Raw bytes of the latest entry's path (untrusted: escape before showing).
    pub fn latest_path_bytes(&self) -> Option<&[u8]> {
        self.has_path.then_some(self.path.as_slice())
    }

    /// Whether the end-of-archive marker (two zero blocks) was seen.
    pub fn finished(&self) -> bool {
        self.state == State::Finished && self.error.is_none()
    }

    /// The summary of a whole archive; [`TarScanError::Truncated`] if the end marker was
    /// not seen, or the first error met while scanning.
    pub fn finish(&self) -> Result<ScanSummary, TarScanError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.state == State::Finished {
            return Ok(ScanSummary {
                entries: self.entries,
                bytes: self.bytes,
            });
        }
        let in_data = matches!(self.state, State::Data { .. } | State::SparseExt { .. });
        Err(TarScanError::Truncated {
            bytes: self.bytes,
            inside: if in_data { self.current_path() } else { None },
        })
    }

    fn on_block(&mut self, block: &[u8; BLOCK], offset: u64) -> Result<(), TarScanError> {
        match self.state {
            State::OneZero if is_zero(block) => self.state = State::Finished,
            // GNU tar stops at a lone zero block with a warning, silently dropping what
            // follows, and Go's archive/tar (Docker) rejects it outright. Our guest's tar
            // never writes one, so it means a damaged or forged archive: Corrupt.
            State::OneZero => return Err(corrupt(
                offset,
                "a lone zero block is followed by more headers (the end marker is two zero blocks)",
            )),
            // Each extension block holds 21 more sparse map entries; byte 504 says
            // whether another block follows.
            State::SparseExt { data } => {
                if block[504] == 0 {
                    self.state = data_state(data);
                }
            }
            _ => self.on_header(block, offset)?,
        }
        Ok(())
    }

    fn on_header(&mut self, block: &[u8; BLOCK], offset: u64) -> Result<(), TarScanError> {
        if is_zero(block) {
            self.state = State::OneZero;
            return Ok(());
        }
        // A corrupt header names the entry it would have been and what its name field holds.
        let named = |why: String| {
            corrupt(
                offset,
                format!(
                    "entry {} (name field \"{}\"): {why}",
                    self.entries + 1,
                    escape_bytes(c_str(&block[..100]))
                ),
            )
        };
        verify_checksum(block).map_err(named)?;
        // A field Docker's reader cannot parse makes its `ADD` copy the whole archive as
        // one plain file: refused here, for both builders.
        for (field, range) in [
            ("mode", 100..108),
            ("uid", 108..116),
            ("gid", 116..124),
            ("mtime", 136..148),
            ("devmajor", 329..337),
            ("devminor", 337..345),
        ] {
            let f = &block[range];
            if f.first().is_none_or(|b| b & 0x80 == 0) && parse_octal(f).is_none() {
                return Err(named(format!(
                    "an unreadable {field} field \"{}\"",
                    escape_bytes(f)
                )));
            }
        }
        let size = parse_size(&block[124..136]).map_err(named)?;
        let flag = block[156];

        if let Some(kind) = MetaKind::from_typeflag(flag) {
            if size > MAX_META_SIZE {
                return Err(corrupt(
                    offset,
                    format!(
                        "a {} header of {size} bytes (more than {MAX_META_SIZE})",
                        escape_bytes(&[flag])
                    ),
                ));
            }
            self.meta.clear();
            self.meta_offset = offset;
            self.state = State::Meta {
                kind,
                left: size,
                pad: padding(size),
            };
            if size == 0 {
                self.end_meta(kind)?;
            }
            return Ok(());
        }

        // A real entry: it takes the long name and pax records read before it.
        let size = self.pax_size.take().unwrap_or(size);
        self.set_path(block);
        self.entries += 1;
        let sparse = std::mem::take(&mut self.pax_sparse) || flag == b'S';
        self.note_oci(sparse);
        if matches!(flag, b'0' | b'\0' | b'7') {
            self.credentials.check(&self.path);
        }
        // Like Go's archive/tar, link, device, dir and fifo headers never have data,
        // whatever their size field says.
        let data = if matches!(flag, b'1'..=b'6') {
            0
        } else {
            size + padding(size)
        };
        if let Some(c) = self.content.as_mut() {
            let bytes = if data == 0 { 0 } else { size };
            c.add(&self.path, flag == b'5', bytes);
        }
        self.state = if flag == b'S' && block[482] != 0 {
            State::SparseExt { data }
        } else {
            data_state(data)
        };
        Ok(())
    }

    fn set_path(&mut self, block: &[u8; BLOCK]) {
        self.path.clear();
        if self.has_pax_path {
            self.path.extend_from_slice(&self.pax_path);
        } else if self.has_long_name {
            self.path.extend_from_slice(&self.long_name);
        } else {
            // POSIX ustar keeps the leading directories in `prefix`; the GNU format
            // ("ustar  \0") uses those bytes for other fields.
            if &block[257..263] == b"ustar\0" {
                // star puts a 4-byte trailer where the last 24 prefix bytes would be.
                let end = if &block[508..512] == b"tar\0" {
                    476
                } else {
                    500
                };
                let prefix = c_str(&block[345..end]);
                if !prefix.is_empty() {
                    self.path.extend_from_slice(prefix);
                    self.path.push(b'/');
                }
            }
            self.path.extend_from_slice(c_str(&block[..100]));
        }
        self.has_path = true;
        self.has_pax_path = false;
        self.has_long_name = false;
    }

    /// Counts the latest entry if an OCI unpacker would not keep it as it is.
    fn note_oci(&mut self, sparse: bool) {
        let base = self.path.rsplit(|&b| b == b'/').find(|p| !p.is_empty());
        if base.is_some_and(|b| b.starts_with(b".wh.")) {
            self.oci.whiteouts += 1;
            if self.oci.whiteout_names.len() < WARN_NAMES {
                self.oci.whiteout_names.push(escape_bytes(&self.path));
            }
        }
        if sparse {
            self.oci.sparse += 1;
            if self.oci.sparse_names.len() < WARN_NAMES {
                self.oci.sparse_names.push(escape_bytes(&self.path));
            }
        }
    }

    fn end_meta(&mut self, kind: MetaKind) -> Result<(), TarScanError> {
        self.state = State::Header;
        match kind {
            MetaKind::LongName => {
                self.long_name.clear();
                self.long_name.extend_from_slice(c_str(&self.meta));
                self.has_long_name = true;
            }
            MetaKind::LongLink => {}
            MetaKind::Pax | MetaKind::GlobalPax => {
                let global = kind == MetaKind::GlobalPax;
                if !global {
                    // A later pax header replaces an earlier one, as in Go.
                    self.has_pax_path = false;
                    self.pax_size = None;
                    self.pax_sparse = false;
                }
                let meta = std::mem::take(&mut self.meta);
                let result = for_each_pax_record(&meta, |key, value| {
                    if global {
                        return Ok(());
                    }
                    match key {
                        // An empty value deletes the keyword (POSIX), so the header's wins.
                        b"path" => {
                            if value.contains(&0) {
                                return Err("a pax path with a NUL byte".to_string());
                            }
                            self.pax_path.clear();
                            self.pax_path.extend_from_slice(value);
                            self.has_pax_path = !value.is_empty();
                        }
                        b"size" if value.is_empty() => self.pax_size = None,
                        b"size" => self.pax_size = Some(parse_decimal(value, "pax size")?),
                        k if k.starts_with(b"GNU.sparse.") => self.pax_sparse = true,
                        _ => {}
                    }
                    Ok(())
                });
                self.meta = meta;
                result.map_err(|why| corrupt(self.meta_offset, why))?;
            }
        }
        Ok(())
    }
}

fn corrupt(offset: u64, why: impl Into<String>) -> TarScanError {
    TarScanError::Corrupt {
        offset,
        why: why.into(),
    }
}

fn data_state(data: u64) -> State {
    if data == 0 {
        State::Header
    } else {
        State::Data { left: data }
    }
}

/// Zero bytes that round `size` up to whole blocks.
fn padding(size: u64) -> u64 {
    (BLOCK_U64 - size % BLOCK_U64) % BLOCK_U64
}

fn is_zero(block: &[u8; BLOCK]) -> bool {
    // Array equality compiles to a memcmp, not a byte loop.
    *block == [0; BLOCK]
}

/// The bytes up to the first NUL.
fn c_str(field: &[u8]) -> &[u8] {
    field
        .iter()
        .position(|&b| b == 0)
        .map_or(field, |end| &field[..end])
}

/// The header sum with the checksum field read as spaces. Old writers summed signed
/// chars, so both sums are accepted, as GNU tar and Go do.
fn verify_checksum(block: &[u8; BLOCK]) -> Result<(), String> {
    let stored = parse_octal(&block[148..156]).ok_or("an unreadable checksum field")?;
    let field = &block[148..156];
    let unsigned = block.iter().map(|&b| u32::from(b)).sum::<u32>()
        - field.iter().map(|&b| u32::from(b)).sum::<u32>()
        + 8 * u32::from(b' ');
    if u64::from(unsigned) == stored {
        return Ok(());
    }
    let signed = block.iter().map(|&b| i32::from(b as i8)).sum::<i32>()
        - field.iter().map(|&b| i32::from(b as i8)).sum::<i32>()
        + 8 * i32::from(b' ');
    if i64::from(signed) == stored as i64 {
        return Ok(());
    }
    Err(format!(
        "checksum mismatch (stored {stored:o}, computed {unsigned:o})"
    ))
}

/// An octal field, padded with spaces or NULs on either side; empty reads as 0.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let is_pad = |b: &u8| *b == b' ' || *b == 0;
    let Some(start) = field.iter().position(|b| !is_pad(b)) else {
        return Some(0);
    };
    let end = field
        .iter()
        .rposition(|b| !is_pad(b))
        .map_or(start, |e| e + 1);
    field[start..end].iter().try_fold(0u64, |acc, &b| {
        if !(b'0'..=b'7').contains(&b) || acc >> 61 != 0 {
            return None;
        }
        Some(acc << 3 | u64::from(b - b'0'))
    })
}

/// The size field: octal, or GNU base-256 (high bit of the first byte set) for big files.
fn parse_size(field: &[u8]) -> Result<u64, String> {
    let size = match field.first() {
        Some(&first) if first & 0x80 != 0 => {
            if first & 0x40 != 0 {
                return Err("a negative size".to_string());
            }
            field[1..]
                .iter()
                .try_fold(u64::from(first & 0x3f), |acc, &b| {
                    (acc >> 56 == 0).then_some(acc << 8 | u64::from(b))
                })
        }
        _ => parse_octal(field),
    };
    match size {
        // Sizes are signed 64-bit in every reader; this also keeps padding from overflowing.
        Some(s) if s <= i64::MAX as u64 => Ok(s),
        _ => Err(format!(
            "an unreadable size field \"{}\"",
            escape_bytes(field)
        )),
    }
}

fn parse_decimal(value: &[u8], what: &str) -> Result<u64, String> {
    let parsed = if value.is_empty() || value.len() > 19 {
        None
    } else {
        value.iter().try_fold(0u64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
        })
    };
    match parsed {
        Some(v) if v <= i64::MAX as u64 => Ok(v),
        _ => Err(format!("an unreadable {what} \"{}\"", escape_bytes(value))),
    }
}

/// Walks pax records, each `"<len> <key>=<value>\n"` with `len` counting the whole record.
fn for_each_pax_record(
    mut data: &[u8],
    mut on: impl FnMut(&[u8], &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    // Some writers pad the record area with NULs.
    while !data.is_empty() && !data.iter().all(|&b| b == 0) {
        let bad = || "a malformed pax record".to_string();
        let space = data.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len = usize::try_from(parse_decimal(&data[..space], "pax record length")?)
            .map_err(|_| bad())?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        on(&record[..eq], &record[eq + 1..])?;
        data = &data[len..];
    }
    Ok(())
}

/// Why [`scan_file`] failed, naming the archive.
#[derive(Debug, thiserror::Error)]
pub enum ScanFileError {
    #[error("cannot read the archive {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("the archive {} is not whole: {source}", path.display())]
    Tar { path: PathBuf, source: TarScanError },
}

/// Scans an archive on disk reading only its headers (data is seeked over), and checks
/// its end marker.
pub fn scan_file(path: &Path) -> Result<ScanSummary, ScanFileError> {
    scan_path(path, false).map(|(s, ..)| s)
}

/// As [`scan_file`], with the entries an OCI unpacker would not keep.
pub fn scan_file_warnings(path: &Path) -> Result<(ScanSummary, OciWarnings), ScanFileError> {
    scan_path(path, false).map(|(s, w, ..)| (s, w))
}

/// Everything a scan of a whole archive on disk found.
#[derive(Debug, Clone)]
pub struct FullScan {
    pub summary: ScanSummary,
    /// Entries an OCI unpacker would not keep as they are.
    pub oci: OciWarnings,
    /// Regular files named like credentials.
    pub credentials: crate::secrets::Findings,
    /// Bytes and entries per directory.
    pub content: crate::content::ContentSummary,
}

/// As [`scan_file`], with everything [`FullScan`] holds.
pub fn scan_file_full(path: &Path) -> Result<FullScan, ScanFileError> {
    scan_path(path, true).map(|(summary, oci, credentials, content)| FullScan {
        summary,
        oci,
        credentials,
        content: content.unwrap_or_default(),
    })
}

type Scanned = (
    ScanSummary,
    OciWarnings,
    crate::secrets::Findings,
    Option<crate::content::ContentSummary>,
);

fn scan_path(path: &Path, content: bool) -> Result<Scanned, ScanFileError> {
    let io_err = |source| ScanFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tar_err = |source| ScanFileError::Tar {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    // Small entries are seeked over inside the buffer, without a syscall each.
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut scanner = TarScanner::new();
    if content {
        scanner = scanner.with_content();
    }
    let mut block = [0u8; BLOCK];
    while !scanner.finished() {
        let ahead = scanner.data_ahead();
        if ahead > 0 {
            let n = ahead.min(len.saturating_sub(scanner.bytes()));
            if n == 0 {
                break;
            }
            let step = i64::try_from(n).map_err(|_| io_err(io::ErrorKind::InvalidData.into()))?;
            reader.seek_relative(step).map_err(io_err)?;
            scanner.skipped(n);
            continue;
        }
        let got = read_full(&mut reader, &mut block).map_err(io_err)?;
        scanner.feed(&block[..got]).map_err(tar_err)?;
        if got < BLOCK {
            break;
        }
    }
    let summary = scanner.finish().map_err(tar_err)?;
    let found = scanner.take_credentials();
    let content = scanner.content();
    Ok((summary, scanner.oci, found, content))
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::process::Command;
    use tar::{Builder, EntryType, Header};

    /// Deterministic chunk sizes (xorshift), so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, max: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            1 + self.0 % max
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
        let body = 1 + key.len() + 1 + value.len() + 1;
        // The length counts its own digits.
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        let mut rec = format!("{len} {key}=").into_bytes();
        rec.extend_from_slice(value);
        rec.push(b'\n');
        rec
    }

    fn header(kind: EntryType, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h
    }

    fn add_file(b: &mut Builder<Vec<u8>>, path: &str, len: usize) {
        let mut h = header(EntryType::Regular, len as u64);
        b.append_data(&mut h, path, pattern(len).as_slice())
            .unwrap();
    }

    fn add_pax(b: &mut Builder<Vec<u8>>, kind: EntryType, records: &[(&str, &[u8])]) {
        let data: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_path("PaxHeaders/x").unwrap();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data.as_slice()).unwrap();
    }

    /// An archive with every kind of entry we care about, and its entry count and last path.
    fn fixture() -> (Vec<u8>, u64, Vec<u8>) {
        let mut b = Builder::new(Vec::new());
        let mut d = header(EntryType::Directory, 0);
        b.append_data(&mut d, "root/empty/", io::empty()).unwrap();
        add_file(&mut b, "root/a.txt", 13);
        add_file(&mut b, "root/exact", 3 * 512);
        add_file(&mut b, "root/big.bin", 3 << 20);
        let long = format!("root/{}/{}", "d".repeat(60), "f".repeat(80));
        add_file(&mut b, &long, 700);
        // POSIX ustar splits a long path into prefix and name.
        let mut u = Header::new_ustar();
        u.set_size(5);
        u.set_entry_type(EntryType::Regular);
        let split = format!("root/{}/name.txt", "p".repeat(90));
        u.set_path(&split).unwrap();
        u.set_cksum();
        b.append(&u, &b"hello"[..]).unwrap();
        // A global pax header changes nothing we track.
        add_pax(&mut b, EntryType::XGlobalHeader, &[("comment", b"hi")]);
        // pax path and size override the header's (whose size field says 0).
        add_pax(
            &mut b,
            EntryType::XHeader,
            &[
                ("path", "root/pax-\u{e9}-path".as_bytes()),
                ("size", b"1000"),
            ],
        );
        let mut p = header(EntryType::Regular, 0);
        p.set_path("root/short").unwrap();
        p.set_cksum();
        b.append(&p, pattern(1000).as_slice()).unwrap();
        let mut s = header(EntryType::Symlink, 0);
        b.append_link(&mut s, "root/link", "a.txt").unwrap();
        // A long link target makes a GNU 'K' header.
        let mut s = header(EntryType::Symlink, 0);
        b.append_link(&mut s, "root/longlink", "t".repeat(150))
            .unwrap();
        let mut l = header(EntryType::Link, 0);
        b.append_link(&mut l, "root/hard", "root/a.txt").unwrap();
        let mut f = header(EntryType::Fifo, 0);
        b.append_data(&mut f, "root/fifo", io::empty()).unwrap();
        add_file(&mut b, "root/last\x1b[2J", 1);
        (b.into_inner().unwrap(), 12, b"root/last\x1b[2J".to_vec())
    }

    fn scan_chunked(data: &[u8], seed: u64, max: u64) -> TarScanner {
        let mut s = TarScanner::new();
        let mut rng = Rng(seed);
        let mut rest = data;
        while !rest.is_empty() {
            let n = (rng.next(max) as usize).min(rest.len());
            s.feed(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        s
    }

    #[test]
    fn counts_entries_in_any_chunking() {
        let (data, entries, last) = fixture();
        for seed in 1..=20 {
            let s = scan_chunked(&data, seed, 70_000);
            assert!(s.finished(), "seed {seed}");
            assert_eq!(s.entries(), entries, "seed {seed}");
            assert_eq!(s.latest_path_bytes(), Some(last.as_slice()));
            assert_eq!(s.current_path().unwrap(), "root/last\\x1b[2J");
            assert_eq!(
                s.finish(),
                Ok(ScanSummary {
                    entries,
                    bytes: data.len() as u64
                })
            );
        }
        // Small chunks across every header boundary.
        let s = scan_chunked(&data, 7, 700);
        assert_eq!((s.entries(), s.finished()), (entries, true));
    }

    #[test]
    fn one_byte_at_a_time() {
        let (data, entries, _) = fixture();
        let mut s = TarScanner::new();
        for b in &data {
            s.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!((s.entries(), s.finished()), (entries, true));
    }

    #[test]
    fn skipping_all_data_ahead_gives_the_same_result() {
        let (data, entries, last) = fixture();
        let mut rng = Rng(99);
        let mut s = TarScanner::new();
        let mut pos = 0usize;
        let mut skipped = 0u64;
        while pos < data.len() {
            let ahead = s.data_ahead();
            if ahead > 0 {
                s.skipped(ahead);
                skipped += ahead;
                pos += ahead as usize;
            } else {
                let n = (rng.next(2000) as usize).min(data.len() - pos);
                s.feed(&data[pos..pos + n]).unwrap();
                pos += n;
            }
        }
        assert!(skipped > 3 << 20, "the big file's data was skipped");
        assert_eq!(s.latest_path_bytes(), Some(last.as_slice()));
        assert_eq!(
            s.finish(),
            Ok(ScanSummary {
                entries,
                bytes: data.len() as u64
            })
        );
    }

    #[test]
    fn meta_data_is_never_offered_for_skipping() {
        let (data, _, _) = fixture();
        let mut s = TarScanner::new();
        let mut rng = Rng(5);
        let mut pos = 0;
        while pos < data.len() {
            let n = (rng.next(300) as usize).min(data.len() - pos);
            s.feed(&data[pos..pos + n]).unwrap();
            pos += n;
            if let State::Meta { .. } = s.state {
                assert_eq!(s.data_ahead(), 0);
            }
        }
    }

    /// Where each entry's data lies, by the tar crate's own reading.
    fn data_ranges(data: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
        let mut ar = tar::Archive::new(data);
        let mut out = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            if e.header().entry_type() == EntryType::XGlobalHeader {
                continue;
            }
            let size = e.size();
            let start = e.raw_file_position();
            let end = start + size + padding(size);
            out.push((start, end, e.path_bytes().into_owned()));
        }
        out
    }

    #[test]
    fn truncation_names_the_entry_being_read() {
        let (data, _, _) = fixture();
        let ranges = data_ranges(&data);
        let len = data.len() as u64;
        let mut cuts: Vec<u64> = (0..len).step_by(509).collect();
        for (start, end, _) in &ranges {
            cuts.extend([start - 512, start - 1, *start, start + 1, end - 1, *end]);
        }
        // Before the end blocks, after only one, one byte short.
        cuts.extend([len - 1024, len - 512, len - 1]);
        for cut in cuts {
            let mut s = TarScanner::new();
            s.feed(&data[..cut as usize]).unwrap();
            let inside = ranges
                .iter()
                .find(|(start, end, _)| *start <= cut && cut < *end)
                .map(|(_, _, p)| escape_bytes(p));
            assert_eq!(
                s.finish(),
                Err(TarScanError::Truncated { bytes: cut, inside }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn truncated_message_reads_well() {
        let e = TarScanError::Truncated {
            bytes: 10,
            inside: Some("a/b".into()),
        };
        assert_eq!(
            e.to_string(),
            "archive ends early after 10 bytes, inside a/b"
        );
        let e = TarScanError::Truncated {
            bytes: 0,
            inside: None,
        };
        assert_eq!(e.to_string(), "archive ends early after 0 bytes");
    }

    #[test]
    fn bytes_after_the_end_are_ignored() {
        let (mut data, entries, _) = fixture();
        let archive_len = data.len();
        data.resize(archive_len.next_multiple_of(10240), 0);
        data.extend_from_slice(b"trailing garbage");
        let s = scan_chunked(&data, 3, 4096);
        assert_eq!((s.entries(), s.finished()), (entries, true));
        assert_eq!(s.bytes(), data.len() as u64);
    }

    #[test]
    fn bad_checksum_is_corrupt_and_sticky() {
        let (mut data, _, _) = fixture();
        // Third header: after the dir (512) and a.txt (512 + 512).
        data[1536 + 10] ^= 0x20;
        let mut s = TarScanner::new();
        let err = s.feed(&data).unwrap_err();
        match &err {
            TarScanError::Corrupt { offset, why } => {
                assert_eq!(*offset, 1536);
                assert!(why.contains("checksum"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.entries(), 2);
        assert_eq!(s.feed(&[0; 512]), Err(err.clone()));
        assert_eq!(s.finish(), Err(err));
        assert!(!s.finished());
    }

    #[test]
    fn a_corrupt_header_names_its_entry() {
        let (mut data, _, _) = fixture();
        data[1536 + 140] = b'x'; // inside the size field of root/exact
        let err = TarScanner::new().feed(&data).unwrap_err().to_string();
        assert!(
            err.contains("at byte 1536") && err.contains("entry 3") && err.contains("root/exact"),
            "{err}"
        );
        let mut first = data.clone();
        first[148] = b'9'; // the first header's checksum field is no longer octal
        let err = TarScanner::new().feed(&first).unwrap_err().to_string();
        assert!(
            err.contains("at byte 0") && err.contains("entry 1 (name field \"root/empty/\")"),
            "{err}"
        );
    }

    /// A header whose checksum is right but whose mtime or mode is not a number: Docker's
    /// `ADD` would take the archive for a plain file.
    #[test]
    fn an_unreadable_mtime_or_mode_is_corrupt() {
        for (field, at) in [("mtime", 136), ("mode", 100)] {
            let (mut data, _, _) = fixture();
            data[at] = b'z';
            data[148..156].copy_from_slice(b"        ");
            let sum: u32 = data[..512].iter().map(|&b| u32::from(b)).sum();
            data[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            let err = TarScanner::new().feed(&data).unwrap_err().to_string();
            assert!(
                err.contains("at byte 0") && err.contains(&format!("unreadable {field}")),
                "{err}"
            );
        }
    }

    #[test]
    fn whiteouts_and_sparse_entries_are_counted_and_named() {
        let mut b = Builder::new(Vec::new());
        add_file(&mut b, "etc/.wh.passwd", 3);
        add_file(&mut b, "etc/.wh..wh..opq", 0);
        add_file(&mut b, "etc/not.wh.x", 1);
        add_pax(
            &mut b,
            EntryType::XHeader,
            &[("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0")],
        );
        add_file(&mut b, "var/sparse.img", 10);
        add_file(&mut b, "after", 1);
        let data = b.into_inner().unwrap();
        let s = scan_chunked(&data, 5, 700);
        assert_eq!(s.finish().map(|s| s.entries), Ok(5));
        let w = s.oci_warnings();
        assert_eq!((w.whiteouts, w.sparse), (2, 1));
        assert_eq!(w.whiteout_names, ["etc/.wh.passwd", "etc/.wh..wh..opq"]);
        assert_eq!(w.sparse_names, ["var/sparse.img"]);
        let lines = w.lines();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("2 guest entries named .wh.*"),
            "{lines:?}"
        );
        assert!(lines[1].contains("var/sparse.img"), "{lines:?}");
        assert!(OciWarnings::default().lines().is_empty());
    }

    #[test]
    fn signed_checksums_are_accepted() {
        let mut h = header(EntryType::Regular, 0);
        h.set_path("caf\u{e9}").unwrap();
        let mut block = *h.as_bytes();
        let sum: i32 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i32::from(b as i8)
                }
            })
            .sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert!(verify_checksum(&block).is_ok());
        block[0] = b'x';
        assert!(verify_checksum(&block).is_err());
    }

    #[test]
    fn lone_zero_block_then_header_is_corrupt() {
        let mut b = Builder::new(Vec::new());
        add_file(&mut b, "a", 3);
        let one = b.into_inner().unwrap();
        let first = &one[..1024];
        let mut data = first.to_vec();
        data.extend_from_slice(&[0; 512]);
        data.extend_from_slice(&one);
        let mut s = TarScanner::new();
        assert_eq!(
            s.feed(&data),
            Err(corrupt(
                1536,
                "a lone zero block is followed by more headers (the end marker is two zero blocks)"
            ))
        );
    }

    #[test]
    fn oversized_meta_header_is_corrupt() {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::GNULongName);
        h.set_path("././@LongLink").unwrap();
        h.set_size(MAX_META_SIZE + 1);
        h.set_cksum();
        let mut s = TarScanner::new();
        let err = s.feed(h.as_bytes()).unwrap_err();
        assert!(
            matches!(err, TarScanError::Corrupt { offset: 0, .. }),
            "{err}"
        );
        assert!(s.meta.capacity() < 1024);
    }

    #[test]
    fn malformed_pax_is_corrupt() {
        let mut b = Builder::new(Vec::new());
        let data = b"99 path=x\n";
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
        let data = b.into_inner().unwrap();
        let mut s = TarScanner::new();
        assert!(matches!(
            s.feed(&data),
            Err(TarScanError::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn base256_and_odd_sizes() {
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[10] = 0x03;
        field[11] = 0xe8;
        assert_eq!(parse_size(&field), Ok(1000));
        field[0] = 0xff;
        assert!(parse_size(&field).is_err());
        assert_eq!(parse_size(b"00000001750\0"), Ok(1000));
        assert_eq!(parse_size(b"  1750 \0\0\0\0\0"), Ok(1000));
        assert_eq!(parse_size(&[0; 12]), Ok(0));
        assert!(parse_size(b"0000000175x\0").is_err());
        let mut huge = [0xffu8; 12];
        huge[0] = 0x80;
        assert!(parse_size(&huge).is_err());

        // A whole entry whose size is written in base-256.
        let mut h = header(EntryType::Regular, 0);
        h.set_path("bin").unwrap();
        h.as_mut_bytes()[124..136].copy_from_slice(&{
            let mut f = [0u8; 12];
            f[0] = 0x80;
            f[10] = 0x03;
            f[11] = 0xe8;
            f
        });
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend(pattern(1000));
        data.resize(data.len().next_multiple_of(512) + 1024, 0);
        let s = scan_chunked(&data, 11, 100);
        assert_eq!(s.finish().map(|s| s.entries), Ok(1));
    }

    #[test]
    fn old_gnu_sparse_extension_blocks_are_skipped() {
        let mut h = header(EntryType::GNUSparse, 1024);
        h.set_path("sparse").unwrap();
        h.as_mut_bytes()[482] = 1;
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        let mut ext = [7u8; 512];
        ext[504] = 1;
        data.extend_from_slice(&ext);
        ext[504] = 0;
        data.extend_from_slice(&ext);
        data.extend(pattern(1024));
        let mut b = Builder::new(Vec::new());
        add_file(&mut b, "after", 2);
        data.extend(b.into_inner().unwrap());
        let s = scan_chunked(&data, 4, 300);
        assert_eq!(s.finish().map(|s| s.entries), Ok(2));
        assert_eq!(s.current_path().as_deref(), Some("after"));
        let mut cut = TarScanner::new();
        cut.feed(&data[..600]).unwrap();
        assert_eq!(
            cut.finish(),
            Err(TarScanError::Truncated {
                bytes: 600,
                inside: Some("sparse".into())
            })
        );
    }

    #[test]
    fn skipping_too_far_is_corrupt() {
        let (data, _, _) = fixture();
        let mut s = TarScanner::new();
        s.feed(&data[..512]).unwrap();
        assert_eq!(s.data_ahead(), 0);
        s.feed(&data[512..1024]).unwrap();
        let ahead = s.data_ahead();
        assert_eq!(ahead, 512);
        s.skipped(ahead + 1);
        assert!(matches!(s.finish(), Err(TarScanError::Corrupt { .. })));
        assert_eq!(s.data_ahead(), 0);
    }

    #[test]
    fn empty_stream_is_truncated() {
        assert_eq!(
            TarScanner::default().finish(),
            Err(TarScanError::Truncated {
                bytes: 0,
                inside: None
            })
        );
        assert_eq!(TarScanner::new().current_path(), None);
    }

    #[test]
    fn scan_file_reads_headers_and_checks_the_end() {
        let (data, entries, _) = fixture();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rootfs.tar");
        std::fs::write(&path, &data).unwrap();
        assert_eq!(
            scan_file(&path).unwrap(),
            ScanSummary {
                entries,
                bytes: data.len() as u64
            }
        );
        // Cut in the middle of the big file: the seek must not run past the end.
        let big = data_ranges(&data)
            .into_iter()
            .find(|(_, _, p)| p == b"root/big.bin")
            .unwrap();
        std::fs::write(&path, &data[..big.0 as usize + 4000]).unwrap();
        let err = scan_file(&path).unwrap_err();
        assert!(
            matches!(&err, ScanFileError::Tar { source: TarScanError::Truncated { bytes, inside: Some(p) }, .. }
                if *bytes == big.0 + 4000 && p == "root/big.bin"),
            "{err:?}"
        );
        assert!(err.to_string().contains("rootfs.tar"), "{err}");
        let missing = scan_file(&dir.path().join("nope.tar")).unwrap_err();
        assert!(matches!(missing, ScanFileError::Io { .. }));
        assert!(missing.to_string().contains("nope.tar"), "{missing}");
    }

    /// A tree with the shapes a real root filesystem has.
    fn make_tree(root: &Path) {
        let deep = root.join("d".repeat(70)).join("e".repeat(70));
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f".repeat(120)), b"deep").unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
        std::fs::write(root.join("exact"), pattern(4096)).unwrap();
        std::fs::write(root.join("odd"), pattern(4097)).unwrap();
        std::fs::write(root.join("big"), pattern(3 << 20)).unwrap();
        std::fs::write(root.join("caf\u{e9} \x1b"), b"x").unwrap();
        std::os::unix::fs::symlink("odd", root.join("link")).unwrap();
        std::os::unix::fs::symlink("t".repeat(200), root.join("longlink")).unwrap();
        std::fs::hard_link(root.join("odd"), root.join("hard")).unwrap();
        // A sparse file with many holes: old GNU sparse headers with extension blocks.
        let mut sparse = std::fs::File::create(root.join("sparse")).unwrap();
        for i in 0..12u64 {
            use std::io::{Seek, SeekFrom};
            sparse.seek(SeekFrom::Start(i * (1 << 20))).unwrap();
            sparse.write_all(&pattern(100)).unwrap();
        }
    }

    fn gnu_tar(args: &[&str]) -> Vec<u8> {
        let out = Command::new("/usr/bin/tar").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    #[test]
    fn gnu_tar_archives_match_tar_t() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        make_tree(&root);
        let root_s = root.to_str().unwrap();
        for format in ["gnu", "posix", "ustar-ish"] {
            let mut args = vec!["--create", "-C", root_s];
            match format {
                "gnu" => args.push("--sparse"),
                "posix" => args.push("--format=posix"),
                _ => {}
            }
            args.push(".");
            let data = gnu_tar(&args);
            let file = dir.path().join(format!("{format}.tar"));
            std::fs::write(&file, &data).unwrap();
            let listed = gnu_tar(&["-t", "-f", file.to_str().unwrap()]);
            let count = listed.iter().filter(|&&b| b == b'\n').count() as u64;
            let s = scan_chunked(&data, 42, 70_000);
            assert!(s.finished(), "{format}");
            assert_eq!(s.entries(), count, "{format}");
            assert_eq!(s.bytes(), data.len() as u64);
            assert_eq!(data.len() % 10240, 0, "GNU tar pads to a record");
            let summary = scan_file(&file).unwrap();
            assert_eq!(summary.entries, count, "{format}");
            // The long path survives, whichever way the format spells it.
            let mut all = TarScanner::new();
            let mut seen_long = false;
            for chunk in data.chunks(512) {
                all.feed(chunk).unwrap();
                seen_long |= all
                    .latest_path_bytes()
                    .is_some_and(|p| p.ends_with("f".repeat(120).as_bytes()));
            }
            assert!(seen_long, "{format}");
        }
    }
}
