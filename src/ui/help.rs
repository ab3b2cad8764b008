//! The help overlay: every key of every context, read from the key map.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::app::App;
use super::keys::Context;
use super::layout;
use super::theme;

/// The overlay's lines: the current context first, then the others.
pub fn lines(app: &App) -> Vec<Line<'static>> {
    let current = match app.view {
        super::app::View::Dashboard => Context::Dashboard,
        super::app::View::History => Context::History,
        super::app::View::Record => Context::Record,
    };
    let mut order = vec![current];
    order.extend(Context::ALL.iter().copied().filter(|c| *c != current));
    let mut out = Vec::new();
    for ctx in order {
        if !out.is_empty() {
            out.push(Line::raw(""));
        }
        out.push(Line::styled(ctx.title().to_string(), theme::HEADER));
        for b in app.keys.bindings(ctx) {
            let keys = b
                .keys
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join("/");
            out.push(Line::from(vec![
                Span::styled(format!("  {keys:<16}"), theme::TITLE),
                Span::raw(b.help),
            ]));
        }
    }
    out.push(Line::raw(""));
    out.push(Line::styled("typing a filter or a search", theme::HEADER));
    out.push(Line::raw("  Enter           keep it"));
    out.push(Line::raw("  Esc             clear it"));
    out.push(Line::raw("  Bksp            delete a character"));
    out.push(Line::raw(""));
    out.push(Line::styled("mouse", theme::HEADER));
    out.push(Line::raw("  click           select a machine or a freeze"));
    out.push(Line::raw(
        "  wheel           scroll the list, the stderr tail or a log",
    ));
    out
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let all = lines(app);
    let width = area.width.saturating_sub(4).min(72);
    let height = u16::try_from(all.len() + 2)
        .unwrap_or(u16::MAX)
        .min(area.height.saturating_sub(2));
    let r = layout::centered(area, width, height);
    let inner_h = usize::from(r.height.saturating_sub(2));
    let max_off = all.len().saturating_sub(inner_h);
    let off = usize::from(app.help.unwrap_or(0)).min(max_off);
    let more = if max_off > 0 {
        format!(" {}/{} ↑↓ ", off + inner_h.min(all.len()), all.len())
    } else {
        String::new()
    };
    let block = Block::bordered()
        .border_style(theme::BORDER_ACTIVE)
        .title(Span::styled(" keys ", theme::TITLE))
        .title_bottom(Line::styled(more, theme::DIM).right_aligned());
    let shown: Vec<Line> = all.into_iter().skip(off).collect();
    frame.render_widget(Clear, r);
    frame.render_widget(Paragraph::new(shown).block(block), r);
}
