//! `prune`: old records, with what they kept, their images and artifacts no newer record
//! uses. Planned first (nothing removed), so a front end can show exactly what will go,
//! then applied to that plan only.

use super::*;
use crate::history::Outcome;
use std::collections::HashMap;

/// Which records stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// The newest records of each machine (freezes and exports counted apart) that stay.
    pub keep: usize,
    /// Only records that started longer ago than this go (None: any age).
    pub older_than_ms: Option<u64>,
}

impl Default for PrunePolicy {
    fn default() -> Self {
        PrunePolicy {
            keep: 3,
            older_than_ms: None,
        }
    }
}

/// One record that will go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedRecord {
    pub id: String,
    pub machine: String,
    pub outcome: String,
    pub started_at_ms: u64,
}

/// Exactly what a prune removes: nothing else is touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunePlan {
    pub records: Vec<PrunedRecord>,
    /// Temp folders (with their archives) the records kept for a resume.
    pub temp_dirs: Vec<PathBuf>,
    /// Docker images by id, with the name they were built as.
    pub images: Vec<(String, String)>,
    /// `.smolmachine` sidecars with their launchers.
    pub artifacts: Vec<(PathBuf, PathBuf)>,
}

impl PrunePlan {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.temp_dirs.is_empty()
            && self.images.is_empty()
            && self.artifacts.is_empty()
    }

    /// One line per thing that goes, for a confirmation or a dry run.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.records {
            out.push(format!(
                "record   {}  {}  {}",
                r.id,
                crate::sanitize::escape_str(&r.machine),
                r.outcome
            ));
        }
        for t in &self.temp_dirs {
            out.push(format!("kept     {}", t.display()));
        }
        for (id, name) in &self.images {
            out.push(format!("image    {name} ({id})"));
        }
        for (sidecar, _) in &self.artifacts {
            out.push(format!("artifact {}", sidecar.display()));
        }
        out
    }
}

/// What a prune did: one line per thing removed, and per thing that could not be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: Vec<String>,
    pub failed: Vec<String>,
}

/// Plans a prune of the history in `state_dir`. A running record never goes, nor the
/// newest successful freeze of a machine while `keep` is at least 1 (its artifact is the
/// machine's current one); an image, temp folder or artifact goes only when no record
/// that stays names it.
pub fn plan_prune(state_dir: &Path, policy: PrunePolicy, now_ms: u64) -> Result<PrunePlan, String> {
    let history = History::new(state_dir);
    // Newest first.
    let records = history.list().map_err(|e| e.to_string())?;
    let mut seen: HashMap<(String, bool), usize> = HashMap::new();
    let mut newest_success: std::collections::HashSet<String> = Default::default();
    let (mut stay, mut go): (Vec<&Record>, Vec<&Record>) = (Vec::new(), Vec::new());
    for r in &records {
        let n = seen
            .entry((r.machine.clone(), r.kind == Kind::Export))
            .or_insert(0);
        *n += 1;
        let succeeded = r.kind == Kind::Freeze
            && matches!(
                r.outcome,
                Outcome::Succeeded | Outcome::SucceededWithWarnings
            );
        let first_success = succeeded && newest_success.insert(r.machine.clone());
        let young = policy
            .older_than_ms
            .is_some_and(|age| now_ms.saturating_sub(r.started_at_ms) < age);
        let keeps = *n <= policy.keep
            || (policy.keep > 0 && first_success)
            || young
            || r.outcome == Outcome::Running;
        if keeps {
            stay.push(r);
        } else {
            go.push(r);
        }
    }
    let mut plan = PrunePlan::default();
    let used_image = |id: &str| {
        stay.iter().any(|r| {
            r.image_id.as_deref() == Some(id)
                || r.kept.as_ref().and_then(|k| k.image_id.as_deref()) == Some(id)
        })
    };
    let used_temp = |t: &Path| {
        stay.iter().any(|r| {
            r.temp_dir.as_deref() == Some(t)
                || r.kept.as_ref().and_then(|k| k.temp_dir.as_deref()) == Some(t)
        })
    };
    let used_artifact = |p: &Path| {
        stay.iter()
            .any(|r| r.artifact.as_ref().is_some_and(|a| a.sidecar == p))
    };
    for r in &go {
        plan.records.push(PrunedRecord {
            id: r.id.clone(),
            machine: r.machine.clone(),
            outcome: r.outcome_text(),
            started_at_ms: r.started_at_ms,
        });
        if let Some(t) = r.kept.as_ref().and_then(|k| k.temp_dir.as_ref()) {
            if is_our_temp(t) && !used_temp(t) && !plan.temp_dirs.contains(t) {
                plan.temp_dirs.push(t.clone());
            }
        }
        let image = r
            .kept
            .as_ref()
            .and_then(|k| k.image_id.clone().map(|id| (id, k.image.clone())))
            .or_else(|| r.image_id.clone().map(|id| (id, r.image.clone())));
        if let Some((id, name)) = image {
            if !used_image(&id) && !plan.images.iter().any(|(i, _)| *i == id) {
                plan.images
                    .push((id, name.unwrap_or_else(|| "(untagged)".to_string())));
            }
        }
        if let Some(a) = &r.artifact {
            if a.sidecar.exists()
                && !used_artifact(&a.sidecar)
                && !plan.artifacts.iter().any(|(s, _)| *s == a.sidecar)
            {
                plan.artifacts.push((a.sidecar.clone(), a.launcher.clone()));
            }
        }
    }
    Ok(plan)
}

