//! `machine cp`: file transfer between host and guest, streamed in smolvm's 16 MiB chunks
//! and capped like `read_file_to_path` (src/agent/client.rs).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::cli::CpArgs;
use crate::error::Failure;
use crate::exec::ensure_running;
use crate::guestpath::resolve;
use crate::store::Home;
use crate::units::parse_bytes;

/// smolvm-protocol's `FILE_TRANSFER_MAX_TOTAL`.
const FILE_TRANSFER_MAX_TOTAL: u64 = 4 << 30;
const CHUNK: usize = 16 << 20;

/// The cap in force: `SMOLVM_FILE_TRANSFER_MAX_BYTES` if it parses, else 4 GiB.
fn transfer_cap() -> u64 {
    cap_from(
        std::env::var("SMOLVM_FILE_TRANSFER_MAX_BYTES")
            .ok()
            .as_deref(),
    )
}

/// Like smolvm, an unparsable override falls back to the default rather than failing.
fn cap_from(setting: Option<&str>) -> u64 {
    setting
        .and_then(|s| parse_bytes(s).ok())
        .unwrap_or(FILE_TRANSFER_MAX_TOTAL)
}

pub fn run(home: &Home, args: CpArgs) -> Result<i32, Failure> {
    let (name, guest, local, upload) = if let Some((n, p)) = args.src.split_once(':') {
        (n, p, args.dst.as_str(), false)
    } else if let Some((n, p)) = args.dst.split_once(':') {
        (n, p, args.src.as_str(), true)
    } else {
        return Err(Failure::smolvm(
            "config operation failed: cp: one of SRC or DST must use machine:path syntax (e.g., myvm:/workspace/file)",
        ));
    };
    let mut rec = home
        .load(name)?
        .ok_or_else(|| Failure::vm_not_found(name))?;
    ensure_running(home, &mut rec)?;
    let host = resolve(&rec.root, guest, true);
    if upload {
        upload_file(Path::new(local), &host, guest)?;
    } else {
        let size = download(&host, guest, Path::new(local))?;
        eprintln!("Downloading {guest} -> {local}: {size} bytes");
    }
    Ok(0)
}

fn download(host: &Path, guest: &str, local: &Path) -> Result<u64, Failure> {
    let opened = File::open(host).and_then(|f| {
        if f.metadata()?.is_dir() {
            Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "Is a directory (os error 21)",
            ))
        } else {
            Ok(f)
        }
    });
    // smolvm creates the local file before the first chunk arrives.
    let mut out = File::create(local)
        .map_err(|e| Failure::agent("write local file", format!("{}: {e}", local.display())))?;
    let mut src = match opened {
        Ok(f) => f,
        Err(e) => {
            remove_regular(local);
            return Err(Failure::agent("read file", format!("{guest}: {e}")));
        }
    };
    let cap = transfer_cap();
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    loop {
        let n = match read_chunk(&mut src, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                remove_regular(local);
                return Err(Failure::agent("read file", format!("{guest}: {e}")));
            }
        };
        if n == 0 {
            break;
        }
        let next = total.saturating_add(n as u64);
        if next > cap {
            remove_regular(local);
            return Err(Failure::agent(
                "read file",
                format!("guest streamed {next} bytes, exceeding the {cap} byte cap"),
            ));
        }
        if let Err(e) = out.write_all(&buf[..n]) {
            remove_regular(local);
            return Err(Failure::agent("write local file", e));
        }
        total = next;
    }
    out.flush()
        .map_err(|e| Failure::agent("flush local file", e))?;
    Ok(total)
}

/// Fill `buf` as far as the source allows, like one agent `DataChunk`.
fn read_chunk(src: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn upload_file(local: &Path, host: &Path, guest: &str) -> Result<(), Failure> {
    let mut src = File::open(local)
        .map_err(|e| Failure::agent("read local file", format!("{}: {e}", local.display())))?;
    let cap = transfer_cap();
    let size = src
        .metadata()
        .map_err(|e| Failure::agent("stat local file", format!("{}: {e}", local.display())))?
        .len();
    if size > cap {
        return Err(Failure::agent(
            "write file",
            format!("{size} bytes exceeds the {cap} byte cap"),
        ));
    }
    let mut dst =
        File::create(host).map_err(|e| Failure::agent("write file", format!("{guest}: {e}")))?;
    io::copy(&mut src, &mut dst)
        .map_err(|e| Failure::agent("write file", format!("{guest}: {e}")))?;
    eprintln!("Uploading {} -> {guest}: {size} bytes", local.display());
    Ok(())
}

/// Removes a partial download, but never a device or FIFO (`/dev/null`) given as LOCAL.
fn remove_regular(path: &std::path::Path) {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_defaults_to_4_gib_and_env_overrides() {
        assert_eq!(cap_from(None), 4 * 1024 * 1024 * 1024);
        assert_eq!(cap_from(Some("64G")), 64 << 30);
        assert_eq!(cap_from(Some("100M")), 100 << 20);
        assert_eq!(cap_from(Some(" 12345 ")), 12345);
        assert_eq!(cap_from(Some("lots")), 4 << 30);
    }
}
