//! Headless progress: one indicatif bar per stage, fed by the core's events.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::format;
use crate::freeze::{FreezeEvent, Progress, Stage, Transport};

pub struct StageBars {
    multi: MultiProgress,
    bars: Vec<(Stage, ProgressBar)>,
    transport: Option<Transport>,
    verbose: bool,
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>9} {spinner} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓")
}

impl StageBars {
    /// Bars for `stages`; drawn on stderr only when it is a terminal.
    pub fn new(stages: &[Stage], verbose: bool) -> StageBars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bars = stages
            .iter()
            .map(|&s| {
                let bar = multi.add(ProgressBar::new_spinner().with_style(style()));
                bar.set_prefix(s.name());
                bar.set_message("waiting");
                (s, bar)
            })
            .collect();
        StageBars {
            multi,
            bars,
            transport: None,
            verbose,
        }
    }

    fn bar(&self, stage: Stage) -> Option<&ProgressBar> {
        self.bars.iter().find(|(s, _)| *s == stage).map(|(_, b)| b)
    }

    /// A line above the bars (or plain on stderr when they are hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    fn progress_text(&self, stage: Stage, p: &Progress) -> String {
        let secs = (p.elapsed_ms as f64 / 1000.0).max(0.001);
        let rate = p.bytes as f64 / secs;
        let mut s = match p.total {
            Some(t) if t > 0 => format!("{} / {}", format::bytes(p.bytes), format::bytes(t)),
            _ => format::bytes(p.bytes),
        };
        s.push_str(&format!(
            "  {}/s  {}",
            format::bytes(rate as u64),
            format::duration(std::time::Duration::from_millis(p.elapsed_ms))
        ));
        if stage == Stage::ExecTar {
            if let Some(e) = p.entries {
                s.push_str(&format!("  {e} entries"));
            }
            if let Some(t) = self.transport {
                s.push_str(&format!("  [{}]", t.name()));
            }
            if let Some(path) = &p.current_path {
                s.push_str("  ");
                s.push_str(path);
            }
        }
        s
    }

    pub fn handle(&mut self, ev: &FreezeEvent) {
        match ev {
            FreezeEvent::StageStarted { stage, does, .. } => {
                if let Some(b) = self.bar(*stage) {
                    if let Some(d) = does {
                        b.set_prefix(format!("{} · {d}", stage.name()));
                    }
                    b.enable_steady_tick(std::time::Duration::from_millis(120));
                    b.set_message("starting");
                }
            }
            FreezeEvent::TransportChosen { transport, .. } => self.transport = Some(*transport),
            FreezeEvent::Progress {
                stage, progress, ..
            } => {
                let text = self.progress_text(*stage, progress);
                if let Some(b) = self.bar(*stage) {
                    b.set_message(text);
                }
            }
            FreezeEvent::Note { stage, message, .. } => {
                self.println(&format!("{stage}: {message}"))
            }
            FreezeEvent::Command {
                stage, argv, io, ..
            } if self.verbose => {
                let io = io
                    .as_deref()
                    .map(|io| format!("  # {io}"))
                    .unwrap_or_default();
                self.println(&format!(
                    "{stage}: $ {}{io}",
                    crate::format::shell_words(argv)
                ))
            }
            FreezeEvent::Output {
                stage,
                lines,
                dropped,
                ..
            } if self.verbose => {
                if *dropped > 0 {
                    self.println(&format!(
                        "{stage}: … {dropped} lines not shown (see the log)"
                    ));
                }
                for l in lines {
                    self.println(&format!("{stage}| {l}"));
                }
            }
            FreezeEvent::StageFinished {
                stage,
                duration_ms,
                warnings,
                ..
            } => {
                if let Some(b) = self.bar(*stage) {
                    let mark = if warnings.is_empty() {
                        "done"
                    } else {
                        "done with warnings"
                    };
                    let msg = format!(
                        "{mark} in {}",
                        format::duration(std::time::Duration::from_millis(*duration_ms))
                    );
                    b.finish_with_message(msg);
                }
                for w in warnings {
                    self.println(&format!("{stage}: warning: {w}"));
                }
            }
            FreezeEvent::Failed { failure, .. } => {
                for (s, b) in &self.bars {
                    if *s == failure.stage {
                        b.abandon_with_message("FAILED");
                    } else if !b.is_finished() {
                        b.abandon_with_message("-");
                    }
                }
            }
            FreezeEvent::Cancelled { .. } => {
                for (_, b) in &self.bars {
                    if !b.is_finished() {
                        b.abandon_with_message("cancelled");
                    }
                }
            }
            _ => {}
        }
    }

    pub fn clear(&self) {
        let _ = self.multi.clear();
    }
}
