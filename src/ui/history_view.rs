//! Past freezes, newest first, and one freeze's record with each stage's full log,
//! scrollable and searchable.

use std::time::Duration;

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, HighlightSpacing, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::app::App;
use super::history::OutcomeFilter;
use super::layout;
use super::state::{DocKind, DocLine, RecordView};
use super::theme;
use crate::format;
use crate::history::{when, Kind};
use crate::sanitize::escape_str;

pub fn render_list(frame: &mut Frame, area: Rect, app: &App) {
    let h = &app.history;
    let mut title = vec![Span::styled(" history ", theme::TITLE)];
    if h.loaded {
        let shown = if h.visible.len() == h.records.len() {
            format!("{} records ", h.records.len())
        } else {
            format!("{} of {} records ", h.visible.len(), h.records.len())
        };
        title.push(Span::styled(shown, theme::DIM));
    }
    if h.outcome != OutcomeFilter::All {
        title.push(Span::styled(format!("{} ", h.outcome.name()), theme::WARN));
    }
    if h.filter_editing || !h.filter.is_empty() {
        let cursor = if h.filter_editing { "▏" } else { "" };
        title.push(Span::styled(
            format!("/{}{cursor} ", escape_str(&h.filter)),
            theme::INFO,
        ));
    }
    if h.loading {
        title.push(Span::styled("⟳ ", theme::DIM));
    }
    // A preview beside the list when there is room for both.
    let (list_area, preview_area) = if area.width >= 110 {
        let preview = (area.width * 2 / 5).min(70);
        (
            Rect {
                width: area.width - preview,
                ..area
            },
            Some(Rect {
                x: area.x + area.width - preview,
                width: preview,
                ..area
            }),
        )
    } else {
        (area, None)
    };
    let block = Block::bordered()
        .border_style(theme::BORDER_ACTIVE)
        .title(Line::from(title));
    let inner = layout::inner(list_area);
    frame.render_widget(block, list_area);
    if let Some(p) = preview_area {
        render_preview(frame, p, app);
    }
    if inner.height == 0 {
        return;
    }
    if let Some(e) = &h.error {
        frame.render_widget(
            Paragraph::new(Line::styled(
                format!("cannot read the history: {e}"),
                theme::ERROR,
            )),
            inner,
        );
        return;
    }
    if h.visible.is_empty() {
        let text = if !h.records.is_empty() {
            "no record matches (Esc in / clears the filter; o shows all outcomes)".to_string()
        } else if h.loaded {
            let root = escape_str(&app.settings.state_dir.join("history").display().to_string());
            format!("no freezes yet (history in {root})")
        } else {
            "reading the history…".to_string()
        };
        frame.render_widget(Paragraph::new(Line::styled(text, theme::DIM)), inner);
        return;
    }
    // Ids are never cut: they are what `history show` and `--resume` take. Narrow,
    // duration and size give way to the id; very narrow, the id goes whole.
    let id_w = h
        .visible
        .iter()
        .filter_map(|i| h.records.get(*i))
        .map(|r| theme::width(&r.id))
        .max()
        .unwrap_or(2) as u16;
    let machine_w = h
        .visible
        .iter()
        .filter_map(|i| h.records.get(*i))
        .map(|r| theme::width(&shown_slug(r)) + 9)
        .max()
        .unwrap_or(10)
        .clamp(10, 40) as u16;
    let figures = inner.width >= 90;
    let show_id = inner.width >= 60 + id_w.saturating_sub(26);
    let mut head = vec!["STARTED", "MACHINE", "OUTCOME"];
    let mut widths = vec![
        Constraint::Length(8),
        Constraint::Length(machine_w),
        Constraint::Fill(1),
    ];
    if figures {
        head.extend(["DURATION", "SIZE"]);
        widths.extend([Constraint::Length(8), Constraint::Length(10)]);
    }
    if show_id {
        head.push("ID");
        widths.push(Constraint::Length(id_w));
    }
    let rows = h.visible.iter().filter_map(|i| h.records.get(*i)).map(|r| {
        let (mark, style) = theme::outcome_mark(r.outcome);
        let mut machine = vec![Span::raw(shown_slug(r))];
        if r.kind == Kind::Export {
            machine.push(Span::styled(" · export", theme::INFO));
        }
        let mut cells = vec![
            Cell::from(Span::styled(ago(app, r.started_at_ms), theme::DIM)),
            Cell::from(Line::from(machine)),
            Cell::from(Span::styled(format!("{mark} {}", r.outcome_text()), style)),
        ];
        if figures {
            cells.push(Cell::from(
                r.duration_ms()
                    .map(|d| format::duration(Duration::from_millis(d)))
                    .unwrap_or_else(|| "-".into()),
            ));
            cells.push(Cell::from(format::bytes(r.bytes)));
        }
        if show_id {
            cells.push(Cell::from(Span::styled(escape_str(&r.id), theme::DIM)));
        }
        Row::new(cells)
    });
    let table = Table::new(rows, widths)
        .header(Row::new(head).style(theme::HEADER))
        .column_spacing(1)
        .row_highlight_style(theme::SELECTED)
        .highlight_symbol("›")
        .highlight_spacing(HighlightSpacing::Always);
    let viewport = usize::from(inner.height.saturating_sub(1));
    let mut state = TableState::default()
        .with_offset(layout::scroll_offset(h.selected, viewport))
        .with_selected(Some(h.selected));
    frame.render_stateful_widget(table, inner, &mut state);
}

