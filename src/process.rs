//! Child processes that die with their whole process group.
//!
//! Each child is started in a process group of its own, so cancelling a stage kills
//! everything it started (tar inside `smolvm machine exec` included), and dropping the
//! handle on any path out kills the group too.

use std::io;
use std::process::ExitStatus;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

pub struct GroupChild {
    child: Child,
    pgid: Option<Pid>,
    reaped: bool,
}

impl GroupChild {
    /// Spawns `cmd` as the leader of a new process group, killed on drop.
    pub fn spawn(cmd: &mut Command) -> io::Result<GroupChild> {
        cmd.process_group(0).kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        // If we are killed outright (SIGKILL), the kernel kills the child too, so no
        // registry or smolvm outlives us; the runtime's worker threads that spawn children
        // live as long as the process, so the parent-thread caveat of PDEATHSIG is moot.
        let parent = std::process::id() as libc::pid_t;
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // A parent that died between fork and prctl sends no signal: go now.
                if libc::getppid() != parent {
                    libc::_exit(137);
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        Ok(GroupChild {
            child,
            pgid,
            reaped: false,
        })
    }

    pub fn inner(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn id(&self) -> Option<u32> {
        self.pgid.map(|p| p.as_raw() as u32)
    }

    /// Sends SIGKILL to the whole group; harmless when it is already gone.
    pub fn kill_group(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.reaped = true;
        Ok(status)
    }

    /// Kills the group and reaps the leader.
    pub async fn kill_and_wait(&mut self) {
        self.kill_group();
        let _ = self.wait().await;
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        // A leader that exited may leave members behind (tar under smolvm); once reaped
        // we leave the group alone, since its id could in principle be reused.
        if !self.reaped {
            self.kill_group();
        }
    }
}

/// The exit status as a number for messages: the code, or 128+signal as shells show it.
pub fn status_code(status: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
