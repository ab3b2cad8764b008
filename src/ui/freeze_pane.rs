//! The selected machine's freeze: the four stages with their marks and times, the
//! exec-tar figures (bytes, rate, sparkline, entries, path, transport), byte progress
//! of build and push, and the outcome.

use std::time::Duration;

use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::app::App;
use super::keys::{Context, KeyAction};
use super::layout;
use super::state::{FreezeState, Phase};
use super::theme;
use crate::format;
use crate::freeze::Stage;
use crate::history::StageStatus;
use crate::sanitize::escape_str;

fn dur(ms: u64) -> String {
    format::duration(Duration::from_millis(ms))
}

/// Display order and priority (lower is kept first when the pane is short).
struct Item {
    prio: u8,
    order: u8,
    line: Line<'static>,
}

/// Priorities: the outcome (2, 3), the exec-tar figures and warnings (4), the
/// sparkline (5), the current path (6), notes (7). Order: figures, outcome, warnings, notes.
fn item(prio: u8, order: u8, line: Line<'static>) -> Item {
    Item { prio, order, line }
}

fn stage_detail(f: &FreezeState, stage: Stage, width: usize) -> Vec<Span<'static>> {
    let s = f.stage(stage);
    // What the stage does this run ("· native archive"), then its progress.
    let mut spans = Vec::new();
    let mut width = width;
    if let Some(d) = &s.does {
        let text = format!("· {d}  ");
        width = width.saturating_sub(text.chars().count());
        spans.push(Span::styled(text, theme::DIM));
    }
    let Some(p) = &s.progress else {
        return spans;
    };
    let finished = !matches!(s.status, StageStatus::Running);
    match (stage, p.total) {
        (_, _) if finished && stage != Stage::ExecTar => {
            spans.push(Span::raw(format::bytes(p.bytes)))
        }
        // The build's real steps, not the context upload that reaches 100% at once.
        (Stage::Build, _) if s.steps.is_some() => {
            let (n, m) = s.steps.unwrap_or((0, 1));
            let text = format!("step {n}/{m} ");
            let room = width.saturating_sub(theme::width(&text) + 1);
            spans.push(Span::raw(text));
            if room >= 4 {
                spans.push(Span::styled(
                    theme::gauge(u64::from(n.saturating_sub(1)), u64::from(m), room.min(20)),
                    theme::INFO,
                ));
            }
        }
        (Stage::ExecTar, est) => {
            spans.push(Span::raw(format::bytes(p.bytes)));
            // Against the guest's df figure: an estimate, so `~`, and never past 100%.
            if let Some(est) = est.filter(|e| *e > 0 && !finished && p.bytes <= *e) {
                let room = width.saturating_sub(theme::width(&format::bytes(p.bytes)) + 8);
                if room >= 4 {
                    spans.push(Span::raw(" "));
                    spans.push(Span::styled(
                        theme::gauge(p.bytes, est, room.min(20)),
                        theme::INFO,
                    ));
                }
                spans.push(Span::raw(format!(" ~{}%", theme::percent(p.bytes, est))));
                return spans;
            }
            if let Some(e) = p.entries {
                spans.push(Span::styled(format!(" · {e} entries"), theme::DIM));
            }
        }
        (_, Some(total)) if total > 0 => {
            let text = format!("{} / {} ", format::bytes(p.bytes), format::bytes(total));
            let room = width.saturating_sub(theme::width(&text) + 5);
            spans.push(Span::raw(text));
            if room >= 4 {
                spans.push(Span::styled(
                    theme::gauge(p.bytes, total, room.min(20)),
                    theme::INFO,
                ));
            }
            spans.push(Span::raw(format!(" {}%", theme::percent(p.bytes, total))));
        }
        _ if p.bytes > 0 => spans.push(Span::raw(format::bytes(p.bytes))),
        _ => {}
    }
    spans
}

