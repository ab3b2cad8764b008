//! The hot loop of exec-tar: the archive from a pipe into a file through one reused 256 KiB
//! buffer, every tar header read on the way for live progress (no allocation per chunk).
//! With `zero_copy`, file data is instead moved by `splice(2)` and only headers (and GNU
//! long-name / pax data) are read; see [`CopyOptions::default`] for why that is off.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::{fcntl, splice, FcntlArg, SpliceFFlags};

use sha2::{Digest, Sha256};

use crate::freeze::tar_scan::{OciWarnings, TarScanError, TarScanner};

/// The buffer for what is read rather than spliced.
const COPY_BUF: usize = 256 * 1024;
/// Entry data shorter than this is read with its next header: a splice per tiny file would
/// cost more syscalls than the copy it saves.
const SPLICE_MIN: u64 = 64 * 1024;
/// The most one splice call moves.
const SPLICE_MAX: u64 = 4 << 20;
/// The pipe size asked for (Linux's unprivileged maximum by default): fewer wake-ups.
const PIPE_SIZE: i32 = 1 << 20;

#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// Read tar headers for entries and paths, and check the archive's end.
    pub scan: bool,
    /// Move file data with splice instead of read/write. Ignored while hashing: spliced
    /// pages never pass through our hands.
    pub zero_copy: bool,
}

impl Default for CopyOptions {
    /// Read/write, not splice: measured on our machines (`cargo bench --bench perf --
    /// exec-tar`), splicing pipe pages into the file took about 30% more time and 38% more
    /// CPU than a 256 KiB read/write loop, so splice stays an option, off by default.
    fn default() -> Self {
        CopyOptions {
            scan: true,
            zero_copy: false,
        }
    }
}

/// Buffers the copy has filled go to a thread that hashes them and hands them back, so
/// that sha256 (about 0.4 s of CPU per GiB with SHA-NI) overlaps the next read and write
/// instead of stalling the pipe: inline it cost 1.6x the copy's wall time here.
struct PipelinedHash {
    free: Vec<Vec<u8>>,
    to_hash: Option<std::sync::mpsc::SyncSender<(Vec<u8>, usize)>>,
    back: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<[u8; 32]>>,
}

/// Buffers in flight: one being filled, the rest queued for hashing.
const HASH_BUFFERS: usize = 4;

impl PipelinedHash {
    fn new() -> io::Result<PipelinedHash> {
        let (to_hash, work) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(HASH_BUFFERS);
        let (done, back) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_BUFFERS);
        let thread = std::thread::Builder::new()
            .name("layer-sha256".into())
            .spawn(move || {
                let mut h = Sha256::new();
                for (buf, n) in work {
                    h.update(&buf[..n]);
                    let _ = done.send(buf);
                }
                h.finalize().into()
            })?;
        Ok(PipelinedHash {
            free: (0..HASH_BUFFERS).map(|_| vec![0u8; COPY_BUF]).collect(),
            to_hash: Some(to_hash),
            back,
            thread: Some(thread),
        })
    }

    /// A buffer to fill: a free one, or the next the hasher is done with.
    fn take(&mut self) -> Result<Vec<u8>, String> {
        match self.free.pop() {
            Some(b) => Ok(b),
            None => self
                .back
                .recv()
                .map_err(|_| "the hashing thread ended early".to_string()),
        }
    }

    fn give(&mut self, buf: Vec<u8>, n: usize) -> Result<(), String> {
        self.to_hash
            .as_ref()
            .and_then(|t| t.send((buf, n)).ok())
            .ok_or_else(|| "the hashing thread ended early".to_string())
    }

    fn finish(mut self) -> Result<[u8; 32], String> {
        drop(self.to_hash.take());
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .ok_or_else(|| "the hashing thread failed".to_string())
    }
}

impl Drop for PipelinedHash {
    fn drop(&mut self) {
        // An error path: let the thread see the end of its queue and exit.
        drop(self.to_hash.take());
    }
}

/// What was copied.
#[derive(Debug)]
pub struct Copied {
    pub bytes: u64,
    /// Entries, or why the archive is not whole (always Ok(0) without scanning).
    pub scan: Result<u64, String>,
    /// Regular files named like credential files.
    pub credentials: crate::secrets::Findings,
    /// Entries an OCI unpacker would not keep as they are (empty without scanning).
    pub oci: OciWarnings,
    /// The sha256 of every byte copied, when asked for.
    pub sha256: Option<[u8; 32]>,
    /// Bytes and entries per directory (None without scanning, or when the scan failed).
    pub content: Option<crate::content::ContentSummary>,
}

