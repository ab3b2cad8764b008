//! The machine list: slug, state, cpus, memory, image, age and the last freeze (or the
//! running freeze's progress), filtered and sorted.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, HighlightSpacing, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::app::App;
use super::keys::{Context, KeyAction};
use super::layout;
use super::list::LastFreeze;
use super::state::SortKey;
use super::theme;
use crate::format;
use crate::freeze::Stage;
use crate::machines::BottleMachine;
use crate::sanitize::escape_str;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Slug,
    State,
    Cpus,
    Memory,
    Image,
    Age,
    Last,
}

/// The columns that fit `width`, dropping the least needed first.
fn columns(width: u16) -> Vec<Col> {
    let mut cols = vec![Col::Slug, Col::State];
    if width >= 56 {
        cols.push(Col::Cpus);
        cols.push(Col::Memory);
    }
    if width >= 70 {
        cols.push(Col::Image);
    }
    if width >= 42 {
        cols.push(Col::Age);
    }
    if width >= 30 {
        cols.push(Col::Last);
    }
    cols
}

fn header(c: Col, app: &App) -> String {
    let (name, key) = match c {
        Col::Slug => ("SLUG", SortKey::Name),
        Col::State => ("STATE", SortKey::State),
        Col::Cpus => ("CPU", SortKey::Cpus),
        Col::Memory => ("MEMORY", SortKey::Memory),
        Col::Image => ("IMAGE", SortKey::Name),
        Col::Age => ("AGE", SortKey::Age),
        Col::Last => ("LAST FREEZE", SortKey::LastFreeze),
    };
    let sorted = app.machines.sort == key && !(c == Col::Image);
    if sorted && (app.machines.sort != SortKey::Name || app.machines.descending) {
        format!(
            "{name}{}",
            // As k9s: ↑ ascending, ↓ descending.
            if app.machines.descending {
                "↓"
            } else {
                "↑"
            }
        )
    } else {
        name.to_string()
    }
}

/// What the content of the shown machines needs, so that wide terminals give the room to
/// the columns that use it (the last freeze) rather than to a short slug.
#[derive(Debug, Clone, Copy)]
struct Needs {
    slug: u16,
    image: u16,
    /// The table's width.
    room: u16,
}

fn needs(visible: &[&BottleMachine], room: u16) -> Needs {
    let mut n = Needs {
        slug: 4,
        image: 5,
        room,
    };
    for m in visible {
        let slug = match &m.slug {
            Ok(s) => theme::width(s.as_str()),
            Err(_) => theme::width(&escape_str(&m.machine.name)) + 2,
        };
        n.slug = n.slug.max(u16::try_from(slug).unwrap_or(u16::MAX));
        if let Some(i) = m.machine.image.as_deref() {
            // The raw width (no escaping allocation per machine and frame): a name with
            // control characters is drawn wider and cut with an ellipsis.
            let w = u16::try_from(theme::width(i)).unwrap_or(u16::MAX);
            n.image = n.image.max(w);
        }
    }
    n
}

fn width_of(c: Col, n: Needs) -> Constraint {
    match c {
        // Fill with a cap: never wider than the longest slug needs (up to 40 columns).
        Col::Slug => Constraint::Max(n.slug.clamp(8, 40).min(n.room / 4).max(8)),
        Col::State => Constraint::Length(11),
        // Room for the sort arrow.
        Col::Cpus => Constraint::Length(4),
        Col::Memory => Constraint::Length(9),
        Col::Image => Constraint::Max(n.image.clamp(6, 32).min(n.room / 6).max(6)),
        Col::Age => Constraint::Length(4),
        Col::Last => Constraint::Fill(3),
    }
}

/// The columns' widths as the table lays them out (after the one-column highlight).
fn column_widths(cols: &[Col], width: u16, n: Needs) -> Vec<u16> {
    use ratatui::layout::{Flex, Layout};
    let area = Rect::new(0, 0, width.saturating_sub(1), 1);
    Layout::horizontal(cols.iter().map(|&c| width_of(c, n)))
        .flex(Flex::Start)
        .spacing(1)
        .split(area)
        .iter()
        .map(|r| r.width)
        .collect()
}

/// Rows the pane would like (besides its border and header): the machines, or the
/// lines of the message shown in their place.
pub fn wanted_rows(app: &App, width: u16) -> usize {
    let inner = usize::from(width.saturating_sub(2)).max(1);
    match message(app) {
        Some(lines) => lines
            .iter()
            .map(|l| l.width().div_ceil(inner).max(1))
            .sum::<usize>()
            .saturating_sub(1),
        // Counted, not sorted: the layout needs only how many.
        None => {
            let shown = app
                .machines
                .list
                .iter()
                .filter(|m| app.matches_filter(m))
                .count();
            shown + banner(app, width).len()
        }
    }
}

