//! The history list and the record view: loading, paging, search and saving a log.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::*;
use super::freeze_view::session_last;
use super::keys::KeyAction;
use super::layout;
use super::state::*;
use super::theme::guard;
use crate::freeze::Stage;
use crate::history::{when, Kind, Outcome, Record, StageStatus};
use crate::sanitize::escape_str;

/// Which outcomes the history list shows (`o` cycles).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutcomeFilter {
    #[default]
    All,
    Failed,
    Cancelled,
    Succeeded,
}

impl OutcomeFilter {
    pub fn next(self) -> OutcomeFilter {
        match self {
            OutcomeFilter::All => OutcomeFilter::Failed,
            OutcomeFilter::Failed => OutcomeFilter::Cancelled,
            OutcomeFilter::Cancelled => OutcomeFilter::Succeeded,
            OutcomeFilter::Succeeded => OutcomeFilter::All,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OutcomeFilter::All => "all",
            OutcomeFilter::Failed => "failed",
            OutcomeFilter::Cancelled => "cancelled",
            OutcomeFilter::Succeeded => "succeeded",
        }
    }

    fn matches(self, o: Outcome) -> bool {
        match self {
            OutcomeFilter::All => true,
            OutcomeFilter::Failed => matches!(o, Outcome::Failed | Outcome::Interrupted),
            OutcomeFilter::Cancelled => o == Outcome::Cancelled,
            OutcomeFilter::Succeeded => {
                matches!(o, Outcome::Succeeded | Outcome::SucceededWithWarnings)
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryState {
    pub records: Vec<Record>,
    /// Indices into `records` of the rows shown: filtered, freezes first, then exports.
    pub visible: Vec<usize>,
    pub filter: String,
    pub filter_editing: bool,
    pub outcome: OutcomeFilter,
    /// Ids whose logs contain the text (lowercase) of the last log search.
    pub log_hits: Option<(String, std::collections::HashSet<String>)>,
    pub loaded: bool,
    pub loading: bool,
    pub error: Option<String>,
    pub selected: usize,
    /// App clock of the last read, to follow freezes run elsewhere.
    pub read_at_ms: u64,
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
        RecordView::with_previous(record, logs, None)
    }

    /// As [`RecordView::new`], with what changed since `previous` (the machine's previous
    /// successful freeze) before the logs.
    pub fn with_previous(
        record: Record,
        logs: Vec<(Stage, Option<String>)>,
        previous: Option<&Record>,
    ) -> RecordView {
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
        if let Some(found) = &record.credentials {
            for c in &found.listed {
                field(
                    K::Warning,
                    "secret?",
                    guard(&format!("{}  ({})", c.path, c.kind)),
                );
            }
            if found.more > 0 {
                field(K::Warning, "secret?", format!("… and {} more", found.more));
            }
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
        lines.extend(super::content_view::doc_lines(&record, previous));
        let order = record.stages_failed_first();
        let mut logs = logs;
        for stage in order {
            let status = record.stage(stage).status;
            if status == StageStatus::Skipped {
                // Said, not left out: a stage that never ran has a header and no log.
                lines.push(DocLine::new(K::Empty, ""));
                lines.push(DocLine::new(
                    K::Title,
                    format!("── {stage}: skipped (never ran) ──"),
                ));
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

impl App {
    pub(super) fn on_history_loaded(&mut self, r: Result<Vec<Record>, String>, fx: &mut Effects) {
        self.history.loading = false;
        self.history.read_at_ms = self.now_ms;
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
                self.refilter();
            }
            Err(e) => self.history.error = Some(guard(&e)),
        }
        fx.redraw = true;
    }

    /// Damaged records are not listed, but never silently: one line says so.
    pub(super) fn on_history_damaged(&mut self, damaged: &[(String, String)], fx: &mut Effects) {
        let Some((folder, why)) = damaged.first() else {
            return;
        };
        let more = match damaged.len() - 1 {
            0 => String::new(),
            n => format!(" (+{n} more)"),
        };
        self.flash(
            Level::Warn,
            format!(
                "damaged record {} not listed: {}{more}",
                guard(folder),
                guard(why)
            ),
        );
        fx.redraw = true;
    }

    pub(super) fn on_record_loaded(
        &mut self,
        id: &str,
        result: Result<Box<LoadedRecord>, String>,
        fx: &mut Effects,
    ) {
        if let Some(rv) = &self.record {
            if rv.id == id {
                self.record = Some(match result {
                    Ok(loaded) => {
                        let LoadedRecord { record, logs } = *loaded;
                        let previous =
                            crate::history::previous_success(&self.history.records, &record);
                        RecordView::with_previous(record, logs, previous)
                    }
                    Err(e) => RecordView {
                        error: Some(guard(&e)),
                        ..RecordView::loading(id)
                    },
                });
                fx.redraw = true;
            }
        }
    }

    pub(super) fn on_log_saved(&mut self, r: Result<PathBuf, String>, fx: &mut Effects) {
        match r {
            Ok(path) => self.flash(
                Level::Info,
                format!("log saved to {}", escape_str(&path.display().to_string())),
            ),
            Err(e) => self.flash(Level::Error, format!("log not saved: {}", guard(&e))),
        }
        fx.redraw = true;
    }

    /// Recomputes the rows shown, keeping the selected record when it is still shown.
    pub(super) fn refilter(&mut self) {
        let h = &mut self.history;
        let keep = h
            .visible
            .get(h.selected)
            .and_then(|i| h.records.get(*i))
            .map(|r| r.id.clone());
        let q = h.filter.trim().to_lowercase();
        let hits = h
            .log_hits
            .as_ref()
            .filter(|(t, _)| *t == q)
            .map(|(_, ids)| ids);
        let shown = |r: &Record| {
            if !h.outcome.matches(r.outcome) {
                return false;
            }
            if q.is_empty() {
                return true;
            }
            let fields = [
                r.machine.as_str(),
                r.slug.as_str(),
                r.id.as_str(),
                &r.outcome_text(),
                r.failure.as_ref().map_or("", |f| f.message.as_str()),
            ];
            fields.iter().any(|f| f.to_lowercase().contains(&q))
                || hits.is_some_and(|ids| ids.contains(&r.id))
        };
        let mut visible: Vec<usize> = (0..h.records.len())
            .filter(|i| shown(&h.records[*i]))
            .collect();
        // Exports are not freezes: listed apart, after them (the sort is stable).
        visible.sort_by_key(|i| h.records[*i].kind == Kind::Export);
        h.selected = keep
            .and_then(|id| visible.iter().position(|i| h.records[*i].id == id))
            .unwrap_or(0)
            .min(visible.len().saturating_sub(1));
        h.visible = visible;
    }

    /// The record of the selected row.
    pub fn selected_record(&self) -> Option<&Record> {
        let h = &self.history;
        h.records.get(*h.visible.get(h.selected)?)
    }

    pub(super) fn edit_history_filter(&mut self, key: KeyEvent, fx: &mut Effects) {
        match key.code {
            KeyCode::Esc => {
                self.history.filter.clear();
                self.history.filter_editing = false;
            }
            KeyCode::Enter => {
                self.history.filter_editing = false;
                let text = self.history.filter.trim().to_lowercase();
                if !text.is_empty() {
                    // The logs are searched in the background; their hits join when read.
                    fx.commands.push(Command::SearchLogs { text });
                }
            }
            KeyCode::Backspace => {
                self.history.filter.pop();
            }
            KeyCode::Char(c)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                    && self.history.filter.chars().count() < 64 =>
            {
                self.history.filter.push(c);
            }
            _ => {}
        }
        self.refilter();
    }

    pub(super) fn on_log_hits(&mut self, text: String, ids: Vec<String>, fx: &mut Effects) {
        self.history.log_hits = Some((text, ids.into_iter().collect()));
        self.refilter();
        fx.redraw = true;
    }

    /// The text `y` copies: the artifact path, or for an export the archive's path; the
    /// `cp … <slug>.smolmachine` hint when there is no path.
    pub(super) fn copy_text(r: &Record) -> Option<String> {
        match &r.artifact {
            Some(a) => Some(a.sidecar.display().to_string()),
            None => r
                .kept
                .as_ref()
                .and_then(|k| k.archive.as_ref().map(|p| p.display().to_string())),
        }
    }

    pub(super) fn copy_record(&mut self, r: Option<Record>, fx: &mut Effects) {
        match r.as_ref().and_then(Self::copy_text) {
            Some(text) => {
                self.flash(
                    Level::Info,
                    format!("copied {} (OSC 52)", escape_str(&text)),
                );
                fx.commands.push(Command::Copy(text));
            }
            None => self.flash(
                Level::Warn,
                "this record has no artifact or archive to copy",
            ),
        }
    }

    pub(super) fn open_history(&mut self, fx: &mut Effects) {
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

    pub(super) fn history_key(&mut self, action: KeyAction, fx: &mut Effects) {
        let n = self.history.visible.len();
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
                if let Some(id) = self.selected_record().map(|r| r.id.clone()) {
                    self.open_record(id, fx);
                }
            }
            KeyAction::Filter => self.history.filter_editing = true,
            KeyAction::OutcomeFilter => {
                self.history.outcome = self.history.outcome.next();
                self.refilter();
                self.flash(
                    Level::Info,
                    format!("showing {} runs", self.history.outcome.name()),
                );
            }
            KeyAction::Copy => {
                let r = self.selected_record().cloned();
                self.copy_record(r, fx);
            }
            KeyAction::Refresh if !self.history.loading => {
                self.history.loading = true;
                fx.commands.push(Command::LoadHistory);
            }
            KeyAction::Resume => self.ask_resume(),
            KeyAction::Discard => self.ask_discard(),
            KeyAction::Freeze => self.refreeze(fx),
            KeyAction::Prune => self.ask_prune(fx),
            KeyAction::Back => self.view = View::Dashboard,
            _ => {}
        }
    }

    /// The selected machine's newest record (this session's or the history's).
    pub(super) fn open_last_record(&mut self, fx: &mut Effects) {
        let Some(machine) = self.machines.selected.clone() else {
            return;
        };
        let session = self
            .freezes
            .get(&machine)
            .and_then(|f| f.id.clone())
            .filter(|_| {
                self.freezes
                    .get(&machine)
                    .is_some_and(|f| f.phase.is_finished())
            });
        let id = session.or_else(|| {
            self.history
                .records
                .iter()
                .find(|r| r.machine == machine)
                .map(|r| r.id.clone())
        });
        match id {
            Some(id) => self.open_record(id, fx),
            None => self.flash(
                Level::Info,
                format!("{} has no record yet", escape_str(&machine)),
            ),
        }
    }

    /// Opens one record's view and asks for it.
    pub(super) fn open_record(&mut self, id: String, fx: &mut Effects) {
        self.record = Some(RecordView::loading(&id));
        self.view = View::Record;
        fx.commands.push(Command::LoadRecord { id });
    }

    /// Lines of the record view's text area.
    pub fn record_page(&self) -> usize {
        let (body, _) = layout::body_and_status(self.area);
        usize::from(layout::inner(body).height.max(1))
    }

    pub(super) fn record_key(&mut self, action: KeyAction, fx: &mut Effects) {
        let page = self.record_page();
        if action == KeyAction::Back {
            self.view = View::History;
            return;
        }
        match action {
            KeyAction::Copy => {
                let r = self.record.as_ref().and_then(|rv| rv.record.clone());
                self.copy_record(r, fx);
                return;
            }
            KeyAction::Resume => return self.ask_resume(),
            KeyAction::Discard => return self.ask_discard(),
            KeyAction::Freeze => return self.refreeze(fx),
            _ => {}
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

    pub(super) fn edit_search(&mut self, key: KeyEvent) {
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
}

/// Scrolls a record so that `line` is on screen, a little below the top.
pub(super) fn show_line(rv: &mut RecordView, line: usize, page: usize) {
    if line < rv.top || line >= rv.top + page {
        let max_top = rv.lines.len().saturating_sub(page);
        rv.top = line.saturating_sub(2).min(max_top);
    }
}

#[cfg(test)]
mod tests {

    use crossterm::event::KeyCode;

    use super::*;

    use crate::ui::fixtures::*;

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
    fn history_filters_by_text_outcome_and_log_hits() {
        let mut a = with_machines(120, 30);
        a.update(key('h'));
        a.update(Action::HistoryLoaded(Ok(records())));
        assert_eq!(a.history.visible.len(), 3);
        a.update(key('/'));
        for c in "api".chars() {
            a.update(key(c));
        }
        assert_eq!(a.history.visible.len(), 1);
        assert_eq!(a.selected_record().unwrap().slug, "api");
        let fx = a.update(code(KeyCode::Enter));
        assert_eq!(fx.commands, [Command::SearchLogs { text: "api".into() }]);
        // A log search finds a record by its logs' text.
        a.update(Action::LogHits {
            text: "api".into(),
            ids: vec!["20270115T060000Z-web-1111".into()],
        });
        assert_eq!(a.history.visible.len(), 2);
        // Esc in the filter clears it; o cycles the outcomes.
        a.update(key('/'));
        a.update(code(KeyCode::Esc));
        assert_eq!(a.history.visible.len(), 3);
        a.update(key('o'));
        assert_eq!(a.history.outcome, OutcomeFilter::Failed);
        assert_eq!(a.history.visible.len(), 1);
        a.update(key('o'));
        assert_eq!(a.selected_record().unwrap().slug, "db");
        a.update(key('o'));
        a.update(key('o'));
        assert_eq!(a.history.visible.len(), 3);
    }

    #[test]
    fn enter_on_a_machine_opens_its_last_record_and_y_copies_the_artifact() {
        let mut a = with_machines(120, 30);
        a.update(Action::HistoryLoaded(Ok(records())));
        select(&mut a, "bot-bottle-api");
        let fx = a.update(code(KeyCode::Enter));
        assert_eq!(a.view, View::Record);
        assert_eq!(
            fx.commands,
            [Command::LoadRecord {
                id: "20270115T050000Z-api-2222".into()
            }]
        );
        // The web record has an artifact: y copies its path.
        a.update(code(KeyCode::Esc));
        a.update(key('g'));
        let fx = a.update(key('y'));
        assert!(
            matches!(&fx.commands[..], [Command::Copy(p)] if p.ends_with(".smolmachine")),
            "{:?}",
            fx.commands
        );
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
    fn the_record_view_lists_files_named_like_credentials() {
        let mut rec = records()[1].clone();
        let mut found = crate::secrets::Findings::default();
        found.check(b"./home/node/.npmrc");
        found.check(b"./home/node/\x1b[2J/.env");
        rec.credentials = Some(found);
        let rv = RecordView::new(rec, failed_logs());
        let text = rv.text();
        assert!(text.contains("/home/node/.npmrc  (npm token)"), "{text}");
        assert!(text.contains("environment file"), "{text}");
        assert!(!text.contains('\x1b'), "escape reached the view");
    }

    #[test]
    fn stages_that_never_ran_say_skipped_in_their_log_header() {
        let mut rec = records()[1].clone();
        for s in [Stage::Push, Stage::Pack] {
            rec.stage_mut(s).status = StageStatus::Skipped;
        }
        let rv = RecordView::new(rec, failed_logs());
        let titles: Vec<&str> = rv
            .lines
            .iter()
            .filter(|l| l.kind == DocKind::Title)
            .map(|l| l.text.as_str())
            .collect();
        assert!(
            titles.contains(&"── push: skipped (never ran) ──"),
            "{titles:?}"
        );
        assert!(
            titles.contains(&"── pack: skipped (never ran) ──"),
            "{titles:?}"
        );
        assert!(!titles.iter().any(|t| t.contains("waiting")), "{titles:?}");
    }

    #[test]
    fn damaged_records_are_said_not_dropped() {
        let mut a = with_machines(100, 30);
        a.update(Action::HistoryDamaged(vec![
            (
                "run-a".into(),
                "its id \"run-b\" is not its folder's name".into(),
            ),
            ("run-c".into(), "record.json does not parse".into()),
        ]));
        let f = a.flash.as_ref().expect("a notice");
        assert!(f.text.contains("damaged record run-a"), "{}", f.text);
        assert!(f.text.contains("(+1 more)"), "{}", f.text);
    }
}
