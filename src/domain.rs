//! The freeze's vocabulary, shared by the pipeline (`freeze/`), the records on disk
//! (`history`) and both front ends: the stages, how the archive left the VM, what a
//! run ends with (artifact, failure, outcome) and each stage's status in a record.
//! It owns no behaviour beyond names; nothing here imports another module of the crate.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The four stages, named as the operator sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    ExecTar,
    Build,
    Push,
    Pack,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::ExecTar, Stage::Build, Stage::Push, Stage::Pack];

    pub fn name(self) -> &'static str {
        match self {
            Stage::ExecTar => "exec-tar",
            Stage::Build => "build",
            Stage::Push => "push",
            Stage::Pack => "pack",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the archive left the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// `machine exec --stream` (or without `--stream` on old smolvm), stdout a pipe.
    Pipe,
    /// tar wrote a scratch file in the guest, downloaded with `machine cp`.
    GuestFile,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Pipe => "pipe",
            Transport::GuestFile => "guest-file",
        }
    }
}

/// What the operator is told when a stage fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub stage: Stage,
    /// One line: what went wrong.
    pub message: String,
    /// The exit status of the command that failed, when a command failed.
    pub exit_status: Option<i32>,
    /// The last lines of its stderr (escaped), or `<no stderr>`.
    pub stderr_tail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.stage, self.message)?;
        if let Some(code) = self.exit_status {
            write!(f, " (exit status {code})")?;
        }
        write!(f, "\nstderr: {}", self.stderr_tail)
    }
}

/// The result of a successful freeze.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// The `.smolmachine` sidecar.
    pub sidecar: std::path::PathBuf,
    /// The launcher smolvm wrote beside it.
    pub launcher: std::path::PathBuf,
    /// `bot-bottle-committed-<slug>:latest`.
    pub image: String,
    /// `bot-bottle-committed:<first 16 hex of the image id>`.
    pub tag: String,
    /// `to export for migration: cp <sidecar> <slug>.smolmachine`.
    pub hint: String,
}

/// The outcome of a run, as the front ends need it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Frozen(Artifact),
    Exported {
        path: PathBuf,
        bytes: u64,
        entries: u64,
    },
    Failed(Failure),
    Cancelled,
    /// Nothing was run: the request itself cannot be done (a resume of a record that
    /// kept nothing, or is not there; a machine another freeze holds). Bad input, not a
    /// stage that failed; no record is written.
    Refused(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Freeze,
    Export,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Running,
    Succeeded,
    /// Succeeded, with warnings kept (tar's "file changed as we read it").
    SucceededWithWarnings,
    Failed,
    Cancelled,
    /// The process died while the freeze ran (found on a later start).
    Interrupted,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::SucceededWithWarnings => "succeeded with warnings",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageStatus {
    Waiting,
    Running,
    Done,
    Warning,
    Failed,
    Cancelled,
    /// Not part of this kind of run (export has only exec-tar).
    Skipped,
}