fn stage_line(app: &App, f: &FreezeState, stage: Stage, width: usize) -> Line<'static> {
    let s = f.stage(stage);
    let status = if s.status == StageStatus::Running && f.cancel_requested {
        "cancelling"
    } else {
        super::state::status_name(s.status)
    };
    let (mark, style) = theme::stage_mark(s.status);
    let elapsed = s.elapsed_ms(app.now_ms).map(dur).unwrap_or_default();
    let mut spans = vec![
        Span::styled(format!("{mark} "), style),
        Span::styled(
            format!("{:<9}", stage.name()),
            if s.status == StageStatus::Running {
                theme::TITLE
            } else {
                ratatui::style::Style::new()
            },
        ),
        Span::styled(format!("{status:<10}"), style),
        Span::raw(format!("{elapsed:>7}  ")),
    ];
    let used = 2 + 9 + 10 + 9;
    spans.extend(stage_detail(f, stage, width.saturating_sub(used)));
    Line::from(spans)
}

/// The compact form for a short pane: all four stages on one line.
fn stage_strip(app: &App, f: &FreezeState) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, stage) in Stage::ALL.iter().enumerate() {
        let s = f.stage(*stage);
        let (mark, style) = theme::stage_mark(s.status);
        if i > 0 {
            spans.push(Span::styled(" │ ", theme::DIM));
        }
        spans.push(Span::styled(format!("{mark} {stage}"), style));
        if let Some(e) = s.elapsed_ms(app.now_ms) {
            spans.push(Span::raw(format!(" {}", dur(e))));
        }
    }
    Line::from(spans)
}

fn exec_tar_lines(app: &App, f: &FreezeState, width: usize) -> Vec<Item> {
    let s = f.stage(Stage::ExecTar);
    let Some(p) = &s.progress else {
        return match f.transport {
            Some(t) => vec![item(
                4,
                0,
                Line::styled(format!("transport {}", t.name()), theme::DIM),
            )],
            None => Vec::new(),
        };
    };
    let mut out = Vec::new();
    let running = s.status == StageStatus::Running;
    // The clock, not the last event, says how long it has run.
    let elapsed = s.elapsed_ms(app.now_ms).unwrap_or(p.elapsed_ms);
    let rate = f.throughput.current();
    // Most telling first; what does not fit the width is left out.
    let mut parts: Vec<Span<'static>> =
        vec![Span::raw(format!("{} streamed", format::bytes(p.bytes)))];
    if let Some(idle) = f.stalled_ms(app.now_ms, app.settings.stall_after_ms) {
        parts.push(Span::styled(format::stalled(idle), theme::WARN));
    }
    if let Some(est) = p.total.filter(|t| *t > 0 && running) {
        parts.push(Span::raw(format::against_estimate(p.bytes, est, rate)));
    }
    if let Some(t) = f.transport {
        parts.push(Span::styled(format!("via {}", t.name()), theme::INFO));
    }
    if running {
        if let Some(now) = rate {
            parts.push(Span::styled(
                format!("{}/s", format::bytes(now)),
                theme::TITLE,
            ));
        }
    }
    if let Some(avg) = super::freeze_view::average_rate(p.bytes, elapsed) {
        parts.push(Span::raw(format!("avg {}/s", format::bytes(avg))));
    }
    if let Some(e) = p.entries {
        parts.push(Span::raw(format!("{e} entries")));
    }
    let mut figures: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for part in parts {
        let w = theme::width(&part.content) + if figures.is_empty() { 0 } else { 3 };
        if !figures.is_empty() && used + w > width {
            break;
        }
        if !figures.is_empty() {
            figures.push(Span::styled(" · ", theme::DIM));
        }
        used += w;
        figures.push(part);
    }
    out.push(item(4, 0, Line::from(figures)));
    let samples: Vec<u64> = f.throughput.samples().collect();
    if !samples.is_empty() {
        let label = "rate ";
        let spark = theme::sparkline(&samples, width.saturating_sub(label.len()));
        out.push(item(
            5,
            1,
            Line::from(vec![
                Span::styled(label, theme::DIM),
                Span::styled(spark, theme::INFO),
            ]),
        ));
    }
    if s.status == StageStatus::Running {
        if let Some(path) = &p.current_path {
            let label = "path ";
            out.push(item(
                6,
                2,
                Line::from(vec![
                    Span::styled(label, theme::DIM),
                    Span::raw(theme::truncate_left(
                        path,
                        width.saturating_sub(label.len()),
                    )),
                ]),
            ));
        }
    }
    out
}

