//! The fleet in the dashboard: one state per configured smolvm host, each refreshed on
//! its own schedule and with its own timeout, so a slow or dead host holds back only its
//! own rows. With no hosts configured this is empty and the machine list works as it
//! always did (one `machine ls` through the local CLI).

use super::app::*;
use super::theme::guard;
use crate::machines::BottleMachine;
use crate::sanitize::escape_str;

/// One configured host as the dashboard sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    pub label: String,
    /// Where it is reached, for people (`http://127.0.0.1:7070`, `smolvm CLI`).
    pub address: String,
    /// The local smolvm CLI (its machines carry no host label, as its records do).
    pub local: bool,
    /// smolvm's version from `/health` (API hosts).
    pub version: Option<String>,
    /// Why the last refresh failed; while set, the host is unreachable and its rows grey.
    pub error: Option<String>,
    /// Bot-bottle machines at the last successful refresh.
    pub machines: Option<usize>,
    pub last_ok_ms: Option<u64>,
    /// When the last answer (or failure) arrived.
    pub last_answer_ms: Option<u64>,
    /// A refresh of this host is under way since then.
    pub refreshing_since: Option<u64>,
    pub next_refresh_ms: u64,
}

impl HostState {
    pub fn new(label: &str, address: &str, local: bool) -> HostState {
        HostState {
            label: label.to_string(),
            address: address.to_string(),
            local,
            version: None,
            error: None,
            machines: None,
            last_ok_ms: None,
            last_answer_ms: None,
            refreshing_since: None,
            next_refresh_ms: 0,
        }
    }

    /// Answered and its last refresh failed.
    pub fn is_down(&self) -> bool {
        self.error.is_some()
    }

    /// The label machines of this host carry (None for the local CLI).
    fn machine_label(&self) -> Option<&str> {
        (!self.local).then_some(self.label.as_str())
    }
}

impl App {
    /// Hosts are configured: the list comes from each of them.
    pub fn is_fleet(&self) -> bool {
        !self.fleet.is_empty()
    }

    /// More than one host: rows say which host they are on.
    pub fn shows_hosts(&self) -> bool {
        self.fleet.len() > 1
    }

    /// The host a listed machine is on.
    pub fn host_of(&self, m: &BottleMachine) -> Option<&HostState> {
        match &m.host {
            Some(l) => self
                .fleet
                .iter()
                .find(|h| !h.local && h.label == l.as_str()),
            None => self.fleet.iter().find(|h| h.local),
        }
    }

    /// The label shown in the HOST column and matched by `@host` filters.
    pub fn host_label<'a>(&'a self, m: &'a BottleMachine) -> &'a str {
        match &m.host {
            Some(l) => l.as_str(),
            None => self
                .fleet
                .iter()
                .find(|h| h.local)
                .map_or(crate::hosts::LOCAL, |h| h.label.as_str()),
        }
    }

    /// Its host did not answer the last refresh.
    pub fn host_down(&self, m: &BottleMachine) -> bool {
        self.host_of(m).is_some_and(HostState::is_down)
    }

    /// Asks every host whose turn it is (and that is not already being asked).
    pub(super) fn schedule_hosts(&mut self, now_ms: u64, all_now: bool, fx: &mut Effects) {
        for h in &mut self.fleet {
            if h.refreshing_since.is_none() && (all_now || now_ms >= h.next_refresh_ms) {
                h.refreshing_since = Some(now_ms);
                fx.commands.push(Command::DiscoverHost {
                    label: h.label.clone(),
                });
            }
        }
    }

