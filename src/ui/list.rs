//! The machine list: discovery answers, the filter, the sort and the selection.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::*;
use super::state::*;
use super::theme::guard;
use crate::freeze::Stage;
use crate::history::{Outcome, Record};
use crate::machines::BottleMachine;

/// The newest freeze of a machine, from the history or this session.
#[derive(Debug, Clone, PartialEq)]
pub struct LastFreeze {
    pub outcome: Outcome,
    /// End (or start) time, Unix ms.
    pub at_ms: u64,
    pub failed_stage: Option<Stage>,
    /// A freeze another process runs (the CLI, another operator): what its record says.
    pub elsewhere: Option<Elsewhere>,
}

/// A running freeze of another process, as its record (saved every second) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elsewhere {
    pub stage: Option<Stage>,
    pub bytes: u64,
    /// The process that holds the machine's lock.
    pub pid: u32,
}

impl LastFreeze {
    pub fn of(r: &Record) -> LastFreeze {
        LastFreeze {
            outcome: r.outcome,
            at_ms: r.ended_at_ms.unwrap_or(r.started_at_ms),
            failed_stage: r.failure.as_ref().map(|f| f.stage),
            // Our own runs are shown from their events; a record of ours that still says
            // running is one the loader has not seen end yet.
            elsewhere: (r.outcome == Outcome::Running && r.pid != std::process::id()).then(|| {
                Elsewhere {
                    stage: r
                        .stages
                        .iter()
                        .rev()
                        .find(|s| s.status == crate::history::StageStatus::Running)
                        .map(|s| s.stage),
                    bytes: r
                        .stages
                        .iter()
                        .find(|s| s.status == crate::history::StageStatus::Running)
                        .map_or(r.bytes, |s| {
                            s.bytes.max(if s.stage == Stage::ExecTar {
                                r.bytes
                            } else {
                                0
                            })
                        }),
                    pid: r.pid,
                }
            }),
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

impl App {
    pub fn age_secs(&self, m: &BottleMachine) -> Option<u64> {
        m.age(self.now_time()).map(|d| d.as_secs())
    }

    pub(super) fn matches_filter(&self, m: &BottleMachine) -> bool {
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

    pub(super) fn on_machines(&mut self, r: Result<Vec<BottleMachine>, String>, fx: &mut Effects) {
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
        // Each refresh also looks for freezes started since the history was read: without
        // it, a CLI freeze begun after the dashboard opened never showed.
        if self.history.loaded && !self.history.loading {
            fx.commands.push(Command::RecheckHistory);
        }
        self.fix_selection();
        fx.redraw = true;
    }

    /// Keeps the selection on a visible machine: the same one if it is still there,
    /// else the one now at its place.
    pub(super) fn fix_selection(&mut self) {
        let visible: Vec<String> = self
            .visible()
            .iter()
            .map(|m| m.machine.name.clone())
            .collect();
        if visible.is_empty() {
            // Nothing shown, nothing selected: no pane or key acts on a hidden machine.
            // (Before the first list, a chosen first selection waits for it.)
            if self.machines.list.is_empty() {
                return;
            }
            if self.machines.selected.take().is_some() {
                self.tail_view = TailView {
                    wrap: self.tail_view.wrap,
                    ..TailView::default()
                };
            }
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

    pub(super) fn select_index(&mut self, i: usize, visible: &[String]) {
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

    pub(super) fn move_selection(&mut self, delta: isize) {
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

    pub(super) fn edit_filter(&mut self, key: KeyEvent) {
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
}

#[cfg(test)]
mod tests {

    use crossterm::event::KeyCode;

    use super::*;

    use crate::ui::fixtures::*;

    #[test]
    fn a_first_selection_waits_for_the_list_and_purposes_show() {
        let mut a = app(120, 30);
        a.machines.selected = Some("bot-bottle-db".into());
        a.purposes.insert(
            "bot-bottle-db".into(),
            "stopped: listed, not freezable".into(),
        );
        a.update(Action::Tick { now_ms: NOW_MS });
        a.update(Action::Machines(Ok(mixed())));
        assert_eq!(a.machines.selected.as_deref(), Some("bot-bottle-db"));
        assert!(screen(&a).contains("demo: stopped: listed, not freezable"));
    }

    #[test]
    fn a_filter_hiding_every_machine_clears_the_selection() {
        let mut a = with_machines(120, 30);
        select(&mut a, "bot-bottle-web");
        a.update(key('/'));
        for c in "zzz".chars() {
            a.update(key(c));
        }
        a.update(code(KeyCode::Enter));
        assert_eq!(a.machines.selected, None);
        assert!(a.selected_freeze().is_none());
        let fx = a.update(key('f'));
        assert!(a.dialog.is_none() && fx.commands.is_empty());
        assert!(!screen(&a).contains("bot-bottle-web · running"));
        // Clearing the filter selects again.
        a.update(key('/'));
        a.update(code(KeyCode::Esc));
        assert!(a.machines.selected.is_some());
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
    fn each_refresh_looks_for_freezes_started_since_the_history_was_read() {
        let mut a = App::new(settings(), crate::ui::keys::KeyMap::defaults());
        a.update(Action::Tick { now_ms: NOW_MS });
        // The history is still loading: no second read is asked for.
        let fx = a.update(Action::Machines(Ok(mixed())));
        assert!(!fx.commands.contains(&Command::RecheckHistory));
        a.update(Action::HistoryLoaded(Ok(vec![])));
        a.update(key('r'));
        let fx = a.update(Action::Machines(Ok(mixed())));
        assert!(fx.commands.contains(&Command::RecheckHistory), "{fx:?}");
        let fx = a.update(Action::Machines(Err("timeout".into())));
        assert!(fx.commands.contains(&Command::RecheckHistory), "{fx:?}");
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
        assert_eq!(buf[(x, y)].fg, ratatui::style::Color::LightRed);
    }
}
