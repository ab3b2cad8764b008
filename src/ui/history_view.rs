//! Past freezes, newest first, and one freeze's record with each stage's full log,
//! scrollable and searchable.

use std::time::Duration;

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, HighlightSpacing, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::app::App;
use super::layout;
use super::state::{DocKind, DocLine, RecordView};
use super::theme;
use crate::format;
use crate::history::when;
use crate::sanitize::escape_str;

pub fn render_list(frame: &mut Frame, area: Rect, app: &App) {
    let h = &app.history;
    let mut title = vec![Span::styled(" history ", theme::TITLE)];
    if h.loaded {
        title.push(Span::styled(
            format!("{} freezes ", h.records.len()),
            theme::DIM,
        ));
    }
    if h.loading {
        title.push(Span::styled("⟳ ", theme::DIM));
    }
    let block = Block::bordered()
        .border_style(theme::BORDER_ACTIVE)
        .title(Line::from(title));
    let inner = layout::inner(area);
    frame.render_widget(block, area);
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
    if h.records.is_empty() {
        let text = if h.loaded {
            let root = escape_str(&app.settings.state_dir.join("history").display().to_string());
            format!("no freezes yet (history in {root})")
        } else {
            "reading the history…".to_string()
        };
        frame.render_widget(Paragraph::new(Line::styled(text, theme::DIM)), inner);
        return;
    }
    let wide = inner.width >= 100;
    let mut head = vec!["STARTED", "MACHINE", "OUTCOME", "DURATION", "SIZE"];
    let mut widths = vec![
        Constraint::Length(20),
        Constraint::Fill(1),
        Constraint::Length(26),
        Constraint::Length(8),
        Constraint::Length(10),
    ];
    if wide {
        head.push("ID");
        widths.push(Constraint::Fill(1));
    }
    if inner.width < 70 {
        // Drop the start time; the list is newest first anyway.
        head.remove(0);
        widths.remove(0);
    }
    let rows = h.records.iter().map(|r| {
        let (mark, style) = theme::outcome_mark(r.outcome);
        let mut cells = Vec::new();
        if inner.width >= 70 {
            cells.push(Cell::from(Span::styled(when(r.started_at_ms), theme::DIM)));
        }
        cells.push(Cell::from(escape_str(&r.machine)));
        cells.push(Cell::from(Span::styled(
            format!("{mark} {}", r.outcome_text()),
            style,
        )));
        cells.push(Cell::from(
            r.duration_ms()
                .map(|d| format::duration(Duration::from_millis(d)))
                .unwrap_or_else(|| "-".into()),
        ));
        cells.push(Cell::from(format::bytes(r.bytes)));
        if wide {
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
