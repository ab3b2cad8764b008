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
    #[error(
        "refusing the lock file {path}: it is {what}, not a regular file (remove it and retry)"
    )]
    NotRegular { path: PathBuf, what: &'static str },
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
            // The machine's folder holds its artifacts and pack staging: the guest's data.
            crate::private::create_dir_all(dir).map_err(io)?;
        }
        let file = open_lock_file(&path, true)?;
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
        let Ok(file) = open_lock_file(&path, false) else {
            return false;
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_) => false,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => true,
            Err(_) => false,
        }
    }
}

/// Opens the lock file without following a symlink (one planted there would have us
/// truncate and write into its target), and only when it is a regular file.
fn open_lock_file(path: &Path, create: bool) -> Result<File, LockError> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .truncate(false)
        .mode(0o600)
        // O_NONBLOCK: a FIFO planted there must not block the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            let what = match source.raw_os_error() {
                Some(libc::ELOOP) => Some("a symbolic link"),
                Some(libc::EISDIR) => Some("a directory"),
                _ => None,
            };
            if let Some(what) = what {
                LockError::NotRegular {
                    path: path.to_path_buf(),
                    what,
                }
            } else {
                LockError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    let ft = file
        .metadata()
        .map_err(|source| LockError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .file_type();
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(LockError::NotRegular {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(file)
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

    #[test]
    fn a_symlinked_lock_file_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let slug = Slug::parse("web").unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "precious\n").unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        std::os::unix::fs::symlink(&victim, lock_path(dir.path(), &slug)).unwrap();
        let err = MachineLock::acquire(dir.path(), &slug, "bot-bottle-web")
            .err()
            .expect("a symlinked lock file was accepted");
        assert!(
            err.to_string().contains("symbolic link"),
            "unexpected message: {err}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(!MachineLock::is_held(dir.path(), &slug));
    }

    #[test]
    fn a_lock_path_that_is_not_a_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let slug = Slug::parse("web").unwrap();
        std::fs::create_dir_all(lock_path(dir.path(), &slug)).unwrap();
        let err = MachineLock::acquire(dir.path(), &slug, "bot-bottle-web")
            .err()
            .expect("a directory was accepted as the lock file");
        assert!(
            err.to_string()
                .contains("it is a directory, not a regular file"),
            "{err}"
        );
        let fifo_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(fifo_dir.path().join("web")).unwrap();
        nix::unistd::mkfifo(
            &lock_path(fifo_dir.path(), &slug),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let err = MachineLock::acquire(fifo_dir.path(), &slug, "bot-bottle-web")
            .err()
            .expect("a FIFO was accepted as the lock file");
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[test]
    fn the_machine_folder_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let slug = Slug::parse("web").unwrap();
        let _lock = MachineLock::acquire(dir.path(), &slug, "bot-bottle-web").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("web")), 0o700);
        assert_eq!(mode(&lock_path(dir.path(), &slug)), 0o600);
    }
}
