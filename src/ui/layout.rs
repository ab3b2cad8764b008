//! Where each pane goes for a terminal size. Pure functions of the size, shared by the
//! renderer and by the reducer (mouse hits, page sizes), so both agree.

use ratatui::layout::{Constraint, Layout, Rect};

/// At least this wide, the freeze and stderr panes sit side by side; narrower, the
/// stderr pane gets the whole width below the freeze pane (its lines are long).
pub const SIDE_BY_SIDE_WIDTH: u16 = 150;
/// Least width of the freeze pane when side by side (its figures line).
pub const FREEZE_PANE_WIDTH: u16 = 62;
/// Most width of the freeze pane when side by side: the rest is the stderr's.
pub const FREEZE_PANE_MAX_WIDTH: u16 = 96;
/// Least height of the freeze pane when stacked (4 stages and 3 detail lines).
pub const FREEZE_PANE_HEIGHT: u16 = 9;
/// Most height of the freeze pane when stacked (figures, sparkline, path, notes).
pub const FREEZE_PANE_MAX_HEIGHT: u16 = 14;
/// Below this height of what is left, the stderr pane is dropped.
pub const MIN_STDERR_HEIGHT: u16 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dashboard {
    pub machines: Rect,
    pub freeze: Rect,
    /// Zero-sized when the terminal is too small for it.
    pub stderr: Rect,
    pub status: Rect,
}

/// The body and the one-line status bar at the bottom.
pub fn body_and_status(area: Rect) -> (Rect, Rect) {
    let [body, status] = Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(area);
    (body, status)
}

/// The dashboard's panes; `rows` is the number of machines shown.
pub fn dashboard(area: Rect, rows: usize) -> Dashboard {
    let (body, status) = body_and_status(area);
    let h = body.height;
    let wanted = u16::try_from(rows)
        .unwrap_or(u16::MAX)
        .saturating_add(3)
        .max(5);
    let side = body.width >= SIDE_BY_SIDE_WIDTH;
    let cap = if side { h * 45 / 100 } else { h * 35 / 100 };
    let machines_h = wanted.min(cap.max(5)).min(h);
    let [machines, rest] =
        Layout::vertical([Constraint::Length(machines_h), Constraint::Fill(1)]).areas(body);
    let (freeze, stderr) = if side {
        // Widths follow the terminal: two fifths for the freeze pane, within bounds.
        let fw = (rest.width * 2 / 5).clamp(FREEZE_PANE_WIDTH, FREEZE_PANE_MAX_WIDTH);
        let [f, s] = Layout::horizontal([Constraint::Length(fw), Constraint::Fill(1)]).areas(rest);
        (f, s)
    } else if rest.height >= FREEZE_PANE_HEIGHT + MIN_STDERR_HEIGHT {
        let fh = (rest.height / 2).clamp(FREEZE_PANE_HEIGHT, FREEZE_PANE_MAX_HEIGHT);
        let [f, s] = Layout::vertical([Constraint::Length(fh), Constraint::Fill(1)]).areas(rest);
        (f, s)
    } else {
        (rest, Rect::new(rest.x, rest.y + rest.height, rest.width, 0))
    };
    Dashboard {
        machines,
        freeze,
        stderr,
        status,
    }
}

/// Inside a bordered block.
pub fn inner(r: Rect) -> Rect {
    Rect {
        x: r.x.saturating_add(1),
        y: r.y.saturating_add(1),
        width: r.width.saturating_sub(2),
        height: r.height.saturating_sub(2),
    }
}

/// A box of at most `w`×`h`, centred in `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// The first row shown of a list of `len` rows with `selected` kept in a viewport of
/// `height` rows: the selection stays on screen, at the bottom when scrolled.
pub fn scroll_offset(selected: usize, height: usize) -> usize {
    if height == 0 {
        return selected;
    }
    selected.saturating_sub(height - 1)
}

pub fn contains(r: Rect, col: u16, row: u16) -> bool {
    col >= r.x
        && col < r.x.saturating_add(r.width)
        && row >= r.y
        && row < r.y.saturating_add(r.height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_by_side_when_wide_stacked_when_not() {
        let d = dashboard(Rect::new(0, 0, 200, 50), 4);
        assert_eq!(d.freeze.y, d.stderr.y);
        assert_eq!(d.machines.height, 7);
        // The freeze pane's width follows the terminal, within its bounds.
        assert_eq!(d.freeze.width, 80);
        assert_eq!(dashboard(Rect::new(0, 0, 300, 50), 4).freeze.width, 96);
        // At 120 columns the stderr pane takes the whole width below.
        let d = dashboard(Rect::new(0, 0, 120, 40), 4);
        assert!(d.stderr.y > d.freeze.y);
        assert_eq!(d.stderr.width, 120);
        assert!(d.freeze.height > FREEZE_PANE_HEIGHT);
        let d = dashboard(Rect::new(0, 0, 80, 24), 20);
        assert!(d.stderr.y > d.freeze.y);
        assert!(d.stderr.height >= MIN_STDERR_HEIGHT);
        assert_eq!(d.status, Rect::new(0, 23, 80, 1));
    }

    #[test]
    fn tiny_terminals_do_not_break() {
        for (w, h) in [(0, 0), (1, 1), (20, 5), (40, 12), (79, 23)] {
            let d = dashboard(Rect::new(0, 0, w, h), 30);
            for r in [d.machines, d.freeze, d.stderr, d.status] {
                assert!(r.bottom() <= h && r.right() <= w, "{w}x{h}: {r:?}");
            }
        }
    }

    #[test]
    fn offsets_keep_the_selection_visible() {
        assert_eq!(scroll_offset(0, 5), 0);
        assert_eq!(scroll_offset(4, 5), 0);
        assert_eq!(scroll_offset(7, 5), 3);
        assert_eq!(scroll_offset(3, 0), 3);
    }
}
