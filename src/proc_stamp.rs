//! Proof that a pid is still the process we started: pids are reused, and records on disk
//! may be stale or edited, so a pid alone never justifies a kill.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A process as it was when we started it: its pid, its start time (clock ticks after
/// boot, `/proc/<pid>/stat` field 22, which no later process with the same pid shares) and
/// its executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStamp {
    pub pid: u32,
    pub start_ticks: u64,
    pub exe: PathBuf,
}

impl ProcessStamp {
    /// The stamp of the live process `pid`, or None when it is gone or unreadable.
    pub fn of(pid: u32) -> Option<ProcessStamp> {
        Some(ProcessStamp {
            pid,
            start_ticks: start_ticks(pid)?,
            exe: std::fs::read_link(format!("/proc/{pid}/exe")).ok()?,
        })
    }

    /// Whether the process now running as `self.pid` is the one stamped.
    pub fn is_alive_and_same(&self) -> bool {
        ProcessStamp::of(self.pid).as_ref() == Some(self)
    }
}

/// Field 22 of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); field 22 is the 20th from there.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The command line of `pid`, one argument per element.
pub fn cmdline(pid: u32) -> Option<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt as _;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| PathBuf::from(std::ffi::OsStr::from_bytes(a)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_tell_a_process_from_a_later_one() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let stamp = ProcessStamp::of(child.id()).unwrap();
        assert!(stamp.is_alive_and_same());
        assert!(stamp.exe.ends_with("sleep"), "{:?}", stamp.exe);
        let mut other = stamp.clone();
        other.start_ticks += 1;
        assert!(!other.is_alive_and_same());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!stamp.is_alive_and_same());
        let me = ProcessStamp::of(std::process::id()).unwrap();
        assert!(me.start_ticks > 0);
    }
}
