//! Where a running freeze reports: events to the front end, and the history record,
//! kept in step in one place.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::freeze::events::{
    Artifact, Failure, FreezeEvent, OutputStream, Progress, Stage, Transport, PROGRESS_INTERVAL,
};
use crate::history::{now_ms, History, Outcome, Record, StageStatus};

pub type EventTx = UnboundedSender<FreezeEvent>;

/// A cheap, clonable way to send one freeze's events from any task or thread.
#[derive(Clone)]
pub struct Emitter {
    id: String,
    tx: EventTx,
    seen: Arc<Mutex<Seen>>,
}

/// The last progress sent per stage, so the record keeps the bytes of a run that did not
/// finish, and the time bytes last moved, for the stall timeout.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    bytes: [u64; 4],
    entries: Option<u64>,
    moved_at: Option<Instant>,
}

impl Emitter {
    pub fn new(id: &str, tx: EventTx) -> Emitter {
        Emitter {
            id: id.to_string(),
            tx,
            seen: Arc::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends an event; a front end that went away is not an error for the freeze.
    pub fn send(&self, make: impl FnOnce(String) -> FreezeEvent) {
        let _ = self.tx.send(make(self.id.clone()));
    }

    pub fn progress(&self, stage: Stage, progress: Progress) {
        if let Ok(mut seen) = self.seen.lock() {
            let i = stage.index();
            if progress.bytes > seen.bytes[i] || seen.moved_at.is_none() {
                seen.moved_at = Some(Instant::now());
            }
            seen.bytes[i] = seen.bytes[i].max(progress.bytes);
            if stage == Stage::ExecTar && progress.entries.is_some() {
                seen.entries = progress.entries;
            }
        }
        self.send(|id| FreezeEvent::Progress {
            id,
            stage,
            progress,
        });
    }

    pub fn output(&self, stage: Stage, stream: OutputStream, lines: Vec<String>, dropped: u64) {
        self.send(|id| FreezeEvent::Output {
            id,
            stage,
            stream,
            lines,
            dropped,
        });
    }

    pub fn note(&self, stage: Stage, message: impl Into<String>) {
        let message = message.into();
        self.send(|id| FreezeEvent::Note { id, stage, message });
    }
}

/// Lets through at most one event per [`PROGRESS_INTERVAL`].
pub struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle { last: None }
    }