/// The banner above a list whose last refresh failed: the error, on two lines at most.
fn banner(app: &App, width: u16) -> Vec<String> {
    if !(app.machines.loaded && app.machines.error.is_some()) {
        return Vec::new();
    }
    let every = format::duration(std::time::Duration::from_millis(app.settings.refresh_ms));
    let text = format!(
        "refresh failed (retrying every {every}): {}",
        app.machines.error.clone().unwrap_or_default()
    );
    let width = usize::from(width.saturating_sub(2)).max(1);
    let mut lines = theme::wrap(&text, width);
    if lines.len() > 2 {
        let rest = lines[1..].concat();
        lines.truncate(1);
        lines.push(theme::truncate(&rest, width));
    }
    lines
}

/// Where the table's rows are (below the header), for mouse hits.
pub fn rows_area(area: Rect, app: &App) -> Rect {
    let mut r = layout::inner(area);
    let skip = 1 + u16::try_from(banner(app, area.width).len()).unwrap_or(0);
    r.y = r.y.saturating_add(skip);
    r.height = r.height.saturating_sub(skip);
    r
}

/// The right-hand column: the running freeze inline, or the last outcome.
/// Joins `parts` with spaces, as many as fit in `width`.
fn fitting(parts: &[String], width: usize) -> String {
    let mut out = String::new();
    for p in parts {
        let extra = if out.is_empty() { 0 } else { 1 };
        if !out.is_empty() && theme::width(&out) + extra + theme::width(p) > width {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(p);
    }
    out
}

fn last_cell(app: &App, m: &BottleMachine, width: usize) -> Line<'static> {
    if let Some(f) = app.freezes.get(&m.machine.name) {
        if f.is_live() && !f.phase.is_finished() {
            if f.cancel_requested {
                return Line::styled("⊘ cancelling…", theme::WARN);
            }
            let Some(stage) = f.current else {
                return Line::styled("▶ starting…", theme::WARN);
            };
            let mut parts = vec![format!("▶ {stage}")];
            if let Some(p) = &f.stage(stage).progress {
                match (stage, p.total) {
                    (Stage::ExecTar, _) => {
                        parts.push(format::bytes(p.bytes));
                        if let Some(idle) = f.stalled_ms(app.now_ms, app.settings.stall_after_ms) {
                            parts.push(format::stalled(idle));
                        } else if let Some(rate) = f.throughput.current() {
                            parts.push(format!("{}/s", format::bytes(rate)));
                        }
                        if let Some(est) = p.total.filter(|t| *t > 0 && p.bytes <= *t) {
                            parts.push(format!("~{}%", theme::percent(p.bytes, est)));
                        }
                    }
                    (_, Some(t)) if t > 0 => {
                        parts.push(format!("{}%", theme::percent(p.bytes, t)));
                        parts.push(format!("of {}", format::bytes(t)));
                    }
                    _ if p.bytes > 0 => parts.push(format::bytes(p.bytes)),
                    _ => {}
                }
            }
            let elapsed = f.elapsed_ms(app.now_ms);
            parts.push(format!(
                "· {}",
                format::duration(std::time::Duration::from_millis(elapsed))
            ));
            return Line::styled(
                fitting(&parts, width),
                theme::WARN.add_modifier(Modifier::BOLD),
            );
        }
    }
    match app.last_freeze.get(&m.machine.name) {
        Some(LastFreeze {
            elsewhere: Some(e), ..
        }) => {
            // Another process runs it: live figures from its record, and who holds the lock.
            let stage = e.stage.map_or("starting".to_string(), |s| s.to_string());
            let mut parts = vec![format!("▶ {stage} by pid {}", e.pid)];
            if e.bytes > 0 {
                parts.push(format::bytes(e.bytes));
            }
            Line::styled(fitting(&parts, width), theme::WARN)
        }
        Some(l) => {
            let (mark, style) = theme::outcome_mark(l.outcome);
            let what = match (l.outcome, l.failed_stage) {
                (_, Some(s)) => format!("{} at {s}", l.outcome.name()),
                (crate::history::Outcome::Succeeded, None) => "ok".to_string(),
                (crate::history::Outcome::SucceededWithWarnings, None) => {
                    "ok, warnings".to_string()
                }
                (o, None) => o.name().to_string(),
            };
            let ago = format!(
                " · {} ago",
                format::age(app.now_ms.saturating_sub(l.at_ms) / 1000)
            );
            let what = format!("{mark} {what}");
            let mut spans = vec![Span::styled(theme::truncate(&what, width), style)];
            if theme::width(&what) + theme::width(&ago) <= width {
                spans.push(Span::styled(ago, theme::DIM));
            }
            Line::from(spans)
        }
        None => Line::styled("-", theme::DIM),
    }
}

