//! The freezes of this session: their stages, progress and tail, as the freeze pane
//! and the stderr pane show them, and the events that change them.

use std::collections::VecDeque;

use super::app::*;
use super::layout;
use super::state::*;
use super::theme::guard;
use crate::freeze::{Artifact, Failure, FreezeEvent, OutputStream, Progress, Stage, Transport};
use crate::history::{Outcome, StageStatus};
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

/// Bytes per second, one sample per second of the app clock, for the rate and the
/// sparkline. The clock, not the events, moves it: [`Throughput::advance`] on every tick
/// closes the seconds that passed, so a stream that stops decays to a rate of 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Throughput {
    samples: VecDeque<u64>,
    /// App clock of the first figure: second 0.
    origin_ms: Option<u64>,
    bucket: u64,
    bucket_start_bytes: u64,
    last_bytes: u64,
    /// App clock when the bytes last grew (or when the first figure came).
    moved_at_ms: Option<u64>,
}

impl Throughput {
    /// A progress figure (`bytes` so far) seen at app clock `now_ms`.
    pub fn record(&mut self, bytes: u64, now_ms: u64) {
        self.advance(now_ms);
        if bytes > self.last_bytes || self.moved_at_ms.is_none() {
            self.moved_at_ms = Some(now_ms);
        }
        self.last_bytes = self.last_bytes.max(bytes);
    }

    /// Closes every whole second up to `now_ms`; returns whether a sample was added.
    pub fn advance(&mut self, now_ms: u64) -> bool {
        let origin = *self.origin_ms.get_or_insert(now_ms);
        let now_bucket = now_ms.saturating_sub(origin) / 1000;
        if now_bucket <= self.bucket {
            return false;
        }
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
        true
    }

    pub fn samples(&self) -> impl DoubleEndedIterator<Item = u64> + ExactSizeIterator + '_ {
        self.samples.iter().copied()
    }

    /// Bytes moved in the last whole second of the clock.
    pub fn current(&self) -> Option<u64> {
        self.samples.back().copied()
    }

    /// How long no bytes have moved, by the clock.
    pub fn idle_ms(&self, now_ms: u64) -> Option<u64> {
        Some(now_ms.saturating_sub(self.moved_at_ms?))
    }
}