    pub fn ready(&mut self) -> bool {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < PROGRESS_INTERVAL => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

/// The record of one run and the emitter of its events.
pub struct Reporter {
    pub emit: Emitter,
    pub record: Record,
    history: History,
    stage_started: Option<(Stage, Instant)>,
    /// Fail a stage whose bytes stop moving this long (`--stall-timeout`).
    pub stall_timeout: Option<Duration>,
    checkpointed: Option<Instant>,
    /// When each stage started, for its duration.
    starts: [Option<Instant>; 4],
    /// Room set aside for the last save (see [`History::reserve`]).
    reserved: bool,
    /// Whether the last save reached the disk.
    saved: bool,
    /// Whether the operator was told that the history cannot be written (said once).
    unsaved_said: bool,
    /// Whether any save of this run reached the disk.
    ever_saved: bool,
}

/// The least time between two saves of a running record's progress.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

impl Reporter {
    pub fn new(record: Record, history: History, tx: EventTx) -> Reporter {
        Reporter {
            emit: Emitter::new(&record.id, tx),
            record,
            history,
            stage_started: None,
            stall_timeout: None,
            checkpointed: None,
            starts: [None; 4],
            reserved: false,
            saved: false,
            unsaved_said: false,
            ever_saved: false,
        }
    }

    /// Copies the progress seen so far into the record: bytes and entries of a run that
    /// does not finish are kept.
    fn keep_progress(&mut self) {
        let Ok(seen) = self.emit.seen.lock().map(|s| *s) else {
            return;
        };
        for stage in Stage::ALL {
            let s = self.record.stage_mut(stage);
            s.bytes = s.bytes.max(seen.bytes[stage.index()]);
        }
        let streamed = seen.bytes[Stage::ExecTar.index()];
        if self.record.bytes < streamed {
            self.record.bytes = streamed;
        }
        if let Some(e) = seen.entries {
            self.record.entries = self.record.entries.max(e);
        }
    }

    /// Saves the running record's progress at most once a second, so that another
    /// dashboard can show it live. Called from a stage's progress loop.
    pub fn checkpoint(&mut self) {
        if self
            .checkpointed
            .is_some_and(|t| t.elapsed() < CHECKPOINT_INTERVAL)
        {
            return;
        }
        self.checkpointed = Some(Instant::now());
        self.keep_progress();
        self.save();
    }

    /// `Some(how long)` once the running stage has moved no bytes for longer than the
    /// stall timeout.
    pub fn stalled(&self) -> Option<Duration> {
        let limit = self.stall_timeout?;
        let since = self
            .emit
            .seen
            .lock()
            .ok()
            .and_then(|s| s.moved_at)
            .or(self.stage_started.map(|s| s.1))?;
        let idle = since.elapsed();
        (idle >= limit).then_some(idle)
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Persists the record; a history that cannot be written is reported (once) but does
    /// not stop the freeze (the artifact matters more than its record).
    pub fn save(&mut self) {
        self.persist(false, false);
    }

    /// `last`: the run's final save, which may use the room set aside for it.
    fn persist(&mut self, durable: bool, last: bool) {
        let write = |rep: &Self| {
            if durable {
                rep.history.save(&rep.record)
            } else {
                rep.history.save_quick(&rep.record)
            }
        };
        let mut saved = write(self);
        if saved.is_err() && last && self.reserved {
            // The filesystem filled up during the run: the room set aside at its start
            // is what lets its outcome (and what it kept) reach the disk.
            self.reserved = !self.history.release_reserve(&self.record.id);
            saved = write(self);
        }
        self.saved = saved.is_ok();
        self.ever_saved |= self.saved;
        if let Err(e) = saved {
            // Every later save would fail the same way: one notice, not one per save.
            if !std::mem::replace(&mut self.unsaved_said, true) {
                self.emit.note(
                    self.stage_started.map(|s| s.0).unwrap_or(Stage::ExecTar),
                    format!(
                        "history not saved: {e}; the run goes on, its record stays as last saved (not repeated)"
                    ),
                );
            }
        }
    }

    /// Whether the record on disk is this run's latest (its last save succeeded).
    pub fn saved(&self) -> bool {
        self.saved
    }

    /// What a failed run kept that its record could not hold: nothing can resume from it,
    /// so the runner removes it.
    pub fn unrecorded_kept(&self) -> Option<&crate::history::Kept> {
        self.record.kept.as_ref().filter(|_| !self.saved)
    }

    pub fn log_path(&self, stage: Stage) -> std::path::PathBuf {
        // The id is ours and always valid; fall back to the temp dir only to be total.
        self.history
            .log_path(&self.record.id, stage)
            .unwrap_or_else(|_| {
                std::env::temp_dir().join(format!("bottle-freeze-{}.log", stage.name()))
            })
    }

    pub fn started(&mut self) {
        self.reserved = self.history.reserve(&self.record.id);
        self.save();
        let (machine, slug, at_ms) = (
            self.record.machine.clone(),
            self.record.slug.clone(),
            self.record.started_at_ms,
        );
        self.emit.send(|id| FreezeEvent::Started {
            id,
            machine,
            slug,
            at_ms,
        });
    }

    /// Keeps a command in the record and announces it, secrets masked.
    pub fn command(&mut self, argv: Vec<String>) {
        self.command_io(argv, None);
    }

    /// [`Reporter::command`] for a command whose input or output bottle-freeze provides:
    /// `argv` holds only real arguments, `io` says what goes in or out (for the events;
    /// the record keeps the argument vector).
    pub fn command_io(&mut self, argv: Vec<String>, io: Option<String>) {
        let argv = mask_secrets(&argv);
        tracing::info!(?argv, ?io, "running");
        let stage = self
            .stage_started
            .map(|(s, _)| s)
            .unwrap_or(crate::freeze::Stage::ExecTar);
        self.record.commands.push(argv.clone());
        self.emit.send(|id| FreezeEvent::Command {
            id,
            stage,
            argv,
            io,
        });
    }

    pub fn set_temp_dir(&mut self, dir: Option<&Path>) {
        self.record.temp_dir = dir.map(Path::to_path_buf);
        self.save();
    }

    pub fn stage_started(&mut self, stage: Stage) {
        self.stage_doing(stage, None);
    }

    /// A stage begins, saying what it does in this run when there is more than one way.
    pub fn stage_doing(&mut self, stage: Stage, does: Option<&str>) {
        let does = does.map(str::to_string);
        self.record.stage_mut(stage).does = does.clone();
        self.stage_started = Some((stage, Instant::now()));
        if let Ok(mut seen) = self.emit.seen.lock() {
            seen.moved_at = None;
        }
        self.starts[stage.index()] = Some(Instant::now());
        let log = self.log_path(stage);
        let s = self.record.stage_mut(stage);
        s.status = StageStatus::Running;
        s.started_at_ms = Some(now_ms());
        s.log = log.file_name().map(|n| n.to_string_lossy().into_owned());
        self.save();
        self.emit
            .send(|id| FreezeEvent::StageStarted { id, stage, does });
    }

    pub fn transport(&mut self, transport: Transport) {
        self.record.transport = Some(transport);
        self.emit
            .send(|id| FreezeEvent::TransportChosen { id, transport });
    }

    fn elapsed_ms(&self, stage: Stage) -> u64 {
        // Per stage: push and pack may run at the same time.
        self.starts[stage.index()]
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0)
    }

    pub fn stage_finished(&mut self, stage: Stage, bytes: u64, warnings: Vec<String>) {
        let duration_ms = self.elapsed_ms(stage);
        let s = self.record.stage_mut(stage);
        s.status = if warnings.is_empty() {
            StageStatus::Done
        } else {
            StageStatus::Warning
        };
        s.duration_ms = Some(duration_ms);
        s.bytes = bytes;
        self.record.warnings.extend(warnings.iter().cloned());
        self.save();
        self.emit.send(|id| FreezeEvent::StageFinished {
            id,
            stage,
            duration_ms,
            warnings,
        });
    }

    fn end(&mut self, outcome: Outcome) {
        self.keep_progress();
        if matches!(outcome, Outcome::Failed | Outcome::Cancelled) {
            // Stages after the one that stopped never ran.
            for s in &mut self.record.stages {
                if s.status == StageStatus::Waiting {
                    s.status = StageStatus::Skipped;
                }
            }
        }
        self.record.outcome = outcome;
        self.record.ended_at_ms = Some(now_ms());
        self.record.temp_dir = None;
        self.persist(true, true);
        if self.reserved {
            self.reserved = !self.history.release_reserve(&self.record.id);
        }
        if !self.saved {
            let stage = self.stage_started.map(|s| s.0).unwrap_or(Stage::ExecTar);
            let message = if self.ever_saved {
                format!(
                    "the record of {} could not be saved: the history shows it as last saved, and the next start marks it interrupted",
                    self.record.id
                )
            } else {
                format!(
                    "no record of {} could be saved: the history will not list this run",
                    self.record.id
                )
            };
            self.emit.note(stage, message);
        }
    }

    pub fn failed(&mut self, failure: Failure) {
        let stage = failure.stage;
        let duration_ms = self.elapsed_ms(stage);
        let s = self.record.stage_mut(stage);
        s.status = StageStatus::Failed;
        s.duration_ms.get_or_insert(duration_ms);
        self.record.failure = Some(failure.clone());
        self.end(Outcome::Failed);
        if let Some(kept) = &self.record.kept {
            let (what, id) = (kept_what(kept), &self.record.id);
            // A resume needs the record that names what was kept: promise one only once
            // that record is on disk.
            let message = if self.saved {
                format!(
                    "kept {what}: retry with `bottle-freeze freeze --resume {id}` or drop it with `bottle-freeze discard {id}`"
                )
            } else {
                format!("nothing to resume from: the history could not record {what}")
            };
            self.emit.note(stage, message);
        }
        self.emit.send(|id| FreezeEvent::Failed { id, failure });
    }

    pub fn cancelled(&mut self) {
        let stage = self.stage_started.map(|s| s.0);
        // Every stage still running (push and pack may run side by side).
        for st in Stage::ALL {
            let duration_ms = self.elapsed_ms(st);
            let s = self.record.stage_mut(st);
            if s.status == StageStatus::Running {
                s.status = StageStatus::Cancelled;
                s.duration_ms = Some(duration_ms);
            }
        }
        self.end(Outcome::Cancelled);
        self.emit.send(|id| FreezeEvent::Cancelled { id, stage });
    }

    fn success_outcome(&self) -> Outcome {
        if self.record.warnings.is_empty() {
            Outcome::Succeeded
        } else {
            Outcome::SucceededWithWarnings
        }
    }

    pub fn done(&mut self, artifact: Artifact) {
        self.record.artifact = Some(artifact.clone());
        self.end(self.success_outcome());
        self.emit.send(|id| FreezeEvent::Done { id, artifact });
    }

    pub fn exported(&mut self, path: &Path, bytes: u64, entries: u64) {
        self.end(self.success_outcome());
        let path = path.to_path_buf();
        self.emit.send(|id| FreezeEvent::Exported {
            id,
            path,
            bytes,
            entries,
        });
    }
}

/// What a failed run kept, as a phrase: `the archive PATH`, `the image NAME`.
pub fn kept_what(kept: &crate::history::Kept) -> String {
    match (&kept.archive, &kept.image) {
        (Some(a), _) => format!("the archive {}", a.display()),
        (_, Some(i)) => format!("the image {i}"),
        _ => "its work".into(),
    }
}

/// Names whose values are never shown or kept: `--password X`, `TOKEN=X`, `user:pw@host`.
const SECRET_WORDS: [&str; 5] = ["password", "passwd", "token", "secret", "auth"];

fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// The argument vector with secret values replaced by `***`.
pub fn mask_secrets(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut hide_next = false;
    for a in argv {
        if std::mem::take(&mut hide_next) {
            out.push("***".to_string());
            continue;
        }
        if let Some((name, _)) = a.split_once('=') {
            if is_secret_name(name) {
                out.push(format!("{name}=***"));
                continue;
            }
        }
        if a.starts_with('-') && is_secret_name(a) {
            hide_next = true;
            out.push(a.clone());
            continue;
        }
        // user:password@ in a URL.
        if let Some((scheme, rest)) = a.split_once("://") {
            if let Some((userinfo, host)) = rest.split_once('@') {
                if let Some((user, _)) = userinfo.split_once(':') {
                    out.push(format!("{scheme}://{user}:***@{host}"));
                    continue;
                }
            }
        }
        out.push(a.clone());
    }
    out
}

#[cfg(test)]
mod mask_tests {
    use super::mask_secrets;

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            mask_secrets(&v(&[
                "smolvm",
                "--password",
                "hunter2",
                "API_TOKEN=abc",
                "https://me:pw@reg.example/x",
                "--name",
                "bot-bottle-x",
            ])),
            v(&[
                "smolvm",
                "--password",
                "***",
                "API_TOKEN=***",
                "https://me:***@reg.example/x",
                "--name",
                "bot-bottle-x",
            ])
        );
    }
}
