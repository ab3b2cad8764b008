//! Guest paths → host paths inside a machine's root, resolved the way the guest would:
//! `..` stops at `/`, and absolute symlink targets are re-rooted, so nothing escapes.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Symlink hops before giving up, as Linux's ELOOP limit.
const MAX_HOPS: usize = 40;

/// Map `guest` (absolute, or relative to the guest's `/`) into `root`. The final component
/// is followed when it is a symlink only if `follow_last` (rm removes the link itself).
pub fn resolve(root: &Path, guest: &str, follow_last: bool) -> PathBuf {
    let mut pending: VecDeque<OsString> = components(Path::new(guest)).collect();
    let mut stack: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(comp) = pending.pop_front() {
        if comp == ".." {
            stack.pop();
            continue;
        }
        let is_last = pending.is_empty();
        let mut host = root.to_path_buf();
        host.extend(&stack);
        host.push(&comp);
        let link = if is_last && !follow_last {
            None
        } else {
            std::fs::symlink_metadata(&host)
                .ok()
                .filter(|m| m.file_type().is_symlink())
                .and_then(|_| std::fs::read_link(&host).ok())
        };
        match link {
            Some(target) if hops < MAX_HOPS => {
                hops += 1;
                if target.is_absolute() {
                    stack.clear();
                }
                for (i, c) in components(&target).enumerate() {
                    pending.insert(i, c);
                }
            }
            _ => stack.push(comp),
        }
    }
    let mut host = root.to_path_buf();
    host.extend(&stack);
    host
}

/// Normal and `..` components; root and `.` are dropped.
fn components(p: &Path) -> impl Iterator<Item = OsString> + '_ {
    p.components().filter_map(|c| match c {
        Component::Normal(s) => Some(s.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_inside_root() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc"))?;
        std::os::unix::fs::symlink("/etc", root.join("abs"))?;
        std::os::unix::fs::symlink("../../../..", root.join("etc/up"))?;
        assert_eq!(resolve(root, "/../../x", true), root.join("x"));
        assert_eq!(resolve(root, "/abs/passwd", true), root.join("etc/passwd"));
        assert_eq!(resolve(root, "/etc/up/y", true), root.join("y"));
        assert_eq!(resolve(root, "/abs", false), root.join("abs"));
        Ok(())
    }
}
