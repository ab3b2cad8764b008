//! A valid tar archive of about a requested size, generated as it is read: files of 1 MiB in
//! nested folders and proper end blocks. Never held in memory, so benchmarks can ask for GiBs.

use std::io::{self, Read};

use tar::{EntryType, Header};

const BLOCK: u64 = 512;
const FILE_SIZE: u64 = 1 << 20;
const FILES_PER_DIR: u64 = 16;
const DIRS_PER_TOP: u64 = 16;
/// Content repeats with this period; each file's first 8 bytes carry its index.
const PATTERN_LEN: usize = 64 * 1024;
/// A fixed mtime keeps the archive reproducible.
const MTIME: u64 = 1_700_000_000;

pub struct SyntheticTar {
    target: u64,
    /// Bytes already scheduled (headers, data, padding).
    scheduled: u64,
    pending: Vec<u8>,
    pending_pos: usize,
    data_left: u64,
    data_pos: u64,
    file_index: u64,
    done: bool,
    pattern: Vec<u8>,
}

impl SyntheticTar {
    pub fn new(target: u64) -> Self {
        // xorshift: cheap, deterministic, not trivially compressible.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut pattern = Vec::with_capacity(PATTERN_LEN);
        while pattern.len() < PATTERN_LEN {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            pattern.extend_from_slice(&x.to_le_bytes());
        }
        SyntheticTar {
            target,
            scheduled: 0,
            pending: Vec::new(),
            pending_pos: 0,
            data_left: 0,
            data_pos: 0,
            file_index: 0,
            done: false,
            pattern,
        }
    }

    fn push_header(&mut self, path: &str, size: u64, kind: EntryType) -> io::Result<()> {
        let mut h = Header::new_gnu();
        h.set_path(path)?;
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_cksum();
        self.pending.extend_from_slice(h.as_bytes());
        self.scheduled += BLOCK;
        Ok(())
    }

    /// Schedule the next entry (with any directory headers it needs), or the end blocks.
    fn next_entry(&mut self) -> io::Result<()> {
        // Sizes are whole blocks, so no entry ever needs padding.
        self.pending.clear();
        self.pending_pos = 0;

        let i = self.file_index;
        let new_sub = i.is_multiple_of(FILES_PER_DIR);
        let new_top = i.is_multiple_of(FILES_PER_DIR * DIRS_PER_TOP);
        let dir_headers = u64::from(new_sub) + u64::from(new_top);
        // Room left before the two end blocks, after this entry's headers.
        let room = self
            .target
            .saturating_sub(self.scheduled + 2 * BLOCK + (dir_headers + 1) * BLOCK);
        let size = room.min(FILE_SIZE) / BLOCK * BLOCK;
        if size == 0 {
            self.pending
                .resize(self.pending.len() + 2 * BLOCK as usize, 0);
            self.scheduled += 2 * BLOCK;
            self.done = true;
            return Ok(());
        }
        let top = i / (FILES_PER_DIR * DIRS_PER_TOP);
        let sub = (i / FILES_PER_DIR) % DIRS_PER_TOP;
        if new_top {
            self.push_header(&format!("synthetic/d{top:04}/"), 0, EntryType::Directory)?;
        }
        if new_sub {
            self.push_header(
                &format!("synthetic/d{top:04}/s{sub:02}/"),
                0,
                EntryType::Directory,
            )?;
        }
        self.push_header(
            &format!("synthetic/d{top:04}/s{sub:02}/f{i:06}.bin"),
            size,
            EntryType::Regular,
        )?;
        self.data_left = size;
        self.data_pos = 0;
        self.scheduled += size;
        self.file_index += 1;
        Ok(())
    }
}

impl Read for SyntheticTar {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pending_pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pending_pos);
                buf[..n].copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
                self.pending_pos += n;
                return Ok(n);
            }
            if self.data_left > 0 {
                let off = (self.data_pos % PATTERN_LEN as u64) as usize;
                let n = buf
                    .len()
                    .min(PATTERN_LEN - off)
                    .min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
                buf[..n].copy_from_slice(&self.pattern[off..off + n]);
                if self.data_pos < 8 {
                    // Stamp the file index so no two files are identical.
                    let stamp = (self.file_index - 1).to_le_bytes();
                    let start = self.data_pos as usize;
                    let end = n.min(8 - start);
                    buf[..end].copy_from_slice(&stamp[start..start + end]);
                }
                self.data_pos += n as u64;
                self.data_left -= n as u64;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            self.next_entry()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_valid_tar_of_about_the_size() -> io::Result<()> {
        let target = 5 * FILE_SIZE + 300_000;
        let mut bytes = Vec::new();
        SyntheticTar::new(target).read_to_end(&mut bytes)?;
        assert!(bytes.len() as u64 <= target);
        assert!(bytes.len() as u64 + 2 * BLOCK >= target);
        assert!(bytes[bytes.len() - 1024..].iter().all(|b| *b == 0));
        let mut files = 0;
        for entry in tar::Archive::new(&bytes[..]).entries()? {
            let mut entry = entry?;
            if entry.header().entry_type() == EntryType::Regular {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                assert_eq!(data.len() as u64, entry.size());
                files += 1;
            }
        }
        assert_eq!(files, 6);
        Ok(())
    }

    #[test]
    fn tiny_target_is_an_empty_archive() -> io::Result<()> {
        let mut bytes = Vec::new();
        SyntheticTar::new(10).read_to_end(&mut bytes)?;
        assert_eq!(bytes, vec![0u8; 1024]);
        Ok(())
    }
}
