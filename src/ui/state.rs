//! The plain data the dashboard keeps per freeze, per list and per view. No I/O here,
//! and nothing changes it but [`super::app::App::update`].

use std::collections::VecDeque;
use std::path::PathBuf;

use super::theme::guard;
use crate::freeze::{Artifact, Failure, OutputStream, Progress, Stage, Transport};
use crate::history::{when, Outcome, Record, StageStatus};
use crate::machines::BottleMachine;
use crate::names::Slug;
use crate::sanitize::escape_str;

/// Lines of stderr kept per freeze (the full log is in the history).
pub const TAIL_CAP: usize = 2000;
/// One-second throughput samples kept for the sparkline.
pub const SPARK_CAP: usize = 240;
/// Notes kept per freeze.
pub const NOTES_CAP: usize = 20;

/// What the VM printed, as kept for the stderr pane.
#[derive(Debug, Clone, PartialEq)]
pub enum TailKind {
    Line(OutputStream),
    /// Lines the core coalesced away (still in the stage's log file).
    Gap(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TailLine {
    pub stage: Stage,
    pub kind: TailKind,
    /// Escaped: safe to draw.
    pub text: String,
}

/// A bounded ring of output lines. Line numbers are absolute: `base` lines were dropped
/// off the front, so a reader scrolled back keeps its place while new lines arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct Tail {
    lines: VecDeque<TailLine>,
    base: u64,
    cap: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Tail::with_capacity(TAIL_CAP)
    }
}

impl Tail {
    pub fn with_capacity(cap: usize) -> Tail {
        Tail {
            lines: VecDeque::new(),
            base: 0,
            cap: cap.max(1),
        }
    }

    pub fn push(&mut self, line: TailLine) {
        if self.lines.len() == self.cap {
            self.lines.pop_front();
            self.base += 1;
        }
        self.lines.push_back(line);
    }

    /// Absolute number of the oldest kept line.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Absolute number one past the newest line.
    pub fn end(&self) -> u64 {
        self.base + self.lines.len() as u64
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The line with absolute number `n`, if still kept.
    pub fn get(&self, n: u64) -> Option<&TailLine> {
        let i = usize::try_from(n.checked_sub(self.base)?).ok()?;
        self.lines.get(i)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &TailLine> + ExactSizeIterator {
        self.lines.iter()
    }
}

/// Bytes per second, one sample per second of the stage, for the sparkline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Throughput {
    samples: VecDeque<u64>,
    bucket: u64,
    bucket_start_bytes: u64,
    last_bytes: u64,
}

impl Throughput {
    pub fn record(&mut self, bytes: u64, elapsed_ms: u64) {
        let now_bucket = elapsed_ms / 1000;
        if now_bucket > self.bucket + SPARK_CAP as u64 {
            // A long silence: everything kept would be zeros.
            self.samples.clear();
            self.bucket = now_bucket - SPARK_CAP as u64;
            self.bucket_start_bytes = self.last_bytes;
        }
        while self.bucket < now_bucket {
            let moved = self.last_bytes.saturating_sub(self.bucket_start_bytes);
            if self.samples.len() == SPARK_CAP {
                self.samples.pop_front();
            }
            self.samples.push_back(moved);
            self.bucket_start_bytes = self.last_bytes;
            self.bucket += 1;
        }
        self.last_bytes = bytes;
    }

    pub fn samples(&self) -> impl DoubleEndedIterator<Item = u64> + ExactSizeIterator + '_ {
        self.samples.iter().copied()
    }

    /// Bytes moved in the last whole second.
    pub fn current(&self) -> Option<u64> {
        self.samples.back().copied()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageState {
    pub status: StageStatus,
    /// App clock when the stage started.
    pub started_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub progress: Option<Progress>,
}

impl Default for StageState {
    fn default() -> Self {
        StageState {
            status: StageStatus::Waiting,
            started_ms: None,
            duration_ms: None,
            progress: None,
        }
    }
}

impl StageState {
    /// Elapsed time: the final duration, or the running time so far.
    pub fn elapsed_ms(&self, now_ms: u64) -> Option<u64> {
        if let Some(d) = self.duration_ms {
            return Some(d);
        }
        let start = self.started_ms?;
        let by_clock = now_ms.saturating_sub(start);
        let by_core = self.progress.as_ref().map(|p| p.elapsed_ms).unwrap_or(0);
        Some(by_clock.max(by_core))
    }
}

/// Where one freeze stands, as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Asked for; the core has not said Started yet.
    Starting,
    Running,
    Succeeded,
    SucceededWithWarnings,
    Failed,
    Cancelled,
}

impl Phase {
    pub fn is_finished(self) -> bool {
        !matches!(self, Phase::Starting | Phase::Running)
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Succeeded => "succeeded",
            Phase::SucceededWithWarnings => "succeeded with warnings",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
        }
    }
}

