//! One freeze per machine: an exclusive `flock` on `<state>/<slug>/.freeze.lock`, held for
//! the run's whole life and released by the kernel when the process dies, however it dies.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::names::Slug;

pub struct MachineLock {
    _lock: Flock<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("a freeze of {machine} is already running{}", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy { machine: String, pid: Option<u32> },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn lock_path(state_dir: &Path, slug: &Slug) -> PathBuf {
    state_dir.join(slug.as_str()).join(".freeze.lock")
}

impl MachineLock {
    /// Takes the machine's lock without waiting; `Busy` names the holder's pid.
    pub fn acquire(state_dir: &Path, slug: &Slug, machine: &str) -> Result<MachineLock, LockError> {
        let path = lock_path(state_dir, slug);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // The pid is only informative, for the "already running" message.
                let _ = lock.set_len(0);
                let _ = lock.rewind();
                let _ = write!(&mut *lock, "{}", std::process::id());
                Ok(MachineLock { _lock: lock })
            }
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                Err(LockError::Busy {
                    machine: machine.to_string(),
                    pid: s.trim().parse().ok(),
                })
            }
            Err((_, errno)) => Err(io(std::io::Error::from(errno))),
        }
    }

    /// Whether some live process holds the machine's lock now.
    pub fn is_held(state_dir: &Path, slug: &Slug) -> bool {
        let path = lock_path(state_dir, slug);
        let Ok(file) = File::open(&path) else {
            return false;
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_) => false,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => true,
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let slug = Slug::parse("web").unwrap();
        let first = MachineLock::acquire(dir.path(), &slug, "bot-bottle-web").unwrap();
        assert!(MachineLock::is_held(dir.path(), &slug));
        match MachineLock::acquire(dir.path(), &slug, "bot-bottle-web") {
            Err(LockError::Busy { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Busy, got {:?}", other.err()),
        }
        drop(first);
        assert!(!MachineLock::is_held(dir.path(), &slug));
        assert!(MachineLock::acquire(dir.path(), &slug, "bot-bottle-web").is_ok());
    }
}
