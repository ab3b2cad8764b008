//! Colours, marks and the small text helpers every pane uses.

use ratatui::style::{Color, Modifier, Style};
use unicode_width::UnicodeWidthChar;

use crate::history::{Outcome, StageStatus};

pub use crate::vocab::theme::ThemeName;

pub const DIM: Style = Style::new().fg(Color::DarkGray);
pub const TITLE: Style = Style::new().add_modifier(Modifier::BOLD);
pub const HEADER: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
pub const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED);
/// Light red: the plain red of most palettes is below 4.5:1 on black.
pub const ERROR: Style = Style::new().fg(Color::LightRed);
pub const WARN: Style = Style::new().fg(Color::Yellow);
pub const OK: Style = Style::new().fg(Color::Green);
pub const INFO: Style = Style::new().fg(Color::Cyan);
pub const KEY: Style = Style::new().fg(Color::Black).bg(Color::Gray);
pub const MATCH: Style = Style::new().fg(Color::Black).bg(Color::Yellow);
pub const CURRENT_MATCH: Style = Style::new().fg(Color::Black).bg(Color::LightRed);
/// Light magenta, for the same reason as [`ERROR`].
pub const CANCELLED: Style = Style::new().fg(Color::LightMagenta);
pub const BORDER: Style = Style::new().fg(Color::Gray);
pub const BORDER_ACTIVE: Style = Style::new().fg(Color::Cyan);

/// Recolours a drawn frame for the chosen theme. The panes draw with the dark palette;
/// doing the mapping in one pass keeps every pane's code free of theme lookups.
pub fn apply(buf: &mut ratatui::buffer::Buffer, theme: ThemeName) {
    if theme == ThemeName::Dark {
        return;
    }
    for cell in buf.content.iter_mut() {
        match theme {
            ThemeName::Dark => {}
            ThemeName::Light => {
                if cell.bg == Color::Gray {
                    // Key labels: light text on a dark chip.
                    cell.fg = Color::White;
                    cell.bg = Color::Indexed(240);
                } else {
                    cell.fg = light(cell.fg);
                }
            }
            ThemeName::Mono => {
                // No colour at all: what colour said is said with weight instead.
                let mut m = cell.modifier;
                match cell.fg {
                    Color::DarkGray => m |= Modifier::DIM,
                    Color::Red | Color::LightRed => m |= Modifier::BOLD,
                    _ => {}
                }
                match cell.bg {
                    Color::Reset => {}
                    Color::LightRed => m |= Modifier::REVERSED | Modifier::UNDERLINED,
                    _ => m |= Modifier::REVERSED,
                }
                cell.modifier = m;
                cell.fg = Color::Reset;
                cell.bg = Color::Reset;
            }
        }
    }
}

/// Foregrounds that stay readable on a light background.
fn light(c: Color) -> Color {
    match c {
        // Dim text stays a mid grey: light grey on white is unreadable.
        Color::DarkGray => Color::Indexed(240),
        Color::Gray => Color::DarkGray,
        Color::LightRed => Color::Red,
        Color::LightMagenta => Color::Magenta,
        Color::Yellow => Color::Indexed(130),
        Color::Cyan => Color::Blue,
        Color::Green => Color::Indexed(28),
        other => other,
    }
}

/// The colour of a machine state.
pub fn state_style(state: Option<&str>) -> Style {
    match state {
        Some("running") => OK,
        Some("failed") | Some("unreachable") => ERROR,
        Some("frozen") => INFO,
        Some("stopped") | Some("created") => DIM,
        _ => WARN,
    }
}

/// The mark and colour of a stage status.
pub fn stage_mark(s: StageStatus) -> (&'static str, Style) {
    match s {
        StageStatus::Waiting => ("·", DIM),
        StageStatus::Running => ("▶", WARN.add_modifier(Modifier::BOLD)),
        StageStatus::Done => ("✓", OK),
        StageStatus::Warning => ("!", WARN),
        StageStatus::Failed => ("✗", ERROR.add_modifier(Modifier::BOLD)),
        StageStatus::Cancelled => ("⊘", CANCELLED),
        StageStatus::Skipped => ("-", DIM),
    }
}