    /// One host answered: its rows are replaced (or, when it failed, kept and greyed).
    pub(super) fn on_host_listed(&mut self, listed: HostListed, fx: &mut Effects) {
        let now = self.now_ms;
        let every = self.settings.refresh_ms;
        let Some(h) = self.fleet.iter_mut().find(|h| h.label == listed.label) else {
            return;
        };
        h.refreshing_since = None;
        h.next_refresh_ms = now + every;
        h.last_answer_ms = Some(now);
        if listed.version.is_some() {
            h.version = listed.version.map(|v| guard(&v));
        }
        let label = h.machine_label().map(str::to_string);
        match listed.machines {
            Ok(mut list) => {
                h.error = None;
                h.last_ok_ms = Some(now);
                h.machines = Some(list.len());
                let mine =
                    |m: &BottleMachine| m.host.as_ref().map(|s| s.as_str()) == label.as_deref();
                self.machines.list.retain(|m| !mine(m));
                self.machines.list.append(&mut list);
            }
            Err(e) => h.error = Some(guard(&e)),
        }
        self.machines.loaded = true;
        // As the single-host refresh: a freeze started elsewhere since the last read shows.
        if self.history.loaded && !self.history.loading {
            fx.commands.push(Command::RecheckHistory);
        }
        self.fix_selection();
        fx.redraw = true;
    }

    /// Why a machine's host cannot be asked to freeze it, if it cannot.
    pub(super) fn host_refusal(&self, m: &BottleMachine) -> Option<String> {
        let h = self.host_of(m)?;
        let why = h.error.as_deref()?;
        Some(format!(
            "host {} is unreachable ({}); its rows are from its last answer",
            escape_str(&h.label),
            why
        ))
    }

    /// Text of the hosts' lines that changes with the clock (ages, lateness).
    pub(super) fn fleet_clock_text(&self) -> String {
        let mut s = String::new();
        for h in &self.fleet {
            if let Some(t) = h.last_answer_ms {
                s.push_str(&crate::format::age(self.now_ms.saturating_sub(t) / 1000));
            }
            if let Some(since) = h.refreshing_since {
                let late = self.now_ms.saturating_sub(since);
                if late >= LATE_MS {
                    s.push_str(&(late / 1000).to_string());
                }
            }
        }
        s
    }
}

/// A host's answer, for [`Action::HostListed`].
#[derive(Debug, Clone, PartialEq)]
pub struct HostListed {
    pub label: String,
    /// smolvm's version (`/health`), when it said.
    pub version: Option<String>,
    pub machines: Result<Vec<BottleMachine>, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::*;
    use crate::ui::state::*;

