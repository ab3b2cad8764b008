//! The README's pictures of the dashboard, drawn from a fixture on a `TestBackend` and
//! written as SVG, so it is reproducible and can never drift from the code: the test fails
//! when a picture in `assets/` is stale (`UPDATE_ASSETS=1` rewrites it).

use std::fmt::Write as _;

use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

use super::fixtures;
use crate::freeze::Stage;

const CELL_W: f32 = 8.4;
const CELL_H: f32 = 17.0;
const BG: &str = "#1e1e2e";
const FG: &str = "#cdd6f4";

fn hex(c: Color, default: &str) -> String {
    let named = match c {
        Color::Reset => return default.to_string(),
        Color::Black => "#45475a",
        Color::Red => "#f38ba8",
        Color::Green => "#a6e3a1",
        Color::Yellow => "#f9e2af",
        Color::Blue => "#89b4fa",
        Color::Magenta => "#f5c2e7",
        Color::Cyan => "#94e2d5",
        Color::Gray => "#bac2de",
        Color::DarkGray => "#6c7086",
        Color::LightRed => "#f38ba8",
        Color::LightGreen => "#a6e3a1",
        Color::LightYellow => "#f9e2af",
        Color::LightBlue => "#89b4fa",
        Color::LightMagenta => "#f5c2e7",
        Color::LightCyan => "#94e2d5",
        Color::White => "#ffffff",
        Color::Rgb(r, g, b) => return format!("#{r:02x}{g:02x}{b:02x}"),
        Color::Indexed(i) => return format!("#{0:02x}{0:02x}{0:02x}", i),
    };
    named.to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The buffer as an SVG document: a rectangle per coloured cell, a text span per cell.
pub fn svg(buf: &Buffer) -> String {
    let (w, h) = (buf.area.width, buf.area.height);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{:.0}" height="{:.0}" font-family="DejaVu Sans Mono, Menlo, monospace" font-size="14">"#,
        w as f32 * CELL_W + 16.0,
        h as f32 * CELL_H + 16.0
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="{BG}"/>"#);
    for y in 0..h {
        for x in 0..w {
            let cell = &buf[(x, y)];
            let (px, py) = (8.0 + x as f32 * CELL_W, 8.0 + y as f32 * CELL_H);
            let mut fg = hex(cell.fg, FG);
            let mut bg = hex(cell.bg, BG);
            if cell.modifier.contains(Modifier::REVERSED) {
                std::mem::swap(&mut fg, &mut bg);
            }
            if bg != BG {
                let _ = writeln!(
                    out,
                    r#"<rect x="{px:.1}" y="{py:.1}" width="{CELL_W}" height="{CELL_H}" fill="{bg}"/>"#
                );
            }
            let sym = cell.symbol();
            if sym.trim().is_empty() {
                continue;
            }
            let weight = if cell.modifier.contains(Modifier::BOLD) {
                r#" font-weight="bold""#
            } else {
                ""
            };
            let _ = writeln!(
                out,
                r#"<text x="{px:.1}" y="{:.1}" fill="{fg}"{weight}>{}</text>"#,
                py + CELL_H * 0.78,
                escape(sym)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

/// Compares a drawn picture with `assets/<name>.svg`, rewriting it under `UPDATE_ASSETS=1`.
fn check(name: &str, a: &super::app::App) {
    let t = fixtures::render(a);
    let drawn = svg(t.backend().buffer());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(format!("{name}.svg"));
    if std::env::var_os("UPDATE_ASSETS").is_some() || !path.exists() {
        std::fs::write(&path, &drawn).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(
        on_disk == drawn,
        "assets/{name}.svg is stale: run with UPDATE_ASSETS=1"
    );
}

#[test]
fn readme_picture_is_current() {
    let mut a = fixtures::with_machines(110, 32);
    fixtures::freeze_done(&mut a, "web");
    fixtures::freeze_until(&mut a, "api", Stage::ExecTar);
    fixtures::select(&mut a, "bot-bottle-api");
    check("dashboard", &a);
}

#[test]
fn readme_picture_of_what_changed_is_current() {
    check("what-changed", &fixtures::what_changed(100, 34));
}

#[test]
fn readme_picture_of_a_fleet_is_current() {
    let mut a = fixtures::fleet_loaded(120, 36);
    a.update(super::app::Action::HostListed(super::fleet::HostListed {
        label: "old".into(),
        version: None,
        machines: Err("cannot connect to unix:///run/old.sock: connection refused".into()),
    }));
    a.update(super::app::Action::Tick {
        now_ms: fixtures::NOW_MS + 4_000,
    });
    let text = fixtures::screen(&a);
    assert!(
        text.contains("old ✗ web") && text.contains("unreachable"),
        "{text}"
    );
    check("fleet", &a);
}
