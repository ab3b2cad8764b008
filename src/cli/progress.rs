//! Headless progress: one indicatif bar per stage, fed by the core's events. The figures
//! that move with time (elapsed, rate, stall) are drawn from the clock on every tick, not
//! from the last event, so a stream that stops shows a rate falling to 0 and then
//! `stalled · no bytes for 12s`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::format;
use crate::freeze::{FreezeEvent, Progress, Stage, Transport};

pub struct StageBars {
    multi: MultiProgress,
    /// One bar for the whole freeze, above the stages' lines (not for a lone stage).
    overall: Option<ProgressBar>,
    /// The build's `Step N/M`, for the overall bar.
    steps: Option<(u32, u32)>,
    bars: Vec<(Stage, ProgressBar, Arc<Mutex<Live>>)>,
    transport: Option<Transport>,
    verbose: bool,
    stall_after: Duration,
}

/// What one stage's line shows, kept between events for the clock to read.
#[derive(Debug, Default)]
pub struct Live {
    started: Option<Instant>,
    /// Set once the stage ended: the line stops moving.
    ended: bool,
    bytes: u64,
    total: Option<u64>,
    moved_at: Option<Instant>,
    /// (when, bytes) about a second ago, for the current rate.
    window: Option<(Instant, u64)>,
    rate: u64,
    stall_after: Duration,
}

impl Live {
    fn seen(&mut self, bytes: u64, total: Option<u64>, now: Instant) {
        if bytes > self.bytes || self.moved_at.is_none() {
            self.moved_at = Some(now);
        }
        self.bytes = self.bytes.max(bytes);
        self.total = total;
        self.advance(now);
    }

    /// Moves the one-second window: the rate is the bytes of the last second.
    fn advance(&mut self, now: Instant) {
        match self.window {
            None => self.window = Some((now, self.bytes)),
            Some((t, b)) => {
                let dt = now.saturating_duration_since(t);
                if dt >= Duration::from_secs(1) {
                    self.rate = ((self.bytes - b.min(self.bytes)) as f64 / dt.as_secs_f64()) as u64;
                    self.window = Some((now, self.bytes));
                }
            }
        }
    }

    /// The clock-driven part of the line: elapsed, rate or stall, estimate.
    pub fn text(&mut self, now: Instant, exec_tar: bool) -> String {
        let Some(started) = self.started.filter(|_| !self.ended) else {
            return String::new();
        };
        self.advance(now);
        let elapsed = now.saturating_duration_since(started);
        let mut s = match self.total {
            Some(t) if t > 0 && !exec_tar => {
                format!("{} / {}", format::bytes(self.bytes), format::bytes(t))
            }
            _ => format::bytes(self.bytes),
        };
        let idle = self.moved_at.map(|t| now.saturating_duration_since(t));
        match idle {
            Some(idle) if idle >= self.stall_after && exec_tar => {
                s.push_str("  ");
                s.push_str(&format::stalled(idle.as_millis() as u64));
            }
            _ if self.bytes > 0 => {
                s.push_str(&format!("  {}/s", format::bytes(self.rate)));
            }
            _ => {}
        }
        if exec_tar {
            if let Some(est) = self.total.filter(|t| *t > 0) {
                s.push_str("  ");
                s.push_str(&format::against_estimate(self.bytes, est, Some(self.rate)));
            }
        }
        s.push_str(&format!("  {}", format::duration(elapsed)));
        s
    }
}

fn style(live: Arc<Mutex<Live>>, exec_tar: bool) -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>9} {spinner} {live}{wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key(
            "live",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                if let Ok(mut l) = live.lock() {
                    let t = l.text(Instant::now(), exec_tar);
                    if !t.is_empty() {
                        let _ = write!(w, "{t}  ");
                    }
                }
            },
        )
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓")
}

/// The push's layers: how many are whole, and the one moving (`layers 1/2 done ·
/// 3f9a1c2b7d4e 120.0 MiB / 480.0 MiB`). Names come escaped from the core.
pub fn layers_text(layers: &[crate::freeze::LayerProgress]) -> String {
    if layers.is_empty() {
        return String::new();
    }
    let whole = |l: &&crate::freeze::LayerProgress| l.total.is_some_and(|t| l.bytes >= t);
    let done = layers.iter().filter(whole).count();
    let mut s = format!("layers {done}/{} done", layers.len());
    if let Some(l) = layers.iter().find(|l| !whole(l)) {
        s.push_str(&format!(
            " · {} {}",
            crate::sanitize::guard(&l.layer),
            match l.total {
                Some(t) => format!("{} / {}", format::bytes(l.bytes), format::bytes(t)),
                None => format::bytes(l.bytes),
            }
        ));
    }
    s
}