pub fn outcome_mark(o: Outcome) -> (&'static str, Style) {
    match o {
        Outcome::Running => ("▶", WARN),
        Outcome::Succeeded => ("✓", OK),
        Outcome::SucceededWithWarnings => ("!", WARN),
        Outcome::Failed => ("✗", ERROR),
        Outcome::Cancelled => ("⊘", CANCELLED),
        Outcome::Interrupted => ("↯", ERROR),
    }
}

/// Makes text that should already be escaped safe to draw without escaping it twice:
/// backslashes are kept as they are (the core doubles them when it escapes), anything
/// that could still act on a terminal (controls, C1, bidi overrides) is made visible.
pub fn guard(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let acts = c.is_control()
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}');
        if acts {
            out.push_str(&crate::sanitize::escape_str(&c.to_string()));
        } else {
            out.push(c);
        }
    }
    out
}

/// Display width of a string in terminal columns.
pub fn width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// `s` cut to `max` columns, with `…` where it was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > max - 1 {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// `s` cut from the left (for paths, whose end says most), with `…` in front.
pub fn truncate_left(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut kept: Vec<char> = Vec::new();
    let mut w = 0;
    for c in s.chars().rev() {
        let cw = c.width().unwrap_or(0);
        if w + cw > max - 1 {
            break;
        }
        kept.push(c);
        w += cw;
    }
    let mut out = String::from("…");
    out.extend(kept.iter().rev());
    out
}

/// Splits `s` into pieces of at most `max` columns (a character wider than `max` gets a
/// piece of its own). Always at least one piece.
pub fn wrap(s: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut w = 0;
    // At word boundaries; only a word longer than the line is broken inside.
    for word in s.split_inclusive(' ') {
        let ww = width(word.trim_end());
        if w > 0 && w + ww > max {
            out.push(cur.trim_end().to_string());
            cur.clear();
            w = 0;
        }
        if ww > max {
            for c in word.chars() {
                let cw = c.width().unwrap_or(0);
                if w + cw > max && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    w = 0;
                }
                cur.push(c);
                w += cw;
            }
            continue;
        }
        cur.push_str(word);
        w += width(word);
    }
    out.push(cur.trim_end().to_string());
    out
}