fn cell(
    c: Col,
    app: &App,
    m: &BottleMachine,
    last_width: usize,
    image_width: usize,
) -> Cell<'static> {
    let dash = || Cell::from(Span::styled("-", theme::DIM));
    match c {
        Col::Slug => match &m.slug {
            Ok(s) => Cell::from(s.to_string()),
            Err(_) => Cell::from(Line::from(vec![
                Span::styled("⚠ ", theme::WARN),
                Span::raw(escape_str(&m.machine.name)),
            ])),
        },
        Col::State => {
            let st = m.machine.state.as_deref();
            Cell::from(Span::styled(
                st.map(escape_str).unwrap_or_else(|| "unknown".into()),
                theme::state_style(st),
            ))
        }
        Col::Cpus => m
            .machine
            .cpus
            .map(|c| Cell::from(c.to_string()))
            .unwrap_or_else(dash),
        Col::Memory => m
            .machine
            .memory_mib
            .map(|mib| Cell::from(format::bytes(mib.saturating_mul(1024 * 1024))))
            .unwrap_or_else(dash),
        Col::Image => m
            .machine
            .image
            .as_deref()
            // Cut with an ellipsis, never silently.
            .map(|i| Cell::from(theme::truncate(&escape_str(i), image_width)))
            .unwrap_or_else(dash),
        Col::Age => app
            .age_secs(m)
            .map(|a| Cell::from(format::age(a)))
            .unwrap_or_else(dash),
        Col::Last => Cell::from(last_cell(app, m, last_width)),
    }
}

fn title(app: &App, shown: usize) -> Line<'static> {
    let ms = &app.machines;
    let mut spans = vec![Span::styled(" machines ", theme::TITLE)];
    if ms.loaded {
        let count = if shown == ms.list.len() {
            format!("{} ", ms.list.len())
        } else {
            format!("{shown} of {} ", ms.list.len())
        };
        spans.push(Span::styled(count, theme::DIM));
    }
    if !ms.filter.is_empty() || ms.filter_editing {
        spans.push(Span::styled(
            format!("/{} ", escape_str(&ms.filter)),
            theme::INFO,
        ));
    }
    if let Some(late) = app.refresh_late_secs() {
        spans.push(Span::styled(
            format!("⟳ refreshing, {late}s late "),
            theme::WARN,
        ));
    }
    if let Some(stale) = app.stale_secs() {
        spans.push(Span::styled(
            format!("stale: last update {} ago ", format::age(stale)),
            theme::WARN,
        ));
    }
    Line::from(spans)
}

