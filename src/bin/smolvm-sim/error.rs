//! How the sim fails: in smolvm's words for smolvm commands, in its own for sim-only ones.

use std::fmt;

/// A failure that ends the process with exit status 1.
#[derive(Debug)]
pub enum Failure {
    /// An error smolvm itself would report; printed as `Error: …` like smolvm's `main`.
    Smolvm(String),
    /// A problem of the sim (bad admin arguments, missing `SMOLVM_SIM_HOME`, I/O on its state).
    Sim(String),
}

impl Failure {
    pub fn smolvm(msg: impl Into<String>) -> Self {
        Failure::Smolvm(msg.into())
    }

    pub fn sim(msg: impl Into<String>) -> Self {
        Failure::Sim(msg.into())
    }

    /// smolvm's `Error::Agent` display: `agent operation failed: {op}: {reason}`.
    pub fn agent(op: &str, reason: impl fmt::Display) -> Self {
        Failure::Smolvm(format!("agent operation failed: {op}: {reason}"))
    }

    /// `--error-format json`'s line for smolvm's own errors, with smolvm 1.32's codes
    /// (a stopped machine is `SMOLVM_ERROR` there too).
    pub fn json(&self) -> Option<String> {
        let Failure::Smolvm(msg) = self else {
            return None;
        };
        let code = if msg.starts_with("vm not found: ") {
            "NOT_FOUND"
        } else {
            "SMOLVM_ERROR"
        };
        Some(serde_json::json!({"error": {"code": code, "message": msg}}).to_string())
    }

    /// smolvm's `Error::VmNotFound` display.
    pub fn vm_not_found(name: &str) -> Self {
        Failure::Smolvm(format!("vm not found: {name}"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Smolvm(msg) => write!(f, "Error: {msg}"),
            Failure::Sim(msg) => write!(f, "smolvm-sim: error: {msg}"),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Sim(e.to_string())
    }
}

/// Attach context to I/O errors of the sim's own state.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|e| Failure::Sim(format!("{}: {e}", what())))
    }
}
