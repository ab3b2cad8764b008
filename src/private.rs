//! Folders and files that hold the guest's data are private to us (0700 / 0600) whatever
//! the umask: a root filesystem, its image layers and its artifacts are the agent's
//! workspace, credentials included, and other local users must not read them.

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The mode of every private folder.
pub const DIR_MODE: u32 = 0o700;

/// Creates `path` and any missing parents as 0700, and makes `path` itself 0700 even
/// when it existed or the umask took bits away.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    restrict(path)
}

/// Makes an existing folder of ours 0700.
pub fn restrict(path: &Path) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODE))
}

/// A new folder `<parent>/<prefix>XXXXXX`, 0700, kept (the caller removes it).
/// tempfile creates folders with the default mode, so the mode is set here.
pub fn temp_dir(parent: &Path, prefix: &str) -> io::Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(DIR_MODE))
        .tempdir_in(parent)?
        .keep();
    if let Err(e) = restrict(&dir) {
        let _ = std::fs::remove_dir(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// Sets this process's umask so that whatever it (and the children it starts) creates
/// is private; returns the previous one.
pub fn private_umask() -> u32 {
    use nix::sys::stat::{umask, Mode};
    umask(Mode::from_bits_truncate(0o077)).bits() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dirs_are_private_whatever_the_umask() {
        use nix::sys::stat::{umask, Mode};
        let parent = tempfile::tempdir().unwrap();
        let old = umask(Mode::from_bits_truncate(0o000));
        let t = temp_dir(parent.path(), "bot-bottle-vm-commit.").unwrap();
        let nested = parent.path().join("a/b/c");
        create_dir_all(&nested).unwrap();
        umask(old);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&t), 0o700);
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&parent.path().join("a")), 0o700);
    }
}