/// One freeze of this session (the latest per machine).
#[derive(Debug, Clone, PartialEq)]
pub struct FreezeState {
    pub id: Option<String>,
    pub machine: String,
    pub slug: String,
    /// Unix ms: the core's start time, or the app clock when it was asked for.
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    pub phase: Phase,
    pub cancel_requested: bool,
    /// The task that ran it has returned (its cleanup is over).
    pub task_done: bool,
    pub stages: [StageState; 4],
    pub current: Option<Stage>,
    pub transport: Option<Transport>,
    pub notes: VecDeque<(Stage, String)>,
    pub warnings: Vec<String>,
    pub failure: Option<Failure>,
    pub artifact: Option<Artifact>,
    pub throughput: Throughput,
    pub tail: Tail,
}

impl FreezeState {
    pub fn new(machine: &str, slug: &str, now_ms: u64) -> FreezeState {
        FreezeState {
            id: None,
            machine: machine.to_string(),
            slug: slug.to_string(),
            started_at_ms: now_ms,
            ended_at_ms: None,
            phase: Phase::Starting,
            cancel_requested: false,
            task_done: false,
            stages: Default::default(),
            current: None,
            transport: None,
            notes: VecDeque::new(),
            warnings: Vec::new(),
            failure: None,
            artifact: None,
            throughput: Throughput::default(),
            tail: Tail::default(),
        }
    }

    pub fn stage(&self, s: Stage) -> &StageState {
        &self.stages[s.index()]
    }

    pub fn stage_mut(&mut self, s: Stage) -> &mut StageState {
        &mut self.stages[s.index()]
    }

    /// Its task is still alive: a second freeze of the machine is refused, and quitting
    /// waits for it.
    pub fn is_live(&self) -> bool {
        !self.task_done
    }

    pub fn elapsed_ms(&self, now_ms: u64) -> u64 {
        self.ended_at_ms
            .unwrap_or(now_ms)
            .saturating_sub(self.started_at_ms)
    }

    pub fn note(&mut self, stage: Stage, message: String) {
        if self.notes.len() == NOTES_CAP {
            self.notes.pop_front();
        }
        self.notes.push_back((stage, message));
    }
}

/// The newest freeze of a machine, from the history or this session.
#[derive(Debug, Clone, PartialEq)]
pub struct LastFreeze {
    pub outcome: Outcome,
    /// End (or start) time, Unix ms.
    pub at_ms: u64,
    pub failed_stage: Option<Stage>,
}

impl LastFreeze {
    pub fn of(r: &Record) -> LastFreeze {
        LastFreeze {
            outcome: r.outcome,
            at_ms: r.ended_at_ms.unwrap_or(r.started_at_ms),
            failed_stage: r.failure.as_ref().map(|f| f.stage),
        }
    }
}

/// Columns the machine list can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    State,
    Cpus,
    Memory,
    Age,
    LastFreeze,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Name => SortKey::State,
            SortKey::State => SortKey::Cpus,
            SortKey::Cpus => SortKey::Memory,
            SortKey::Memory => SortKey::Age,
            SortKey::Age => SortKey::LastFreeze,
            SortKey::LastFreeze => SortKey::Name,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Name => "slug",
            SortKey::State => "state",
            SortKey::Cpus => "cpus",
            SortKey::Memory => "memory",
            SortKey::Age => "age",
            SortKey::LastFreeze => "last freeze",
        }
    }
}

/// The machine list and how it is being looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct Machines {
    pub list: Vec<BottleMachine>,
    /// A discovery has answered at least once (with a list).
    pub loaded: bool,
    /// The last discovery's error, kept until one succeeds.
    pub error: Option<String>,
    pub last_ok_ms: Option<u64>,
    /// A discovery is under way since then.
    pub refreshing_since: Option<u64>,
    pub next_refresh_ms: u64,
    pub filter: String,
    pub filter_editing: bool,
    pub sort: SortKey,
    pub descending: bool,
    /// The selected machine's name.
    pub selected: Option<String>,
    /// Where the selection was, to land near it when its machine goes away.
    pub selected_index: usize,
}

