//! Per-layer bytes of the push stage (registry push or `docker load`), under the stage
//! lines of the freeze pane while it runs (issue 14 item 3).

use ratatui::text::{Line, Span};

use super::state::FreezeState;
use super::theme;
use crate::format;
use crate::freeze::Stage;
use crate::history::StageStatus;

/// Layers listed; the rest are summed on one line.
const SHOWN: usize = 4;

/// One line per layer (`layer 3f9a1c2b7d4e  120.0 MiB / 512.0 MiB ▓▓▓░░ 23%`) while the
/// push stage runs and knows its layers; nothing otherwise.
pub fn lines(f: &FreezeState, width: usize) -> Vec<Line<'static>> {
    let s = f.stage(Stage::Push);
    if s.status != StageStatus::Running {
        return Vec::new();
    }
    let Some(p) = &s.progress else {
        return Vec::new();
    };
    let mut out: Vec<Line<'static>> = p
        .layers
        .iter()
        .take(SHOWN)
        .map(|l| {
            // The name came from the core escaped; guarded again as everything drawn is.
            let name = format!("  {} ", theme::truncate(&theme::guard(&l.layer), 14));
            let mut spans = vec![Span::styled(format!("{name:<17}"), theme::DIM)];
            match l.total.filter(|t| *t > 0) {
                Some(t) => {
                    let text = format!("{} / {} ", format::bytes(l.bytes), format::bytes(t));
                    let room = width.saturating_sub(17 + theme::width(&text) + 5);
                    spans.push(Span::raw(text));
                    if room >= 4 {
                        spans.push(Span::styled(
                            theme::gauge(l.bytes.min(t), t, room.min(20)),
                            theme::INFO,
                        ));
                    }
                    spans.push(Span::raw(format!(" {}%", theme::percent(l.bytes, t))));
                }
                None => spans.push(Span::raw(format::bytes(l.bytes))),
            }
            Line::from(spans)
        })
        .collect();
    if p.layers.len() > SHOWN {
        let rest = &p.layers[SHOWN..];
        let bytes: u64 = rest.iter().map(|l| l.bytes).sum();
        out.push(Line::styled(
            format!("  … {} more layers, {}", rest.len(), format::bytes(bytes)),
            theme::DIM,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use super::super::app::Action;
    use super::super::fixtures::*;
    use crate::freeze::{FreezeEvent, LayerProgress, Progress, Stage};

    fn push_progress(layers: Vec<LayerProgress>) -> Action {
        Action::Freeze(FreezeEvent::Progress {
            id: id_of("web"),
            stage: Stage::Push,
            progress: Progress {
                bytes: layers.iter().map(|l| l.bytes).sum(),
                total: Some(layers.iter().filter_map(|l| l.total).sum()),
                elapsed_ms: 3_000,
                layers,
                ..Progress::default()
            },
        })
    }

    fn layer(name: &str, bytes: u64, total: u64) -> LayerProgress {
        LayerProgress {
            layer: name.into(),
            bytes,
            total: Some(total),
        }
    }

    /// Issue 14 item 3: each layer's bytes under the stage lines, and one bar for the
    /// whole freeze in the title.
    #[test]
    fn freeze_in_push_with_layers() {
        let mut a = with_machines(120, 30);
        freeze_until(&mut a, "web", Stage::Push);
        a.update(push_progress(vec![
            layer("3f9a1c2b7d4e", 512 * MIB, 512 * MIB),
            layer("\u{1b}[2Jevil", 120 * MIB, 480 * MIB),
        ]));
        let text = screen(&a);
        let l1 = text.lines().find(|l| l.contains("3f9a1c2b7d4e")).unwrap();
        assert!(
            l1.contains("512.0 MiB / 512.0 MiB") && l1.contains("100%"),
            "{l1}"
        );
        let l2 = text.lines().find(|l| l.contains("evil")).unwrap();
        assert!(
            l2.contains("120.0 MiB / 480.0 MiB") && l2.contains("25%"),
            "{l2}"
        );
        assert!(!text.contains('\u{1b}'), "{text}");
        assert_snapshot!(text);
    }

    #[test]
    fn many_layers_are_summed_past_four() {
        let mut a = with_machines(120, 40);
        freeze_until(&mut a, "web", Stage::Push);
        a.update(push_progress(
            (1..=7)
                .map(|i| layer(&format!("layer {i}"), MIB, 2 * MIB))
                .collect(),
        ));
        let text = screen(&a);
        assert!(
            text.contains("layer 4") && !text.contains("layer 5 "),
            "{text}"
        );
        assert!(text.contains("… 3 more layers, 3.0 MiB"), "{text}");
    }

    #[test]
    fn no_layer_lines_once_push_is_over() {
        let mut a = with_machines(120, 30);
        freeze_until(&mut a, "web", Stage::Pack);
        let f = a.selected_freeze().unwrap();
        assert!(super::lines(f, 100).is_empty());
    }
}
