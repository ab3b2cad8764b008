//! The status line's flash, and one place to name the state of every concern (each
//! struct lives beside the reducer code that changes it). Nothing changes it but
//! [`super::app::App::update`].

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// A short message in the status bar, gone after a while.
#[derive(Debug, Clone, PartialEq)]
pub struct Flash {
    pub text: String,
    pub level: Level,
    pub until_ms: u64,
}

// The state of each concern lives with its reducer; re-exported for the panes.
pub use super::dialogs::{Dialog, FreezeDialog, Probe};
pub use super::freeze_view::{
    FreezeState, Phase, StageState, Tail, TailKind, TailLine, TailView, Throughput, NOTES_CAP,
    SPARK_CAP, TAIL_CAP,
};
pub use super::history::{status_name, DocKind, DocLine, HistoryState, RecordView, Search};
pub use super::list::{LastFreeze, Machines, SortKey};