/// Copies `reader` (a pipe) into `file` from its current position until EOF, hashing
/// the bytes with sha256 when `hash` is set (the image layer's diff_id, in the same pass).
/// `progress` is called after every chunk with the bytes so far, the scanner and whether
/// this is the last call (after EOF); it decides itself how often to report.
pub fn copy_archive<R, P>(
    mut reader: R,
    file: &mut File,
    path: &Path,
    opts: CopyOptions,
    hash: bool,
    mut progress: P,
) -> Result<Copied, String>
where
    R: Read + AsFd,
    P: FnMut(u64, &TarScanner, bool),
{
    let _ = fcntl(reader.as_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    let write_err = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    let mut hasher = if hash {
        Some(PipelinedHash::new().map_err(|e| format!("cannot start the hashing thread: {e}"))?)
    } else {
        None
    };
    let mut buf = match hasher.as_mut() {
        Some(h) => h.take()?,
        None => vec![0u8; COPY_BUF],
    };
    let mut scanner = TarScanner::new().with_content();
    let mut scan_err: Option<TarScanError> = None;
    let mut zero_copy = opts.zero_copy && opts.scan && !hash;
    let mut bytes = 0u64;
    loop {
        let scanning = opts.scan && scan_err.is_none();
        let ahead = if scanning { scanner.data_ahead() } else { 0 };
        if zero_copy && ahead >= SPLICE_MIN {
            let len = ahead.min(SPLICE_MAX) as usize;
            match splice(
                reader.as_fd(),
                None,
                file.as_fd(),
                None,
                len,
                SpliceFFlags::SPLICE_F_MOVE,
            ) {
                Ok(0) => break,
                Ok(n) => {
                    scanner.skipped(n as u64);
                    bytes += n as u64;
                    progress(bytes, &scanner, false);
                    continue;
                }
                Err(nix::errno::Errno::EINTR) => continue,
                // A filesystem that cannot take spliced pages: copy as usual from now on.
                Err(nix::errno::Errno::EINVAL) => {
                    zero_copy = false;
                    continue;
                }
                Err(e) => return Err(write_err(&io::Error::from(e))),
            }
        }
        // Read up to the next header only, so that a large entry after it can be spliced.
        let want = if zero_copy && !scanner.finished() {
            (ahead as usize + 512).min(COPY_BUF)
        } else {
            COPY_BUF
        };
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read the archive stream: {e}")),
        };
        if scanning {
            if let Err(e) = scanner.feed(&buf[..n]) {
                scan_err = Some(e);
                zero_copy = false;
            }
        }
        file.write_all(&buf[..n]).map_err(|e| write_err(&e))?;
        if let Some(h) = hasher.as_mut() {
            // The hash runs on its own thread while the next chunk is read.
            let next = h.take()?;
            h.give(std::mem::replace(&mut buf, next), n)?;
        }
        bytes += n as u64;
        progress(bytes, &scanner, false);
    }
    file.flush().map_err(|e| write_err(&e))?;
    progress(bytes, &scanner, true);
    let content = (opts.scan && scan_err.is_none())
        .then(|| scanner.content())
        .flatten();
    let scan = if !opts.scan {
        Ok(0)
    } else {
        match scan_err {
            Some(e) => Err(e.to_string()),
            None => scanner
                .finish()
                .map(|s| s.entries)
                .map_err(|e| e.to_string()),
        }
    };
    Ok(Copied {
        bytes,
        scan,
        credentials: scanner.take_credentials(),
        oci: scanner.oci_warnings().clone(),
        content,
        sha256: match hasher {
            Some(h) => Some(h.finish()?),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive with small and large entries, a long name and an odd-sized file.
    fn archive() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, len: usize, byte: u8| {
            let mut h = tar::Header::new_gnu();
            h.set_size(len as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &vec![byte; len][..]).unwrap();
        };
        add("small.txt", 100, b'a');
        add("big.bin", 3 << 20, b'b');
        add(&format!("{}/long-name.txt", "d".repeat(150)), 70_000, b'c');
        add("odd.bin", 1_000_001, b'd');
        add("empty", 0, b'e');
        b.into_inner().unwrap()
    }

    fn run(opts: CopyOptions, data: Vec<u8>) -> (Copied, Vec<u8>) {
        let want: [u8; 32] = Sha256::digest(&data).into();
        let (reader, mut writer) = io::pipe().unwrap();
        let feeder = std::thread::spawn(move || {
            for chunk in data.chunks(77_777) {
                writer.write_all(chunk).unwrap();
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.tar");
        let mut file = File::create(&path).unwrap();
        let mut calls = 0;
        let copied =
            copy_archive(reader, &mut file, &path, opts, true, |_, _, _| calls += 1).unwrap();
        assert_eq!(copied.sha256, Some(want));
        feeder.join().unwrap();
        assert!(calls > 0);
        (copied, std::fs::read(&path).unwrap())
    }

    #[test]
    fn every_mode_copies_the_same_bytes_and_counts_entries() {
        let data = archive();
        for (scan, zero_copy) in [(true, true), (true, false), (false, false), (false, true)] {
            let (copied, out) = run(CopyOptions { scan, zero_copy }, data.clone());
            assert_eq!(out, data, "scan {scan} zero_copy {zero_copy}");
            assert_eq!(copied.bytes, data.len() as u64);
            assert_eq!(copied.scan, Ok(if scan { 5 } else { 0 }));
            // The long-named entry's folder, with its data.
            let content = copied.content.filter(|_| scan);
            assert_eq!(
                content.map(|c| (c.bytes, c.dirs[0].bytes)),
                scan.then_some((100 + (3 << 20) + 70_000 + 1_000_001, 70_000))
            );
        }
    }

    #[test]
    fn a_truncated_stream_is_reported_in_every_mode() {
        let mut data = archive();
        data.truncate(2 << 20);
        for zero_copy in [true, false] {
            let (copied, out) = run(
                CopyOptions {
                    scan: true,
                    zero_copy,
                },
                data.clone(),
            );
            assert_eq!(out, data);
            assert!(copied.scan.unwrap_err().contains("ends early"));
        }
    }
}
