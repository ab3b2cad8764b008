//! The bottom line: the keys of the current view, the filter or search being typed, a
//! short message, and how many freezes run.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::app::{App, QuitState, View};
use super::state::Level;
use super::theme;
use crate::sanitize::escape_str;

/// The current context's keys and then the global ones, as many as fit in `width`:
/// the context's last ones go first, help and quit stay.
fn hints(app: &App, width: usize) -> Vec<Span<'static>> {
    let ctx = app.context();
    let all = app.keys.status_hints(ctx);
    let global = app.keys.status_hints(super::keys::Context::Global);
    let n_global = if all.len() > global.len() && all.ends_with(&global) {
        global.len()
    } else {
        0
    };
    let cost = |(k, l): &(String, &str)| theme::width(k) + theme::width(l) + 3;
    let mut keep: Vec<bool> = vec![true; all.len()];
    let mut total: usize = all.iter().map(cost).sum();
    let mut i = all.len() - n_global;
    while total > width && i > 0 {
        i -= 1;
        keep[i] = false;
        total -= cost(&all[i]);
    }
    let mut spans = Vec::new();
    for (h, k) in all.iter().zip(keep) {
        if k {
            spans.push(Span::styled(h.0.clone(), theme::KEY));
            spans.push(Span::raw(format!(" {}  ", h.1)));
        }
    }
    spans
}

fn input(prompt: &str, text: &str, extra: String) -> Vec<Span<'static>> {
    vec![
        Span::styled(prompt.to_string(), theme::INFO),
        Span::raw(escape_str(text)),
        Span::styled("▏", theme::INFO),
        Span::styled(format!("  Enter keeps · Esc clears{extra}"), theme::DIM),
    ]
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let live = app.live_count();
    let right = if live > 0 {
        format!(" {live} freezing ")
    } else {
        String::new()
    };
    let right_w = theme::width(&right) as u16;
    let mut left: Vec<Span> = Vec::new();
    if let QuitState::Cancelling { .. } = app.quit {
        left.push(Span::styled(
            format!(
                "cancelling {} freeze(s) and cleaning up… (Ctrl-C again stops waiting)",
                app.live_count()
            ),
            theme::WARN,
        ));
    } else if app.view == View::Dashboard && app.machines.filter_editing && app.dialog.is_none() {
        left = input("filter /", &app.machines.filter, String::new());
    } else if let Some(rv) = app
        .record
        .as_ref()
        .filter(|r| app.view == View::Record && r.search.editing)
    {
        left = input(
            "search /",
            &rv.search.query,
            format!(" · {} matching lines", rv.search.matches.len()),
        );
    } else if app.view == View::History && app.history.filter_editing && app.dialog.is_none() {
        left = input(
            "filter /",
            &app.history.filter,
            " · also searches the logs".into(),
        );
    } else {
        // A message sits beside the key hints, never over them: the hints give way
        // (least needed first) to at most half the line.
        let room = usize::from(area.width.saturating_sub(right_w));
        let flash = app.flash.as_ref().map(|f| {
            let style = match f.level {
                Level::Info => theme::INFO,
                Level::Warn => theme::WARN,
                Level::Error => theme::ERROR,
            };
            let text = theme::truncate(&f.text, (room / 2).max(20).min(room));
            (text, style)
        });
        let flash_w = flash.as_ref().map_or(0, |(t, _)| theme::width(t) + 2);
        left = hints(app, room.saturating_sub(flash_w));
        if let Some((text, style)) = flash {
            let used: usize = left.iter().map(|s| theme::width(&s.content)).sum();
            let pad = room.saturating_sub(used + flash_w);
            left.push(Span::raw(" ".repeat(pad)));
            left.push(Span::styled("│ ", theme::DIM));
            left.push(Span::styled(text, style));
        }
    }
    let left_area = Rect {
        width: area.width.saturating_sub(right_w),
        ..area
    };
    frame.render_widget(Paragraph::new(Line::from(left)), left_area);
    if right_w > 0 && area.width > right_w {
        let r = Rect {
            x: area.x + area.width - right_w,
            width: right_w,
            ..area
        };
        frame.render_widget(
            Paragraph::new(Span::styled(
                right,
                theme::WARN.add_modifier(ratatui::style::Modifier::REVERSED),
            )),
            r,
        );
    }
}