impl Default for Machines {
    fn default() -> Self {
        Machines {
            list: Vec::new(),
            loaded: false,
            error: None,
            last_ok_ms: None,
            refreshing_since: None,
            next_refresh_ms: 0,
            filter: String::new(),
            filter_editing: false,
            sort: SortKey::Name,
            descending: false,
            selected: None,
            selected_index: 0,
        }
    }
}

/// How the stderr pane follows the tail.
#[derive(Debug, Clone, PartialEq)]
pub struct TailView {
    pub follow: bool,
    /// Absolute number of the first line shown when not following.
    pub top: u64,
    pub wrap: bool,
}

impl Default for TailView {
    fn default() -> Self {
        TailView {
            follow: true,
            top: 0,
            wrap: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryState {
    pub records: Vec<Record>,
    pub loaded: bool,
    pub loading: bool,
    pub error: Option<String>,
    pub selected: usize,
}

/// What a line of a record view is, for its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Field,
    Error,
    Warning,
    Title,
    Log,
    Empty,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DocLine {
    pub kind: DocKind,
    /// Escaped: safe to draw.
    pub text: String,
}

impl DocLine {
    fn new(kind: DocKind, text: impl Into<String>) -> DocLine {
        DocLine {
            kind,
            text: text.into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    pub query: String,
    pub editing: bool,
    /// Line indices that contain the query.
    pub matches: Vec<usize>,
    /// Index into `matches`.
    pub current: Option<usize>,
}

impl Search {
    /// Recomputes the matches over `lines` (case-insensitive).
    pub fn refresh(&mut self, lines: &[DocLine]) {
        self.matches.clear();
        self.current = None;
        if self.query.is_empty() {
            return;
        }
        let q = self.query.to_lowercase();
        self.matches = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.text.to_lowercase().contains(&q))
            .map(|(i, _)| i)
            .collect();
    }
}

/// One freeze record with each stage's full log, failed stage first.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    pub id: String,
    pub record: Option<Record>,
    pub error: Option<String>,
    pub lines: Vec<DocLine>,
    pub top: usize,
    pub wrap: bool,
    pub search: Search,
}

pub fn status_name(s: StageStatus) -> &'static str {
    match s {
        StageStatus::Waiting => "waiting",
        StageStatus::Running => "running",
        StageStatus::Done => "done",
        StageStatus::Warning => "warning",
        StageStatus::Failed => "failed",
        StageStatus::Cancelled => "cancelled",
        StageStatus::Skipped => "skipped",
    }
}

fn dur(ms: u64) -> String {
    crate::format::duration(std::time::Duration::from_millis(ms))
}

impl RecordView {
    pub fn loading(id: &str) -> RecordView {
        RecordView {
            id: id.to_string(),
            record: None,
            error: None,
            lines: Vec::new(),
            top: 0,
            wrap: false,
            search: Search::default(),
        }
    }

    /// The document: the record's fields, then each stage's log (escaped text), failed
    /// stage first.
    pub fn new(record: Record, logs: Vec<(Stage, Option<String>)>) -> RecordView {
        use DocKind as K;
        let mut lines = Vec::new();
        let mut field = |k: DocKind, name: &str, v: String| {
            lines.push(DocLine::new(k, format!("{name:<10}{v}")))
        };
        field(K::Field, "freeze", escape_str(&record.id));
        field(K::Field, "machine", escape_str(&record.machine));
        field(
            if record.failure.is_some() {
                K::Error
            } else {
                K::Field
            },
            "outcome",
            record.outcome_text(),
        );
        field(K::Field, "started", when(record.started_at_ms));
        if let Some(d) = record.duration_ms() {
            field(K::Field, "duration", dur(d));
        }
        field(
            K::Field,
            "archive",
            format!(
                "{} in {} entries{}",
                crate::format::bytes(record.bytes),
                record.entries,
                record
                    .transport
                    .map(|t| format!(" via {}", t.name()))
                    .unwrap_or_default()
            ),
        );
        if let Some(a) = &record.artifact {
            field(
                K::Field,
                "artifact",
                escape_str(&a.sidecar.display().to_string()),
            );
            field(K::Field, "", escape_str(&a.hint));
        }
        if let Some(f) = &record.failure {
            field(K::Error, "error", guard(&f.message));
            if let Some(c) = f.exit_status {
                field(K::Error, "exit", c.to_string());
            }
        }
        for w in &record.warnings {
            field(K::Warning, "warning", guard(w));
        }
        let stages: Vec<String> = record
            .stages
            .iter()
            .map(|s| {
                let mut t = format!("{} {}", s.stage.name(), status_name(s.status));
                if let Some(d) = s.duration_ms {
                    t.push(' ');
                    t.push_str(&dur(d));
                }
                t
            })
            .collect();
        field(K::Field, "stages", stages.join(" · "));
        for c in &record.commands {
            field(K::Field, "command", crate::format::shell_words(c));
        }
        let order = record.stages_failed_first();
        let mut logs = logs;
        for stage in order {
            let status = record.stage(stage).status;
            if status == StageStatus::Skipped {
                continue;
            }
            let log = logs
                .iter_mut()
                .find(|(s, _)| *s == stage)
                .and_then(|(_, l)| l.take());
            lines.push(DocLine::new(K::Empty, ""));
            match log {
                Some(text) => {
                    let n = text.lines().count();
                    lines.push(DocLine::new(
                        K::Title,
                        format!("── {stage} log ({}, {n} lines) ──", status_name(status)),
                    ));
                    // Escaped by the loader; guarded again (not escaped twice) so that this
                    // function is safe on its own.
                    lines.extend(text.lines().map(|l| DocLine::new(K::Log, guard(l))));
                }
                None => lines.push(DocLine::new(
                    K::Title,
                    format!("── {stage}: no log ({}) ──", status_name(status)),
                )),
            }
        }
        RecordView {
            id: record.id.clone(),
            record: Some(record),
            error: None,
            lines,
            top: 0,
            wrap: false,
            search: Search::default(),
        }
    }

    /// The text `s` saves.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(&l.text);
            s.push('\n');
        }
        s
    }
}

