//! The committed image as a `docker save` archive, written in the same pass as exec-tar.
//!
//! Layout (Docker's classic `docker save`, which Docker 20.10's `docker load`, smolvm 1.32's
//! `pack create --image <archive>` and our own stream push all read):
//!
//! ```text
//! <diff_id hex>/layer.tar   the guest's tar, byte for byte: the image's single layer
//! <image id hex>.json       the image config (User, WorkingDir, rootfs.diff_ids, history)
//! manifest.json             [{"Config", "RepoTags": ["bot-bottle-committed-<slug>:latest"], "Layers"}]
//! ```
//!
//! The layer comes first so that it can be streamed: a placeholder header is written, the
//! guest's bytes follow (hashed on the way: the diff_id), and once the size and digest are
//! known the header is written over the placeholder. The root's bytes reach the disk once.
//! A layer of 8 GiB or more has its size in GNU base-256, which Go's `archive/tar` (Docker)
//! and Rust's `tar` read.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const BLOCK: u64 = 512;

/// What the image says about itself, beyond its layer.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// `bot-bottle-committed-<slug>:latest`.
    pub repo_tag: String,
    pub user: String,
    pub workdir: String,
    /// The machine the root came from, named in the history entry.
    pub machine: String,
}

/// A finished archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    pub path: PathBuf,
    /// `sha256:<hex>` of the layer tar: the image's only diff_id.
    pub diff_id: String,
    /// `sha256:<hex>` of the config bytes, as Docker computes an image id.
    pub image_id: String,
    pub layer_bytes: u64,
    pub archive_bytes: u64,
    /// Paths inside the archive.
    pub layer_path: String,
    pub config_path: String,
}