/// Removes what `plan` names, and nothing else. Images are asked of the Docker daemon
/// only when the plan has some; an image that is already gone counts as removed.
pub async fn apply_prune(state_dir: &Path, plan: &PrunePlan) -> PruneReport {
    let history = History::new(state_dir);
    let mut rep = PruneReport::default();
    for t in &plan.temp_dirs {
        if !t.exists() {
            continue;
        }
        if !is_our_temp(t) {
            rep.failed
                .push(format!("left {}: not a temp folder of ours", t.display()));
            continue;
        }
        match std::fs::remove_dir_all(t) {
            Ok(()) => rep.removed.push(format!("removed {}", t.display())),
            Err(e) => rep
                .failed
                .push(format!("cannot remove {}: {e}", t.display())),
        }
    }
    if !plan.images.is_empty() {
        match crate::docker::connect().await {
            Err(e) => rep
                .failed
                .push(format!("left {} image(s): {e}", plan.images.len())),
            Ok(docker) => {
                for (id, name) in &plan.images {
                    match discard::remove_image_by_id(&docker, id).await {
                        Ok(()) => rep.removed.push(format!("removed image {name} ({id})")),
                        Err(bollard::errors::Error::DockerResponseServerError {
                            status_code: 404,
                            ..
                        }) => {}
                        Err(e) => rep.failed.push(format!(
                            "cannot remove image {name} ({id}): {}",
                            docker_error_message(&e)
                        )),
                    }
                }
            }
        }
    }
    for (sidecar, launcher) in &plan.artifacts {
        for p in [sidecar, launcher] {
            match std::fs::remove_file(p) {
                Ok(()) => rep.removed.push(format!("removed {}", p.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => rep
                    .failed
                    .push(format!("cannot remove {}: {e}", p.display())),
            }
        }
    }
    for r in &plan.records {
        let dir = match history.dir(&r.id) {
            Ok(d) => d,
            Err(e) => {
                rep.failed.push(e.to_string());
                continue;
            }
        };
        // A record that started running again since the plan (a resume) stays.
        if history
            .load(&r.id)
            .is_ok_and(|now| now.outcome == Outcome::Running)
        {
            rep.failed
                .push(format!("left record {}: it is running", r.id));
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => rep.removed.push(format!("removed record {}", r.id)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => rep
                .failed
                .push(format!("cannot remove record {}: {e}", r.id)),
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(h: &History, id: &str, slug: &str, at: u64, outcome: Outcome) -> Record {
        let mut r = Record::new(id, Kind::Freeze, &format!("bot-bottle-{slug}"), slug);
        r.started_at_ms = at;
        r.outcome = outcome;
        h.save(&r).unwrap();
        r
    }

    #[test]
    fn the_plan_keeps_the_newest_the_last_success_and_running_ones() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path());
        rec(&h, "a-1", "a", 1, Outcome::Succeeded);
        rec(&h, "a-2", "a", 2, Outcome::Failed);
        rec(&h, "a-3", "a", 3, Outcome::Running);
        rec(&h, "a-4", "a", 4, Outcome::Failed);
        rec(&h, "b-1", "b", 5, Outcome::Failed);
        let policy = PrunePolicy {
            keep: 1,
            older_than_ms: None,
        };
        let plan = plan_prune(dir.path(), policy, 10).unwrap();
        let ids: Vec<&str> = plan.records.iter().map(|r| r.id.as_str()).collect();
        // a-4 is the newest, a-3 runs, a-1 is a's last success; b-1 is b's newest.
        assert_eq!(ids, ["a-2"]);
        // An age limit keeps what is younger.
        let young = PrunePolicy {
            keep: 0,
            older_than_ms: Some(8),
        };
        let plan = plan_prune(dir.path(), young, 10).unwrap();
        let ids: Vec<&str> = plan.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a-2", "a-1"]);
    }

    #[test]
    fn apply_removes_the_planned_records_their_temp_and_an_unused_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path());
        let temp = dir.path().join(format!("{TEMP_PREFIX}x"));
        std::fs::create_dir_all(&temp).unwrap();
        std::fs::write(temp.join("rootfs.tar"), b"tar").unwrap();
        let sidecar = dir.path().join("old.smolmachine");
        let launcher = dir.path().join("old");
        std::fs::write(&sidecar, b"s").unwrap();
        std::fs::write(&launcher, b"l").unwrap();
        let mut old = rec(&h, "a-1", "a", 1, Outcome::Failed);
        old.kept = Some(crate::history::Kept {
            temp_dir: Some(temp.clone()),
            archive: Some(temp.join("rootfs.tar")),
            image: None,
            image_id: None,
            from: Stage::Build,
        });
        h.save(&old).unwrap();
        let mut older = rec(&h, "a-0", "a", 0, Outcome::Failed);
        older.artifact = Some(Artifact {
            sidecar: sidecar.clone(),
            launcher: launcher.clone(),
            image: String::new(),
            tag: String::new(),
            hint: String::new(),
        });
        h.save(&older).unwrap();
        rec(&h, "a-2", "a", 2, Outcome::Failed);
        let policy = PrunePolicy {
            keep: 1,
            older_than_ms: None,
        };
        let plan = plan_prune(dir.path(), policy, 10).unwrap();
        assert_eq!(plan.records.len(), 2);
        assert_eq!(plan.temp_dirs, std::slice::from_ref(&temp));
        assert_eq!(plan.artifacts, [(sidecar.clone(), launcher.clone())]);
        let lines = plan.lines().join("\n");
        assert!(
            lines.contains("record   a-1") && lines.contains("old.smolmachine"),
            "{lines}"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let report = rt.block_on(apply_prune(dir.path(), &plan));
        assert!(report.failed.is_empty(), "{report:?}");
        assert!(!temp.exists() && !sidecar.exists() && !launcher.exists());
        let left: Vec<String> = h.list().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(left, ["a-2"]);
    }
}
