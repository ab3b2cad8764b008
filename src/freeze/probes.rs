//! What this smolvm can do, learnt from its `--help` texts and cached: `machine exec
//! --stream` (older smolvm lacks it) and `pack create --image <archive>` (smolvm 1.32 takes
//! a `docker save` archive; 1.9 only a registry reference).
//!
//! The answers are cached in memory and in `<state dir>/smolvm-probes.json`, keyed by the
//! binary's path, size and modification time, so a replaced smolvm is probed again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::smolvm::{Smolvm, SmolvmError};

/// What the probes learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `machine exec` knows `--stream`.
    pub exec_stream: bool,
    /// `pack create --image` takes a `docker save` archive.
    pub pack_archive: bool,
}

const CACHE_FILE: &str = "smolvm-probes.json";

static MEMORY: Mutex<Option<HashMap<String, Capabilities>>> = Mutex::new(None);

/// The cache key: canonical path, size and mtime of the binary, or None when it cannot be
/// found (then every call probes).
fn key(program: &Path) -> Option<String> {
    let path = resolve(program)?;
    let meta = std::fs::metadata(&path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{}|{}|{}.{:09}",
        path.display(),
        meta.len(),
        mtime.as_secs(),
        mtime.subsec_nanos()
    ))
}

/// The file a command name runs: itself when it has a slash, else the first on PATH,
/// followed through symlinks.
pub(crate) fn resolve(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.canonicalize().ok();
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}

fn load_disk(state_dir: &Path) -> HashMap<String, Capabilities> {
    std::fs::read(state_dir.join(CACHE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_disk(state_dir: &Path, key: &str, caps: Capabilities) {
    let mut all = load_disk(state_dir);
    all.insert(key.to_string(), caps);
    if let Ok(bytes) = serde_json::to_vec_pretty(&all) {
        // Written whole and renamed, so a reader never sees half a file.
        let tmp = state_dir.join(format!(".{CACHE_FILE}.{}", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, state_dir.join(CACHE_FILE));
        }
    }
}

/// The capabilities of `smolvm`, from the caches or by running both `--help` probes at
/// once.
pub async fn capabilities(smolvm: &Smolvm, state_dir: &Path) -> Result<Capabilities, SmolvmError> {
    let key = key(smolvm.program());
    if let Some(k) = &key {
        if let Some(c) = MEMORY
            .lock()
            .ok()
            .and_then(|m| m.as_ref().and_then(|m| m.get(k).copied()))
        {
            return Ok(c);
        }
        if let Some(c) = load_disk(state_dir).get(k).copied() {
            remember(k, c);
            return Ok(c);
        }
    }
    let (exec_help, pack_help) = (
        crate::smolvm::argv::help(&["machine", "exec"]),
        crate::smolvm::argv::help(&["pack", "create"]),
    );
    let exec_args: Vec<&str> = exec_help.iter().map(String::as_str).collect();
    let pack_args: Vec<&str> = pack_help.iter().map(String::as_str).collect();
    let (exec, pack) = tokio::join!(smolvm.query(&exec_args), smolvm.query(&pack_args));
    let text = |o: crate::smolvm::QueryOutput| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let caps = Capabilities {
        exec_stream: text(exec?).contains("--stream"),
        pack_archive: pack.map(text).map(|t| takes_archive(&t)).unwrap_or(false),
    };
    if let Some(k) = &key {
        remember(k, caps);
        save_disk(state_dir, k, caps);
    }
    Ok(caps)
}

fn remember(key: &str, caps: Capabilities) {
    if let Ok(mut m) = MEMORY.lock() {
        m.get_or_insert_with(HashMap::new)
            .insert(key.to_string(), caps);
    }
}

/// Whether `pack create --help` says `--image` takes a `docker save` archive.
pub fn takes_archive(help: &str) -> bool {
    help.contains("docker save")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_support_is_read_from_the_help_text() {
        assert!(takes_archive(
            "-I, --image <IMAGE>\n  Container image to pack: a registry reference (alpine:latest), a `docker save` archive (./myapp.tar, or `-` to read one from stdin), or an unpacked rootfs directory"
        ));
        assert!(!takes_archive(
            "-I, --image <IMAGE>\n  OCI image reference to pack"
        ));
    }

    #[test]
    fn the_key_changes_when_the_binary_does() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("smolvm");
        std::fs::write(&bin, "a").unwrap();
        let k1 = key(&bin).unwrap();
        std::fs::write(&bin, "ab").unwrap();
        let k2 = key(&bin).unwrap();
        assert_ne!(k1, k2);
        assert!(key(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn the_disk_cache_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let caps = Capabilities {
            exec_stream: true,
            pack_archive: false,
        };
        save_disk(dir.path(), "k", caps);
        assert_eq!(load_disk(dir.path()).get("k"), Some(&caps));
    }
}
