//! Confirmations: freeze (with the space check), cancel, quit.

use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::App;
use super::keys::{Context, KeyAction};
use super::layout;
use super::state::{Dialog, FreezeDialog, Probe};
use super::theme;
use crate::format;
use crate::freeze::{CheckLevel, PreCheck, PrunePlan};
use crate::sanitize::escape_str;

fn field(name: &str, value: Vec<Span<'static>>) -> Line<'static> {
    let mut spans = vec![Span::styled(format!("{name:<10}"), theme::DIM)];
    spans.extend(value);
    Line::from(spans)
}

fn probe_text(p: &Probe<u64>, ready: impl Fn(u64) -> String) -> Span<'static> {
    match p {
        Probe::Pending => Span::styled("checking…", theme::DIM),
        Probe::Ready(v) => Span::raw(ready(*v)),
        Probe::Failed(e) => Span::styled(format!("unknown ({e})"), theme::WARN),
    }
}

fn freeze_lines(d: &FreezeDialog) -> Vec<Line<'static>> {
    let tmp = escape_str(&d.tmp_dir.display().to_string());
    let mut lines = vec![
        Line::raw("The VM keeps running. Its root filesystem is streamed out as a tar,"),
        Line::raw("built into an image, pushed to a throw-away registry and packed."),
        Line::raw(""),
        field(
            "machine",
            vec![Span::styled(escape_str(&d.machine), theme::TITLE)],
        ),
        field(
            "artifact",
            vec![Span::raw(escape_str(&d.artifact.display().to_string()))],
        ),
        field(
            "temp",
            vec![
                Span::raw(format!("{tmp}: ")),
                probe_text(&d.tmp_free, |v| format!("{} free", format::bytes(v))),
            ],
        ),
        field(
            "root",
            vec![
                probe_text(&d.estimate, |v| format!("~{} used", format::bytes(v))),
                Span::styled(" (df / in the guest)", theme::DIM),
            ],
        ),
    ];
    lines.push(field(
        "state",
        vec![
            Span::raw(format!(
                "{}: ",
                escape_str(&d.state_dir.display().to_string())
            )),
            probe_text(&d.state_free, |v| format!("{} free", format::bytes(v))),
        ],
    ));
    lines.push(Line::raw(""));
    // The pre-checks, one line each; they answer in the background.
    match d.held_by {
        Some(pid) => lines.push(Line::styled(
            format!(
                "⚠ a freeze of this machine is running in another process{}: this one will be refused",
                if pid > 0 { format!(" (pid {pid})") } else { String::new() }
            ),
            theme::WARN.add_modifier(Modifier::BOLD),
        )),
        None => lines.push(check_line(&PreCheck {
            level: CheckLevel::Ok,
            text: "no other process is freezing this machine".into(),
        })),
    }
    let known = |p: &Probe<u64>| match p {
        Probe::Ready(v) => Some(Some(*v)),
        Probe::Failed(_) => Some(None),
        Probe::Pending => None,
    };
    match (known(&d.tmp_free), known(&d.state_free), known(&d.estimate)) {
        (Some(tmp), Some(state), Some(estimate)) => {
            for c in crate::freeze::space_checks(
                &d.tmp_dir,
                tmp,
                &d.state_dir,
                state,
                estimate,
                d.same_disk,
            ) {
                lines.push(check_line(&PreCheck {
                    level: c.level,
                    text: escape_str(&c.text),
                }));
            }
        }
        _ => lines.push(Line::styled("… checking the space", theme::DIM)),
    }
    match &d.parts {
        Probe::Ready(parts) => lines.extend(parts.iter().map(check_line)),
        Probe::Failed(e) => lines.push(Line::styled(format!("⚠ {e}"), theme::WARN)),
        Probe::Pending => lines.push(Line::styled(
            "… checking Docker and the registry",
            theme::DIM,
        )),
    }
    lines
}

/// One pre-check: a mark and its text, coloured by how it came out.
fn check_line(c: &PreCheck) -> Line<'static> {
    let (mark, style) = match c.level {
        CheckLevel::Ok => ("✓", theme::OK),
        CheckLevel::Warn => ("⚠", theme::WARN),
        CheckLevel::Fail => ("✗", theme::ERROR.add_modifier(Modifier::BOLD)),
    };
    Line::styled(format!("{mark} {}", c.text), style)
}

/// The prune plan: a count, then what goes, as many lines as `room` allows.
fn prune_lines(plan: &Probe<PrunePlan>, keep: usize, room: usize) -> Vec<Line<'static>> {
    let plan = match plan {
        Probe::Pending => return vec![Line::styled("… listing what would go", theme::DIM)],
        Probe::Failed(e) => {
            return vec![Line::styled(
                format!("cannot plan the prune: {e}"),
                theme::ERROR,
            )]
        }
        Probe::Ready(p) => p,
    };
    if plan.is_empty() {
        return vec![Line::raw(format!(
            "Nothing to prune: no machine has more than its newest {keep} records."
        ))];
    }
    let mut lines = vec![
        Line::raw(format!(
            "Keeps the newest {keep} records of each machine and its last good freeze. Removes:"
        )),
        Line::styled(
            format!(
                "{} record(s), {} kept folder(s), {} image(s), {} artifact(s)",
                plan.records.len(),
                plan.temp_dirs.len(),
                plan.images.len(),
                plan.artifacts.len()
            ),
            theme::WARN.add_modifier(Modifier::BOLD),
        ),
    ];
    let items = plan.lines();
    let room = room.max(1);
    let shown = if items.len() > room {
        room - 1
    } else {
        items.len()
    };
    lines.extend(items.iter().take(shown).map(|l| Line::raw(escape_str(l))));
    if shown < items.len() {
        lines.push(Line::styled(
            format!(
                "… and {} more (`bottle-freeze prune --dry-run` lists them all)",
                items.len() - shown
            ),
            theme::DIM,
        ));
    }
    lines
}