/// `3m ago`, by the app's clock.
fn ago(app: &App, at_ms: u64) -> String {
    format!(
        "{} ago",
        format::age(app.now_ms.saturating_sub(at_ms) / 1000)
    )
}

/// The selected record at a glance: outcome, stage, exit status, duration, bytes, and
/// the first stderr lines of the stage that failed.
fn render_preview(frame: &mut Frame, area: Rect, app: &App) {
    let block = Block::bordered()
        .border_style(theme::BORDER)
        .title(Line::styled(" preview ", theme::TITLE));
    let inner = layout::inner(area);
    frame.render_widget(block, area);
    let Some(r) = app.selected_record() else {
        return;
    };
    let width = usize::from(inner.width);
    let field = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<9}"), theme::DIM),
            Span::raw(v),
        ])
    };
    let (mark, style) = theme::outcome_mark(r.outcome);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("{mark} {}", r.outcome_text()), style),
            Span::styled(
                if r.kind == Kind::Export {
                    "  · export"
                } else {
                    ""
                },
                theme::INFO,
            ),
        ]),
        field(
            "machine",
            match &r.host {
                Some(h) => format!("{} on host {}", escape_str(&r.machine), escape_str(h)),
                None => escape_str(&r.machine),
            },
        ),
        field("id", escape_str(&r.id)),
        field(
            "started",
            format!("{} ({})", ago(app, r.started_at_ms), when(r.started_at_ms)),
        ),
        field(
            "duration",
            r.duration_ms()
                .map(|d| format::duration(Duration::from_millis(d)))
                .unwrap_or_else(|| "-".into()),
        ),
        field(
            "archive",
            format!("{} in {} entries", format::bytes(r.bytes), r.entries),
        ),
    ];
    if let Some(f) = &r.failure {
        lines.push(field("stage", f.stage.to_string()));
        lines.push(field(
            "exit",
            f.exit_status.map_or("-".to_string(), |c| c.to_string()),
        ));
        for piece in theme::wrap(&escape_str(&f.message), width) {
            lines.push(Line::styled(piece, theme::ERROR));
        }
        lines.push(Line::styled("stderr", theme::HEADER));
        for l in f.stderr_tail.lines().take(6) {
            lines.push(Line::raw(theme::truncate(&escape_str(l), width)));
        }
    }
    if let Some(a) = &r.artifact {
        for piece in theme::wrap(&escape_str(&a.sidecar.display().to_string()), width) {
            lines.push(Line::styled(piece, theme::OK));
        }
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn kind_style(k: DocKind) -> Style {
    match k {
        DocKind::Field => Style::new(),
        DocKind::Error => theme::ERROR,
        DocKind::Warning => theme::WARN,
        DocKind::Title => theme::HEADER,
        DocKind::Log => Style::new(),
        DocKind::Empty => Style::new(),
    }
}

/// A line with every occurrence of `query` (case-insensitive) highlighted.
fn highlighted(text: &str, query: &str, base: Style, hit: Style) -> Vec<Span<'static>> {
    if query.is_empty() {
        return vec![Span::styled(text.to_string(), base)];
    }
    let lower = text.to_lowercase();
    let q = query.to_lowercase();
    // Lowercasing may change byte lengths outside ASCII; only highlight when it did not.
    if lower.len() != text.len() {
        return vec![Span::styled(text.to_string(), base)];
    }
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find(&q) {
        let start = at + i;
        let end = start + q.len();
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            break;
        }
        if start > at {
            spans.push(Span::styled(text[at..start].to_string(), base));
        }
        spans.push(Span::styled(text[start..end].to_string(), hit));
        at = end;
    }
    if at < text.len() {
        spans.push(Span::styled(text[at..].to_string(), base));
    }
    spans
}