impl ImageArchive {
    /// An archive already on disk (kept by a failed freeze), its digests recomputed.
    pub fn read(path: &Path) -> io::Result<ImageArchive> {
        let got = inspect(path)?;
        let diff_ids = &got.config["rootfs"]["diff_ids"];
        if diff_ids[0].as_str() != Some(got.layer_digest.as_str()) || diff_ids[1].is_string() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "its layer has digest {}, the config says {diff_ids}",
                    got.layer_digest
                ),
            ));
        }
        Ok(ImageArchive {
            path: path.to_path_buf(),
            layer_path: format!(
                "{}/layer.tar",
                got.layer_digest.trim_start_matches("sha256:")
            ),
            config_path: format!("{}.json", got.config_digest.trim_start_matches("sha256:")),
            diff_id: got.layer_digest,
            image_id: got.config_digest,
            layer_bytes: got.layer_bytes,
            archive_bytes: std::fs::metadata(path)?.len(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The OCI/Docker name of this host's architecture (a microVM's guest matches its host).
pub fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// A regular file's header. GNU format, so that sizes past the octal field's 8 GiB limit
/// are written in base-256 (the `tar` crate switches to it by itself).
pub fn entry_header(name: &str, size: u64, mtime: u64) -> io::Result<[u8; 512]> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    Ok(out)
}

fn padding(size: u64) -> usize {
    ((BLOCK - size % BLOCK) % BLOCK) as usize
}

/// The image config, as Docker's builder writes one for `FROM scratch` + `ADD` + `USER` +
/// `WORKDIR` (the default PATH included), with a history entry naming the source.
pub fn config_json(spec: &ImageSpec, diff_id: &str, created: &str) -> Vec<u8> {
    let doc = serde_json::json!({
        "architecture": oci_architecture(),
        "os": "linux",
        "created": created,
        "author": "bottle-freeze",
        "config": {
            "User": spec.user,
            "WorkingDir": spec.workdir,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{
            "created": created,
            "created_by": format!(
                "bottle-freeze {}: root filesystem of machine {} (exec-tar)",
                env!("CARGO_PKG_VERSION"),
                spec.machine
            ),
            "comment": "one layer: the guest's tar stream, unchanged",
        }],
    });
    // serde_json escapes control characters, so a hostile machine name stays one string.
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Bytes the writer puts before the layer's data.
pub const LAYER_DATA_OFFSET: u64 = BLOCK;

/// Writes the layer's placeholder header; the layer's bytes follow from
/// [`LAYER_DATA_OFFSET`].
pub fn begin(file: &mut File) -> io::Result<()> {
    file.write_all(&[0u8; BLOCK as usize])
}

/// Completes an archive whose layer (`layer_bytes`, hashing to `digest`) was written
/// behind [`begin`]'s placeholder: pads the layer, appends config and manifest and the end
/// blocks, then writes the real layer header over the placeholder.
pub fn finish(
    file: &mut File,
    path: &Path,
    layer_bytes: u64,
    digest: [u8; 32],
    spec: &ImageSpec,
) -> io::Result<ImageArchive> {
    finish_at(file, path, 0, layer_bytes, digest, spec)
}

/// As [`finish`], with the layer's header at `header_at` (its data right behind it).
fn finish_at(
    file: &mut File,
    path: &Path,
    header_at: u64,
    layer_bytes: u64,
    digest: [u8; 32],
    spec: &ImageSpec,
) -> io::Result<ImageArchive> {
    let now = std::time::SystemTime::now();
    let mtime = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let created = humantime::format_rfc3339_seconds(now).to_string();
    let diff_hex = hex(&digest);
    let diff_id = format!("sha256:{diff_hex}");
    let config = config_json(spec, &diff_id, &created);
    let image_hex = hex(&Sha256::digest(&config));
    let layer_path = format!("{diff_hex}/layer.tar");
    let config_path = format!("{image_hex}.json");
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_path,
        "RepoTags": [spec.repo_tag],
        "Layers": [layer_path],
    }]))
    .map_err(io::Error::other)?;

    let end = header_at + BLOCK + layer_bytes;
    file.seek(SeekFrom::Start(end))?;
    let mut tail = vec![0u8; padding(layer_bytes)];
    for (name, data) in [
        (&config_path, &config),
        (&"manifest.json".to_string(), &manifest),
    ] {
        tail.extend_from_slice(&entry_header(name, data.len() as u64, mtime)?);
        tail.extend_from_slice(data);
        tail.resize(tail.len() + padding(data.len() as u64), 0);
    }
    tail.extend_from_slice(&[0u8; 2 * BLOCK as usize]);
    file.write_all(&tail)?;
    let archive_bytes = end + tail.len() as u64;
    file.set_len(archive_bytes)?;
    file.seek(SeekFrom::Start(header_at))?;
    file.write_all(&entry_header(&layer_path, layer_bytes, mtime)?)?;
    file.flush()?;
    Ok(ImageArchive {
        path: path.to_path_buf(),
        diff_id,
        image_id: format!("sha256:{image_hex}"),
        layer_bytes,
        archive_bytes,
        layer_path,
        config_path,
    })
}

/// Turns a plain tar already on disk (the guest-file transport's download) into the
/// archive at `out`, hashing it on the way. On filesystems that can insert a range in a
/// file (ext4, xfs) the room for the header is made in place and the tar's bytes are not
/// written again; elsewhere they are copied once more. Returns whether it was in place.
pub fn wrap_file(tar: &Path, out: &Path, spec: &ImageSpec) -> io::Result<(ImageArchive, bool)> {
    let (digest, len) = hash_file(tar)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tar)?;
    if insert_room(&file).is_ok() {
        // The first PREAMBLE - BLOCK bytes are a pax header whose only record is a
        // comment, so that the layer's own header sits in the last block of the room.
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&pax_filler(PREAMBLE - BLOCK)?)?;
        let done = finish_at(&mut file, tar, PREAMBLE - BLOCK, len, digest, spec)?;
        drop(file);
        std::fs::rename(tar, out)?;
        return Ok((
            ImageArchive {
                path: out.to_path_buf(),
                ..done
            },
            true,
        ));
    }
    drop(file);
    let mut dst = create_private(out)?;
    begin(&mut dst)?;
    let mut src = File::open(tar)?;
    io::copy(&mut src, &mut dst)?;
    let done = finish(&mut dst, out, len, digest, spec)?;
    let _ = std::fs::remove_file(tar);
    Ok((done, false))
}

/// The room made at the front of a downloaded tar: one filesystem block (the unit that
/// `FALLOC_FL_INSERT_RANGE` works in on ext4 and xfs).
const PREAMBLE: u64 = 4096;