    #[test]
    fn each_host_is_asked_on_its_own_schedule() {
        let mut a = fleet_app(120, 30);
        let fx = a.update(Action::Tick { now_ms: NOW_MS });
        let asked: Vec<_> = fx
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::DiscoverHost { label } => Some(label.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(asked, ["local", "build", "old"]);
        assert!(!fx.commands.contains(&Command::Discover));
        // build answers; local and old are still being asked: only build is asked again.
        a.update(host_listed("build", &[("web", "running")]));
        let fx = a.update(Action::Tick {
            now_ms: NOW_MS + 3_000,
        });
        assert_eq!(
            fx.commands,
            [Command::DiscoverHost {
                label: "build".into()
            }]
        );
        // r asks the hosts that are not being asked already.
        a.update(host_listed("build", &[("web", "running")]));
        let fx = a.update(key('r'));
        assert_eq!(
            fx.commands,
            [Command::DiscoverHost {
                label: "build".into()
            }]
        );
    }

    #[test]
    fn a_failed_host_keeps_its_rows_greyed_and_refuses_freezes() {
        let mut a = fleet_loaded(120, 30);
        assert_eq!(a.visible().len(), 5);
        a.update(Action::HostListed(HostListed {
            label: "old".into(),
            version: None,
            machines: Err("connection refused".into()),
        }));
        assert_eq!(a.visible().len(), 5, "the rows stay");
        select(&mut a, "old/bot-bottle-web");
        assert!(a.host_down(a.selected_machine().unwrap()));
        let fx = a.update(key('f'));
        assert!(a.dialog.is_none() && fx.commands.is_empty());
        let flash = a.flash.clone().unwrap().text;
        assert!(flash.contains("host old is unreachable"), "{flash}");
        // Other hosts' machines still freeze.
        select(&mut a, "build/bot-bottle-web");
        a.update(key('f'));
        assert!(
            matches!(&a.dialog, Some(Dialog::Freeze(d)) if d.machine == "build/bot-bottle-web"
            && d.artifact.ends_with("build/web/committed-smolmachine.smolmachine"))
        );
        let fx = a.update(key('y'));
        assert!(
            matches!(&fx.commands[..], [Command::StartFreeze { machine, host: Some(h), .. }]
            if machine == "build/bot-bottle-web" && h.as_str() == "build")
        );
    }

    #[test]
    fn the_same_name_on_two_hosts_is_two_machines() {
        let mut a = fleet_loaded(120, 30);
        let keys: Vec<String> = a.visible().iter().map(|m| m.key()).collect();
        assert_eq!(
            keys,
            [
                "build/bot-bottle-api",
                "build/bot-bottle-web",
                "bot-bottle-db",
                "old/bot-bottle-cache",
                "old/bot-bottle-web",
            ],
            "grouped by host (local's label sorts between build and old)"
        );
        let web = a.visible()[1];
        assert!(web.is_key("build/bot-bottle-web"));
        assert!(!web.is_key("bot-bottle-web") && !web.is_key("old/bot-bottle-web"));
        assert!(!web.is_key("buildx/bot-bottle-web") && !web.is_key("build/bot-bottle-we"));
        // A refresh of one host replaces only its rows.
        a.update(host_listed("build", &[("web", "running")]));
        assert_eq!(a.visible().len(), 4);
        assert_eq!(a.fleet[1].machines, Some(1));
    }

    #[test]
    fn a_list_longer_than_the_pane_scrolls_to_the_selection() {
        let mut a = fleet_app(100, 24);
        a.update(Action::Tick { now_ms: NOW_MS });
        let many: Vec<(String, &str)> = (0..40).map(|i| (format!("m{i:02}"), "running")).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(s, st)| (s.as_str(), *st)).collect();
        a.update(host_listed("build", &many));
        for _ in 0..30 {
            a.update(key('j'));
        }
        assert_eq!(a.machines.selected.as_deref(), Some("build/bot-bottle-m30"));
        let s = screen(&a);
        let selected: Vec<&str> = s.lines().filter(|l| l.contains('›')).collect();
        assert_eq!(selected.len(), 1, "{s}");
        assert!(selected[0].contains("m30"), "{s}");
        assert!(!s.contains(" m00 "), "scrolled: {s}");
    }

    #[test]
    fn a_record_of_another_host_belongs_to_that_host_s_machine() {
        use crate::history::{Kind, Outcome, Record};
        let mut a = fleet_loaded(140, 30);
        let mut r = Record::new(
            "20270115T070000Z-web-2222",
            Kind::Freeze,
            "bot-bottle-web",
            "web",
        );
        r.host = Some("old".into());
        r.started_at_ms = NOW_MS - 600_000;
        r.ended_at_ms = Some(NOW_MS - 540_000);
        r.outcome = Outcome::Succeeded;
        a.update(Action::HistoryLoaded(Ok(vec![r])));
        assert!(a.last_freeze.contains_key("old/bot-bottle-web"));
        assert!(!a.last_freeze.contains_key("bot-bottle-web"));
        select(&mut a, "old/bot-bottle-web");
        let s = screen(&a);
        let line = |host: &str| {
            s.lines()
                .find(|l| {
                    let w: Vec<&str> = l
                        .trim_start_matches(['│', '›', ' '])
                        .split_whitespace()
                        .collect();
                    w.len() > 1 && w[0] == host && w[1] == "web"
                })
                .unwrap()
                .to_string()
        };
        assert!(line("old").contains("ok"), "{s}");
        assert!(line("build").contains(" - "), "{s}");
        a.update(key('h'));
        assert!(screen(&a).contains("old/web"), "{}", screen(&a));
        // Its record's actions act on that host's machine.
        let fx = a.update(key('f'));
        assert!(
            matches!(&a.dialog, Some(Dialog::Freeze(d)) if d.machine == "old/bot-bottle-web"),
            "{:?}",
            a.dialog
        );
        assert!(
            matches!(&fx.commands[..], [Command::ProbeSpace { name, host: Some(h), .. }]
            if name == "bot-bottle-web" && h.as_str() == "old")
        );
    }