fn outcome_lines(f: &FreezeState, width: usize) -> Vec<Item> {
    let mut out = Vec::new();
    match f.phase {
        Phase::Failed => {
            if let Some(fail) = &f.failure {
                let mut text = format!("✗ {} failed: {}", fail.stage, fail.message);
                if let Some(c) = fail.exit_status {
                    if !fail.message.contains(&format!("status {c}")) {
                        text.push_str(&format!(" (exit status {c})"));
                    }
                }
                for (i, piece) in theme::wrap(&text, width).into_iter().take(3).enumerate() {
                    out.push(item(
                        2 + i as u8,
                        10,
                        Line::styled(piece, theme::ERROR.add_modifier(Modifier::BOLD)),
                    ));
                }
            }
        }
        Phase::Cancelled => {
            out.push(item(
                2,
                10,
                Line::styled(
                    "⊘ cancelled; temp files, registry and guest scratch removed",
                    theme::stage_mark(StageStatus::Cancelled).1,
                ),
            ));
        }
        Phase::Succeeded | Phase::SucceededWithWarnings => {
            if let Some(a) = &f.artifact {
                let path = escape_str(&a.sidecar.display().to_string());
                out.push(item(
                    2,
                    10,
                    Line::from(vec![
                        Span::styled("✓ artifact ", theme::OK.add_modifier(Modifier::BOLD)),
                        Span::raw(theme::truncate_left(&path, width.saturating_sub(11))),
                    ]),
                ));
                for (i, piece) in theme::wrap(&escape_str(&a.hint), width)
                    .into_iter()
                    .take(2)
                    .enumerate()
                {
                    out.push(item(3 + i as u8, 11, Line::styled(piece, theme::DIM)));
                }
            }
        }
        Phase::Starting | Phase::Running => {}
    }
    if !f.warnings.is_empty() {
        let text = format!(
            "! {} warning(s): {}",
            f.warnings.len(),
            f.warnings[f.warnings.len() - 1]
        );
        out.push(item(
            4,
            20,
            Line::styled(theme::truncate(&text, width), theme::WARN),
        ));
    }
    if let Some((stage, note)) = f.notes.back() {
        let text = format!("note ({stage}): {note}");
        out.push(item(
            7,
            30,
            Line::styled(theme::truncate(&text, width), theme::DIM),
        ));
    }
    out
}

fn title(app: &App) -> Line<'static> {
    let mut spans = vec![Span::styled(" freeze ", theme::TITLE)];
    if let Some(m) = app.selected_machine() {
        let name = match &m.slug {
            Ok(s) => s.to_string(),
            Err(_) => escape_str(&m.machine.name),
        };
        spans.push(Span::raw(format!("{name} ")));
    }
    if let Some(f) = app.selected_freeze() {
        let (text, style) = match f.phase {
            Phase::Starting | Phase::Running if f.cancel_requested => ("cancelling", theme::WARN),
            Phase::Starting => ("starting", theme::WARN),
            Phase::Running => ("running", theme::WARN),
            Phase::Succeeded => ("done", theme::OK),
            Phase::SucceededWithWarnings => ("done, warnings", theme::WARN),
            Phase::Failed => ("failed", theme::ERROR),
            Phase::Cancelled => ("cancelled", theme::stage_mark(StageStatus::Cancelled).1),
        };
        spans.push(Span::styled(
            format!("· {text} "),
            style.add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(format!("{} ", dur(f.elapsed_ms(app.now_ms)))));
        if !f.phase.is_finished() && app.area.width >= 60 {
            // One bar for the whole freeze.
            let pm = f.overall_permille();
            spans.push(Span::styled(theme::gauge(pm, 1000, 10), theme::INFO));
            spans.push(Span::raw(format!(" {}% ", pm / 10)));
        }
    }
    Line::from(spans)
}

