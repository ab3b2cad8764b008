//! The event loop and the side effects it performs for the reducer.
//!
//! One `tokio::select!` over the terminal's events, the freeze event channel, the
//! background results (discovery, space probes, history reads, signals) and a tick.
//! Nothing here blocks the runtime: smolvm, the disk and the core all run in spawned
//! tasks whose answers come back as [`Action`]s. The screen is redrawn only when an
//! update says something visible changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::eyre;
use crossterm::event::Event;
use futures_util::{Stream, StreamExt};
use ratatui::backend::Backend;
use ratatui::Terminal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::app::{Action, App, Command, LoadedRecord};
use crate::freeze::{run_freeze, FreezeConfig, FreezeEvent, Stage};
use crate::history::{now_ms, History};
use crate::sanitize::escape_text;
use crate::smolvm::Smolvm;

/// How often the clock ticks (ages, elapsed times, the refresh schedule).
pub const TICK: Duration = Duration::from_millis(1000);
/// How long the way out waits for cancelled freezes to clean up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

struct Running {
    cancel: CancellationToken,
    watcher: JoinHandle<()>,
}

/// Performs the reducer's [`Command`]s: spawns freezes and background queries.
pub struct Services {
    cfg: FreezeConfig,
    /// smolvm for short queries, with the dashboard's own timeout.
    smolvm: Smolvm,
    history: History,
    freeze_tx: UnboundedSender<FreezeEvent>,
    bg_tx: UnboundedSender<Action>,
    running: HashMap<String, Running>,
    /// What the history folder looked like at the last full read.
    history_seen: std::sync::Arc<std::sync::Mutex<HistorySeen>>,
}

/// The history folder's stamp at the last read, and when that read was.
#[derive(Default)]
struct HistorySeen {
    stamp: Option<(i64, i64, u64)>,
    at: Option<std::time::Instant>,
}

/// Even an unchanged stamp is read again after this long: file times are coarse (a folder
/// made in the same tick as the last stat would hide otherwise), and a full read is cheap
/// at this pace.
const HISTORY_REREAD: Duration = Duration::from_secs(30);

/// The history folder's modification time and link count: a new record's folder changes
/// both (the count only on filesystems that count subfolders).
fn history_stamp(root: &Path) -> Option<(i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(root).ok()?;
    Some((m.mtime(), m.mtime_nsec(), m.nlink()))
}

/// Where the loop hears from the background.
pub struct Receivers {
    pub freeze: UnboundedReceiver<FreezeEvent>,
    pub background: UnboundedReceiver<Action>,
}

impl Services {
    pub fn new(cfg: FreezeConfig, query_timeout: Duration) -> (Services, Receivers) {
        let (freeze_tx, freeze) = unbounded_channel();
        let (bg_tx, background) = unbounded_channel();
        let smolvm = cfg.smolvm.clone().with_query_timeout(query_timeout);
        let history = History::new(&cfg.state_dir);
        (
            Services {
                cfg,
                smolvm,
                history,
                freeze_tx,
                bg_tx,
                running: HashMap::new(),
                history_seen: Default::default(),
            },
            Receivers { freeze, background },
        )
    }

    /// Reads every record in the background; with `only_if_changed`, only when the
    /// history folder changed since the last read (or that read is old).
    fn load_history(&self, only_if_changed: bool) {
        let (h, tx) = (self.history.clone(), self.bg_tx.clone());
        let (state, smolvm) = (self.cfg.state_dir.clone(), self.smolvm.clone());
        let seen = self.history_seen.clone();
        tokio::spawn(async move {
            let root = h.root().to_path_buf();
            let stamp = tokio::task::spawn_blocking(move || history_stamp(&root))
                .await
                .unwrap_or(None);
            {
                let Ok(mut seen) = seen.lock() else { return };
                let fresh = seen.at.is_some_and(|t| t.elapsed() < HISTORY_REREAD);
                if only_if_changed && fresh && seen.stamp == stamp {
                    return;
                }
                // Stamped before the read: a change during the read is seen next time.
                *seen = HistorySeen {
                    stamp,
                    at: Some(std::time::Instant::now()),
                };
            }
            // Runs nobody holds any more (a killed CLI freeze) are finished first,
            // so no dead freeze shows as running.
            for line in crate::recover::recover_interrupted(&state, &smolvm).await {
                tracing::warn!("{line}");
            }
            let r = tokio::task::spawn_blocking(move || h.list_all().map_err(|e| e.to_string()))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let r = r.map(|(records, damaged)| {
                if !damaged.is_empty() {
                    let d = damaged.into_iter().map(|d| (d.folder, d.why)).collect();
                    let _ = tx.send(Action::HistoryDamaged(d));
                }
                records
            });
            let _ = tx.send(Action::HistoryLoaded(r));
        });
    }

