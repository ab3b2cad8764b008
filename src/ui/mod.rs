//! The terminal dashboard: `bottle-freeze` with no subcommand.
//!
//! It consumes the same core events as the headless CLI. One reducer
//! ([`app::App::update`]) holds every state change; its arms delegate to one module per
//! concern, each owning its state and tests: `list` (machines, filter, sort),
//! `freeze_view` (this session's freezes and their tail), `history` (history list,
//! record view, search) and `dialogs`. The render functions of the panes
//! take `&App` and only draw; the loop ([`event::run_loop`]) waits on the terminal, the
//! freeze events, background results and a tick, and never blocks the runtime.

pub mod app;
mod content_view;
mod dialog;
mod dialogs;
pub mod event;
mod freeze_pane;
mod freeze_view;
mod help;
mod history;
mod history_view;
mod layers_view;
pub use crate::vocab::keys;
pub mod layout;
mod list;
mod machines_pane;
mod record_actions;
pub mod state;
mod status_bar;
mod stderr_pane;
pub mod theme;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod picture;
#[cfg(test)]
mod tests;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use color_eyre::eyre::{eyre, WrapErr as _};
use ratatui::{DefaultTerminal, Frame};

use crate::freeze::FreezeConfig;
use app::{App, Settings, View};
use event::{Receivers, Services};
use keys::KeyMap;

/// The default background refresh interval of the machine list.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3);

/// What the dashboard runs with.
#[derive(Debug, Clone)]
pub struct UiConfig {
    /// The configuration of every freeze it starts.
    pub freeze: FreezeConfig,
    /// Background refresh interval of the machine list.
    pub refresh: Duration,
    /// Timeout of smolvm queries (discovery, `df`).
    pub query_timeout: Duration,
    /// Where tracing logs go (set up by the caller; never the screen).
    pub log_file: Option<PathBuf>,
    pub keys: KeyMap,
    pub theme: theme::ThemeName,
    pub bell: bool,
    pub notify: bool,
    /// The newest records of each machine that `P` (prune) keeps.
    pub prune_keep: usize,
    /// Seconds without bytes before a stream is shown as stalled.
    pub stall_after: u64,
    /// Mouse capture at start (a key turns it off and on).
    pub mouse: bool,
    /// A standing line under the machine list.
    pub notice: Option<String>,
    /// The machine selected when the list first arrives (the demo's small one).
    pub select_first: Option<String>,
    /// What each machine is for, shown in the freeze pane (the demo's fleet).
    pub purposes: Vec<(String, String)>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl UiConfig {
    /// The dashboard's configuration from the resolved settings (flags, environment,
    /// file, defaults).
    pub fn from_settings(s: &crate::config::Settings) -> UiConfig {
        let freeze = s.freeze_config();
        let refresh = Some(s.refresh)
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| Duration::from_secs_f64(r.clamp(0.5, 3600.0)))
            .unwrap_or(DEFAULT_REFRESH);
        let log_file = env("BOTTLE_FREEZE_LOG_FILE")
            .map(PathBuf::from)
            .or_else(|| Some(crate::logging::log_dir(&freeze.state_dir)));
        UiConfig {
            freeze,
            refresh,
            query_timeout: Duration::from_secs(s.query_timeout.max(1)),
            log_file,
            keys: s.keys.clone(),
            theme: s.theme,
            bell: s.bell,
            notify: s.notify,
            prune_keep: s.prune_keep,
            stall_after: s.stall_after,
            mouse: s.mouse,
            notice: None,
            select_first: None,
            purposes: Vec::new(),
        }
    }

    pub fn settings(&self) -> Settings {
        Settings {
            prefix: self.freeze.prefix.clone(),
            state_dir: self.freeze.state_dir.clone(),
            tmp_dir: self.freeze.tmp_dir.clone(),
            refresh_ms: u64::try_from(self.refresh.as_millis()).unwrap_or(u64::MAX),
            theme: self.theme,
            bell: self.bell,
            notify: self.notify,
            prune_keep: self.prune_keep,
            stall_after_ms: self.stall_after.max(1) * 1000,
        }
    }
}

