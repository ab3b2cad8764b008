//! Starting real child processes so that they die with the sim.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use crate::forward::{Source, CHILD_PID};

/// Spawn `cmd` with piped output, in the sim's own process group (a group kill reaches
/// it), and with a parent-death signal so it cannot outlive a sim killed alone.
pub fn spawn(mut cmd: Command) -> io::Result<Source> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe and touches only the new process.
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // A sim killed between fork and prctl sends no signal: go now.
            if libc::getppid() != parent {
                libc::_exit(137);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    if let Ok(pid) = i32::try_from(child.id()) {
        CHILD_PID.store(pid, Ordering::SeqCst);
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("child stdout not captured"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| io::Error::other("child stderr not captured"))?;
    Ok(Source {
        stdout: Box::new(stdout),
        stderr: Box::new(stderr),
        child: Some(child),
        code: 0,
        after_exit: None,
    })
}