fn message(app: &App) -> Option<Vec<Line<'static>>> {
    let ms = &app.machines;
    let every = format::duration(std::time::Duration::from_millis(app.settings.refresh_ms));
    let refresh_key = app.keys.keys_text(Context::Dashboard, KeyAction::Refresh);
    if !ms.loaded {
        return Some(match &ms.error {
            Some(e) => vec![
                Line::styled(
                    "smolvm did not answer:",
                    theme::ERROR.add_modifier(Modifier::BOLD),
                ),
                Line::styled(e.clone(), theme::ERROR),
                Line::raw(""),
                Line::raw(
                    "Check that smolvm is installed and works (`smolvm machine ls`), or point",
                ),
                Line::raw("--smolvm / BOTTLE_FREEZE_SMOLVM at it."),
                Line::styled(
                    format!("Retrying every {every}; {refresh_key} retries now."),
                    theme::DIM,
                ),
            ],
            None => vec![Line::styled("asking smolvm for its machines…", theme::DIM)],
        });
    }
    if ms.list.is_empty() {
        return Some(vec![
            Line::styled(
                format!(
                    "No bot-bottle machines (none named {}<slug>).",
                    escape_str(&app.settings.prefix)
                ),
                theme::TITLE,
            ),
            Line::raw("Start a sandbox with bot-bottle, or check --prefix / BOTTLE_FREEZE_PREFIX."),
            Line::styled(
                format!("Looking again every {every}; {refresh_key} looks now."),
                theme::DIM,
            ),
        ]);
    }
    if !app.machines.list.iter().any(|m| app.matches_filter(m)) {
        return Some(vec![Line::styled(
            format!(
                "No machine matches \"{}\" (/ then Esc clears the filter).",
                escape_str(&ms.filter)
            ),
            theme::DIM,
        )]);
    }
    None
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let visible = app.visible();
    let left = title(app, visible.len());
    let room = usize::from(area.width).saturating_sub(left.width() + 4);
    let mut block = Block::bordered()
        .border_style(theme::BORDER_ACTIVE)
        .title(left);
    // The versions only where they fit beside the count: on a narrow terminal the count
    // and the filter matter more (`doctor` says the versions too).
    if let Some(v) = &app.host_versions {
        let v = format!(" {} ", theme::guard(v));
        if unicode_width::UnicodeWidthStr::width(v.as_str()) <= room {
            block = block.title(Line::styled(v, theme::DIM).right_aligned());
        }
    }
    // The standing notice first (the demo's, configuration problems), then what the host
    // lacks: one line, so neither is drawn over the other.
    let bottom: Vec<String> = [app.notice.as_deref(), app.host_missing.as_deref()]
        .into_iter()
        .flatten()
        .map(theme::guard)
        .collect();
    if !bottom.is_empty() {
        block = block.title_bottom(Line::styled(
            format!(" {} ", bottom.join(" · ")),
            theme::WARN,
        ));
    }
    let inner = layout::inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let mut body = inner;
    let banner = banner(app, area.width);
    if !banner.is_empty() {
        let h = u16::try_from(banner.len()).unwrap_or(0).min(body.height);
        let lines: Vec<Line> = banner
            .into_iter()
            .map(|l| Line::styled(l, theme::ERROR))
            .collect();
        frame.render_widget(Paragraph::new(lines), Rect { height: h, ..body });
        body.y += h;
        body.height = body.height.saturating_sub(h);
    }
    if let Some(lines) = message(app) {
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), body);
        return;
    }
    let cols = columns(inner.width.saturating_sub(2));
    let head = Row::new(cols.iter().map(|&c| Cell::from(header(c, app)))).style(theme::HEADER);
    let n = needs(&visible, body.width);
    let widths_now = column_widths(&cols, body.width, n);
    let width_of_col = |col: Col| {
        cols.iter()
            .position(|&c| c == col)
            .and_then(|i| widths_now.get(i))
            .map(|&w| usize::from(w))
            .unwrap_or(0)
    };
    let (last_width, image_width) = (width_of_col(Col::Last), width_of_col(Col::Image));
    let selected = visible
        .iter()
        .position(|m| app.machines.selected.as_deref() == Some(m.machine.name.as_str()));
    let viewport = usize::from(body.height.saturating_sub(1));
    let offset = layout::scroll_offset(selected.unwrap_or(0), viewport);
    // Only the rows on screen are built: with 500 machines, making every row's cells was
    // most of a frame's time.
    let shown = &visible[offset.min(visible.len())..(offset + viewport).min(visible.len())];
    let rows = shown.iter().map(|m| {
        let row = Row::new(
            cols.iter()
                .map(|&c| cell(c, app, m, last_width, image_width)),
        );
        if m.refusal().is_none() {
            row
        } else {
            row.style(theme::DIM)
        }
    });
    let widths: Vec<Constraint> = cols.iter().map(|&c| width_of(c, n)).collect();
    let table = Table::new(rows, widths)
        .header(head)
        .column_spacing(1)
        .row_highlight_style(theme::SELECTED)
        .highlight_symbol("›")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default()
        .with_offset(0)
        .with_selected(selected.map(|i| i - offset));
    frame.render_stateful_widget(table, body, &mut state);
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use super::super::app::Action;
    use super::super::fixtures::*;
    use crate::machines::bottle_machines;

    /// A list longer than the pane, scrolled to a selection far down, then part way back:
    /// the rows shown, the selection mark and the scroll position.
    #[test]
    fn a_long_list_scrolled_to_the_selection() {
        let mut a = app(100, 20);
        let ms = (0..60)
            .map(|i| {
                let state = if i % 7 == 0 { "stopped" } else { "running" };
                machine(
                    &format!("m{i:02}"),
                    state,
                    2,
                    2048,
                    3600 * i,
                    Some("node:22"),
                )
            })
            .collect();
        a.update(Action::Machines(Ok(bottle_machines(
            ms,
            "bot-bottle-",
            true,
        ))));
        for _ in 0..45 {
            a.update(key('j'));
        }
        assert_eq!(a.machines.selected.as_deref(), Some("bot-bottle-m45"));
        assert_snapshot!("scrolled_down", screen(&a));
        for _ in 0..10 {
            a.update(key('k'));
        }
        assert_snapshot!("scrolled_back", screen(&a));
    }
}
