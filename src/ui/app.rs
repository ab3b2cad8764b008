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
use crate::freeze::{FreezeEvent, Stage};
use crate::history::Record;
use crate::machines::BottleMachine;
use crate::names::Slug;

/// How long a status-bar message stays.
pub const FLASH_MS: u64 = 6_000;
/// How long quitting waits for cancelled freezes to clean up before it gives up.
pub const QUIT_GRACE_MS: u64 = 30_000;
/// A discovery slower than this shows as late.
pub const LATE_MS: u64 = 2_000;
/// Lines a mouse wheel notch scrolls.
pub const WHEEL_LINES: u64 = 3;

/// How often the records of freezes run by other processes are read again.
pub const ELSEWHERE_READ_MS: u64 = 2_000;

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
    /// A desktop notification (OSC 9 / OSC 777) when a freeze ends.
    pub notify: bool,
    /// The newest records of each machine that a prune keeps.
    pub prune_keep: usize,
    /// A stream without bytes this long is shown as stalled.
    pub stall_after_ms: u64,
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
    /// The freeze dialog's other pre-checks: the parts the configured path needs (Docker,
    /// a registry) and the state folder's free space.
    Checks {
        machine: String,
        parts: Vec<crate::freeze::PreCheck>,
        state_free: Result<u64, String>,
        /// The temp and state folders are on one filesystem.
        same_disk: bool,
    },
    /// A record's kept work was discarded (what was done, or why not).
    Discarded {
        id: String,
        result: Result<String, String>,
    },
    /// What a prune would remove.
    PrunePlanned(Result<crate::freeze::PrunePlan, String>),
    /// What a prune removed.
    Pruned(crate::freeze::PruneReport),
    Freeze(FreezeEvent),
    /// A freeze's task returned (after its events); `error` when it died abnormally.
    FreezeEnded {
        machine: String,
        error: Option<String>,
    },
    HistoryLoaded(Result<Vec<Record>, String>),
    /// Record folders the history could not use (folder and why), found while loading it.
    HistoryDamaged(Vec<(String, String)>),
    RecordLoaded {
        id: String,
        result: Result<Box<LoadedRecord>, String>,
    },
    LogSaved(Result<PathBuf, String>),
    /// What `doctor` found on this host: the parts' versions for the title, and one line
    /// naming what is missing, if anything.
    Host {
        versions: String,
        missing: Option<String>,
    },
    /// The records whose logs contain `text`.
    LogHits {
        text: String,
        ids: Vec<String>,
    },
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
    /// Resume the failed freeze `id` of `machine` from what it kept.
    Resume {
        machine: String,
        id: String,
    },
    /// Drop what the failed freeze `id` kept (`bottle-freeze discard`).
    Discard {
        id: String,
    },
    /// Plan a prune of the history keeping the newest `keep` records of each machine
    /// (nothing is removed).
    PlanPrune {
        keep: usize,
    },
    /// Remove what the plan names.
    Prune(crate::freeze::PrunePlan),
    CancelAll,
    LoadHistory,
    /// Read the history again if it changed since the last read (a freeze started elsewhere
    /// after the dashboard opened): a stat each refresh, a full read only on change.
    RecheckHistory,
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
    /// Find the records whose logs contain `text` (lowercase).
    SearchLogs {
        text: String,
    },
    /// Put `text` on the terminal's clipboard (OSC 52).
    Copy(String),
    /// A desktop notification (OSC 9 and OSC 777) beside the bell.
    Notify(String),
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
    /// smolvm's, Docker's and the registry's versions, once looked up.
    pub host_versions: Option<String>,
    /// What this host lacks (from `doctor`), shown under the machine list.
    pub host_missing: Option<String>,
    /// What each machine is for, by machine name (the demo's fleet).
    pub purposes: HashMap<String, String>,
}

