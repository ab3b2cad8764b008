//! tracing to a file, never to the screen: `<state>/logs/bottle-freeze.YYYY-MM-DD.log`,
//! rotated daily with the last seven kept, or `BOTTLE_FREEZE_LOG_FILE` as one file.

use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::EnvFilter;

/// How many daily log files are kept.
pub const KEPT_FILES: usize = 7;

/// The folder of the rotated logs.
pub fn log_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("logs")
}

/// Starts logging at `level` (a level or a `RUST_LOG`-style filter). Returns the guard
/// that flushes on drop, and a warning when the level was not understood or the file
/// cannot be written (then nothing is logged: the screen is never the fallback).
pub fn init(
    state_dir: &Path,
    level: &str,
    single_file: Option<&Path>,
) -> (Option<WorkerGuard>, Option<String>) {
    let mut warning = None;
    let filter = EnvFilter::try_new(level).unwrap_or_else(|e| {
        warning = Some(format!(
            "log level {level:?} not understood ({e}); using info"
        ));
        EnvFilter::new("info")
    });
    let writer = match single_file {
        Some(path) => open_single(path).map(tracing_appender::non_blocking),
        // The folder first: the appender otherwise prints its own error to stderr
        // while pruning old files.
        None => std::fs::create_dir_all(log_dir(state_dir))
            .map_err(|e| format!("{}: {e}", log_dir(state_dir).display()))
            .and_then(|()| {
                Builder::new()
                    .rotation(Rotation::DAILY)
                    .filename_prefix("bottle-freeze")
                    .filename_suffix("log")
                    .max_log_files(KEPT_FILES)
                    .build(log_dir(state_dir))
                    .map(tracing_appender::non_blocking)
                    .map_err(|e| e.to_string())
            }),
    };
    let (writer, guard) = match writer {
        Ok(w) => w,
        Err(e) => return (None, Some(format!("no log file: {e}"))),
    };
    let installed = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
    if installed.is_err() {
        return (None, warning);
    }
    (Some(guard), warning)
}

fn open_single(path: &Path) -> Result<std::fs::File, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}
