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
    if let Some(pid) = d.held_by {
        lines.push(Line::styled(
            format!(
                "⚠ a freeze of this machine is running in another process{}: this one will be refused",
                if pid > 0 { format!(" (pid {pid})") } else { String::new() }
            ),
            theme::WARN.add_modifier(Modifier::BOLD),
        ));
    }
    let verdict = match (&d.tmp_free, &d.estimate) {
        (Probe::Ready(free), Probe::Ready(need)) if free < need => Line::styled(
            format!(
                "⚠ the temp folder may be too small: {} free for ~{}",
                format::bytes(*free),
                format::bytes(*need)
            ),
            theme::WARN.add_modifier(Modifier::BOLD),
        ),
        (Probe::Ready(_), Probe::Ready(_)) => {
            Line::styled("✓ room enough in the temp folder", theme::OK)
        }
        (Probe::Pending, _) | (_, Probe::Pending) => {
            Line::styled("checking the space…", theme::DIM)
        }
        _ => Line::styled(
            "⚠ could not compare the space; the freeze may run out of room",
            theme::WARN,
        ),
    };
    lines.push(verdict);
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