impl StageBars {
    /// Bars for `stages`; drawn on stderr only when it is a terminal.
    pub fn new(stages: &[Stage], verbose: bool) -> StageBars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = (stages.len() > 1).then(|| {
            let style = ProgressStyle::with_template("{prefix:>9} [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("█▌░");
            let bar = multi.add(ProgressBar::new(1000).with_style(style));
            bar.set_prefix("overall");
            bar.set_message("0%");
            bar
        });
        let bars = stages
            .iter()
            .map(|&s| {
                let live = Arc::new(Mutex::new(Live {
                    stall_after: Duration::from_secs(10),
                    ..Live::default()
                }));
                let bar = multi.add(
                    ProgressBar::new_spinner().with_style(style(live.clone(), s == Stage::ExecTar)),
                );
                bar.set_prefix(s.name());
                bar.set_message("waiting");
                (s, bar, live)
            })
            .collect();
        StageBars {
            multi,
            overall,
            steps: None,
            bars,
            transport: None,
            verbose,
            stall_after: Duration::from_secs(10),
        }
    }

    /// Seconds without bytes before a stage's line says it stalled.
    pub fn stall_after(mut self, secs: u64) -> StageBars {
        self.stall_after = Duration::from_secs(secs.max(1));
        for (_, _, live) in &self.bars {
            if let Ok(mut l) = live.lock() {
                l.stall_after = self.stall_after;
            }
        }
        self
    }

    fn bar(&self, stage: Stage) -> Option<&ProgressBar> {
        self.bars
            .iter()
            .find(|(s, ..)| *s == stage)
            .map(|(_, b, _)| b)
    }