/// What the pane says when the selected machine has no freeze in this session.
fn idle_lines(app: &App) -> Vec<Line<'static>> {
    let Some(m) = app.selected_machine() else {
        return vec![Line::styled("no machine selected", theme::DIM)];
    };
    let mut lines = Vec::new();
    let mut facts = vec![escape_str(&m.machine.name)];
    facts.push(
        m.machine
            .state
            .as_deref()
            .map(escape_str)
            .unwrap_or_else(|| "unknown state".into()),
    );
    if let Some(c) = m.machine.cpus {
        facts.push(format!("{c} cpus"));
    }
    if let Some(mib) = m.machine.memory_mib {
        facts.push(format::bytes(mib.saturating_mul(1024 * 1024)));
    }
    lines.push(Line::raw(facts.join(" · ")));
    if let Some(p) = app.purposes.get(&m.machine.name) {
        lines.push(Line::styled(format!("demo: {p}"), theme::INFO));
    }
    match m.refusal() {
        Some(why) => lines.push(Line::styled(
            format!("cannot be frozen: {}", theme::guard(&why)),
            theme::WARN,
        )),
        None => {
            let keys = app.keys.keys_text(Context::Dashboard, KeyAction::Freeze);
            lines.push(Line::from(vec![
                Span::styled(keys, theme::KEY),
                Span::raw(" freezes it (asks first); the VM keeps running"),
            ]));
        }
    }
    if let Some(l) = app.last_freeze.get(&m.machine.name) {
        let what = match l.failed_stage {
            Some(s) => format!("{} at {s}", l.outcome.name()),
            None => l.outcome.name().to_string(),
        };
        let ago = format::age(app.now_ms.saturating_sub(l.at_ms) / 1000);
        let keys = app.keys.keys_text(Context::Dashboard, KeyAction::History);
        lines.push(Line::from(vec![
            Span::styled("last freeze: ", theme::DIM),
            Span::styled(what, theme::outcome_mark(l.outcome).1),
            Span::styled(format!(" · {ago} ago · {keys} shows its logs"), theme::DIM),
        ]));
    } else if app.history.loaded {
        lines.push(Line::styled("never frozen", theme::DIM));
    } else {
        // Not known yet: "never frozen" would be a guess.
        lines.push(Line::styled("reading the history…", theme::DIM));
    }
    lines
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let block = Block::bordered()
        .border_style(theme::BORDER)
        .title(title(app));
    let inner = layout::inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let width = usize::from(inner.width);
    let Some(f) = app.selected_freeze() else {
        // Wrapped at word boundaries: a refusal with smolvm's reason is longer than a line.
        frame.render_widget(
            Paragraph::new(idle_lines(app)).wrap(ratatui::widgets::Wrap { trim: false }),
            inner,
        );
        return;
    };
    let height = usize::from(inner.height);
    let mut items: Vec<Item> = Vec::new();
    // Four stage lines, or one strip when the pane is short.
    if height >= 6 {
        for s in Stage::ALL {
            items.push(item(1, 0, stage_line(app, f, s, width)));
        }
    } else {
        items.push(item(1, 0, stage_strip(app, f)));
    }
    let mut rest = outcome_lines(f, width);
    // The push's layers, right under the stage lines, before the exec-tar figures.
    rest.extend(
        super::layers_view::lines(f, width)
            .into_iter()
            .map(|l| item(4, 0, l)),
    );
    if !f.phase.is_finished()
        || f.phase == Phase::Failed
            && f.failure
                .as_ref()
                .is_some_and(|x| x.stage == Stage::ExecTar)
    {
        rest.extend(exec_tar_lines(app, f, width));
    } else if f.phase.is_finished() {
        // Only the summary figures once it is over.
        rest.extend(
            exec_tar_lines(app, f, width)
                .into_iter()
                .filter(|i| i.order == 0),
        );
    }
    // Keep the most important lines that fit, in their display order.
    rest.sort_by_key(|i| i.prio);
    let room = height.saturating_sub(items.len());
    let mut kept: Vec<Item> = rest.into_iter().take(room).collect();
    kept.sort_by_key(|i| i.order);
    items.extend(kept);
    let lines: Vec<Line> = items.into_iter().map(|i| i.line).collect();
    frame.render_widget(Paragraph::new(lines), inner);
}
