//! After a crash: runs that were killed (SIGKILL, power loss) leave a record that says
//! "running", a temp folder, maybe a registry process and a scratch archive in the guest.
//! On the next start these are found, cleaned, and the record says "interrupted".

use std::path::Path;

use crate::domain::Stage;
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
    let kept_by: Vec<(String, std::path::PathBuf)> = records
        .iter()
        .filter_map(|r| Some((r.id.clone(), r.kept.as_ref()?.temp_dir.clone()?)))
        .collect();
    let mut said = Vec::new();
    for mut rec in records
        .into_iter()
        .filter(|r| r.outcome == Outcome::Running)
    {
        let Ok(slug) = Slug::parse(&rec.slug) else {
            continue;
        };
        // A live run holds its machine's lock, under `<state>/<host>/` for a machine of
        // another host (where the run took it); only runs nobody holds are abandoned.
        let host = match rec.host.as_deref().map(Slug::parse) {
            None => None,
            Some(Ok(h)) => Some(h),
            Some(Err(_)) => continue,
        };
        let lock_dir = match &host {
            Some(h) => state_dir.join(h.as_str()),
            None => state_dir.to_path_buf(),
        };
        let Ok(_lock) = MachineLock::acquire(&lock_dir, &slug, &rec.machine) else {
            continue;
        };
        let mut cleaned = Vec::new();
        if let Some(pid) = rec.registry_pid.take() {
            let stamp = rec.registry_stamp.take();
            match kill_if_ours(pid, stamp.as_ref(), rec.temp_dir.as_deref()) {
                Proof::Killed => cleaned.push(format!("stopped its registry (pid {pid})")),
                Proof::Gone => {}
                Proof::NotOurs(why) => {
                    cleaned.push(format!("left pid {pid} alone ({why})"));
                }
            }
        }
        if let Some(t) = rec.temp_dir.take() {
            // A resume works in the temp folder an earlier failed run kept: that stays
            // the earlier run's until a resume succeeds or it is discarded.
            if let Some(owner) = kept_by.iter().find(|(_, k)| *k == t) {
                cleaned.push(format!("left {} to freeze {}", t.display(), owner.0));
            } else if is_our_temp(&t) && std::fs::remove_dir_all(&t).is_ok() {
                cleaned.push(format!("removed {}", t.display()));
            }
        }
        if let Some(s) = rec.pack_staging.take() {
            // `<state>/<slug>/` locally, `<state>/<host>/<slug>/` for another host.
            let parent = s.parent();
            let ours = parent.and_then(|p| p.file_name()) == Some(rec.slug.as_ref())
                && parent.is_some_and(|p| p.starts_with(state_dir))
                && crate::freeze::pack::is_staging(&s, &rec.id);
            if ours && std::fs::remove_dir_all(&s).is_ok() {
                cleaned.push(format!("removed {}", s.display()));
            }
        }
        if let Some(scratch) = rec.guest_scratch.take() {
            match &host {
                // The local smolvm would reach a machine of the same name here, not that
                // host's; recovery knows no host's address.
                Some(h) => cleaned.push(format!(
                    "left {scratch} in the guest on host {h} (remove it there: rm -f {scratch})"
                )),
                None => match crate::freeze::exec_tar::remove_guest_scratch(
                    smolvm,
                    &rec.machine,
                    &scratch,
                )
                .await
                {
                    Ok(()) => cleaned.push(format!("removed {scratch} in the guest")),
                    Err(e) => cleaned.push(format!("could not remove {scratch} in the guest: {e}")),
                },
            }
        }
        let build = rec.stage(Stage::Build);
        if build.status == StageStatus::Running
            && build.does.as_deref() == Some(crate::freeze::DOCKER_BUILD)
        {
            // A Dockerfile build that was killed: its images carry the run's label.
            let keep = rec.kept.as_ref().and_then(|k| k.image_id.clone());
            // The daemon ends the step it was in after its client died: wait for it, unless
            // the run was killed longer ago than a step may take.
            let recent = history.last_saved_ms(&rec.id).is_some_and(|t| {
                now_ms().saturating_sub(t) < crate::freeze::build::STEP_GRACE.as_millis() as u64
            });
            let steps = rec.build_steps.as_ref().filter(|_| recent);
            let removed = match crate::docker::connect().await {
                Ok(d) => {
                    crate::freeze::build::remove_run_images(&d, &rec.id, steps, keep.as_deref())
                        .await
                }
                Err(e) => Err(e.to_string()),
            };
            match removed {
                Ok(0) => {}
                Ok(n) => cleaned.push(format!("removed {n} image(s) of its unfinished build")),
                Err(e) => cleaned.push(format!("could not remove its build's images: {e}")),
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
        // The room the run set aside for its last save is what lets this one through on
        // a full filesystem.
        history.release_reserve(&rec.id);
        let _ = history.save(&rec);
        said.push(line);
    }
    said
}

/// What recovery found at a recorded registry pid.
#[derive(Debug, PartialEq)]
enum Proof {
    Killed,
    /// Nothing runs there any more (the registry died with us, as it should).
    Gone,
    /// Something runs there that cannot be proved to be our registry.
    NotOurs(&'static str),
}

/// Kills `pid` only when it is provably the registry this run started: the same start
/// time and executable as recorded when it was spawned, and a command line naming a
/// file directly inside the run's own temp folder (one that [`is_our_temp`] accepts).
/// Records are data on disk and may be stale or edited; a pid alone proves nothing.
fn kill_if_ours(
    pid: u32,
    stamp: Option<&crate::proc_stamp::ProcessStamp>,
    temp: Option<&Path>,
) -> Proof {
    use crate::proc_stamp::{cmdline, ProcessStamp};
    if ProcessStamp::of(pid).is_none() {
        return Proof::Gone;
    }
    let Some(stamp) = stamp.filter(|s| s.pid == pid) else {
        return Proof::NotOurs("the record holds no proof of which process it started");
    };
    if !stamp.is_alive_and_same() {
        return Proof::NotOurs("it is not the process that was started");
    }
    let Some(temp) = temp.filter(|t| t.is_absolute() && is_our_temp(t)) else {
        return Proof::NotOurs("the record names no temp folder of ours");
    };
    let names_temp = cmdline(pid)
        .unwrap_or_default()
        .iter()
        .any(|arg| arg.parent() == Some(temp));
    if !names_temp {
        return Proof::NotOurs("its command line does not name the run's temp folder");
    }
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    // The registry leads its own process group.
    let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    Proof::Killed
}