    fn live(&self, stage: Stage) -> Option<std::sync::MutexGuard<'_, Live>> {
        self.bars
            .iter()
            .find(|(s, ..)| *s == stage)
            .and_then(|(.., l)| l.lock().ok())
    }

    /// A line above the bars (or plain on stderr when they are hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// The event-driven part of the line (entries, transport, path); the clock draws
    /// the rest.
    fn progress_text(&self, stage: Stage, p: &Progress) -> String {
        let mut s = String::new();
        if stage == Stage::ExecTar {
            if let Some(e) = p.entries {
                s.push_str(&format!("{e} entries"));
            }
            if let Some(t) = self.transport {
                s.push_str(&format!("  [{}]", t.name()));
            }
            if let Some(path) = &p.current_path {
                s.push_str("  ");
                s.push_str(path);
            }
        }
        if stage == Stage::Push {
            s.push_str(&layers_text(&p.layers));
        }
        s
    }

    pub fn handle(&mut self, ev: &FreezeEvent) {
        // The build's real progress is its steps (the context upload is done at once).
        if let FreezeEvent::Output {
            stage: Stage::Build,
            lines,
            ..
        } = ev
        {
            if let Some((n, m)) = lines.iter().rev().find_map(|l| format::docker_step(l)) {
                self.steps = Some((n, m));
                if let Some(b) = self.bar(Stage::Build) {
                    b.set_message(format!("step {n}/{m}"));
                }
            }
        }
        self.on_event(ev);
        if let Some(o) = &self.overall {
            let pm = self.overall_permille();
            o.set_position(pm);
            o.set_message(format!("{}%", pm / 10));
            match ev {
                FreezeEvent::Done { .. } => o.finish_with_message("100%"),
                FreezeEvent::Failed { .. } | FreezeEvent::Cancelled { .. } => o.abandon(),
                _ => {}
            }
        }
    }

    /// The whole freeze in per mille: each stage an equal share, the running one by its
    /// own measure (exec-tar against the guest's estimate, build by steps, push by bytes)
    /// and never whole until it says so.
    pub fn overall_permille(&self) -> u64 {
        let n = self.bars.len().max(1) as u64;
        let sum: u64 = self
            .bars
            .iter()
            .map(|(stage, _, live)| {
                let Ok(l) = live.lock() else { return 0 };
                if l.ended {
                    return 1000;
                }
                if l.started.is_none() {
                    return 0;
                }
                let part = match (stage, self.steps, l.total) {
                    (Stage::Build, Some((n, m)), _) if m > 0 => {
                        u64::from(n.saturating_sub(1)) * 1000 / u64::from(m)
                    }
                    (_, _, Some(t)) if t > 0 => l.bytes.min(t) * 1000 / t,
                    _ => 0,
                };
                part.min(990)
            })
            .sum();
        sum / n
    }

    fn on_event(&mut self, ev: &FreezeEvent) {
        match ev {
            FreezeEvent::StageStarted { stage, does, .. } => {
                if let Some(mut l) = self.live(*stage) {
                    l.started = Some(Instant::now());
                    l.moved_at = Some(Instant::now());
                }
                if let Some(b) = self.bar(*stage) {
                    if let Some(d) = does {
                        b.set_prefix(format!("{} · {d}", stage.name()));
                    }
                    b.enable_steady_tick(std::time::Duration::from_millis(120));
                    b.set_message("");
                }
            }
            FreezeEvent::TransportChosen { transport, .. } => self.transport = Some(*transport),
            FreezeEvent::Progress {
                stage, progress, ..
            } => {
                let text = self.progress_text(*stage, progress);
                if let Some(mut l) = self.live(*stage) {
                    l.seen(progress.bytes, progress.total, Instant::now());
                }
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
                if let Some(mut l) = self.live(*stage) {
                    l.ended = true;
                }
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
                for (s, b, live) in &self.bars {
                    let ran = live.lock().map(|mut l| {
                        l.ended = true;
                        l.started.is_some()
                    });
                    if *s == failure.stage {
                        b.abandon_with_message("FAILED");
                    } else if !b.is_finished() {
                        b.abandon_with_message(if ran.unwrap_or(false) { "-" } else { "skipped" });
                    }
                }
            }
            FreezeEvent::Cancelled { .. } => {
                for (_, b, live) in &self.bars {
                    let ran = live.lock().map(|mut l| {
                        l.ended = true;
                        l.started.is_some()
                    });
                    if !b.is_finished() {
                        b.abandon_with_message(if ran.unwrap_or(false) {
                            "cancelled"
                        } else {
                            "skipped"
                        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overall_bar_counts_done_stages_and_the_running_ones_share() {
        let id = || "f".to_string();
        let mut bars = StageBars::new(&Stage::ALL, false);
        assert!(bars.overall.is_some());
        assert_eq!(bars.overall_permille(), 0);
        let started = |stage| FreezeEvent::StageStarted {
            id: id(),
            stage,
            does: None,
        };
        let finished = |stage| FreezeEvent::StageFinished {
            id: id(),
            stage,
            duration_ms: 1,
            warnings: vec![],
        };
        bars.handle(&started(Stage::ExecTar));
        bars.handle(&FreezeEvent::Progress {
            id: id(),
            stage: Stage::ExecTar,
            progress: Progress {
                bytes: 50,
                total: Some(100),
                ..Progress::default()
            },
        });
        assert_eq!(bars.overall_permille(), 500 / 4);
        bars.handle(&finished(Stage::ExecTar));
        bars.handle(&started(Stage::Build));
        bars.handle(&FreezeEvent::Output {
            id: id(),
            stage: Stage::Build,
            stream: crate::freeze::OutputStream::Stdout,
            lines: vec!["Step 3/4 : USER node".into()],
            dropped: 0,
        });
        assert_eq!(bars.overall_permille(), (1000 + 500) / 4);
        bars.handle(&finished(Stage::Build));
        bars.handle(&started(Stage::Push));
        // Past its total a stage is still not whole until it finishes.
        bars.handle(&FreezeEvent::Progress {
            id: id(),
            stage: Stage::Push,
            progress: Progress {
                bytes: 200,
                total: Some(100),
                ..Progress::default()
            },
        });
        assert_eq!(bars.overall_permille(), (2000 + 990) / 4);
        // An export has one stage: no overall bar.
        assert!(StageBars::new(&[Stage::ExecTar], false).overall.is_none());
    }

    #[test]
    fn the_push_line_names_the_moving_layer_and_counts_whole_ones() {
        use crate::freeze::LayerProgress;
        let l = |name: &str, bytes, total| LayerProgress {
            layer: name.into(),
            bytes,
            total: Some(total),
        };
        assert_eq!(layers_text(&[]), "");
        assert_eq!(
            layers_text(&[l("aaa", 10, 10), l("b\u{1b}", 5 << 20, 20 << 20)]),
            "layers 1/2 done · b\\x1b 5.0 MiB / 20.0 MiB"
        );
        assert_eq!(layers_text(&[l("aaa", 10, 10)]), "layers 1/1 done");
    }

    #[test]
    fn the_line_follows_the_clock_and_says_when_the_stream_stalled() {
        let t0 = Instant::now();
        let mut l = Live {
            started: Some(t0),
            moved_at: Some(t0),
            stall_after: Duration::from_secs(10),
            ..Live::default()
        };
        l.seen(0, Some(4 << 20), t0);
        l.seen(1 << 20, Some(4 << 20), t0 + Duration::from_millis(1000));
        let text = l.text(t0 + Duration::from_millis(1000), true);
        assert!(text.contains("1.0 MiB/s"), "{text}");
        assert!(text.contains("~25% of ~4.0 MiB"), "{text}");
        // No event for three seconds: the rate falls and the elapsed time goes on.
        let text = l.text(t0 + Duration::from_secs(4), true);
        assert!(text.contains(" 0 B/s"), "{text}");
        assert!(text.contains("4.0s"), "{text}");
        let text = l.text(t0 + Duration::from_secs(13), true);
        assert!(text.contains("stalled · no bytes for 12s"), "{text}");
        l.ended = true;
        assert_eq!(l.text(t0 + Duration::from_secs(14), true), "");
    }
}