/// The average rate of `bytes` over `elapsed_ms`, or None in the first second, when one
/// early chunk (a pipe buffer in 4 ms) would claim megabytes a second.
pub fn average_rate(bytes: u64, elapsed_ms: u64) -> Option<u64> {
    (elapsed_ms >= 1000).then(|| bytes.saturating_mul(1000) / elapsed_ms)
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageState {
    pub status: StageStatus,
    /// App clock when the stage started.
    pub started_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub progress: Option<Progress>,
    /// The builder's `Step N/M` (Docker's build), the stage's real progress.
    pub steps: Option<(u32, u32)>,
    /// What the stage does in this run, when the core said ("native archive", …).
    pub does: Option<String>,
}

impl Default for StageState {
    fn default() -> Self {
        StageState {
            status: StageStatus::Waiting,
            started_ms: None,
            duration_ms: None,
            progress: None,
            steps: None,
            does: None,
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

    /// The whole freeze's progress in per mille: the stages done, and the running one's
    /// share (exec-tar against its estimate, build by steps, push by bytes).
    pub fn overall_permille(&self) -> u64 {
        let mut sum = 0u64;
        for stage in Stage::ALL {
            let s = self.stage(stage);
            sum += match s.status {
                StageStatus::Done | StageStatus::Warning | StageStatus::Skipped => 1000,
                StageStatus::Running => {
                    let p = s.progress.as_ref();
                    let part = match (stage, s.steps, p.and_then(|p| p.total)) {
                        (Stage::Build, Some((n, m)), _) => {
                            u64::from(n.saturating_sub(1)) * 1000 / u64::from(m)
                        }
                        (_, _, Some(t)) if t > 0 => p.map_or(0, |p| p.bytes.min(t)) * 1000 / t,
                        _ => 0,
                    };
                    // A stage is not over until it says so.
                    part.min(990)
                }
                _ => 0,
            };
        }
        sum / Stage::ALL.len() as u64
    }

    /// How long exec-tar has moved no bytes, once that is `stall_after_ms` or more.
    pub fn stalled_ms(&self, now_ms: u64, stall_after_ms: u64) -> Option<u64> {
        if self.phase.is_finished()
            || self.current != Some(Stage::ExecTar)
            || self.stage(Stage::ExecTar).status != StageStatus::Running
        {
            return None;
        }
        self.throughput
            .idle_ms(now_ms)
            .filter(|idle| *idle >= stall_after_ms)
    }

    /// Stages that never ran are skipped once the freeze ended without success.
    fn skip_the_rest(&mut self) {
        for s in &mut self.stages {
            if s.status == StageStatus::Waiting {
                s.status = StageStatus::Skipped;
            }
        }
    }

    pub fn note(&mut self, stage: Stage, message: String) {
        if self.notes.len() == NOTES_CAP {
            self.notes.pop_front();
        }
        self.notes.push_back((stage, message));
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

impl App {
    /// The freeze of the selected machine, if it had one in this session.
    pub fn selected_freeze(&self) -> Option<&FreezeState> {
        self.freezes.get(self.machines.selected.as_deref()?)
    }

    /// The freeze an event belongs to, if it is the current one of its machine.
    pub(super) fn freeze_for(&mut self, id: &str) -> Option<&mut FreezeState> {
        let machine = self.ids.get(id)?;
        let f = self.freezes.get_mut(machine)?;
        (f.id.as_deref() == Some(id)).then_some(f)
    }

    pub(super) fn on_freeze_event(&mut self, ev: FreezeEvent, fx: &mut Effects) {
        let now = self.now_ms;
        let selected = self.machines.selected.clone();
        if let FreezeEvent::Started {
            id,
            machine,
            slug,
            at_ms,
        } = &ev
        {
            let f = self
                .freezes
                .entry(machine.clone())
                .or_insert_with(|| FreezeState::new(machine, slug, *at_ms));
            f.id = Some(id.clone());
            f.started_at_ms = *at_ms;
            f.phase = Phase::Running;
            self.ids.insert(id.clone(), machine.clone());
            fx.redraw = true;
            return;
        }
        let Some(f) = self.freeze_for(ev.id()) else {
            return;
        };
        let shown = selected.as_deref() == Some(f.machine.as_str());
        let mut ended: Option<(Level, String)> = None;
        match ev {
            FreezeEvent::Started { .. } => {}
            FreezeEvent::StageStarted { stage, does, .. } => {
                let s = f.stage_mut(stage);
                s.does = does.map(|d| guard(&d));
                s.status = StageStatus::Running;
                s.started_ms = Some(now);
                f.current = Some(stage);
                if stage == Stage::ExecTar {
                    // The stall clock starts with the stage, before the first byte.
                    f.throughput.record(0, now);
                }
            }
            FreezeEvent::Progress {
                stage, progress, ..
            } => {
                if stage == Stage::ExecTar {
                    f.throughput.record(progress.bytes, now);
                }
                let progress = crate::freeze::Progress {
                    current_path: progress.current_path.map(|p| guard(&p)),
                    ..progress
                };
                f.stage_mut(stage).progress = Some(progress);
            }
            FreezeEvent::Output {
                stage,
                stream,
                lines,
                dropped,
                ..
            } => {
                if dropped > 0 {
                    f.tail.push(TailLine {
                        stage,
                        kind: TailKind::Gap(dropped),
                        text: format!(
                            "… {dropped} lines not shown here (they are in the {stage} log)"
                        ),
                    });
                }
                for l in lines {
                    if stage == Stage::Build {
                        if let Some(step) = crate::format::docker_step(&l) {
                            f.stage_mut(stage).steps = Some(step);
                        }
                    }
                    f.tail.push(TailLine {
                        stage,
                        kind: TailKind::Line(stream),
                        text: guard(&l),
                    });
                }
            }
            FreezeEvent::Note { stage, message, .. } => f.note(stage, guard(&message)),
            // Kept in the record, which the history view shows.
            FreezeEvent::Command { .. } => {}
            FreezeEvent::TransportChosen { transport, .. } => f.transport = Some(transport),
            FreezeEvent::StageFinished {
                stage,
                duration_ms,
                warnings,
                ..
            } => {
                let s = f.stage_mut(stage);
                s.status = if warnings.is_empty() {
                    StageStatus::Done
                } else {
                    StageStatus::Warning
                };
                s.duration_ms = Some(duration_ms);
                f.warnings.extend(warnings.iter().map(|w| guard(w)));
                if f.current == Some(stage) {
                    f.current = None;
                }
            }
            FreezeEvent::Failed { failure, .. } => {
                let s = f.stage_mut(failure.stage);
                s.status = StageStatus::Failed;
                if s.duration_ms.is_none() {
                    s.duration_ms = s.started_ms.map(|t| now.saturating_sub(t));
                }
                f.phase = Phase::Failed;
                f.ended_at_ms = Some(now);
                f.current = None;
                f.skip_the_rest();
                let failure = crate::freeze::Failure {
                    message: guard(&failure.message),
                    stderr_tail: failure
                        .stderr_tail
                        .split('\n')
                        .map(guard)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    ..failure
                };
                ended = Some((
                    Level::Error,
                    format!(
                        "{}: {} failed: {}",
                        escape_str(&f.machine),
                        failure.stage,
                        failure.message
                    ),
                ));
                f.failure = Some(failure);
            }
            FreezeEvent::Cancelled { stage, .. } => {
                let stage = stage.or(f.current);
                if let Some(stage) = stage {
                    let s = f.stage_mut(stage);
                    if matches!(s.status, StageStatus::Running | StageStatus::Waiting) {
                        s.status = StageStatus::Cancelled;
                        if s.duration_ms.is_none() {
                            s.duration_ms = s.started_ms.map(|t| now.saturating_sub(t));
                        }
                    }
                }
                f.phase = Phase::Cancelled;
                f.ended_at_ms = Some(now);
                f.current = None;
                f.skip_the_rest();
                ended = Some((
                    Level::Warn,
                    format!(
                        "{}: freeze cancelled; temp files, registry and guest scratch removed",
                        escape_str(&f.machine)
                    ),
                ));
            }
            FreezeEvent::Done { artifact, .. } => {
                f.phase = if f.warnings.is_empty() {
                    Phase::Succeeded
                } else {
                    Phase::SucceededWithWarnings
                };
                f.ended_at_ms = Some(now);
                f.current = None;
                ended = Some((
                    Level::Info,
                    format!(
                        "{} frozen: {}",
                        escape_str(&f.machine),
                        escape_str(&artifact.sidecar.display().to_string())
                    ),
                ));
                f.artifact = Some(artifact);
            }
            FreezeEvent::Exported { .. } => {
                f.phase = Phase::Succeeded;
                f.ended_at_ms = Some(now);
                f.current = None;
            }
        }
        let last = session_last(f);
        let machine = f.machine.clone();
        if let Some(l) = last {
            self.last_freeze.insert(machine, l);
        }
        if let Some((level, text)) = ended {
            self.flash(level, text.clone());
            if self.settings.bell {
                fx.commands.push(Command::Bell);
            }
            if self.settings.notify {
                fx.commands.push(Command::Notify(text.clone()));
            }
            if !self.history.loading {
                self.history.loading = true;
                fx.commands.push(Command::LoadHistory);
            }
            fx.redraw = true;
        }
        // Only what is on screen needs a redraw: the selected freeze's panes, and the
        // inline progress in every row.
        if shown || self.view == View::Dashboard {
            fx.redraw = true;
        }
    }

    pub(super) fn on_freeze_ended(
        &mut self,
        machine: &str,
        error: Option<String>,
        fx: &mut Effects,
    ) {
        let now = self.now_ms;
        if let Some(f) = self.freezes.get_mut(machine) {
            f.task_done = true;
            if !f.phase.is_finished() {
                let message = error.unwrap_or_else(|| "the freeze ended without a result".into());
                let stage = f.current.unwrap_or(Stage::ExecTar);
                f.stage_mut(stage).status = StageStatus::Failed;
                f.phase = Phase::Failed;
                f.ended_at_ms = Some(now);
                f.skip_the_rest();
                f.failure = Some(crate::freeze::Failure {
                    stage,
                    message: guard(&message),
                    exit_status: None,
                    stderr_tail: "<no stderr>".into(),
                });
                self.flash(
                    Level::Error,
                    format!("{}: {}", escape_str(machine), guard(&message)),
                );
            }
            fx.redraw = true;
        }
        if matches!(self.quit, QuitState::Cancelling { .. }) && self.live_count() == 0 {
            self.quit = QuitState::Exit;
        }
    }

    pub(super) fn start_freeze(&mut self, d: FreezeDialog, fx: &mut Effects) {
        if self.freezes.get(&d.machine).is_some_and(|f| f.is_live()) {
            self.flash(
                Level::Warn,
                format!(
                    "{} is already being frozen: one freeze per machine",
                    escape_str(&d.machine)
                ),
            );
            return;
        }
        if matches!(self.quit, QuitState::Cancelling { .. }) {
            return;
        }
        let f = FreezeState::new(&d.machine, d.slug.as_str(), self.now_ms);
        self.freezes.insert(d.machine.clone(), f);
        if self.machines.selected.as_deref() == Some(d.machine.as_str()) {
            self.tail_view.follow = true;
        }
        self.flash(Level::Info, format!("freezing {}…", escape_str(&d.machine)));
        fx.commands.push(Command::StartFreeze {
            machine: d.machine,
            slug: d.slug,
        });
    }

    /// The dashboard's panes for the current size.
    pub fn dashboard_layout(&self) -> layout::Dashboard {
        layout::dashboard(
            self.area,
            super::machines_pane::wanted_rows(self, self.area.width),
        )
    }

    /// Lines of the stderr pane's text area.
    pub fn tail_page(&self) -> u64 {
        u64::from(layout::inner(self.dashboard_layout().stderr).height.max(1))
    }

    pub(super) fn scroll_tail(&mut self, up: bool, lines: u64) {
        let page = self.tail_page();
        let Some(f) = self.selected_freeze() else {
            return;
        };
        let (base, end) = (f.tail.base(), f.tail.end());
        let bottom_top = end.saturating_sub(page).max(base);
        let cur = if self.tail_view.follow {
            bottom_top
        } else {
            self.tail_view.top.clamp(base, bottom_top)
        };
        if up {
            self.tail_view.follow = false;
            self.tail_view.top = cur.saturating_sub(lines).max(base);
        } else {
            let top = (cur + lines).min(bottom_top);
            self.tail_view.top = top;
            if top >= bottom_top {
                self.tail_view.follow = true;
            }
        }
    }
}

/// The outcome of a finished session freeze, as the machine list shows it.
pub(super) fn session_last(f: &FreezeState) -> Option<LastFreeze> {
    let outcome = match f.phase {
        Phase::Starting | Phase::Running => return None,
        Phase::Succeeded => Outcome::Succeeded,
        Phase::SucceededWithWarnings => Outcome::SucceededWithWarnings,
        Phase::Failed => Outcome::Failed,
        Phase::Cancelled => Outcome::Cancelled,
    };
    Some(LastFreeze {
        outcome,
        at_ms: f.ended_at_ms.unwrap_or(f.started_at_ms),
        failed_stage: f.failure.as_ref().map(|x| x.stage),
        elsewhere: None,
    })
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyModifiers;
    use crossterm::event::{KeyCode, MouseEvent, MouseEventKind};

    use super::*;
    use crate::freeze::{OutputStream, Stage, Transport};
    use crate::ui::fixtures::*;

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
        // The first figure starts the clock: second 0.
        tp.record(100, 0);
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

    fn progress(a: &mut App, id: &str, bytes: u64, total: Option<u64>) {
        a.update(Action::Freeze(FreezeEvent::Progress {
            id: id.into(),
            stage: Stage::ExecTar,
            progress: Progress {
                bytes,
                total,
                entries: Some(1),
                current_path: None,
                elapsed_ms: 0,
                layers: Vec::new(),
            },
        }));
    }

    #[test]
    fn the_rate_follows_the_clock_and_decays_to_zero_then_says_stalled() {
        let mut a = with_machines(120, 30);
        freeze_until(&mut a, "web", Stage::ExecTar);
        let id = id_of("web");
        let t = a.now_ms;
        progress(&mut a, &id, 200 * MIB, None);
        a.update(Action::Tick { now_ms: t + 1000 });
        let f = &a.freezes["bot-bottle-web"];
        assert!(f.throughput.current().unwrap() > 0);
        assert_eq!(f.stalled_ms(a.now_ms, 10_000), None);
        // No event for three seconds: the clock alone brings the rate to 0.
        a.update(Action::Tick { now_ms: t + 3000 });
        assert_eq!(a.freezes["bot-bottle-web"].throughput.current(), Some(0));
        assert!(!screen(&a).contains("stalled"));
        // After the configured time without bytes: stalled, in the row and the pane.
        a.update(Action::Tick { now_ms: t + 12_400 });
        let f = &a.freezes["bot-bottle-web"];
        assert_eq!(f.stalled_ms(a.now_ms, 10_000), Some(12_400));
        let text = screen(&a);
        assert!(text.contains("stalled · no bytes for 12s"), "{text}");
        // Bytes again: no longer stalled.
        progress(&mut a, &id, 201 * MIB, None);
        assert_eq!(
            a.freezes["bot-bottle-web"].stalled_ms(a.now_ms, 10_000),
            None
        );
        // The threshold is the setting's.
        a.settings.stall_after_ms = 1000;
        a.update(Action::Tick { now_ms: t + 14_000 });
        assert!(a.freezes["bot-bottle-web"]
            .stalled_ms(a.now_ms, a.settings.stall_after_ms)
            .is_some());
    }

    #[test]
    fn a_freeze_run_elsewhere_shows_live_from_its_record_and_is_read_again() {
        let mut a = with_machines(120, 30);
        let mut r = crate::history::Record::new(
            "20270115T060000Z-web-9999",
            crate::history::Kind::Freeze,
            "bot-bottle-web",
            "web",
        );
        r.pid = 4_000_000;
        r.stage_mut(Stage::ExecTar).status = StageStatus::Running;
        r.bytes = 3 * MIB;
        a.update(Action::HistoryLoaded(Ok(vec![r])));
        let text = screen(&a);
        assert!(text.contains("▶ exec-tar by pid 4000000 3.0 MiB"), "{text}");
        // Followed: the records are read again while it runs.
        let fx = a.update(Action::Tick {
            now_ms: a.now_ms + crate::ui::app::ELSEWHERE_READ_MS,
        });
        assert!(fx.commands.contains(&Command::LoadHistory));
        // Once it ended, no more reading.
        a.update(Action::HistoryLoaded(Ok(records())));
        let fx = a.update(Action::Tick {
            now_ms: a.now_ms + 2 * crate::ui::app::ELSEWHERE_READ_MS,
        });
        assert!(!fx.commands.contains(&Command::LoadHistory));
    }

    #[test]
    fn build_shows_its_steps_and_one_bar_covers_the_freeze() {
        let mut a = with_machines(120, 30);
        freeze_until(&mut a, "web", Stage::Build);
        let f = &a.freezes["bot-bottle-web"];
        assert_eq!(f.stage(Stage::Build).steps, Some((2, 4)));
        // exec-tar done (1/4) and one of four build steps behind: 1/4 + 1/16.
        assert_eq!(f.overall_permille(), (1000 + 250) / 4);
        let text = screen(&a);
        assert!(text.contains("step 2/4"), "{text}");
        assert!(text.contains(" 31% "), "{text}");
        freeze_done(&mut a, "web");
        assert!(!screen(&a).contains(" 31% "));
    }

    #[test]
    fn the_early_average_waits_for_a_second() {
        // 64 KiB in the first 4 ms is not 15.6 MiB/s.
        assert_eq!(average_rate(64 * 1024, 4), None);
        assert_eq!(average_rate(64 * 1024, 1000), Some(64 * 1024));
        assert_eq!(average_rate(128 * 1024, 2000), Some(64 * 1024));
    }

    #[test]
    fn exec_tar_shows_the_estimate_and_never_passes_it() {
        let mut a = with_machines(120, 30);
        freeze_until(&mut a, "web", Stage::ExecTar);
        let id = id_of("web");
        progress(&mut a, &id, 200 * MIB, Some(800 * MIB));
        let text = screen(&a);
        assert!(text.contains("~25%"), "{text}");
        progress(&mut a, &id, 900 * MIB, Some(800 * MIB));
        let text = screen(&a);
        assert!(text.contains("past the ~800.0 MiB estimate"), "{text}");
        assert!(!text.contains("112%"), "{text}");
    }

    #[test]
    fn stages_that_never_ran_are_skipped() {
        let mut a = with_machines(80, 24);
        freeze_failed(&mut a, "web");
        let f = &a.freezes["bot-bottle-web"];
        assert!(Stage::ALL
            .iter()
            .all(|s| f.stage(*s).status != StageStatus::Waiting));
        assert!(Stage::ALL
            .iter()
            .any(|s| f.stage(*s).status == StageStatus::Skipped));
    }

    fn lines(a: &mut App, id: &str, n: usize) {
        for i in 0..n {
            a.update(Action::Freeze(FreezeEvent::Output {
                id: id.into(),
                stage: Stage::ExecTar,
                stream: OutputStream::Stderr,
                lines: vec![format!("line {i}")],
                dropped: 0,
            }));
        }
    }

    #[test]
    fn events_drive_the_stages() {
        let mut a = with_machines(120, 30);
        freeze_until(&mut a, "web", Stage::Build);
        let f = &a.freezes["bot-bottle-web"];
        assert_eq!(f.id.as_deref(), Some(id_of("web").as_str()));
        assert_eq!(f.phase, Phase::Running);
        assert_eq!(f.current, Some(Stage::Build));
        assert_eq!(f.stage(Stage::ExecTar).status, StageStatus::Warning);
        assert_eq!(f.stage(Stage::ExecTar).duration_ms, Some(12_300));
        assert_eq!(f.stage(Stage::Build).status, StageStatus::Running);
        assert_eq!(f.stage(Stage::Push).status, StageStatus::Waiting);
        assert_eq!(f.transport, Some(Transport::Pipe));
        assert_eq!(f.tail.len(), 4);
        assert_eq!(f.notes.len(), 1);
        assert_eq!(f.warnings.len(), 1);
        // One sample per second of the clock since the stage started.
        assert_eq!(f.throughput.samples().len(), 12);
        assert_eq!(
            f.stage(Stage::Build).progress.as_ref().map(|p| p.bytes),
            Some(45 * MIB)
        );
        assert!(f.is_live());
        assert_eq!(a.live_count(), 1);
    }

    #[test]
    fn a_finished_freeze_records_its_outcome() {
        let mut a = with_machines(120, 30);
        freeze_done(&mut a, "web");
        let f = &a.freezes["bot-bottle-web"];
        assert_eq!(f.phase, Phase::SucceededWithWarnings);
        assert!(f.artifact.is_some());
        assert!(!f.is_live());
        let last = &a.last_freeze["bot-bottle-web"];
        assert_eq!(last.outcome, Outcome::SucceededWithWarnings);
        assert_eq!(last.at_ms, NOW_MS);
        // A history read older than this session's freeze does not hide it.
        a.update(Action::HistoryLoaded(Ok(records())));
        assert_eq!(a.last_freeze["bot-bottle-web"].at_ms, NOW_MS);
        assert_eq!(
            a.last_freeze["bot-bottle-api"].failed_stage,
            Some(Stage::Build)
        );
    }

    #[test]
    fn a_freeze_that_ends_notifies_beside_the_bell_when_asked() {
        for (bell, notify) in [(false, false), (true, false), (true, true), (false, true)] {
            let mut a = with_machines(120, 30);
            a.settings.bell = bell;
            a.settings.notify = notify;
            freeze_until(&mut a, "web", Stage::Build);
            let fx = a.update(Action::Freeze(FreezeEvent::Failed {
                id: id_of("web"),
                failure: crate::freeze::Failure {
                    stage: Stage::Build,
                    message: "no space left".into(),
                    exit_status: Some(1),
                    stderr_tail: "<no stderr>".into(),
                },
            }));
            assert_eq!(fx.commands.contains(&Command::Bell), bell);
            let note = fx.commands.iter().find_map(|c| match c {
                Command::Notify(t) => Some(t.clone()),
                _ => None,
            });
            assert_eq!(note.is_some(), notify, "{:?}", fx.commands);
            if let Some(t) = note {
                assert!(t.contains("bot-bottle-web"), "{t}");
            }
        }
    }

    #[test]
    fn the_tail_is_bounded() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::ExecTar);
        lines(&mut a, &id_of("web"), 2500);
        let f = &a.freezes["bot-bottle-web"];
        assert_eq!(f.tail.len(), TAIL_CAP);
        assert_eq!(f.tail.end(), 2502);
    }

    #[test]
    fn the_tail_follows_scrolls_and_resumes() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::ExecTar);
        lines(&mut a, &id_of("web"), 100);
        assert!(a.tail_view.follow);
        let page = a.tail_page();
        a.update(code(KeyCode::PageUp));
        assert!(!a.tail_view.follow);
        let end = a.freezes["bot-bottle-web"].tail.end();
        assert_eq!(a.tail_view.top, end - 2 * page);
        // New lines do not move a reader who scrolled back.
        lines(&mut a, &id_of("web"), 10);
        assert_eq!(a.tail_view.top, end - 2 * page);
        assert!(screen(&a).contains("scrolled"));
        a.update(key('G'));
        assert!(a.tail_view.follow);
        a.update(code(KeyCode::PageUp));
        a.update(code(KeyCode::PageDown));
        assert!(
            a.tail_view.follow,
            "paging back to the bottom follows again"
        );
        a.update(key('w'));
        assert!(a.tail_view.wrap);
        // Mouse wheel over the stderr pane scrolls it.
        let d = a.dashboard_layout();
        a.update(Action::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollUp,
            column: d.stderr.x + 2,
            row: d.stderr.y + 2,
            modifiers: KeyModifiers::NONE,
        }));
        assert!(!a.tail_view.follow);
        // Selecting another machine follows again.
        a.update(key('k'));
        assert!(a.tail_view.follow && a.tail_view.wrap);
    }

    #[test]
    fn stale_and_foreign_events_are_ignored() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::ExecTar);
        let before = a.freezes.clone();
        a.update(Action::Freeze(FreezeEvent::StageStarted {
            id: "unknown".into(),
            stage: Stage::Pack,
            does: None,
        }));
        assert_eq!(a.freezes, before);
    }

    #[test]
    fn a_task_that_dies_without_a_result_fails_its_freeze() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::Push);
        a.update(Action::FreezeEnded {
            machine: "bot-bottle-web".into(),
            error: Some("the freeze task ended abnormally: panicked".into()),
        });
        let f = &a.freezes["bot-bottle-web"];
        assert_eq!(f.phase, Phase::Failed);
        assert_eq!(f.stage(Stage::Push).status, StageStatus::Failed);
        assert!(!f.is_live());
    }

    #[test]
    fn hostile_output_is_kept_escaped() {
        let mut a = with_machines(80, 24);
        freeze_failed(&mut a, "web");
        let f = &a.freezes["bot-bottle-web"];
        for l in f.tail.iter() {
            assert!(!l.text.chars().any(char::is_control), "{:?}", l.text);
        }
        assert!(f.tail.iter().any(|l| l.text.contains("\\u{9b}31m")));
        assert!(f.tail.iter().any(|l| l.kind == TailKind::Gap(3)));
    }

    #[test]
    fn a_freeze_ending_rings_the_bell_when_asked_and_says_so_in_the_status_line() {
        let mut a = with_machines(80, 24);
        a.settings.bell = true;
        freeze_until(&mut a, "web", Stage::Pack);
        let fx = a.update(Action::Freeze(FreezeEvent::Cancelled {
            id: a
                .ids
                .iter()
                .find(|(_, m)| m.as_str() == "bot-bottle-web")
                .map(|(id, _)| id.clone())
                .unwrap(),
            stage: None,
        }));
        assert!(fx.commands.contains(&Command::Bell));
        assert!(a.flash.is_some());
        // Off: the message stays, the bell does not ring.
        let mut b = with_machines(80, 24);
        b.settings.bell = false;
        freeze_failed(&mut b, "web");
        assert!(b.flash.is_some());
        let mut c = with_machines(80, 24);
        c.settings.bell = false;
        freeze_until(&mut c, "web", Stage::Pack);
        let id = c.ids.keys().next().unwrap().clone();
        let fx = c.update(Action::Freeze(FreezeEvent::Cancelled { id, stage: None }));
        assert!(!fx.commands.contains(&Command::Bell));
    }
}