/// A text sparkline of `samples`, scaled to their maximum, `width` columns at most
/// (the newest samples).
pub fn sparkline(samples: &[u64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let shown = &samples[samples.len().saturating_sub(width)..];
    let max = shown.iter().copied().max().unwrap_or(0);
    shown
        .iter()
        .map(|&v| {
            if max == 0 || v == 0 {
                ' '
            } else {
                let i = (v as u128 * 7 / max as u128) as usize;
                BARS[i.min(7)]
            }
        })
        .collect()
}

/// A text gauge: `███░░░` of `width` columns for `done` out of `total`.
pub fn gauge(done: u64, total: u64, width: usize) -> String {
    if total == 0 || width == 0 {
        return String::new();
    }
    let filled = ((done.min(total) as u128 * width as u128) / total as u128) as usize;
    let mut s = "█".repeat(filled);
    s.push_str(&"░".repeat(width - filled));
    s
}

pub fn percent(done: u64, total: u64) -> u64 {
    if total == 0 {
        0
    } else {
        (done.min(total) as u128 * 100 / total as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xterm's default palette: what "red" and "grey" are on most terminals.
    fn rgb(c: Color) -> (u8, u8, u8) {
        match c {
            Color::Black => (0, 0, 0),
            Color::Red => (205, 0, 0),
            Color::Green => (0, 205, 0),
            Color::Yellow => (205, 205, 0),
            Color::Blue => (0, 0, 238),
            Color::Magenta => (205, 0, 205),
            Color::Cyan => (0, 205, 205),
            Color::Gray => (229, 229, 229),
            Color::DarkGray => (127, 127, 127),
            Color::LightRed => (255, 0, 0),
            Color::LightGreen => (0, 255, 0),
            Color::LightYellow => (255, 255, 0),
            Color::LightBlue => (92, 92, 255),
            Color::LightMagenta => (255, 0, 255),
            Color::LightCyan => (0, 255, 255),
            Color::White => (255, 255, 255),
            Color::Indexed(n @ 16..=231) => {
                let i = n - 16;
                let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
                (level(i / 36), level((i / 6) % 6), level(i % 6))
            }
            Color::Indexed(n @ 232..=255) => {
                let g = 8 + (n - 232) * 10;
                (g, g, g)
            }
            Color::Rgb(r, g, b) => (r, g, b),
            other => panic!("no reference value for {other:?}"),
        }
    }

    fn luminance(c: Color) -> f64 {
        let (r, g, b) = rgb(c);
        let lin = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.039_28 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    }

    fn contrast(a: Color, b: Color) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    /// WCAG 4.5:1 for every named text colour of every theme against its background.
    #[test]
    fn every_theme_passes_the_contrast_check() {
        let named = [
            ("dim", DIM),
            ("header", HEADER),
            ("error", ERROR),
            ("warn", WARN),
            ("ok", OK),
            ("info", INFO),
            ("cancelled", CANCELLED),
            ("border-active", BORDER_ACTIVE),
        ];
        for (theme, bg) in [
            (ThemeName::Dark, Color::Black),
            (ThemeName::Light, Color::White),
            (ThemeName::Mono, Color::Black),
        ] {
            for (name, style) in named {
                let mut buf =
                    ratatui::buffer::Buffer::empty(ratatui::layout::Rect::new(0, 0, 1, 1));
                buf.set_style(buf.area, style);
                apply(&mut buf, theme);
                let fg = buf.content[0].fg;
                if theme == ThemeName::Mono {
                    assert_eq!(fg, Color::Reset, "{name}");
                    continue;
                }
                let c = contrast(fg, bg);
                assert!(c >= 4.5, "{theme:?} {name}: {fg:?} on {bg:?} is {c:.2}:1");
            }
        }
        // Key labels: white on a dark chip in light, black on grey in dark.
        assert!(contrast(Color::White, Color::Indexed(240)) >= 4.5);
        assert!(contrast(Color::Black, Color::Gray) >= 4.5);
    }

    #[test]
    fn text_helpers() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate_left("/a/b/c/d", 5), "…/c/d");
        assert_eq!(wrap("abcdef", 4), ["abcd", "ef"]);
        assert_eq!(wrap("", 4), [""]);
        assert_eq!(wrap("日本語", 4), ["日本", "語"]);
        // At word boundaries: `(exit status 2)` is not broken inside `exit`.
        assert_eq!(
            wrap("tar failed (exit status 2)", 16),
            ["tar failed (exit", "status 2)"]
        );
        assert_eq!(wrap("a verylongword b", 5), ["a", "veryl", "ongwo", "rd b"]);
        assert_eq!(sparkline(&[0, 1, 2, 4, 8], 4), "▁▂▄█");
        assert_eq!(sparkline(&[], 4), "");
        assert_eq!(gauge(1, 4, 8), "██░░░░░░");
        assert_eq!(percent(1, 3), 33);
        // Escaped text stays as it is; what could act is made visible.
        assert_eq!(guard("a\\x1b b"), "a\\x1b b");
        assert_eq!(
            guard("a\u{1b}]0;t\u{7} \u{9b} \u{202e}"),
            "a\\x1b]0;t\\x07 \\u{9b} \\u{202e}"
        );
    }
}