fn insert_room(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on a file descriptor we own; no memory is passed.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_INSERT_RANGE,
            0,
            PREAMBLE as libc::off_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A pax extended header and its data, `len` bytes in all (a multiple of 512, at least
/// two blocks), holding one `comment` record that fills it.
fn pax_filler(len: u64) -> io::Result<Vec<u8>> {
    let data_len = (len - BLOCK) as usize;
    // "NNNN comment=<filler>\n", NNNN counting the whole record.
    let digits = data_len.to_string().len();
    let filler = data_len - digits - 1 - "comment=".len() - 1;
    let mut data = format!("{data_len} comment=").into_bytes();
    data.resize(data.len() + filler, b'.');
    data.push(b'\n');
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders/layer.tar")?;
    h.set_size(data_len as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(&data);
    Ok(out)
}

fn hash_file(path: &Path) -> io::Result<([u8; 32], u64)> {
    let mut f = File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hash.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hash.finalize().into(), len))
}

fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// The archive's parts as a reader sees them, for checks: the manifest, the config, and
/// the layer's digest recomputed from the bytes. Reads the whole layer once.
#[derive(Debug)]
pub struct Inspected {
    pub repo_tags: Vec<String>,
    pub config: serde_json::Value,
    pub config_digest: String,
    pub layer_digest: String,
    pub layer_bytes: u64,
}

/// Reads an archive written here (or by `docker save` with one layer) and recomputes its
/// digests.
pub fn inspect(path: &Path) -> io::Result<Inspected> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let mut ar = tar::Archive::new(File::open(path)?);
    let mut files: std::collections::HashMap<String, (String, u64, Vec<u8>)> =
        std::collections::HashMap::new();
    for entry in ar.entries()? {
        let mut e = entry?;
        let name = e.path()?.to_string_lossy().into_owned();
        let mut hash = Sha256::new();
        let mut small = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut n_all = 0u64;
        loop {
            let n = e.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            if name.ends_with(".json") {
                small.extend_from_slice(&buf[..n]);
            }
            n_all += n as u64;
        }
        files.insert(
            name,
            (format!("sha256:{}", hex(&hash.finalize())), n_all, small),
        );
    }
    let manifest = files
        .get("manifest.json")
        .ok_or_else(|| bad("no manifest.json".into()))?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest.2).map_err(|e| bad(e.to_string()))?;
    let image = &manifest[0];
    let get = |p: &serde_json::Value| {
        p.as_str()
            .and_then(|p| files.get(p))
            .ok_or_else(|| bad(format!("manifest.json names {p}, which is not there")))
    };
    let config = get(&image["Config"])?;
    let layer = get(&image["Layers"][0])?;
    Ok(Inspected {
        repo_tags: image["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        config: serde_json::from_slice(&config.2).map_err(|e| bad(e.to_string()))?,
        config_digest: config.0.clone(),
        layer_digest: layer.0.clone(),
        layer_bytes: layer.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ImageSpec {
        ImageSpec {
            repo_tag: "bot-bottle-committed-demo:latest".into(),
            user: "node".into(),
            workdir: "/home/node".into(),
            machine: "bot-bottle-demo".into(),
        }
    }

    fn guest_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, len) in [("etc/hostname", 5usize), ("big.bin", 70_001), ("x y é", 0)] {
            let mut h = tar::Header::new_gnu();
            h.set_size(len as u64);
            h.set_mode(0o640);
            h.set_cksum();
            b.append_data(&mut h, name, &vec![9u8; len][..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn check(path: &Path, layer: &[u8], done: &ImageArchive) {
        let got = inspect(path).unwrap();
        let want = format!("sha256:{}", hex(&Sha256::digest(layer)));
        assert_eq!(got.layer_digest, want);
        assert_eq!(done.diff_id, want);
        assert_eq!(got.layer_bytes, layer.len() as u64);
        assert_eq!(got.config_digest, done.image_id);
        assert_eq!(got.repo_tags, ["bot-bottle-committed-demo:latest"]);
        assert_eq!(got.config["config"]["User"], "node");
        assert_eq!(got.config["config"]["WorkingDir"], "/home/node");
        assert_eq!(got.config["rootfs"]["diff_ids"][0], want.as_str());
        assert_eq!(got.config["os"], "linux");
        assert!(got.config["history"][0]["created_by"]
            .as_str()
            .unwrap()
            .contains("bot-bottle-demo"));
        assert_eq!(std::fs::metadata(path).unwrap().len(), done.archive_bytes);
        // The layer inside is the guest's tar, byte for byte.
        let mut ar = tar::Archive::new(File::open(path).unwrap());
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_string_lossy(), done.layer_path);
        let mut inner = Vec::new();
        e.read_to_end(&mut inner).unwrap();
        assert_eq!(inner, layer);
        // And our own scanner reads the whole archive as well-formed.
        assert_eq!(crate::freeze::tar_scan::scan_file(path).unwrap().entries, 3);
    }

    #[test]
    fn streamed_archive_holds_the_layer_config_and_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        let layer = guest_tar();
        let mut f = create_private(&path).unwrap();
        begin(&mut f).unwrap();
        f.write_all(&layer).unwrap();
        let digest: [u8; 32] = Sha256::digest(&layer).into();
        let done = finish(&mut f, &path, layer.len() as u64, digest, &spec()).unwrap();
        check(&path, &layer, &done);
    }

    #[test]
    fn a_downloaded_tar_is_wrapped_in_place_or_copied() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("rootfs.tar");
        let out = dir.path().join("image.tar");
        let layer = guest_tar();
        std::fs::write(&tar, &layer).unwrap();
        let (done, _in_place) = wrap_file(&tar, &out, &spec()).unwrap();
        assert!(!tar.exists());
        check(&out, &layer, &done);
    }

    #[test]
    fn where_a_range_cannot_be_inserted_the_download_is_copied() {
        // tmpfs has no FALLOC_FL_INSERT_RANGE.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let tar = dir.path().join("rootfs.tar");
        let out = dir.path().join("image.tar");
        let layer = guest_tar();
        std::fs::write(&tar, &layer).unwrap();
        let (done, in_place) = wrap_file(&tar, &out, &spec()).unwrap();
        assert!(!in_place);
        assert!(!tar.exists());
        check(&out, &layer, &done);
    }

    #[test]
    fn pax_filler_is_exactly_the_room_and_parses() {
        let f = pax_filler(PREAMBLE - BLOCK).unwrap();
        assert_eq!(f.len() as u64, PREAMBLE - BLOCK);
        let mut data = f.clone();
        data.extend_from_slice(&entry_header("a", 0, 0).unwrap());
        data.extend_from_slice(&[0u8; 1024]);
        let mut ar = tar::Archive::new(&data[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn sizes_of_8_gib_and_more_use_base_256() {
        for size in [(8u64 << 30) - 1, 8 << 30, (9 << 30) + 7, 1 << 40] {
            let h = entry_header(&format!("{}/layer.tar", "a".repeat(64)), size, 1).unwrap();
            let parsed = tar::Header::from_byte_slice(&h);
            assert_eq!(parsed.size().unwrap(), size, "tar crate, {size}");
            assert_eq!(parsed.cksum().unwrap(), {
                let mut c = h;
                c[148..156].fill(b' ');
                c.iter().map(|&b| u32::from(b)).sum::<u32>()
            });
            // Octal up to 8 GiB - 1, base-256 (high bit set) from 8 GiB.
            assert_eq!(h[124] & 0x80 != 0, size >= 8 << 30, "{size}");
            // Our scanner (the same reading rules as Go's archive/tar) agrees.
            let mut s = crate::freeze::tar_scan::TarScanner::new();
            s.feed(&h).unwrap();
            assert_eq!(s.data_ahead(), size + (512 - size % 512) % 512);
        }
    }

    #[test]
    fn image_id_is_the_sha256_of_the_config() {
        let c = config_json(&spec(), "sha256:00", "2026-01-01T00:00:00Z");
        let v: serde_json::Value = serde_json::from_slice(&c).unwrap();
        assert_eq!(v["architecture"], oci_architecture());
        let hostile = ImageSpec {
            machine: "m\u{1b}[2J\"x".into(),
            ..spec()
        };
        let c = config_json(&hostile, "sha256:00", "2026-01-01T00:00:00Z");
        assert!(serde_json::from_slice::<serde_json::Value>(&c).is_ok());
    }
}
