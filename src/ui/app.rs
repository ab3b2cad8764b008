//! The dashboard's state and its one reducer, [`App::update`].
//!
//! Everything the outside world does (a key, a freeze event, a discovery answer, the
//! clock) arrives as an [`Action`]; everything the dashboard wants done (start a freeze,
//! cancel one, ask smolvm, read the history, save a file) leaves as a [`Command`] for the
//! event loop to perform. `App` does no I/O, so tests build it and feed it directly.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;

use super::keys::{Context, KeyAction, KeyChord, KeyMap, Lookup};
use super::layout;
use super::state::*;
use super::theme::guard;
use crate::freeze::{FreezeEvent, Stage};
use crate::history::{Outcome, Record, StageStatus};
use crate::machines::BottleMachine;
use crate::names::Slug;
use crate::sanitize::escape_str;

/// How long a status-bar message stays.
pub const FLASH_MS: u64 = 6_000;
/// How long quitting waits for cancelled freezes to clean up before it gives up.
pub const QUIT_GRACE_MS: u64 = 30_000;
/// A discovery slower than this shows as late.
pub const LATE_MS: u64 = 2_000;
/// Lines a mouse wheel notch scrolls.
pub const WHEEL_LINES: u64 = 3;

/// What the dashboard needs to know of its configuration (paths are shown, never read).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub prefix: String,
    pub state_dir: PathBuf,
    pub tmp_dir: PathBuf,
    /// Background discovery interval.
    pub refresh_ms: u64,
    pub theme: super::theme::ThemeName,
    /// Ring the terminal bell when a freeze ends.
    pub bell: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Dashboard,
    History,
    Record,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitState {
    No,
    /// Freezes were cancelled; waiting for their cleanup.
    Cancelling {
        since_ms: u64,
    },
    Exit,
}

/// Everything that can happen to the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize {
        width: u16,
        height: u16,
    },
    /// The clock (Unix ms); also drives the background refresh.
    Tick {
        now_ms: u64,
    },
    /// A discovery answered.
    Machines(Result<Vec<BottleMachine>, String>),
    /// The confirmation dialog's figures.
    Space {
        machine: String,
        tmp_free: Result<u64, String>,
        estimate: Result<u64, String>,
    },
    Freeze(FreezeEvent),
    /// A freeze's task returned (after its events); `error` when it died abnormally.
    FreezeEnded {
        machine: String,
        error: Option<String>,
    },
    HistoryLoaded(Result<Vec<Record>, String>),
    RecordLoaded {
        id: String,
        result: Result<Box<LoadedRecord>, String>,
    },
    LogSaved(Result<PathBuf, String>),
    /// SIGTERM or SIGHUP: cancel everything and leave, without asking.
    Terminate,
}

/// A freeze record with each stage's log (escaped text), as read from the history.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRecord {
    pub record: Record,
    pub logs: Vec<(Stage, Option<String>)>,
}

/// Side effects for the loop to perform.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Discover,
    ProbeSpace {
        machine: String,
    },
    StartFreeze {
        machine: String,
        slug: Slug,
    },
    Cancel {
        machine: String,
    },
    CancelAll,
    LoadHistory,
    LoadRecord {
        id: String,
    },
    SaveLog {
        id: String,
        text: String,
    },
    /// Ring the terminal bell (a freeze ended and the bell is on).
    Bell,
    /// Turn mouse capture on or off.
    SetMouse(bool),
}

/// What one update asks of the loop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    pub redraw: bool,
    pub commands: Vec<Command>,
}

#[derive(Debug, Clone)]
pub struct App {
    pub settings: Settings,
    pub keys: KeyMap,
    /// The clock, Unix ms: every age and elapsed time on screen is computed from it.
    pub now_ms: u64,
    /// The terminal's size, for mouse hits and page sizes.
    pub area: Rect,
    pub view: View,
    pub machines: Machines,
    /// The latest freeze of each machine in this session, by machine name.
    pub freezes: BTreeMap<String, FreezeState>,
    /// Freeze id to machine name.
    pub ids: HashMap<String, String>,
    /// Each machine's newest freeze, from the history and this session.
    pub last_freeze: HashMap<String, LastFreeze>,
    pub tail_view: TailView,
    pub history: HistoryState,
    pub record: Option<RecordView>,
    pub dialog: Option<Dialog>,
    /// The help overlay, with its scroll offset.
    pub help: Option<u16>,
    pub flash: Option<Flash>,
    pub quit: QuitState,
    /// The keys of a sequence begun but not finished (`g` of `g g`).
    pub pending_keys: Vec<KeyChord>,
    /// Whether the dashboard captures the mouse (the loop sets it up at start).
    pub mouse: bool,
    /// A standing line under the machine list (the demo says what is simulated).
    pub notice: Option<String>,
}

fn is_ctrl_c(k: &KeyEvent) -> bool {
    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)
}

impl App {
    pub fn new(settings: Settings, keys: KeyMap) -> App {
        App {
            settings,
            keys,
            now_ms: 0,
            area: Rect::new(0, 0, 80, 24),
            view: View::Dashboard,
            machines: Machines::default(),
            freezes: BTreeMap::new(),
            ids: HashMap::new(),
            last_freeze: HashMap::new(),
            tail_view: TailView::default(),
            history: HistoryState::default(),
            record: None,
            dialog: None,
            help: None,
            flash: None,
            quit: QuitState::No,
            pending_keys: Vec::new(),
            mouse: true,
            notice: None,
        }
    }

    pub fn should_exit(&self) -> bool {
        self.quit == QuitState::Exit
    }

    /// Freezes whose task is still alive.
    pub fn live_count(&self) -> usize {
        self.freezes.values().filter(|f| f.is_live()).count()
    }

    /// The key context of what is on top.
    pub fn context(&self) -> Context {
        if self.help.is_some() {
            Context::Help
        } else if self.dialog.is_some() {
            Context::Dialog
        } else {
            match self.view {
                View::Dashboard => Context::Dashboard,
                View::History => Context::History,
                View::Record => Context::Record,
            }
        }
    }

    // ----- derived views -------------------------------------------------------------