pub(super) fn is_ctrl_c(k: &KeyEvent) -> bool {
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
            host_versions: None,
            host_missing: None,
            purposes: HashMap::new(),
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

    pub(super) fn now_time(&self) -> std::time::SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_ms)
    }

    /// Every text on screen that depends on the clock, to redraw only when it changes.
    pub(super) fn clock_text(&self) -> String {
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
            } => self.on_space(&machine, tmp_free, estimate, &mut fx),
            Action::Checks {
                machine,
                parts,
                state_free,
                same_disk,
            } => self.on_checks(&machine, parts, state_free, same_disk, &mut fx),
            Action::Discarded { id, result } => self.on_discarded(&id, result, &mut fx),
            Action::PrunePlanned(r) => self.on_prune_planned(r, &mut fx),
            Action::Pruned(r) => self.on_pruned(r, &mut fx),
            Action::Freeze(ev) => self.on_freeze_event(ev, &mut fx),
            Action::FreezeEnded { machine, error } => {
                self.on_freeze_ended(&machine, error, &mut fx)
            }
            Action::HistoryLoaded(r) => self.on_history_loaded(r, &mut fx),
            Action::HistoryDamaged(d) => self.on_history_damaged(&d, &mut fx),
            Action::RecordLoaded { id, result } => self.on_record_loaded(&id, result, &mut fx),
            Action::LogSaved(r) => self.on_log_saved(r, &mut fx),
            Action::Host { versions, missing } => {
                self.host_versions = Some(versions);
                self.host_missing = missing;
                fx.redraw = true;
            }
            Action::LogHits { text, ids } => self.on_log_hits(text, ids, &mut fx),
            Action::Terminate => {
                self.help = None;
                self.dialog = None;
                self.confirm_quit(&mut fx);
            }
        }
        fx
    }

    pub(super) fn flash(&mut self, level: Level, text: impl Into<String>) {
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

    pub(super) fn on_tick(&mut self, now_ms: u64, fx: &mut Effects) {
        let before = self.clock_text();
        self.now_ms = now_ms;
        for f in self.freezes.values_mut() {
            if !f.phase.is_finished() && f.current == Some(crate::freeze::Stage::ExecTar) {
                f.throughput.advance(now_ms);
            }
        }
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
        // A freeze run by another process is followed from its record.
        let elsewhere = self.last_freeze.values().any(|l| l.elsewhere.is_some());
        if elsewhere
            && !self.history.loading
            && now_ms.saturating_sub(self.history.read_at_ms) >= ELSEWHERE_READ_MS
        {
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

    // ----- freeze events -------------------------------------------------------------

    // ----- keys ----------------------------------------------------------------------

    pub(super) fn on_key(&mut self, key: KeyEvent, fx: &mut Effects) {
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
            if self.view == View::History && self.history.filter_editing {
                self.edit_history_filter(key, fx);
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
            self.help = None;
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

    pub(super) fn interrupt(&mut self, fx: &mut Effects) {
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

    pub(super) fn request_quit(&mut self) {
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

    pub(super) fn confirm_quit(&mut self, fx: &mut Effects) {
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

    pub(super) fn help_key(&mut self, action: KeyAction) {
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

    pub(super) fn dashboard_key(&mut self, action: KeyAction, fx: &mut Effects) {
        match action {
            KeyAction::Up => self.move_selection(-1),
            KeyAction::Down => self.move_selection(1),
            KeyAction::Top => self.move_selection(isize::MIN / 2),
            KeyAction::Freeze => self.open_freeze_dialog(fx),
            KeyAction::Open => self.open_last_record(fx),
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

    // ----- mouse ---------------------------------------------------------------------

    pub(super) fn on_mouse(&mut self, m: MouseEvent, fx: &mut Effects) {
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

#[cfg(test)]
mod tests {
    use crossterm::event::KeyModifiers;
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};

    use super::*;
    use crate::freeze::Stage;
    use crate::ui::fixtures::*;

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
        a.update(key('?'));
        assert_eq!(a.help, None);
        // One rule for q: it quits, from help too.
        a.update(key('?'));
        a.update(key('q'));
        assert_eq!(a.help, None);
        assert!(a.should_exit());
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