    /// A sender into the loop, for signal handlers.
    pub fn sender(&self) -> UnboundedSender<Action> {
        self.bg_tx.clone()
    }

    pub fn perform(&mut self, cmd: Command) {
        tracing::debug!(?cmd, "command");
        match cmd {
            Command::Discover => {
                let (smolvm, prefix, tx) = (
                    self.smolvm.clone(),
                    self.cfg.prefix.clone(),
                    self.bg_tx.clone(),
                );
                tokio::spawn(async move {
                    let r = crate::machines::discover(&smolvm, &prefix, true)
                        .await
                        .map_err(|e| e.to_string());
                    if let Err(e) = &r {
                        tracing::warn!("discovery failed: {e}");
                    }
                    let _ = tx.send(Action::Machines(r));
                });
            }
            Command::ProbeSpace { machine } => {
                // The parts the configured path needs and the state folder's room answer
                // apart: a slow Docker never holds up the space figures.
                let (cfg, tx, name) = (self.cfg.clone(), self.bg_tx.clone(), machine.clone());
                tokio::spawn(async move {
                    let (state, tmp) = (cfg.state_dir.clone(), cfg.tmp_dir.clone());
                    let free = tokio::task::spawn_blocking(move || {
                        (
                            free_bytes_near(&state),
                            crate::freeze::same_disk(&state, &tmp),
                        )
                    });
                    let (parts, free) = tokio::join!(crate::freeze::precheck_parts(&cfg), free);
                    let (state_free, same_disk) =
                        free.unwrap_or_else(|e| (Err(e.to_string()), false));
                    let _ = tx.send(Action::Checks {
                        machine: name,
                        parts,
                        state_free,
                        same_disk,
                    });
                });
                let (smolvm, tmp, tx) = (
                    self.smolvm.clone(),
                    self.cfg.tmp_dir.clone(),
                    self.bg_tx.clone(),
                );
                tokio::spawn(async move {
                    let df = crate::freeze::exec_tar::guest_df(&smolvm, &machine, "/");
                    let free = tokio::task::spawn_blocking(move || free_bytes(&tmp));
                    let (df, free) = tokio::join!(df, free);
                    let _ = tx.send(Action::Space {
                        machine,
                        tmp_free: free.unwrap_or_else(|e| Err(e.to_string())),
                        estimate: df.map(|d| d.used_bytes),
                    });
                });
            }
            Command::StartFreeze { machine, slug } => {
                if self
                    .running
                    .get(&machine)
                    .is_some_and(|r| !r.watcher.is_finished())
                {
                    // The reducer refuses this already; never two freezes of one machine.
                    tracing::warn!("refused a second freeze of {machine}");
                    return;
                }
                tracing::info!("freezing {machine}");
                let cancel = CancellationToken::new();
                let task = tokio::spawn(run_freeze(
                    self.cfg.clone(),
                    slug,
                    self.freeze_tx.clone(),
                    cancel.clone(),
                ));
                self.watch(machine, cancel, task);
            }
            Command::Resume { machine, id } => {
                if self
                    .running
                    .get(&machine)
                    .is_some_and(|r| !r.watcher.is_finished())
                {
                    tracing::warn!("refused a resume while {machine} is being frozen");
                    return;
                }
                tracing::info!("resuming {id} of {machine}");
                let cancel = CancellationToken::new();
                let task = tokio::spawn(crate::freeze::run_resume(
                    self.cfg.clone(),
                    id,
                    self.freeze_tx.clone(),
                    cancel.clone(),
                ));
                self.watch(machine, cancel, task);
            }
            Command::Discard { id } => {
                let (cfg, tx) = (self.cfg.clone(), self.bg_tx.clone());
                tokio::spawn(async move {
                    let result = crate::freeze::discard(&cfg, &id).await;
                    let _ = tx.send(Action::Discarded { id, result });
                });
            }
            Command::PlanPrune { keep } => {
                let (state, tx) = (self.cfg.state_dir.clone(), self.bg_tx.clone());
                tokio::spawn(async move {
                    let plan = tokio::task::spawn_blocking(move || {
                        let policy = crate::freeze::PrunePolicy {
                            keep,
                            older_than_ms: None,
                        };
                        crate::freeze::plan_prune(&state, policy, now_ms())
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                    let _ = tx.send(Action::PrunePlanned(plan));
                });
            }
            Command::Prune(plan) => {
                let (state, tx) = (self.cfg.state_dir.clone(), self.bg_tx.clone());
                tokio::spawn(async move {
                    let report = crate::freeze::apply_prune(&state, &plan).await;
                    let _ = tx.send(Action::Pruned(report));
                });
            }
            Command::Cancel { machine } => {
                if let Some(r) = self.running.get(&machine) {
                    tracing::info!("cancelling the freeze of {machine}");
                    r.cancel.cancel();
                }
            }
            Command::CancelAll => {
                for (m, r) in &self.running {
                    tracing::info!("cancelling the freeze of {m}");
                    r.cancel.cancel();
                }
            }
            Command::LoadHistory => self.load_history(false),
            Command::RecheckHistory => self.load_history(true),
            Command::LoadRecord { id } => {
                let (h, tx) = (self.history.clone(), self.bg_tx.clone());
                tokio::spawn(async move {
                    let key = id.clone();
                    let result = tokio::task::spawn_blocking(move || load_record(&h, &key))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                    let _ = tx.send(Action::RecordLoaded { id, result });
                });
            }
            Command::SetMouse(on) => {
                use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
                let r = if on {
                    crossterm::execute!(std::io::stdout(), EnableMouseCapture)
                } else {
                    crossterm::execute!(std::io::stdout(), DisableMouseCapture)
                };
                if let Err(e) = r {
                    tracing::warn!("cannot switch the mouse: {e}");
                }
            }
            Command::SearchLogs { text } => {
                let (h, tx) = (self.history.clone(), self.bg_tx.clone());
                tokio::spawn(async move {
                    let key = text.clone();
                    let ids = tokio::task::spawn_blocking(move || search_logs(&h, &key))
                        .await
                        .unwrap_or_default();
                    let _ = tx.send(Action::LogHits { text, ids });
                });
            }
            Command::Copy(text) => {
                use base64::Engine as _;
                use std::io::Write as _;
                let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                let mut out = std::io::stdout();
                let _ = write!(out, "\x1b]52;c;{b64}\x07").and_then(|()| out.flush());
            }
            Command::Notify(text) => {
                use std::io::Write as _;
                let mut out = std::io::stdout();
                let _ = out
                    .write_all(notify_sequence(&text).as_bytes())
                    .and_then(|()| out.flush());
            }
            Command::Bell => {
                // BEL straight to the terminal: ratatui draws cells, not control codes.
                use std::io::Write as _;
                let mut out = std::io::stdout();
                let _ = out.write_all(b"\x07").and_then(|()| out.flush());
            }
            Command::SaveLog { id, text } => {
                let (state, tx) = (self.cfg.state_dir.clone(), self.bg_tx.clone());
                tokio::spawn(async move {
                    let r = tokio::task::spawn_blocking(move || save_log(&state, &id, &text))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                    let _ = tx.send(Action::LogSaved(r));
                });
            }
        }
    }

    /// Follows a freeze's task (a freeze or a resume) until it ends, then says so. A
    /// refused resume sends no event of its own: its reason is the end's error.
    fn watch(
        &mut self,
        machine: String,
        cancel: CancellationToken,
        task: JoinHandle<crate::freeze::RunOutcome>,
    ) {
        let (tx, name) = (self.bg_tx.clone(), machine.clone());
        let watcher = tokio::spawn(async move {
            let error = match task.await {
                Ok(crate::freeze::RunOutcome::Refused(why)) => {
                    tracing::warn!("freeze of {name} refused: {why}");
                    Some(format!("refused: {why}"))
                }
                Ok(outcome) => {
                    tracing::info!("freeze of {name} ended: {outcome:?}");
                    None
                }
                Err(e) => {
                    tracing::error!("freeze of {name} died: {e}");
                    Some(format!("the freeze task ended abnormally: {e}"))
                }
            };
            let _ = tx.send(Action::FreezeEnded {
                machine: name,
                error,
            });
        });
        self.running.insert(machine, Running { cancel, watcher });
    }

    /// A freeze's task has ended.
    pub fn finished(&mut self, machine: &str) {
        // Its end notice is the watcher's last act, and the reducer starts no other
        // freeze of the machine before it has seen it.
        self.running.remove(machine);
    }

    /// Cancels every freeze still running and waits for their cleanup, at most `grace`.
    pub async fn shutdown(&mut self, grace: Duration) {
        let running: Vec<(String, Running)> = self
            .running
            .drain()
            .filter(|(_, r)| !r.watcher.is_finished())
            .collect();
        if running.is_empty() {
            return;
        }
        for (m, r) in &running {
            tracing::info!("shutting down: cancelling the freeze of {m}");
            r.cancel.cancel();
        }
        let all = futures_util::future::join_all(running.into_iter().map(|(_, r)| r.watcher));
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("some freezes did not finish cleaning up within {grace:?}");
        }
    }
}

/// Free bytes for an unprivileged user in the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Result<u64, String> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    let free = (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64);
    Ok(free)
}

