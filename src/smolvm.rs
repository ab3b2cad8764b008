//! The smolvm CLI as an argument-vector client (never a shell).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::process::Command;

pub mod argv;
pub mod error;
pub mod note;

use crate::process::{status_code, GroupChild};
use crate::sanitize::escape_bytes;

/// How long a short smolvm query (`machine ls`, `--help`, `df`) may take.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Smolvm {
    program: PathBuf,
    query_timeout: Duration,
    /// The program is the PyPI wheel's binary, whose note on stderr is dropped.
    wheel_note: bool,
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

/// Whether each smolvm program has `--error-format json`, learnt once per process from
/// its `--help` (1.32.2 has it; a smolvm without it would reject the flag).
static ERROR_FORMAT_JSON: Mutex<Option<HashMap<PathBuf, bool>>> = Mutex::new(None);

fn error_format_known(program: &Path) -> Option<bool> {
    ERROR_FORMAT_JSON
        .lock()
        .ok()?
        .as_ref()?
        .get(program)
        .copied()
}

fn remember_error_format(program: &Path, json: bool) {
    if let Ok(mut m) = ERROR_FORMAT_JSON.lock() {
        m.get_or_insert_with(HashMap::new)
            .insert(program.to_path_buf(), json);
    }
}

/// Output of a finished query.
pub struct QueryOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Smolvm {
    pub fn new(program: impl Into<PathBuf>) -> Smolvm {
        let program = program.into();
        Smolvm {
            wheel_note: crate::smolvm::note::is_wheel_binary(&program),
            program,
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

    /// A filter for this program's stderr that drops the wheel binary's note, if it is
    /// that binary.
    pub fn note_filter(&self) -> Option<crate::smolvm::note::NoteFilter> {
        self.wheel_note.then(crate::smolvm::note::NoteFilter::new)
    }

    /// Whether failures are asked for as JSON (`--error-format json`): once a query has
    /// learnt that this smolvm has the flag.
    pub fn json_errors(&self) -> bool {
        error_format_known(&self.program).unwrap_or(false)
    }

    /// Learns, once per program and process, whether this smolvm has `--error-format`;
    /// a smolvm that cannot be run is asked again next time.
    pub async fn detect_error_format(&self) -> bool {
        if let Some(known) = error_format_known(&self.program) {
            return known;
        }
        let argv = crate::smolvm::argv::help(&[]);
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = match self.run_query(&args, false).await {
            Ok(out) => out,
            // A smolvm that hangs is not asked again (each query would wait twice).
            Err(SmolvmError::Timeout { .. }) => {
                remember_error_format(&self.program, false);
                return false;
            }
            Err(_) => return false,
        };
        let json = out.code == 0
            && String::from_utf8_lossy(&out.stdout)
                .contains(crate::smolvm::argv::ERROR_FORMAT_JSON[0]);
        remember_error_format(&self.program, json);
        json
    }

    /// A command for `smolvm ARGS…` with no stdin; the caller sets up stdout/stderr.
    /// `NO_COLOR=1`: smolvm colours its log lines even on a pipe otherwise. Failures come
    /// as JSON when [`json_errors`](Self::json_errors).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.command_with(args, self.json_errors())
    }

    fn command_with<I, S>(&self, args: I, json_errors: bool) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut cmd = Command::new(&self.program);
        if json_errors {
            cmd.args(crate::smolvm::argv::ERROR_FORMAT_JSON);
        }
        cmd.args(args.into_iter().map(Into::into))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// The whole command line [`command`](Self::command) runs for `args`, program and
    /// global flags included, for the record of what a freeze ran.
    pub fn command_line(&self, args: &[String]) -> Vec<String> {
        let mut v = vec![self.program.display().to_string()];
        if self.json_errors() {
            v.extend(argv::ERROR_FORMAT_JSON.map(String::from));
        }
        v.extend(args.iter().cloned());
        v
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
    /// The first query of a program learns whether it has `--error-format json`.
    pub async fn query(&self, args: &[&str]) -> Result<QueryOutput, SmolvmError> {
        let json = self.detect_error_format().await;
        self.run_query(args, json).await
    }

    async fn run_query(
        &self,
        args: &[&str],
        json_errors: bool,
    ) -> Result<QueryOutput, SmolvmError> {
        let mut cmd = self.command_with(args, json_errors);
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
                stderr: match self.wheel_note {
                    true => crate::smolvm::note::NoteFilter::strip(&stderr),
                    false => stderr,
                },
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
                stderr: stderr_or_placeholder(&crate::smolvm::error::readable(&out.stderr)),
            });
        }
        Ok(out)
    }

    /// Whether `machine exec` knows `--stream` (older smolvm does not).
    pub async fn exec_supports_stream(&self) -> Result<bool, SmolvmError> {
        let argv = crate::smolvm::argv::help(&["machine", "exec"]);
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = self.query(&args).await?;
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
