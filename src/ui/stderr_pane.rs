//! The live tail of the selected freeze's output: following by default, scrollable,
//! wrap on demand. Every line was escaped when it arrived: control characters and
//! escape sequences show as text, never act.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::app::App;
use super::keys::{Context, KeyAction};
use super::layout;
use super::state::{FreezeState, Phase, TailKind, TailLine};
use super::theme;
use crate::freeze::OutputStream;

/// Width of the stage label in front of each line, when the pane is wide enough.
const LABEL: usize = 9;

fn title(app: &App, f: Option<&FreezeState>) -> Line<'static> {
    let mut spans = vec![Span::styled(" stderr ", theme::TITLE)];
    if let Some(f) = f {
        if let Some(stage) = f.current.or_else(|| f.failure.as_ref().map(|x| x.stage)) {
            spans.push(Span::raw(format!("· {stage} ")));
        }
        if app.tail_view.follow {
            spans.push(Span::styled("following ", theme::DIM));
        } else {
            let keys = app.keys.keys_text(Context::Dashboard, KeyAction::Follow);
            spans.push(Span::styled(
                format!("scrolled ({keys} follows) "),
                theme::WARN,
            ));
        }
    }
    if app.tail_view.wrap {
        spans.push(Span::styled("wrap ", theme::DIM));
    }
    Line::from(spans)
}

fn line_style(l: &TailLine) -> Style {
    match l.kind {
        TailKind::Gap(_) => theme::DIM.add_modifier(Modifier::ITALIC),
        TailKind::Line(OutputStream::Stdout) => Style::new(),
        TailKind::Line(OutputStream::Stderr) => Style::new(),
    }
}

/// The screen lines of one tail line: wrapped or cut to `width`.
fn visual(l: &TailLine, width: usize, labels: bool, wrap: bool) -> Vec<Line<'static>> {
    let text_width = if labels {
        width.saturating_sub(LABEL + 1)
    } else {
        width
    }
    .max(1);
    let pieces = if wrap {
        theme::wrap(&l.text, text_width)
    } else {
        vec![theme::truncate(&l.text, text_width)]
    };
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut spans = Vec::new();
            if labels {
                let label = if i == 0 { l.stage.name() } else { "" };
                spans.push(Span::styled(
                    format!("{label:>width$}│", width = LABEL),
                    theme::DIM,
                ));
            }
            spans.push(Span::styled(p, line_style(l)));
            Line::from(spans)
        })
        .collect()
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let f = app.selected_freeze();
    let block = Block::bordered()
        .border_style(theme::BORDER)
        .title(title(app, f));
    let inner = layout::inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let Some(f) = f else {
        let text = if app.selected_machine().is_some() {
            "no freeze of this machine in this session"
        } else {
            ""
        };
        frame.render_widget(Paragraph::new(Line::styled(text, theme::DIM)), inner);
        return;
    };
    let width = usize::from(inner.width);
    let height = usize::from(inner.height);
    if f.tail.is_empty() {
        let mut lines = Vec::new();
        match (&f.failure, f.phase) {
            (Some(fail), Phase::Failed) => {
                lines.push(Line::styled(format!("{} stderr:", fail.stage), theme::DIM));
                for l in fail.stderr_tail.lines() {
                    lines.push(Line::raw(theme::truncate(l, width)));
                }
            }
            (_, p) if p.is_finished() => lines.push(Line::styled("<no stderr>", theme::DIM)),
            _ => lines.push(Line::styled("<no output yet>", theme::DIM)),
        }
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    }
    let labels = width >= 50;
    let wrap = app.tail_view.wrap;
    let mut lines: Vec<Line> = Vec::with_capacity(height);
    let bottom_top = f
        .tail
        .end()
        .saturating_sub(height as u64)
        .max(f.tail.base());
    let top = app.tail_view.top.clamp(f.tail.base(), bottom_top);
    if app.tail_view.follow {
        // From the newest line up until the pane is full.
        for l in f.tail.iter().rev() {
            let mut v = visual(l, width, labels, wrap);
            while let Some(last) = v.pop() {
                lines.push(last);
                if lines.len() == height {
                    break;
                }
            }
            if lines.len() == height {
                break;
            }
        }
        lines.reverse();
    } else {
        let mut n = top;
        while lines.len() < height {
            let Some(l) = f.tail.get(n) else {
                break;
            };
            for v in visual(l, width, labels, wrap) {
                if lines.len() < height {
                    lines.push(v);
                }
            }
            n += 1;
        }
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