fn doc_lines(rv: &RecordView, width: usize, height: usize) -> Vec<Line<'static>> {
    let current_line = rv
        .search
        .current
        .and_then(|i| rv.search.matches.get(i))
        .copied();
    let mut out = Vec::with_capacity(height);
    for (n, l) in rv.lines.iter().enumerate().skip(rv.top) {
        if out.len() >= height {
            break;
        }
        let DocLine { kind, text } = l;
        let base = kind_style(*kind);
        let hit = if Some(n) == current_line {
            theme::CURRENT_MATCH
        } else {
            theme::MATCH
        };
        let pieces = if rv.wrap {
            theme::wrap(text, width)
        } else {
            vec![theme::truncate(text, width)]
        };
        for p in pieces {
            if out.len() >= height {
                break;
            }
            out.push(Line::from(highlighted(&p, &rv.search.query, base, hit)));
        }
    }
    out
}

pub fn render_record(frame: &mut Frame, area: Rect, app: &App) {
    let Some(rv) = &app.record else {
        return;
    };
    let mut title = vec![Span::styled(
        format!(" freeze {} ", escape_str(&rv.id)),
        theme::TITLE,
    )];
    let s = &rv.search;
    if !s.query.is_empty() {
        let pos = match s.current {
            Some(i) => format!("{}/{}", i + 1, s.matches.len()),
            None => format!("{}", s.matches.len()),
        };
        let style = if s.matches.is_empty() {
            theme::WARN
        } else {
            theme::INFO
        };
        title.push(Span::styled(format!("· /{} {pos} ", s.query), style));
    }
    if !rv.lines.is_empty() {
        let last = (rv.top + usize::from(layout::inner(area).height)).min(rv.lines.len());
        title.push(Span::styled(
            format!("· lines {}-{last} of {} ", rv.top + 1, rv.lines.len()),
            theme::DIM,
        ));
    }
    if rv.wrap {
        title.push(Span::styled("· wrap ", theme::DIM));
    }
    let block = Block::bordered()
        .border_style(theme::BORDER_ACTIVE)
        .title(Line::from(title));
    let inner = layout::inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    if let Some(e) = &rv.error {
        frame.render_widget(
            Paragraph::new(Line::styled(
                format!("cannot open this freeze: {e}"),
                theme::ERROR,
            )),
            inner,
        );
        return;
    }
    if rv.record.is_none() {
        frame.render_widget(
            Paragraph::new(Line::styled("reading the record…", theme::DIM)),
            inner,
        );
        return;
    }
    let lines = doc_lines(rv, usize::from(inner.width), usize::from(inner.height));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The slug as the history lists it: `HOST/SLUG` for a machine of another host.
fn shown_slug(r: &crate::history::Record) -> String {
    match &r.host {
        Some(h) => format!("{}/{}", escape_str(h), escape_str(&r.slug)),
        None => escape_str(&r.slug),
    }
}