/// A desktop notification as the terminal takes it: OSC 9 (iTerm2, WezTerm, kitty,
/// foot) and OSC 777 (rxvt, VTE, Ghostty); a terminal ignores the one it does not know.
/// Control characters would end the sequence early (the text is ours, but a machine name
/// is in it), and `;` would split OSC 777's fields: both are left out.
pub fn notify_sequence(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == ';' { ',' } else { c })
        .collect();
    format!("\x1b]9;{clean}\x07\x1b]777;notify;bottle-freeze;{clean}\x07")
}

/// Free bytes where `dir` is, or would be made: its nearest existing folder.
fn free_bytes_near(dir: &Path) -> Result<u64, String> {
    let existing = dir.ancestors().find(|d| d.is_dir()).unwrap_or(dir);
    free_bytes(existing)
}

fn load_record(h: &History, id: &str) -> Result<Box<LoadedRecord>, String> {
    let record = h.load(id).map_err(|e| e.to_string())?;
    let logs = Stage::ALL
        .iter()
        .map(|&s| {
            let text = match h.read_log(id, s) {
                Ok(Some(bytes)) => Some(escape_text(&bytes)),
                Ok(None) => None,
                Err(e) => Some(format!("<cannot read the log: {e}>")),
            };
            (s, text)
        })
        .collect();
    Ok(Box::new(LoadedRecord { record, logs }))
}