    fn now_time(&self) -> std::time::SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_ms)
    }

    pub fn age_secs(&self, m: &BottleMachine) -> Option<u64> {
        m.age(self.now_time()).map(|d| d.as_secs())
    }

    fn matches_filter(&self, m: &BottleMachine) -> bool {
        let f = self.machines.filter.trim().to_lowercase();
        if f.is_empty() {
            return true;
        }
        let hay = [
            Some(m.machine.name.as_str()),
            m.machine.state.as_deref(),
            m.machine.image.as_deref(),
        ];
        hay.iter().flatten().any(|s| s.to_lowercase().contains(&f))
    }

    /// The machines shown: filtered and sorted.
    pub fn visible(&self) -> Vec<&BottleMachine> {
        let mut v: Vec<&BottleMachine> = self
            .machines
            .list
            .iter()
            .filter(|m| self.matches_filter(m))
            .collect();
        let key = self.machines.sort;
        v.sort_by(|a, b| {
            use std::cmp::Ordering;
            let by = match key {
                SortKey::Name => Ordering::Equal,
                SortKey::State => a.machine.state.cmp(&b.machine.state),
                SortKey::Cpus => a.machine.cpus.cmp(&b.machine.cpus),
                SortKey::Memory => a.machine.memory_mib.cmp(&b.machine.memory_mib),
                // Younger first reads better; created_at descending.
                SortKey::Age => b.machine.created_at.cmp(&a.machine.created_at),
                SortKey::LastFreeze => {
                    let at =
                        |m: &BottleMachine| self.last_freeze.get(&m.machine.name).map(|l| l.at_ms);
                    at(b).cmp(&at(a))
                }
            };
            by.then_with(|| a.machine.name.cmp(&b.machine.name))
        });
        if self.machines.descending {
            v.reverse();
        }
        v
    }

    /// Index of the selection among the visible machines.
    pub fn selected_index(&self) -> Option<usize> {
        let name = self.machines.selected.as_deref()?;
        self.visible().iter().position(|m| m.machine.name == name)
    }

    pub fn selected_machine(&self) -> Option<&BottleMachine> {
        let name = self.machines.selected.as_deref()?;
        self.machines.list.iter().find(|m| m.machine.name == name)
    }

    /// The freeze of the selected machine, if it had one in this session.
    pub fn selected_freeze(&self) -> Option<&FreezeState> {
        self.freezes.get(self.machines.selected.as_deref()?)
    }

    /// Seconds the list has gone without a successful refresh beyond what is normal.
    pub fn stale_secs(&self) -> Option<u64> {
        let last = self.machines.last_ok_ms?;
        let late = self.now_ms.saturating_sub(last);
        (late > self.settings.refresh_ms * 2 + LATE_MS).then_some(late / 1000)
    }

    /// Seconds the running discovery has taken, once it is late.
    pub fn refresh_late_secs(&self) -> Option<u64> {
        let since = self.machines.refreshing_since?;
        let t = self.now_ms.saturating_sub(since);
        (t >= LATE_MS).then_some(t / 1000)
    }

    /// Every text on screen that depends on the clock, to redraw only when it changes.
    fn clock_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        if self.freezes.values().any(|f| !f.phase.is_finished()) {
            let _ = write!(s, "{}", self.now_ms / 100);
        }
        for m in &self.machines.list {
            if let Some(a) = self.age_secs(m) {
                s.push_str(&crate::format::age(a));
            }
        }
        for l in self.last_freeze.values() {
            s.push_str(&crate::format::age(
                self.now_ms.saturating_sub(l.at_ms) / 1000,
            ));
        }
        let _ = write!(s, "{:?}{:?}", self.stale_secs(), self.refresh_late_secs());
        s
    }

    // ----- the reducer ---------------------------------------------------------------

    /// The one place where state changes.
    pub fn update(&mut self, action: Action) -> Effects {
        let mut fx = Effects::default();
        match action {
            Action::Tick { now_ms } => self.on_tick(now_ms, &mut fx),
            Action::Resize { width, height } => {
                self.area = Rect::new(0, 0, width, height);
                fx.redraw = true;
            }
            Action::Key(k) => self.on_key(k, &mut fx),
            Action::Mouse(m) => self.on_mouse(m, &mut fx),
            Action::Machines(r) => self.on_machines(r, &mut fx),
            Action::Space {
                machine,
                tmp_free,
                estimate,
            } => {
                if let Some(Dialog::Freeze(d)) = &mut self.dialog {
                    if d.machine == machine {
                        d.tmp_free = probe(tmp_free);
                        d.estimate = probe(estimate);
                        fx.redraw = true;
                    }
                }
            }
            Action::Freeze(ev) => self.on_freeze_event(ev, &mut fx),
            Action::FreezeEnded { machine, error } => {
                self.on_freeze_ended(&machine, error, &mut fx)
            }
            Action::HistoryLoaded(r) => {
                self.history.loading = false;
                match r {
                    Ok(records) => {
                        self.history.loaded = true;
                        self.history.error = None;
                        self.last_freeze.clear();
                        for r in &records {
                            // Newest first: keep the first of each machine.
                            self.last_freeze
                                .entry(r.machine.clone())
                                .or_insert_with(|| LastFreeze::of(r));
                        }
                        // This session's finished freezes may be newer than what was read.
                        for f in self.freezes.values() {
                            if let Some(l) = session_last(f) {
                                self.last_freeze.insert(f.machine.clone(), l);
                            }
                        }
                        self.history.records = records;
                        let n = self.history.records.len();
                        self.history.selected = self.history.selected.min(n.saturating_sub(1));
                    }
                    Err(e) => self.history.error = Some(guard(&e)),
                }
                fx.redraw = true;
            }
            Action::RecordLoaded { id, result } => {
                if let Some(rv) = &self.record {
                    if rv.id == id {
                        self.record = Some(match result {
                            Ok(loaded) => {
                                let LoadedRecord { record, logs } = *loaded;
                                RecordView::new(record, logs)
                            }
                            Err(e) => RecordView {
                                error: Some(guard(&e)),
                                ..RecordView::loading(&id)
                            },
                        });
                        fx.redraw = true;
                    }
                }
            }
            Action::LogSaved(r) => {
                match r {
                    Ok(path) => self.flash(
                        Level::Info,
                        format!("log saved to {}", escape_str(&path.display().to_string())),
                    ),
                    Err(e) => self.flash(Level::Error, format!("log not saved: {}", guard(&e))),
                }
                fx.redraw = true;
            }
            Action::Terminate => {
                self.help = None;
                self.dialog = None;
                self.confirm_quit(&mut fx);
            }
        }
        fx
    }

    fn flash(&mut self, level: Level, text: impl Into<String>) {
        let ms = if level == Level::Error {
            FLASH_MS * 2
        } else {
            FLASH_MS
        };
        self.flash = Some(Flash {
            text: text.into(),
            level,
            until_ms: self.now_ms + ms,
        });
    }

    fn on_tick(&mut self, now_ms: u64, fx: &mut Effects) {
        let before = self.clock_text();
        self.now_ms = now_ms;
        if let Some(f) = &self.flash {
            if now_ms >= f.until_ms {
                self.flash = None;
                fx.redraw = true;
            }
        }
        if self.machines.refreshing_since.is_none() && now_ms >= self.machines.next_refresh_ms {
            self.machines.refreshing_since = Some(now_ms);
            fx.commands.push(Command::Discover);
        }
        if !self.history.loaded && !self.history.loading && self.history.error.is_none() {
            self.history.loading = true;
            fx.commands.push(Command::LoadHistory);
        }
        if let QuitState::Cancelling { since_ms } = self.quit {
            if self.live_count() == 0 || now_ms.saturating_sub(since_ms) > QUIT_GRACE_MS {
                self.quit = QuitState::Exit;
            }
        }
        if self.clock_text() != before {
            fx.redraw = true;
        }
    }

    fn on_machines(&mut self, r: Result<Vec<BottleMachine>, String>, fx: &mut Effects) {
        self.machines.refreshing_since = None;
        self.machines.next_refresh_ms = self.now_ms + self.settings.refresh_ms;
        match r {
            Ok(list) => {
                self.machines.list = list;
                self.machines.loaded = true;
                self.machines.error = None;
                self.machines.last_ok_ms = Some(self.now_ms);
            }
            Err(e) => self.machines.error = Some(guard(&e)),
        }
        self.fix_selection();
        fx.redraw = true;
    }

    /// Keeps the selection on a visible machine: the same one if it is still there,
    /// else the one now at its place.
    fn fix_selection(&mut self) {
        let visible: Vec<String> = self
            .visible()
            .iter()
            .map(|m| m.machine.name.clone())
            .collect();
        if visible.is_empty() {
            return;
        }
        if let Some(name) = &self.machines.selected {
            if let Some(i) = visible.iter().position(|n| n == name) {
                self.machines.selected_index = i;
                return;
            }
        }
        let i = self.machines.selected_index.min(visible.len() - 1);
        self.select_index(i, &visible);
    }

    fn select_index(&mut self, i: usize, visible: &[String]) {
        if let Some(name) = visible.get(i) {
            if self.machines.selected.as_deref() != Some(name) {
                self.tail_view = TailView {
                    wrap: self.tail_view.wrap,
                    ..TailView::default()
                };
            }
            self.machines.selected = Some(name.clone());
            self.machines.selected_index = i;
        }
    }

    fn move_selection(&mut self, delta: isize) {
        let visible: Vec<String> = self
            .visible()
            .iter()
            .map(|m| m.machine.name.clone())
            .collect();
        if visible.is_empty() {
            return;
        }
        let cur = self.selected_index().unwrap_or(0) as isize;
        let i = (cur + delta).clamp(0, visible.len() as isize - 1) as usize;
        self.select_index(i, &visible);
    }

    // ----- freeze events -------------------------------------------------------------

    /// The freeze an event belongs to, if it is the current one of its machine.
    fn freeze_for(&mut self, id: &str) -> Option<&mut FreezeState> {
        let machine = self.ids.get(id)?;
        let f = self.freezes.get_mut(machine)?;
        (f.id.as_deref() == Some(id)).then_some(f)
    }

    fn on_freeze_event(&mut self, ev: FreezeEvent, fx: &mut Effects) {
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
            FreezeEvent::StageStarted { stage, .. } => {
                let s = f.stage_mut(stage);
                s.status = StageStatus::Running;
                s.started_ms = Some(now);
                f.current = Some(stage);
            }
            FreezeEvent::Progress {
                stage, progress, ..
            } => {
                if stage == Stage::ExecTar {
                    f.throughput.record(progress.bytes, progress.elapsed_ms);
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
            self.flash(level, text);
            if self.settings.bell {
                fx.commands.push(Command::Bell);
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

    fn on_freeze_ended(&mut self, machine: &str, error: Option<String>, fx: &mut Effects) {
        let now = self.now_ms;
        if let Some(f) = self.freezes.get_mut(machine) {
            f.task_done = true;
            if !f.phase.is_finished() {
                let message = error.unwrap_or_else(|| "the freeze ended without a result".into());
                let stage = f.current.unwrap_or(Stage::ExecTar);
                f.stage_mut(stage).status = StageStatus::Failed;
                f.phase = Phase::Failed;
                f.ended_at_ms = Some(now);
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

    // ----- keys ----------------------------------------------------------------------

    fn on_key(&mut self, key: KeyEvent, fx: &mut Effects) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        fx.redraw = true;
        if is_ctrl_c(&key) {
            self.interrupt(fx);
            return;
        }
        if self.help.is_none() && self.dialog.is_none() {
            if self.view == View::Dashboard && self.machines.filter_editing {
                self.edit_filter(key);
                return;
            }
            if self.view == View::Record && self.record.as_ref().is_some_and(|r| r.search.editing) {
                self.edit_search(key);
                return;
            }
        }
        let ctx = self.context();
        let mut found = self.keys.lookup_seq(ctx, &self.pending_keys, &key);
        if found == Lookup::None && !self.pending_keys.is_empty() {
            // A key that does not continue the sequence starts afresh.
            self.pending_keys.clear();
            found = self.keys.lookup_seq(ctx, &[], &key);
        }
        let action = match found {
            Lookup::Action(a) => {
                self.pending_keys.clear();
                a
            }
            Lookup::Pending => {
                self.pending_keys.push(KeyChord::from_event(&key));
                return;
            }
            Lookup::None => {
                fx.redraw = false;
                return;
            }
        };
        if action == KeyAction::Quit {
            self.request_quit();
            return;
        }
        if action == KeyAction::Mouse {
            self.mouse = !self.mouse;
            fx.commands.push(Command::SetMouse(self.mouse));
            self.flash(
                Level::Info,
                if self.mouse {
                    "mouse on"
                } else {
                    "mouse off: the terminal's own text selection works"
                },
            );
            return;
        }
        if action == KeyAction::Help
            && matches!(ctx, Context::Dashboard | Context::History | Context::Record)
        {
            self.help = Some(0);
            return;
        }
        match ctx {
            Context::Help => self.help_key(action),
            Context::Dialog => self.dialog_key(action, fx),
            Context::Dashboard => self.dashboard_key(action, fx),
            Context::History => self.history_key(action, fx),
            Context::Record => self.record_key(action, fx),
            Context::Global => {}
        }
    }

    fn interrupt(&mut self, fx: &mut Effects) {
        match (&self.dialog, self.quit) {
            // Ctrl-C twice: yes, quit.
            (Some(Dialog::Quit { .. }), _) => {
                self.dialog = None;
                self.confirm_quit(fx);
            }
            // Ctrl-C while cleaning up: leave now (children die with us).
            (_, QuitState::Cancelling { .. }) => self.quit = QuitState::Exit,
            _ => {
                self.help = None;
                self.dialog = None;
                self.machines.filter_editing = false;
                self.request_quit();
            }
        }
    }

    fn request_quit(&mut self) {
        if matches!(self.quit, QuitState::Cancelling { .. }) {
            return;
        }
        let running = self.live_count();
        if running == 0 {
            self.quit = QuitState::Exit;
        } else {
            self.dialog = Some(Dialog::Quit { running });
        }
    }

    fn confirm_quit(&mut self, fx: &mut Effects) {
        if self.live_count() == 0 {
            self.quit = QuitState::Exit;
            return;
        }
        for f in self.freezes.values_mut().filter(|f| f.is_live()) {
            f.cancel_requested = true;
        }
        fx.commands.push(Command::CancelAll);
        self.quit = QuitState::Cancelling {
            since_ms: self.now_ms,
        };
        fx.redraw = true;
    }

    fn edit_filter(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Esc => {
                self.machines.filter.clear();
                self.machines.filter_editing = false;
            }
            KeyCode::Enter => self.machines.filter_editing = false,
            KeyCode::Backspace => {
                self.machines.filter.pop();
            }
            KeyCode::Char(c)
                if !key.modifiers.contains(KeyModifiers::CONTROL)
                    && !c.is_control()
                    && self.machines.filter.chars().count() < 64 =>
            {
                self.machines.filter.push(c);
            }
            KeyCode::Up => self.move_selection(-1),
            KeyCode::Down => self.move_selection(1),
            _ => {}
        }
        self.fix_selection();
    }

    fn edit_search(&mut self, key: KeyEvent) {
        let page = self.record_page();
        let Some(rv) = self.record.as_mut() else {
            return;
        };
        match key.code {
            KeyCode::Esc => {
                rv.search = Search::default();
                return;
            }
            KeyCode::Enter => {
                rv.search.editing = false;
                return;
            }
            KeyCode::Backspace => {
                rv.search.query.pop();
            }
            KeyCode::Char(c)
                if !key.modifiers.contains(KeyModifiers::CONTROL) && !c.is_control() =>
            {
                if rv.search.query.chars().count() < 128 {
                    rv.search.query.push(c);
                }
            }
            _ => return,
        }
        rv.search.refresh(&rv.lines);
        // Incremental: jump to the first match at or below the top.
        let top = rv.top;
        let first =
            rv.search
                .matches
                .iter()
                .position(|&l| l >= top)
                .or(if rv.search.matches.is_empty() {
                    None
                } else {
                    Some(0)
                });
        if let Some(i) = first {
            rv.search.current = Some(i);
            show_line(rv, rv.search.matches[i], page);
        }
    }

    fn help_key(&mut self, action: KeyAction) {
        let off = self.help.unwrap_or(0);
        self.help = match action {
            KeyAction::Back => None,
            KeyAction::Up => Some(off.saturating_sub(1)),
            KeyAction::Down => Some(off.saturating_add(1)),
            KeyAction::PageUp => Some(off.saturating_sub(10)),
            KeyAction::PageDown => Some(off.saturating_add(10)),
            _ => Some(off),
        };
    }

    fn dialog_key(&mut self, action: KeyAction, fx: &mut Effects) {
        let Some(dialog) = self.dialog.take() else {
            return;
        };
        match (action, dialog) {
            (KeyAction::Confirm, Dialog::Freeze(d)) => self.start_freeze(d, fx),
            (KeyAction::Confirm, Dialog::Cancel { machine }) => {
                match self.freezes.get_mut(&machine) {
                    Some(f) if f.is_live() => {
                        f.cancel_requested = true;
                        fx.commands.push(Command::Cancel {
                            machine: machine.clone(),
                        });
                        self.flash(
                            Level::Warn,
                            format!("cancelling the freeze of {}…", escape_str(&machine)),
                        );
                    }
                    _ => self.flash(
                        Level::Info,
                        format!("{} has no running freeze any more", escape_str(&machine)),
                    ),
                }
            }
            (KeyAction::Confirm, Dialog::Quit { .. }) => self.confirm_quit(fx),
            (KeyAction::Deny, _) => {}
            (_, d) => self.dialog = Some(d),
        }
    }

    fn start_freeze(&mut self, d: FreezeDialog, fx: &mut Effects) {
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

    fn open_freeze_dialog(&mut self, fx: &mut Effects) {
        let Some(m) = self.selected_machine() else {
            self.flash(Level::Info, "no machine selected");
            return;
        };
        let name = m.machine.name.clone();
        if let Some(why) = m.refusal() {
            self.flash(
                Level::Warn,
                format!("{} cannot be frozen: {}", escape_str(&name), guard(&why)),
            );
            return;
        }
        let Ok(slug) = m.slug.clone() else {
            return;
        };
        if self.freezes.get(&name).is_some_and(|f| f.is_live()) {
            self.flash(
                Level::Warn,
                format!(
                    "{} is already being frozen: one freeze per machine",
                    escape_str(&name)
                ),
            );
            return;
        }
        let artifact = crate::freeze::pack::sidecar_of(
            &self
                .settings
                .state_dir
                .join(slug.as_str())
                .join(crate::freeze::pack::LAUNCHER),
        );
        self.dialog = Some(Dialog::Freeze(FreezeDialog {
            machine: name.clone(),
            slug,
            artifact,
            tmp_dir: self.settings.tmp_dir.clone(),
            tmp_free: Probe::Pending,
            estimate: Probe::Pending,
        }));
        fx.commands.push(Command::ProbeSpace { machine: name });
    }

    fn open_cancel_dialog(&mut self) {
        let Some(name) = self.machines.selected.clone() else {
            self.flash(Level::Info, "no machine selected");
            return;
        };
        match self.freezes.get(&name) {
            Some(f) if f.is_live() && f.cancel_requested => self.flash(
                Level::Info,
                format!("{} is already being cancelled", escape_str(&name)),
            ),
            Some(f) if f.is_live() => self.dialog = Some(Dialog::Cancel { machine: name }),
            _ => self.flash(
                Level::Info,
                format!("{} has no running freeze", escape_str(&name)),
            ),
        }
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

    fn scroll_tail(&mut self, up: bool, lines: u64) {
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

    fn dashboard_key(&mut self, action: KeyAction, fx: &mut Effects) {
        match action {
            KeyAction::Up => self.move_selection(-1),
            KeyAction::Down => self.move_selection(1),
            KeyAction::Top => self.move_selection(isize::MIN / 2),
            KeyAction::Freeze => self.open_freeze_dialog(fx),
            KeyAction::Cancel => self.open_cancel_dialog(),
            KeyAction::Refresh if self.machines.refreshing_since.is_none() => {
                self.machines.refreshing_since = Some(self.now_ms);
                fx.commands.push(Command::Discover);
            }
            KeyAction::Filter => self.machines.filter_editing = true,
            KeyAction::SortNext => {
                self.machines.sort = self.machines.sort.next();
                self.machines.descending = false;
                self.fix_selection();
                self.flash(
                    Level::Info,
                    format!("sorted by {}", self.machines.sort.name()),
                );
            }
            KeyAction::SortReverse => {
                self.machines.descending = !self.machines.descending;
                self.fix_selection();
            }
            KeyAction::PageUp => self.scroll_tail(true, self.tail_page()),
            KeyAction::PageDown => self.scroll_tail(false, self.tail_page()),
            KeyAction::Follow => self.tail_view.follow = true,
            KeyAction::Wrap => self.tail_view.wrap = !self.tail_view.wrap,
            KeyAction::History => self.open_history(fx),
            _ => {}
        }
    }

    fn open_history(&mut self, fx: &mut Effects) {
        self.view = View::History;
        if !self.history.loading {
            self.history.loading = true;
            fx.commands.push(Command::LoadHistory);
        }
    }

    /// Rows of the history list.
    pub fn history_page(&self) -> usize {
        let (body, _) = layout::body_and_status(self.area);
        // Border and header.
        usize::from(body.height.saturating_sub(3).max(1))
    }

    fn history_key(&mut self, action: KeyAction, fx: &mut Effects) {
        let n = self.history.records.len();
        let last = n.saturating_sub(1);
        let page = self.history_page();
        let sel = &mut self.history.selected;
        match action {
            KeyAction::Up => *sel = sel.saturating_sub(1),
            KeyAction::Down => *sel = (*sel + 1).min(last),
            KeyAction::PageUp => *sel = sel.saturating_sub(page),
            KeyAction::PageDown => *sel = (*sel + page).min(last),
            KeyAction::Top => *sel = 0,
            KeyAction::Bottom => *sel = last,
            KeyAction::Open => {
                if let Some(r) = self.history.records.get(*sel) {
                    let id = r.id.clone();
                    self.record = Some(RecordView::loading(&id));
                    self.view = View::Record;
                    fx.commands.push(Command::LoadRecord { id });
                }
            }
            KeyAction::Refresh if !self.history.loading => {
                self.history.loading = true;
                fx.commands.push(Command::LoadHistory);
            }
            KeyAction::Back => self.view = View::Dashboard,
            _ => {}
        }
    }

    /// Lines of the record view's text area.
    pub fn record_page(&self) -> usize {
        let (body, _) = layout::body_and_status(self.area);
        usize::from(layout::inner(body).height.max(1))
    }

    fn record_key(&mut self, action: KeyAction, fx: &mut Effects) {
        let page = self.record_page();
        if action == KeyAction::Back {
            self.view = View::History;
            return;
        }
        let Some(rv) = self.record.as_mut() else {
            return;
        };
        let max_top = rv.lines.len().saturating_sub(page);
        match action {
            KeyAction::Up => rv.top = rv.top.saturating_sub(1),
            KeyAction::Down => rv.top = (rv.top + 1).min(max_top),
            KeyAction::PageUp => rv.top = rv.top.saturating_sub(page),
            KeyAction::PageDown => rv.top = (rv.top + page).min(max_top),
            KeyAction::Top => rv.top = 0,
            KeyAction::Bottom => rv.top = max_top,
            KeyAction::Wrap => rv.wrap = !rv.wrap,
            KeyAction::Search => {
                rv.search = Search {
                    editing: true,
                    ..Search::default()
                };
            }
            KeyAction::NextMatch | KeyAction::PrevMatch => {
                let n = rv.search.matches.len();
                if n == 0 {
                    let text = if rv.search.query.is_empty() {
                        "no search: press / to search".to_string()
                    } else {
                        format!("no match for {:?}", rv.search.query)
                    };
                    self.flash(Level::Info, text);
                    return;
                }
                let next = match (rv.search.current, action == KeyAction::NextMatch) {
                    (None, true) => rv
                        .search
                        .matches
                        .iter()
                        .position(|&l| l >= rv.top)
                        .unwrap_or(0),
                    (None, false) => rv
                        .search
                        .matches
                        .iter()
                        .rposition(|&l| l <= rv.top)
                        .unwrap_or(n - 1),
                    (Some(i), true) => (i + 1) % n,
                    (Some(i), false) => (i + n - 1) % n,
                };
                rv.search.current = Some(next);
                let line = rv.search.matches[next];
                show_line(rv, line, page);
            }
            KeyAction::Save if rv.record.is_some() => {
                let (id, text) = (rv.id.clone(), rv.text());
                // Where it goes, before it is written; the result names the file made.
                self.flash(
                    Level::Info,
                    format!(
                        "saving the log as bottle-freeze-{}.log in the current folder (an existing file is never replaced)",
                        escape_str(&id)
                    ),
                );
                fx.commands.push(Command::SaveLog { id, text });
            }
            _ => {}
        }
    }

    // ----- mouse ---------------------------------------------------------------------

    fn on_mouse(&mut self, m: MouseEvent, fx: &mut Effects) {
        if self.help.is_some() || self.dialog.is_some() {
            return;
        }
        let up = match m.kind {
            MouseEventKind::ScrollUp => Some(true),
            MouseEventKind::ScrollDown => Some(false),
            _ => None,
        };
        let click = m.kind == MouseEventKind::Down(MouseButton::Left);
        if up.is_none() && !click {
            return;
        }
        fx.redraw = true;
        match self.view {
            View::Dashboard => {
                let d = self.dashboard_layout();
                if layout::contains(d.machines, m.column, m.row) {
                    if let Some(up) = up {
                        self.move_selection(if up { -1 } else { 1 });
                    } else if click {
                        let table = super::machines_pane::rows_area(d.machines, self);
                        if layout::contains(table, m.column, m.row) {
                            let offset = layout::scroll_offset(
                                self.selected_index().unwrap_or(0),
                                usize::from(table.height),
                            );
                            let i = offset + usize::from(m.row - table.y);
                            let visible: Vec<String> = self
                                .visible()
                                .iter()
                                .map(|b| b.machine.name.clone())
                                .collect();
                            if i < visible.len() {
                                self.select_index(i, &visible);
                            }
                        }
                    }
                } else if layout::contains(d.stderr, m.column, m.row) {
                    if let Some(up) = up {
                        self.scroll_tail(up, WHEEL_LINES);
                    }
                }
            }
            View::History => {
                let n = self.history.records.len();
                if let Some(up) = up {
                    self.history.selected = if up {
                        self.history.selected.saturating_sub(1)
                    } else {
                        (self.history.selected + 1).min(n.saturating_sub(1))
                    };
                } else {
                    let (body, _) = layout::body_and_status(self.area);
                    let inner = layout::inner(body);
                    // Below the header row.
                    if m.row > inner.y && layout::contains(inner, m.column, m.row) {
                        let page = self.history_page();
                        let offset = layout::scroll_offset(self.history.selected, page);
                        let i = offset + usize::from(m.row - inner.y - 1);
                        if i < n {
                            self.history.selected = i;
                        }
                    }
                }
            }
            View::Record => {
                let page = self.record_page();
                if let (Some(up), Some(rv)) = (up, self.record.as_mut()) {
                    let max_top = rv.lines.len().saturating_sub(page);
                    rv.top = if up {
                        rv.top.saturating_sub(WHEEL_LINES as usize)
                    } else {
                        (rv.top + WHEEL_LINES as usize).min(max_top)
                    };
                }
            }
        }
    }
}

/// Scrolls a record so that `line` is on screen, a little below the top.
fn show_line(rv: &mut RecordView, line: usize, page: usize) {
    if line < rv.top || line >= rv.top + page {
        let max_top = rv.lines.len().saturating_sub(page);
        rv.top = line.saturating_sub(2).min(max_top);
    }
}

fn probe(r: Result<u64, String>) -> Probe<u64> {
    match r {
        Ok(v) => Probe::Ready(v),
        Err(e) => Probe::Failed(guard(&e)),
    }
}

/// The outcome of a finished session freeze, as the machine list shows it.
fn session_last(f: &FreezeState) -> Option<LastFreeze> {
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
    })
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyModifiers;
    use crossterm::event::{KeyCode, MouseButton, MouseEvent, MouseEventKind};

    use super::*;
    use crate::freeze::{OutputStream, Stage, Transport};
    use crate::ui::fixtures::*;

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
        assert_eq!(f.throughput.samples().len(), 11);
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
    fn freeze_asks_probes_and_starts() {
        let mut a = with_machines(80, 24);
        let fx = a.update(key('f'));
        assert_eq!(
            fx.commands,
            [Command::ProbeSpace {
                machine: "bot-bottle-web".into()
            }]
        );
        assert!(
            matches!(&a.dialog, Some(Dialog::Freeze(d)) if d.artifact.ends_with("web/committed-smolmachine.smolmachine"))
        );
        let fx = a.update(code(KeyCode::Enter));
        assert!(
            matches!(&fx.commands[..], [Command::StartFreeze { machine, slug }] if machine == "bot-bottle-web" && slug.as_str() == "web")
        );
        assert!(a.dialog.is_none());
        assert_eq!(a.freezes["bot-bottle-web"].phase, Phase::Starting);
    }

    #[test]
    fn backing_out_starts_nothing() {
        let mut a = with_machines(80, 24);
        a.update(key('f'));
        let fx = a.update(code(KeyCode::Esc));
        assert!(fx.commands.is_empty());
        assert!(a.dialog.is_none() && a.freezes.is_empty());
        a.update(key('f'));
        let fx = a.update(key('n'));
        assert!(fx.commands.is_empty() && a.freezes.is_empty());
    }

    #[test]
    fn one_freeze_per_machine() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::ExecTar);
        let fx = a.update(key('f'));
        assert!(a.dialog.is_none());
        assert!(fx.commands.is_empty());
        assert!(a
            .flash
            .as_ref()
            .is_some_and(|f| f.text.contains("already being frozen")));
        // Even a dialog left open from before is refused on confirm.
        let slug = crate::names::Slug::parse("web").unwrap();
        a.dialog = Some(Dialog::Freeze(FreezeDialog {
            machine: "bot-bottle-web".into(),
            slug,
            artifact: "/x".into(),
            tmp_dir: "/tmp".into(),
            tmp_free: Probe::Pending,
            estimate: Probe::Pending,
        }));
        let fx = a.update(key('y'));
        assert!(fx.commands.is_empty());
        // Another machine can be frozen at the same time.
        select(&mut a, "bot-bottle-api");
        let fx = confirm_freeze(&mut a);
        assert!(
            matches!(&fx.commands[..], [Command::StartFreeze { machine, .. }] if machine == "bot-bottle-api")
        );
        assert_eq!(a.live_count(), 2);
    }

    #[test]
    fn machines_that_are_not_running_are_not_freezable() {
        let mut a = with_machines(80, 24);
        for name in ["bot-bottle-db", "bot-bottle-Evil\u{1b}]0;pwned\u{7}"] {
            select(&mut a, name);
            assert_eq!(a.machines.selected.as_deref(), Some(name));
            let fx = a.update(key('f'));
            assert!(fx.commands.is_empty() && a.dialog.is_none());
            let flash = a.flash.clone().unwrap();
            assert!(flash.text.contains("cannot be frozen"), "{}", flash.text);
            assert!(!flash.text.chars().any(char::is_control));
        }
    }

    #[test]
    fn cancel_asks_then_cancels() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::Build);
        let fx = a.update(key('c'));
        assert!(fx.commands.is_empty());
        assert!(matches!(a.dialog, Some(Dialog::Cancel { .. })));
        let fx = a.update(key('y'));
        assert_eq!(
            fx.commands,
            [Command::Cancel {
                machine: "bot-bottle-web".into()
            }]
        );
        assert!(a.freezes["bot-bottle-web"].cancel_requested);
        a.update(Action::Freeze(FreezeEvent::Cancelled {
            id: id_of("web"),
            stage: Some(Stage::Build),
        }));
        let f = &a.freezes["bot-bottle-web"];
        assert_eq!(f.phase, Phase::Cancelled);
        assert_eq!(f.stage(Stage::Build).status, StageStatus::Cancelled);
        assert_eq!(f.stage(Stage::Push).status, StageStatus::Waiting);
        // Nothing to cancel on a machine without a freeze.
        select(&mut a, "bot-bottle-api");
        a.update(key('c'));
        assert!(a.dialog.is_none());
    }

    #[test]
    fn quit_without_freezes_leaves_at_once() {
        let mut a = with_machines(80, 24);
        a.update(key('q'));
        assert!(a.should_exit());
        let mut a = with_machines(80, 24);
        a.update(ctrl('c'));
        assert!(a.should_exit());
    }

    #[test]
    fn quit_with_freezes_asks_cancels_and_waits_for_cleanup() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::Build);
        a.update(key('q'));
        assert!(matches!(a.dialog, Some(Dialog::Quit { running: 1 })));
        assert!(!a.should_exit());
        a.update(key('n'));
        assert!(a.dialog.is_none() && !a.should_exit());
        a.update(key('q'));
        let fx = a.update(key('y'));
        assert_eq!(fx.commands, [Command::CancelAll]);
        assert!(matches!(a.quit, QuitState::Cancelling { .. }));
        assert!(!a.should_exit());
        // Freezing is refused while leaving.
        select(&mut a, "bot-bottle-api");
        a.update(key('f'));
        let fx = a.update(key('y'));
        assert!(fx
            .commands
            .iter()
            .all(|c| !matches!(c, Command::StartFreeze { .. })));
        a.update(Action::Freeze(FreezeEvent::Cancelled {
            id: id_of("web"),
            stage: Some(Stage::Build),
        }));
        assert!(!a.should_exit(), "waits for the task's cleanup");
        a.update(Action::FreezeEnded {
            machine: "bot-bottle-web".into(),
            error: None,
        });
        assert!(a.should_exit());
    }

    #[test]
    fn ctrl_c_twice_confirms_and_a_third_stops_waiting() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::ExecTar);
        a.update(ctrl('c'));
        assert!(matches!(a.dialog, Some(Dialog::Quit { .. })));
        let fx = a.update(ctrl('c'));
        assert_eq!(fx.commands, [Command::CancelAll]);
        assert!(!a.should_exit());
        a.update(ctrl('c'));
        assert!(a.should_exit());
    }

    #[test]
    fn quitting_gives_up_waiting_after_the_grace() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::ExecTar);
        a.update(Action::Terminate);
        assert!(matches!(a.quit, QuitState::Cancelling { .. }));
        a.update(Action::Tick {
            now_ms: NOW_MS + QUIT_GRACE_MS + 1,
        });
        assert!(a.should_exit());
    }

    #[test]
    fn terminate_cancels_without_asking() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::ExecTar);
        a.update(key('?'));
        let fx = a.update(Action::Terminate);
        assert_eq!(fx.commands, [Command::CancelAll]);
        assert!(a.dialog.is_none() && a.help.is_none());
        let mut idle = with_machines(80, 24);
        idle.update(Action::Terminate);
        assert!(idle.should_exit());
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
    fn filter_is_incremental_and_esc_clears() {
        let mut a = with_machines(80, 24);
        a.update(key('/'));
        typed(&mut a, "ap");
        assert_eq!(a.visible().len(), 1);
        assert_eq!(a.machines.selected.as_deref(), Some("bot-bottle-api"));
        // Typed keys do not act while filtering.
        a.update(key('q'));
        assert!(!a.should_exit());
        assert_eq!(a.machines.filter, "apq");
        a.update(code(KeyCode::Backspace));
        a.update(code(KeyCode::Enter));
        assert!(!a.machines.filter_editing);
        assert_eq!(a.visible().len(), 1);
        a.update(key('/'));
        a.update(code(KeyCode::Esc));
        assert!(a.machines.filter.is_empty());
        assert_eq!(a.visible().len(), 6);
        assert_eq!(a.machines.selected.as_deref(), Some("bot-bottle-api"));
    }

    #[test]
    fn sorting_cycles_and_keeps_the_selection() {
        let mut a = with_machines(80, 24);
        let names = |a: &App| {
            a.visible()
                .iter()
                .map(|m| m.machine.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&a)[1], "bot-bottle-api");
        a.update(key('o'));
        assert_eq!(a.machines.sort, SortKey::State);
        a.update(key('o'));
        a.update(key('o'));
        assert_eq!(a.machines.sort, SortKey::Memory);
        assert_eq!(names(&a).last().map(String::as_str), Some("bot-bottle-api"));
        a.update(key('O'));
        assert_eq!(
            names(&a).first().map(String::as_str),
            Some("bot-bottle-api")
        );
        assert_eq!(a.machines.selected.as_deref(), Some("bot-bottle-web"));
        a.update(key('o'));
        assert_eq!(a.machines.sort, SortKey::Age);
        assert_eq!(
            names(&a).first().map(String::as_str),
            Some("bot-bottle-Evil\u{1b}]0;pwned\u{7}")
        );
    }

    #[test]
    fn ticks_redraw_only_when_time_shows() {
        let mut a = app(80, 24);
        let old = vec![crate::machines::BottleMachine {
            machine: machine("web", "running", 2, 1024, 3 * 3600 + 100, None),
            slug: crate::names::Slug::parse("web"),
            listed: 1,
        }];
        a.update(Action::Machines(Ok(old)));
        a.update(Action::HistoryLoaded(Ok(vec![])));
        let fx = a.update(Action::Tick {
            now_ms: NOW_MS + 1000,
        });
        assert!(!fx.redraw, "nothing on screen changed");
        assert!(fx.commands.is_empty());
        freeze_until(&mut a, "web", Stage::ExecTar);
        let fx = a.update(Action::Tick {
            now_ms: NOW_MS + 1000,
        });
        assert!(fx.redraw, "elapsed times are on screen");
    }

    #[test]
    fn discovery_is_scheduled_by_the_clock_one_at_a_time() {
        let mut a = App::new(settings(), crate::ui::keys::KeyMap::defaults());
        let fx = a.update(Action::Tick { now_ms: NOW_MS });
        assert_eq!(fx.commands, [Command::Discover, Command::LoadHistory]);
        // Still waiting: no second discovery.
        let fx = a.update(Action::Tick {
            now_ms: NOW_MS + 5000,
        });
        assert!(fx.commands.is_empty());
        assert_eq!(a.refresh_late_secs(), Some(5));
        a.update(Action::Machines(Err("boom".into())));
        assert!(a.machines.error.is_some() && !a.machines.loaded);
        let fx = a.update(Action::Tick {
            now_ms: NOW_MS + 7000,
        });
        assert!(fx.commands.is_empty());
        let fx = a.update(Action::Tick {
            now_ms: NOW_MS + 8000,
        });
        assert_eq!(
            fx.commands,
            [Command::Discover],
            "retries after the interval"
        );
        a.update(Action::Machines(Ok(mixed())));
        assert!(a.machines.error.is_none() && a.machines.loaded);
        let fx = a.update(key('r'));
        assert_eq!(fx.commands, [Command::Discover]);
        let fx = a.update(key('r'));
        assert!(fx.commands.is_empty(), "one discovery at a time");
        // A failure keeps the list.
        a.update(Action::Machines(Err("timeout".into())));
        assert_eq!(a.machines.list.len(), 6);
        a.update(Action::Tick {
            now_ms: NOW_MS + 30_000,
        });
        assert!(a.stale_secs().is_some());
    }

    #[test]
    fn remapped_keys_and_sequences_act_and_the_old_key_does_not() {
        use crate::ui::keys::{KeyChord, KeySeq};
        let mut a = with_machines(80, 24);
        let seq = |s: &str| KeySeq::parse(s).unwrap();
        a.keys
            .set(Context::Dashboard, KeyAction::Freeze, vec![seq("x")])
            .unwrap();
        a.keys
            .set(Context::Dashboard, KeyAction::Refresh, vec![seq("z z")])
            .unwrap();
        a.update(key('f'));
        assert!(a.dialog.is_none(), "f is no longer freeze");
        a.update(key('x'));
        assert!(matches!(a.dialog, Some(Dialog::Freeze(_))));
        a.update(key('n'));
        assert!(a.dialog.is_none());
        // One z waits; the second one refreshes.
        a.update(Action::Tick { now_ms: NOW_MS });
        a.update(Action::Machines(Ok(mixed())));
        let fx = a.update(key('z'));
        assert!(fx.commands.is_empty());
        assert_eq!(a.pending_keys, [KeyChord::ch('z')]);
        let fx = a.update(key('z'));
        assert_eq!(fx.commands, [Command::Discover]);
        assert!(a.pending_keys.is_empty());
        // A key that does not continue the sequence acts on its own.
        a.update(key('z'));
        a.update(key('x'));
        assert!(a.pending_keys.is_empty());
        assert!(matches!(a.dialog, Some(Dialog::Freeze(_))));
        // The status bar shows the bound key.
        assert!(a
            .keys
            .status_hints(Context::Dashboard)
            .contains(&("x".to_string(), "freeze")));
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

    #[test]
    fn m_turns_the_mouse_off_and_on() {
        let mut a = with_machines(80, 24);
        assert!(a.mouse);
        let fx = a.update(key('m'));
        assert_eq!(fx.commands, [Command::SetMouse(false)]);
        assert!(!a.mouse);
        a.update(key('h'));
        let fx = a.update(key('m'));
        assert_eq!(fx.commands, [Command::SetMouse(true)]);
    }

    #[test]
    fn stale_and_foreign_events_are_ignored() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::ExecTar);
        let before = a.freezes.clone();
        a.update(Action::Freeze(FreezeEvent::StageStarted {
            id: "unknown".into(),
            stage: Stage::Pack,
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
    fn history_open_search_and_save() {
        let mut a = with_machines(100, 30);
        // The first read (at start) answered; opening the view reads again.
        a.update(Action::HistoryLoaded(Ok(vec![])));
        let fx = a.update(key('h'));
        assert_eq!(a.view, View::History);
        assert_eq!(fx.commands, [Command::LoadHistory]);
        a.update(Action::HistoryLoaded(Ok(records())));
        a.update(key('j'));
        let fx = a.update(code(KeyCode::Enter));
        let id = "20270115T050000Z-api-2222".to_string();
        assert_eq!(fx.commands, [Command::LoadRecord { id: id.clone() }]);
        // A late answer for another record is ignored.
        a.update(Action::RecordLoaded {
            id: "other".into(),
            result: Err("x".into()),
        });
        assert!(a
            .record
            .as_ref()
            .is_some_and(|r| r.record.is_none() && r.error.is_none()));
        a.update(Action::RecordLoaded {
            id: id.clone(),
            result: Ok(Box::new(LoadedRecord {
                record: records()[1].clone(),
                logs: failed_logs(),
            })),
        });
        let rv = a.record.clone().unwrap();
        // Failed stage first.
        let first_title = rv.lines.iter().find(|l| l.kind == DocKind::Title).unwrap();
        assert!(
            first_title.text.contains("build log (failed"),
            "{}",
            first_title.text
        );
        a.update(key('/'));
        typed(&mut a, "NO SPACE");
        a.update(code(KeyCode::Enter));
        let s = &a.record.as_ref().unwrap().search;
        assert_eq!(s.matches.len(), 3);
        assert_eq!(s.current, Some(0));
        a.update(key('n'));
        a.update(key('n'));
        a.update(key('n'));
        assert_eq!(
            a.record.as_ref().unwrap().search.current,
            Some(0),
            "n wraps around"
        );
        a.update(key('N'));
        assert_eq!(
            a.record.as_ref().unwrap().search.current,
            Some(2),
            "N wraps back"
        );
        let fx = a.update(key('s'));
        assert!(
            matches!(&fx.commands[..], [Command::SaveLog { id: i, text }] if *i == id && text.contains("no space left on device"))
        );
        a.update(Action::LogSaved(Ok("/work/bottle-freeze-x.log".into())));
        assert!(a
            .flash
            .as_ref()
            .is_some_and(|f| f.text.contains("/work/bottle-freeze-x.log")));
        a.update(code(KeyCode::Esc));
        assert_eq!(a.view, View::History);
        a.update(code(KeyCode::Esc));
        assert_eq!(a.view, View::Dashboard);
    }

    #[test]
    fn search_hits_are_highlighted() {
        let mut a = with_machines(100, 30);
        a.view = View::Record;
        a.record = Some(RecordView::new(records()[1].clone(), failed_logs()));
        a.update(key('/'));
        typed(&mut a, "space");
        let t = render(&a);
        let buf = t.backend().buffer();
        let mut hits = 0;
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                let c = &buf[(x, y)];
                if c.bg == crate::ui::theme::MATCH.bg.unwrap()
                    || c.bg == crate::ui::theme::CURRENT_MATCH.bg.unwrap()
                {
                    hits += 1;
                }
            }
        }
        assert_eq!(hits, 3 * "space".len());
    }

    #[test]
    fn stopped_machines_are_dimmed_and_states_coloured() {
        let a = with_machines(100, 30);
        let t = render(&a);
        let buf = t.backend().buffer();
        let find = |needle: &str| {
            (0..buf.area.height).find_map(|y| {
                let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
                row.find(needle)
                    .map(|i| (row[..i].chars().count() as u16, y))
            })
        };
        let (x, y) = find("stopped").unwrap();
        assert_eq!(buf[(x, y)].fg, ratatui::style::Color::DarkGray);
        let (x, y) = find(" db ").unwrap();
        assert_eq!(buf[(x + 1, y)].fg, ratatui::style::Color::DarkGray);
        let (x, y) = find(" api ").unwrap();
        assert_ne!(buf[(x + 1, y)].fg, ratatui::style::Color::DarkGray);
        let (x, y) = find("failed").unwrap();
        assert_eq!(buf[(x, y)].fg, ratatui::style::Color::Red);
    }

    #[test]
    fn clicks_select_and_the_wheel_moves() {
        let mut a = with_machines(100, 30);
        let d = a.dashboard_layout();
        let rows = crate::ui::machines_pane::rows_area(d.machines, &a);
        // The second row is api.
        a.update(Action::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: rows.x + 3,
            row: rows.y + 1,
            modifiers: KeyModifiers::NONE,
        }));
        assert_eq!(a.machines.selected.as_deref(), Some("bot-bottle-api"));
        a.update(Action::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: rows.x + 3,
            row: rows.y,
            modifiers: KeyModifiers::NONE,
        }));
        assert_eq!(a.machines.selected.as_deref(), Some("bot-bottle-broken"));
        // In the history list too.
        a.update(key('h'));
        a.update(Action::HistoryLoaded(Ok(records())));
        a.update(Action::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 5,
            row: 4,
            modifiers: KeyModifiers::NONE,
        }));
        assert_eq!(a.history.selected, 2);
    }

    #[test]
    fn help_opens_scrolls_and_closes() {
        let mut a = with_machines(80, 24);
        a.update(key('?'));
        assert_eq!(a.help, Some(0));
        a.update(key('j'));
        assert_eq!(a.help, Some(1));
        // Keys of the dashboard do nothing under the help.
        let fx = a.update(key('f'));
        assert!(fx.commands.is_empty() && a.dialog.is_none());
        a.update(key('q'));
        assert_eq!(a.help, None);
        assert!(!a.should_exit());
    }

    #[test]
    fn every_binding_is_in_the_help() {
        let a = with_machines(80, 24);
        let text: String = crate::ui::help::lines(&a)
            .iter()
            .map(|l| {
                l.spans
                    .iter()
                    .map(|s| s.content.to_string())
                    .collect::<String>()
                    + "\n"
            })
            .collect();
        for ctx in crate::ui::keys::Context::ALL {
            for b in a.keys.bindings(ctx) {
                assert!(text.contains(b.help), "{:?} {:?} missing", ctx, b.action);
            }
        }
    }
}