/// A probe whose answer comes later.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe<T> {
    Pending,
    Ready(T),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FreezeDialog {
    pub machine: String,
    pub slug: Slug,
    pub artifact: PathBuf,
    pub tmp_dir: PathBuf,
    /// Free bytes in the temp folder.
    pub tmp_free: Probe<u64>,
    /// Used bytes of the guest's root (`df` in the guest): the archive's size, roughly.
    pub estimate: Probe<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dialog {
    Freeze(FreezeDialog),
    Cancel { machine: String },
    Quit { running: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// A short message in the status bar, gone after a while.
#[derive(Debug, Clone, PartialEq)]
pub struct Flash {
    pub text: String,
    pub level: Level,
    pub until_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> TailLine {
        TailLine {
            stage: Stage::ExecTar,
            kind: TailKind::Line(OutputStream::Stderr),
            text: format!("line {n}"),
        }
    }

    #[test]
    fn tail_is_bounded_and_numbers_stay_absolute() {
        let mut t = Tail::with_capacity(3);
        for n in 0..5 {
            t.push(line(n));
        }
        assert_eq!(t.len(), 3);
        assert_eq!((t.base(), t.end()), (2, 5));
        assert_eq!(t.get(2).map(|l| l.text.as_str()), Some("line 2"));
        assert_eq!(t.get(1), None);
        assert_eq!(t.get(5), None);
    }

    #[test]
    fn throughput_samples_per_second_and_bounded() {
        let mut tp = Throughput::default();
        tp.record(100, 100);
        tp.record(1000, 900);
        tp.record(1500, 1100);
        assert_eq!(tp.samples().collect::<Vec<_>>(), [1000]);
        tp.record(4000, 3050);
        // second 1 moved 500, second 2 nothing seen.
        assert_eq!(tp.samples().collect::<Vec<_>>(), [1000, 500, 0]);
        assert_eq!(tp.current(), Some(0));
        for s in 4..1000u64 {
            tp.record(s * 10, s * 1000);
        }
        assert_eq!(tp.samples().len(), SPARK_CAP);
        // A long silence resets instead of looping.
        tp.record(1, u64::MAX / 2);
        assert!(tp.samples().len() <= SPARK_CAP);
    }
}