    #[test]
    fn at_host_filters_and_sorting_by_host_groups() {
        let mut a = fleet_loaded(120, 30);
        a.update(key('/'));
        typed(&mut a, "@old");
        let keys: Vec<String> = a.visible().iter().map(|m| m.key()).collect();
        assert_eq!(keys, ["old/bot-bottle-cache", "old/bot-bottle-web"]);
        typed(&mut a, " web");
        let keys: Vec<String> = a.visible().iter().map(|m| m.key()).collect();
        assert_eq!(keys, ["old/bot-bottle-web"]);
        a.update(code(crossterm::event::KeyCode::Esc));
        // A plain word matches the host's label too.
        a.update(key('/'));
        typed(&mut a, "buil");
        assert_eq!(a.visible().len(), 2);
        a.update(code(crossterm::event::KeyCode::Esc));
        // The sort cycle has the host in a fleet, and only there.
        assert_eq!(a.machines.sort, SortKey::Host);
        a.update(key('o'));
        assert_eq!(a.machines.sort, SortKey::Name);
        // The help says how.
        let help: String = crate::ui::help::lines(&a)
            .iter()
            .flat_map(|l| l.spans.iter().map(|s| s.content.to_string()))
            .collect();
        assert!(help.contains("@LABEL"), "{help}");
        let single = with_machines(80, 24);
        let mut k = single.machines.sort;
        for _ in 0..10 {
            k = k.next(single.is_fleet());
            assert_ne!(k, SortKey::Host);
        }
    }

    #[test]
    fn host_lines_show_version_reachability_count_and_age() {
        let mut a = fleet_loaded(120, 30);
        a.update(Action::HostListed(HostListed {
            label: "old".into(),
            version: None,
            machines: Err("connection refused\u{1b}[31m".into()),
        }));
        a.update(Action::Tick {
            now_ms: NOW_MS + 5_000,
        });
        let s = screen(&a);
        assert!(s.contains("build"), "{s}");
        assert!(s.contains("smolvm 1.32.2"), "{s}");
        assert!(s.contains("2 machines"), "{s}");
        assert!(
            s.contains("unreachable, last answer 5s ago: connection refused"),
            "{s}"
        );
        assert!(!s.contains('\u{1b}'));
        assert!(s.contains("HOST"), "{s}");
        // The unreachable host's rows are grey, the others are not.
        let t = render(&a);
        let buf = t.backend().buffer();
        let row_of = |needle: &str| {
            (0..buf.area.height)
                .find(|&y| {
                    let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
                    row.contains(needle) && row.contains("running")
                })
                .unwrap()
        };
        let fg = |y: u16| buf[(3, y)].fg;
        assert_eq!(fg(row_of("cache")), ratatui::style::Color::DarkGray);
        assert_ne!(fg(row_of(" api ")), ratatui::style::Color::DarkGray);
        // Its state is grey too (not running's green), and its host is marked.
        let state_fg = |y: u16| {
            let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
            let x = row.find("running").unwrap();
            buf[(row[..x].chars().count() as u16, y)].fg
        };
        assert_eq!(state_fg(row_of("cache")), ratatui::style::Color::DarkGray);
        assert_ne!(state_fg(row_of(" api ")), ratatui::style::Color::DarkGray);
        assert!(
            s.lines()
                .any(|l| l.contains("old ✗") && l.contains("cache")),
            "{s}"
        );
        assert!(!s.lines().any(|l| l.contains("build ✗")), "{s}");
    }
}