fn buttons(app: &App, yes: &str, no: &str) -> Line<'static> {
    let y = app.keys.keys_text(Context::Dialog, KeyAction::Confirm);
    let n = app.keys.keys_text(Context::Dialog, KeyAction::Deny);
    Line::from(vec![
        Span::styled(format!(" {y} "), theme::KEY),
        Span::raw(format!(" {yes}    ")),
        Span::styled(format!(" {n} "), theme::KEY),
        Span::raw(format!(" {no}")),
    ])
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, dialog: &Dialog) {
    let (title, lines, border) = match dialog {
        Dialog::Freeze(d) => {
            let mut l = freeze_lines(d);
            l.push(Line::raw(""));
            l.push(buttons(app, "freeze", "back out"));
            (
                format!(" Freeze {}? ", escape_str(&d.machine)),
                l,
                theme::BORDER_ACTIVE,
            )
        }
        Dialog::Cancel { machine } => (
            format!(" Cancel the freeze of {}? ", escape_str(machine)),
            vec![
                Line::raw("The stage under way is stopped. The temp folder, the registry and"),
                Line::raw("the guest's scratch archive are removed; the VM keeps running."),
                Line::raw(""),
                buttons(app, "cancel it", "keep going"),
            ],
            theme::WARN,
        ),
        Dialog::Resume {
            id,
            machine,
            from,
            uses,
            ..
        } => {
            let mut l = vec![
                Line::raw(format!(
                    "A new freeze of {} starts at {from} with what {} kept;",
                    escape_str(machine),
                    escape_str(id)
                )),
                Line::raw("the VM is not streamed again. It uses:"),
            ];
            l.extend(uses.iter().map(|u| Line::raw(format!("  {u}"))));
            l.push(Line::raw(""));
            l.push(buttons(app, "resume", "back out"));
            (
                format!(" Resume the freeze of {}? ", escape_str(machine)),
                l,
                theme::BORDER_ACTIVE,
            )
        }
        Dialog::Discard { id, machine, what } => {
            let mut l = vec![
                Line::raw(format!(
                    "What {} kept for a resume is removed (an image another",
                    escape_str(id)
                )),
                Line::raw("record uses stays). It cannot be resumed afterwards. Removes:"),
            ];
            l.extend(
                what.iter()
                    .map(|w| Line::styled(format!("  {w}"), theme::WARN)),
            );
            l.push(Line::raw(""));
            l.push(buttons(app, "discard", "keep it"));
            (
                format!(" Discard what {}'s freeze kept? ", escape_str(machine)),
                l,
                theme::WARN,
            )
        }
        Dialog::Prune(plan) => {
            let room = usize::from(area.height.saturating_sub(10));
            let mut l = prune_lines(plan, app.settings.prune_keep, room);
            l.push(Line::raw(""));
            let empty = matches!(plan, Probe::Ready(p) if p.is_empty());
            l.push(if empty {
                buttons(app, "close", "close")
            } else {
                buttons(app, "prune", "back out")
            });
            (" Prune the history? ".to_string(), l, theme::WARN)
        }
        Dialog::Quit { running } => (
            " Quit? ".to_string(),
            vec![
                Line::styled(
                    format!(
                        "{running} freeze{} running. Quitting cancels {} and cleans up",
                        if *running == 1 { " is" } else { "es are" },
                        if *running == 1 { "it" } else { "them" }
                    ),
                    theme::WARN,
                ),
                Line::raw("(temp folders, registries, guest scratch) before the dashboard closes."),
                Line::raw(""),
                buttons(app, "quit", "stay"),
            ],
            theme::WARN,
        ),
    };
    // As wide as the text wants (up to the terminal); the key line is drawn apart in the
    // last row, so however the text wraps, the keys stay visible.
    let mut lines = lines;
    let keys = lines.pop().unwrap_or_default();
    let longest = lines
        .iter()
        .map(Line::width)
        .max()
        .unwrap_or(40)
        .max(keys.width());
    let width = area
        .width
        .saturating_sub(4)
        .min(u16::try_from(longest + 2).unwrap_or(u16::MAX).max(50));
    let inner_w = usize::from(width.saturating_sub(2)).max(1);
    let rows: usize = lines
        .iter()
        .map(|l| {
            let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
            theme::wrap(&text, inner_w).len()
        })
        .sum();
    let height = u16::try_from(rows + 3).unwrap_or(u16::MAX);
    let r = layout::centered(area, width, height);
    frame.render_widget(Clear, r);
    let block = Block::bordered()
        .border_style(border)
        .title(Span::styled(title, theme::TITLE));
    let inner = layout::inner(r);
    frame.render_widget(block, r);
    if inner.height == 0 {
        return;
    }
    let text_area = Rect {
        height: inner.height - 1,
        ..inner
    };
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), text_area);
    frame.render_widget(
        Paragraph::new(keys),
        Rect {
            y: inner.y + inner.height - 1,
            height: 1,
            ..inner
        },
    );
}