/// Writes a shown log: to the current folder, or to `<state>/saved-logs/` when that
/// cannot be written. Private to the user: the log is the VM's output.
fn save_log(state_dir: &Path, id: &str, text: &str) -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd);
    }
    dirs.push(state_dir.join("saved-logs"));
    save_log_in(&dirs, id, text)
}

/// Writes `text` as `bottle-freeze-<id>.log` in the first folder that takes it. The file
/// is always a new one (O_EXCL) and never reached through a symlink (O_NOFOLLOW): a name
/// already taken, by a file or by a link planted there, gets `-2`, `-3`… instead, so
/// nothing that exists is ever replaced or written through.
pub fn save_log_in(dirs: &[PathBuf], id: &str, text: &str) -> Result<PathBuf, String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    const TRIES: u32 = 100;
    let mut tried = Vec::new();
    for dir in dirs {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tried.push(format!("{}: {e}", dir.display()));
            continue;
        }
        for n in 1..=TRIES {
            let name = match n {
                1 => format!("bottle-freeze-{id}.log"),
                n => format!("bottle-freeze-{id}-{n}.log"),
            };
            let path = dir.join(name);
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path);
            let mut f = match opened {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < TRIES => continue,
                Err(e) => {
                    tried.push(format!("{}: {e}", path.display()));
                    break;
                }
            };
            match f.write_all(text.as_bytes()).and_then(|()| f.sync_all()) {
                Ok(()) => return Ok(path),
                Err(e) => {
                    // Ours, new and partial: remove it.
                    let _ = std::fs::remove_file(&path);
                    tried.push(format!("{}: {e}", path.display()));
                    break;
                }
            }
        }
    }
    Err(tried.join("; "))
}

