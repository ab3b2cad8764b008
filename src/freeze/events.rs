//! The one stream of owned events a freeze emits, for any front end to show.
//!
//! Every event carries the freeze id, so several freezes can share one channel.
//! Progress and output are coalesced by the emitter (at most one batch per
//! [`PROGRESS_INTERVAL`]), so a front end never drowns however fast the VM writes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::domain::{Artifact, Failure, Stage, Transport};

/// The least time between two progress or output events of one stage.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

/// A stage's progress so far. Fields that do not apply to a stage are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Bytes moved by this stage so far (archive bytes, context bytes, pushed bytes).
    pub bytes: u64,
    /// Bytes expected in all, when known.
    pub total: Option<u64>,
    /// Tar entries seen (exec-tar).
    pub entries: Option<u64>,
    /// The entry being streamed, escaped for display (exec-tar).
    pub current_path: Option<String>,
    /// Time since the stage started.
    pub elapsed_ms: u64,
    /// Each image layer's bytes, in the image's order (push and load).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerProgress>,
}

/// One image layer's bytes moved by push or load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerProgress {
    /// A short name: the first 12 hex digits of its digest, or `layer N`.
    pub layer: String,
    pub bytes: u64,
    pub total: Option<u64>,
}

/// Which of the child's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum FreezeEvent {
    /// The freeze began (pre-flight passed).
    Started {
        id: String,
        machine: String,
        slug: String,
        /// Unix milliseconds.
        at_ms: u64,
    },
    StageStarted {
        id: String,
        stage: Stage,
        /// What the stage does in this run ("native archive", "docker load", "from the
        /// archive"), when it can be done more than one way.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        does: Option<String>,
    },
    /// Coalesced progress of the running stage.
    Progress {
        id: String,
        stage: Stage,
        progress: Progress,
    },
    /// A batch of output lines (escaped), newest last; `dropped` counts lines that were
    /// coalesced away since the last batch (they are still in the stage's log file).
    Output {
        id: String,
        stage: Stage,
        stream: OutputStream,
        lines: Vec<String>,
        dropped: u64,
    },
    /// A command about to run, as its real argument vector (secrets masked), so that an
    /// operator can rerun it by hand.
    Command {
        id: String,
        stage: Stage,
        argv: Vec<String>,
        /// What it reads or writes besides its arguments, when bottle-freeze feeds or takes
        /// it (a build context on stdin, a stream into the registry); absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        io: Option<String>,
    },
    /// Something the operator should know: the transport chosen, a fallback and why.
    Note {
        id: String,
        stage: Stage,
        message: String,
    },
    /// The exec-tar transport in use (sent again if it changes by fallback).
    TransportChosen {
        id: String,
        transport: Transport,
    },
    StageFinished {
        id: String,
        stage: Stage,
        duration_ms: u64,
        /// Warnings kept from a stage that succeeded (e.g. tar's "file changed as we read it").
        warnings: Vec<String>,
    },
    Failed {
        id: String,
        failure: Failure,
    },
    Cancelled {
        id: String,
        stage: Option<Stage>,
    },
    Done {
        id: String,
        artifact: Artifact,
    },
    /// exec-tar alone finished (`export`): the archive at `path`.
    Exported {
        id: String,
        path: std::path::PathBuf,
        bytes: u64,
        entries: u64,
    },
}

impl FreezeEvent {
    pub fn id(&self) -> &str {
        match self {
            FreezeEvent::Started { id, .. }
            | FreezeEvent::StageStarted { id, .. }
            | FreezeEvent::Progress { id, .. }
            | FreezeEvent::Output { id, .. }
            | FreezeEvent::Note { id, .. }
            | FreezeEvent::Command { id, .. }
            | FreezeEvent::TransportChosen { id, .. }
            | FreezeEvent::StageFinished { id, .. }
            | FreezeEvent::Failed { id, .. }
            | FreezeEvent::Cancelled { id, .. }
            | FreezeEvent::Done { id, .. }
            | FreezeEvent::Exported { id, .. } => id,
        }
    }

    /// Whether this event ends the freeze.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            FreezeEvent::Failed { .. }
                | FreezeEvent::Cancelled { .. }
                | FreezeEvent::Done { .. }
                | FreezeEvent::Exported { .. }
        )
    }
}
