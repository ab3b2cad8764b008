//! After a crash: runs that were killed (SIGKILL, power loss) leave a record that says
//! "running", a temp folder, maybe a registry process and a scratch archive in the guest.
//! On the next start these are found, cleaned, and the record says "interrupted".

use std::path::Path;

use crate::freeze::is_our_temp;
use crate::history::{now_ms, History, Outcome, StageStatus};
use crate::lock::MachineLock;
use crate::names::Slug;
use crate::smolvm::Smolvm;

/// Finishes every abandoned run; returns one line per run saying what was cleaned.
pub async fn recover_interrupted(state_dir: &Path, smolvm: &Smolvm) -> Vec<String> {
    let history = History::new(state_dir);
    let Ok(records) = history.list() else {
        return Vec::new();
    };
    let mut said = Vec::new();
    for mut rec in records
        .into_iter()
        .filter(|r| r.outcome == Outcome::Running)
    {
        let Ok(slug) = Slug::parse(&rec.slug) else {
            continue;
        };
        // A live run holds its machine's lock; only runs nobody holds are abandoned.
        let Ok(_lock) = MachineLock::acquire(state_dir, &slug, &rec.machine) else {
            continue;
        };
        let mut cleaned = Vec::new();
        if let Some(pid) = rec.registry_pid.take() {
            if kill_if_ours(pid, rec.temp_dir.as_deref()) {
                cleaned.push(format!("stopped its registry (pid {pid})"));
            }
        }
        if let Some(t) = rec.temp_dir.take() {
            if is_our_temp(&t) && std::fs::remove_dir_all(&t).is_ok() {
                cleaned.push(format!("removed {}", t.display()));
            }
        }
        if let Some(scratch) = rec.guest_scratch.take() {
            match crate::freeze::exec_tar::remove_guest_scratch(smolvm, &rec.machine, &scratch)
                .await
            {
                Ok(()) => cleaned.push(format!("removed {scratch} in the guest")),
                Err(e) => cleaned.push(format!("could not remove {scratch} in the guest: {e}")),
            }
        }
        for s in rec
            .stages
            .iter_mut()
            .filter(|s| s.status == StageStatus::Running)
        {
            s.status = StageStatus::Cancelled;
        }
        rec.outcome = Outcome::Interrupted;
        // Its duration ends with its last event, not with this recovery.
        let last = history
            .last_saved_ms(&rec.id)
            .filter(|t| *t >= rec.started_at_ms)
            .unwrap_or_else(now_ms);
        rec.ended_at_ms.get_or_insert(last);
        let line = format!(
            "freeze {} of {} was interrupted{}",
            rec.id,
            crate::sanitize::escape_str(&rec.machine),
            if cleaned.is_empty() {
                String::new()
            } else {
                format!("; {}", cleaned.join(", "))
            }
        );
        rec.warnings.push(line.clone());
        let _ = history.save(&rec);
        said.push(line);
    }
    said
}

/// Kills `pid` only when its command line names the run's temp folder (the registry's
/// config lives there), so a reused pid is never touched.
fn kill_if_ours(pid: u32, temp: Option<&Path>) -> bool {
    let Some(temp) = temp else { return false };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = temp.to_string_lossy();
    if !String::from_utf8_lossy(&cmdline).contains(needle.as_ref()) {
        return false;
    }
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    // The registry leads its own process group.
    let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    true
}