/// Runs the dashboard until it quits: draws when something changed, performs the
/// reducer's commands, and on the way out cancels what still runs and waits for its
/// cleanup. Generic over the backend and the input stream, so tests drive it with a
/// `TestBackend` and injected keys.
pub async fn run_loop<B, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut input: S,
    services: &mut Services,
    rx: &mut Receivers,
) -> color_eyre::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = std::io::Result<Event>> + Unpin,
{
    let mut dirty = true;
    let mut input_done = false;
    let mut screen_ok = true;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let size = terminal.size().map_err(|e| eyre!(e))?;
    let mut pending = vec![
        Action::Resize {
            width: size.width,
            height: size.height,
        },
        Action::Tick { now_ms: now_ms() },
    ];
    loop {
        for action in pending.drain(..) {
            if let Action::FreezeEnded { machine, .. } = &action {
                services.finished(machine);
            }
            let fx = app.update(action);
            dirty |= fx.redraw;
            for c in fx.commands {
                services.perform(c);
            }
        }
        if app.should_exit() {
            break;
        }
        if dirty && screen_ok {
            if let Err(e) = terminal.draw(|f| super::draw(f, app)) {
                // The terminal is gone (SIGHUP, closed pane): keep going without a
                // screen until the freezes are cleaned up.
                tracing::error!("cannot draw: {e}");
                screen_ok = false;
                pending.push(Action::Terminate);
                continue;
            }
            dirty = false;
        }
        tokio::select! {
            biased;
            ev = input.next(), if !input_done => match ev {
                Some(Ok(Event::Key(k))) => pending.push(Action::Key(k)),
                Some(Ok(Event::Mouse(m))) => pending.push(Action::Mouse(m)),
                Some(Ok(Event::Resize(width, height))) => pending.push(Action::Resize { width, height }),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::error!("terminal input failed: {e}");
                    input_done = true;
                    pending.push(Action::Terminate);
                }
                None => {
                    input_done = true;
                    pending.push(Action::Terminate);
                }
            },
            // Freeze events before background results: a freeze's end notice is sent
            // after its last event, so it is always seen after it.
            Some(ev) = rx.freeze.recv() => {
                pending.push(Action::Freeze(ev));
                // Take what else is queued in one go: one redraw for a burst.
                while let Ok(ev) = rx.freeze.try_recv() {
                    pending.push(Action::Freeze(ev));
                    if pending.len() >= 256 {
                        break;
                    }
                }
            }
            Some(a) = rx.background.recv() => pending.push(a),
            _ = tick.tick() => pending.push(Action::Tick { now_ms: now_ms() }),
        }
        // What happens is stamped with the time it is seen: the clock moves first.
        if !pending.is_empty() && !matches!(pending.first(), Some(Action::Tick { .. })) {
            pending.insert(0, Action::Tick { now_ms: now_ms() });
        }
    }
    // Normally nothing runs any more here. After a second Ctrl-C, or when cleanup took
    // too long, give what is left a short last chance.
    let grace = if app.live_count() > 0 {
        Duration::from_secs(5)
    } else {
        SHUTDOWN_GRACE
    };
    services.shutdown(grace).await;
    Ok(())
}

/// The ids of the records whose logs contain `text` (lowercase ASCII match).
fn search_logs(h: &History, text: &str) -> Vec<String> {
    let needle = text.as_bytes().to_ascii_lowercase();
    let Ok(records) = h.list() else {
        return Vec::new();
    };
    records
        .into_iter()
        .filter(|r| {
            crate::freeze::Stage::ALL.iter().any(|s| {
                h.read_log(&r.id, *s).ok().flatten().is_some_and(|log| {
                    log.to_ascii_lowercase()
                        .windows(needle.len().max(1))
                        .any(|w| w == needle.as_slice())
                })
            })
        })
        .map(|r| r.id)
        .collect()
}

#[cfg(test)]
mod save_tests {
    use super::*;

    #[test]
    fn the_notification_is_osc_9_and_777_and_nothing_of_the_text_escapes_it() {
        let s = notify_sequence("bot-bottle-x\x1b]0;pwned\x07 frozen; ok");
        assert_eq!(
            s,
            "\x1b]9;bot-bottle-x]0,pwned frozen, ok\x07\x1b]777;notify;bottle-freeze;bot-bottle-x]0,pwned frozen, ok\x07"
        );
    }

    #[test]
    fn saving_a_log_never_follows_a_planted_symlink_nor_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("bottle-freeze-x.log")).unwrap();
        std::fs::write(dir.path().join("bottle-freeze-x-2.log"), "older save").unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        let path = save_log_in(&dirs, "x", "the log").unwrap();
        assert_eq!(path, dir.path().join("bottle-freeze-x-3.log"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "the log");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("bottle-freeze-x-2.log")).unwrap(),
            "older save"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