/// Draws the whole dashboard for `app`. Changes nothing.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    match app.view {
        View::Dashboard => {
            let d = layout::dashboard(area, machines_pane::wanted_rows(app, area.width));
            machines_pane::render(frame, d.machines, app);
            freeze_pane::render(frame, d.freeze, app);
            if d.stderr.height > 0 {
                stderr_pane::render(frame, d.stderr, app);
            }
            status_bar::render(frame, d.status, app);
        }
        View::History => {
            let (body, status) = layout::body_and_status(area);
            history_view::render_list(frame, body, app);
            status_bar::render(frame, status, app);
        }
        View::Record => {
            let (body, status) = layout::body_and_status(area);
            history_view::render_record(frame, body, app);
            status_bar::render(frame, status, app);
        }
    }
    if let Some(d) = &app.dialog {
        dialog::render(frame, area, app, d);
    }
    if app.help.is_some() {
        help::render(frame, area, app);
    }
    theme::apply(frame.buffer_mut(), app.settings.theme);
}

/// The real terminal, in raw mode on the alternate screen with mouse capture, given
/// back on drop (and by the panic hook).
struct TerminalGuard {
    terminal: DefaultTerminal,
}

impl TerminalGuard {
    fn enter(mouse: bool) -> color_eyre::Result<TerminalGuard> {
        use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
        let terminal = match ratatui::try_init() {
            Ok(t) => t,
            Err(e) => {
                ratatui::restore();
                return Err(eyre!(e).wrap_err("cannot set up the terminal"));
            }
        };
        // After ratatui's hook (which restores the screen and then reports): mouse
        // capture off first.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
            previous(info);
        }));
        let guard = TerminalGuard { terminal };
        if mouse {
            crossterm::execute!(std::io::stdout(), EnableMouseCapture)
                .wrap_err("cannot enable the mouse")?;
        }
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        // Blank the alternate screen before leaving it: a terminal that grew while it was
        // shown (tmux, some emulators) otherwise keeps part of the last frame on the main
        // screen. Nothing is left, as vim and less leave nothing.
        let _ = crossterm::execute!(
            std::io::stdout(),
            crossterm::event::DisableMouseCapture,
            crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
            crossterm::cursor::MoveTo(0, 0)
        );
        ratatui::restore();
    }
}

/// SIGTERM, SIGHUP and SIGINT end the dashboard the clean way: freezes cancelled and
/// cleaned up, terminal restored.
fn watch_signals(tx: tokio::sync::mpsc::UnboundedSender<app::Action>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot watch signals");
            return;
        };
        loop {
            let which = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!("{which}: cancelling freezes and leaving");
            if tx.send(app::Action::Terminate).is_err() {
                return;
            }
        }
    });
}

/// Runs `doctor`'s checks in the background and hands the versions and what is missing
/// to the dashboard (its title, and a line under the list).
fn look_at_host(freeze: &FreezeConfig, tx: tokio::sync::mpsc::UnboundedSender<app::Action>) {
    let smolvm = freeze.smolvm.clone();
    let state_dir = freeze.state_dir.clone();
    let registry_bin = match &freeze.registry {
        crate::freeze::RegistryChoice::Spawn { bin } => bin.clone(),
        crate::freeze::RegistryChoice::Existing { .. } => None,
    };
    tokio::spawn(async move {
        let report = crate::doctor::examine(&crate::doctor::Inputs {
            smolvm: &smolvm,
            state_dir: &state_dir,
            registry_bin: registry_bin.as_deref(),
            kvm: std::path::Path::new(crate::doctor::KVM),
        })
        .await;
        let _ = tx.send(app::Action::Host {
            versions: report.versions.line(),
            missing: report.summary(),
        });
    });
}

/// Opens the dashboard and runs it until the operator quits.
pub async fn run(cfg: UiConfig) -> color_eyre::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(eyre!(
            "the dashboard needs a terminal; in scripts use a subcommand (list, freeze, export, history)"
        ));
    }
    // Before the terminal's hooks, so that the screen is restored before a report.
    let _ = color_eyre::install();
    tracing::info!("dashboard starting");
    let (mut services, mut rx): (Services, Receivers) =
        Services::new(cfg.freeze.clone(), cfg.query_timeout);
    watch_signals(services.sender());
    look_at_host(&cfg.freeze, services.sender());
    let mut app = App::new(cfg.settings(), cfg.keys.clone());
    app.mouse = cfg.mouse;
    app.notice = cfg.notice.clone();
    app.machines.selected = cfg.select_first.clone();
    app.purposes = cfg.purposes.iter().cloned().collect();
    let result = {
        let mut guard = TerminalGuard::enter(cfg.mouse)?;
        let input = crossterm::event::EventStream::new();
        event::run_loop(&mut guard.terminal, &mut app, input, &mut services, &mut rx).await
        // The guard restores the terminal here, also on error.
    };
    // On an error the loop did not wind down: cancel and clean up what still runs.
    services.shutdown(event::SHUTDOWN_GRACE).await;
    tracing::info!("dashboard closed");
    result
}
