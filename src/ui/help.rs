//! The help overlay: every key of every context, read from the key map.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::app::App;
use super::keys::Context;
use super::layout;
use super::theme;

/// The overlay's lines: the global keys and the one rule for `q` first, then the current
/// context, then the others.
pub fn lines(app: &App) -> Vec<Line<'static>> {
    let current = match app.view {
        super::app::View::Dashboard => Context::Dashboard,
        super::app::View::History => Context::History,
        super::app::View::Record => Context::Record,
    };
    let mut order = vec![Context::Global, current];
    order.extend(
        Context::ALL
            .iter()
            .copied()
            .filter(|c| *c != current && *c != Context::Global),
    );
    let mut out = vec![Line::styled(
        "q quits from every view, help too; Esc goes back or closes",
        theme::DIM,
    )];
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
    if app.is_fleet() {
        out.push(Line::raw(
            "  @LABEL          the machines of the hosts whose label starts so",
        ));
    }
    out.push(Line::raw(""));
    out.push(Line::styled("mouse", theme::HEADER));
    out.push(Line::raw("  click           select a machine or a freeze"));
    out.push(Line::raw(
        "  wheel           scroll the list, the stderr tail or a log",
    ));
    out
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let all = wrapped(lines(app), usize::from(area.width.saturating_sub(6)));
    // As wide as the longest line (no key's text is cut), up to the terminal.
    let longest = all.iter().map(Line::width).max().unwrap_or(40);
    let width = area
        .width
        .saturating_sub(4)
        .min(u16::try_from(longest + 2).unwrap_or(u16::MAX));
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
    let shown = wrapped(shown, usize::from(r.width.saturating_sub(2)));
    frame.render_widget(Clear, r);
    frame.render_widget(Paragraph::new(shown).block(block), r);
}

/// Lines wider than `width` wrapped at words, a key's text indented under itself, so no
/// text is cut on a narrow terminal.
fn wrapped(lines: Vec<Line<'static>>, width: usize) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for l in lines {
        if l.width() <= width || width < 24 {
            out.push(l);
            continue;
        }
        match &l.spans[..] {
            [keys, help] => {
                let indent = super::theme::width(&keys.content);
                let pieces = super::theme::wrap(&help.content, width.saturating_sub(indent));
                for (i, p) in pieces.into_iter().enumerate() {
                    let lead = if i == 0 {
                        keys.clone()
                    } else {
                        Span::raw(" ".repeat(indent))
                    };
                    out.push(Line::from(vec![lead, Span::styled(p, help.style)]));
                }
            }
            _ => {
                let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
                let style = l.spans.first().map(|s| s.style).unwrap_or_default();
                for p in super::theme::wrap(&text, width) {
                    out.push(Line::styled(p, style));
                }
            }
        }
    }
    out
}
