//! The smolvm CLI as an argument-vector client (never a shell).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::process::{status_code, GroupChild};
use crate::sanitize::escape_bytes;

/// How long a short smolvm query (`machine ls`, `--help`, `df`) may take.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Smolvm {
    program: PathBuf,
    query_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SmolvmError {
    #[error("cannot run {program}: {source}{hint}")]
    Spawn {
        program: String,
        source: io::Error,
        hint: &'static str,
    },
    #[error("`{command}` exited with status {code}: {stderr}")]
    Failed {
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("`{command}` printed malformed JSON ({error}): {head}")]
    Malformed {
        command: String,
        error: String,
        head: String,
    },
    #[error("`{command}` did not answer within {secs} s")]
    Timeout { command: String, secs: u64 },
}

/// Output of a finished query.
pub struct QueryOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Smolvm {
    pub fn new(program: impl Into<PathBuf>) -> Smolvm {
        Smolvm {
            program: program.into(),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }

    pub fn with_query_timeout(mut self, timeout: Duration) -> Smolvm {
        self.query_timeout = timeout;
        self
    }

    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// A command for `smolvm ARGS…` with no stdin; the caller sets up stdout/stderr.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut cmd = Command::new(&self.program);
        cmd.args(args.into_iter().map(Into::into))
            .stdin(Stdio::null());
        cmd
    }

    /// `smolvm ARGS…` shown as the operator would type it, for messages and logs.
    pub fn display<S: AsRef<str>>(&self, args: &[S]) -> String {
        let mut s = self.program.display().to_string();
        for a in args {
            s.push(' ');
            s.push_str(a.as_ref());
        }
        crate::sanitize::escape_str(&s)
    }

    pub fn spawn_error(&self, source: io::Error) -> SmolvmError {
        let hint = if source.kind() == io::ErrorKind::NotFound {
            " (install smolvm, or point --smolvm / BOTTLE_FREEZE_SMOLVM at it)"
        } else {
            ""
        };
        SmolvmError::Spawn {
            program: self.program.display().to_string(),
            source,
            hint,
        }
    }

    /// Runs a short command to completion, capturing its output, within the query timeout.
    pub async fn query(&self, args: &[&str]) -> Result<QueryOutput, SmolvmError> {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = GroupChild::spawn(&mut cmd).map_err(|e| self.spawn_error(e))?;
        let (mut out, mut err) = (child.inner().stdout.take(), child.inner().stderr.take());
        let collect = async {
            use tokio::io::AsyncReadExt;
            let mut o = Vec::new();
            let mut e = Vec::new();
            // Both pipes at once: a child blocked on a full stderr pipe stops writing stdout.
            let read_o = async {
                if let Some(s) = out.as_mut() {
                    let _ = s.read_to_end(&mut o).await;
                }
            };
            let read_e = async {
                if let Some(s) = err.as_mut() {
                    let _ = s.read_to_end(&mut e).await;
                }
            };
            tokio::join!(read_o, read_e);
            let status = child.wait().await;
            (status, o, e)
        };
        match tokio::time::timeout(self.query_timeout, collect).await {
            Ok((Ok(status), stdout, stderr)) => Ok(QueryOutput {
                code: status_code(&status),
                stdout,
                stderr,
            }),
            Ok((Err(e), _, _)) => Err(self.spawn_error(e)),
            Err(_) => Err(SmolvmError::Timeout {
                command: self.display(args),
                secs: self.query_timeout.as_secs(),
            }),
        }
    }

    /// Runs a query that must succeed.
    pub async fn query_ok(&self, args: &[&str]) -> Result<QueryOutput, SmolvmError> {
        let out = self.query(args).await?;
        if out.code != 0 {
            return Err(SmolvmError::Failed {
                command: self.display(args),
                code: out.code,
                stderr: stderr_or_placeholder(&out.stderr),
            });
        }
        Ok(out)
    }

    /// Whether `machine exec` knows `--stream` (older smolvm does not).
    pub async fn exec_supports_stream(&self) -> Result<bool, SmolvmError> {
        let out = self.query(&["machine", "exec", "--help"]).await?;
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        Ok(text.contains("--stream"))
    }
}

/// The stderr as a one-line-safe string, or `<no stderr>` when there was none.
pub fn stderr_or_placeholder(stderr: &[u8]) -> String {
    let trimmed = stderr.trim_ascii();
    if trimmed.is_empty() {
        "<no stderr>".to_string()
    } else {
        escape_bytes(trimmed)
    }
}
