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
    #[error("`{command}` printed more than {} on stdout; refusing to read more (a machine list is a few KiB per machine)", crate::format::bytes(*.limit))]
    TooLarge { command: String, limit: u64 },
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

/// The most a short query may print on stdout before it is refused.
pub const MAX_QUERY_STDOUT: u64 = 64 << 20;
/// How much of a query's stderr is kept: this much of its start and as much of its end.
pub const QUERY_STDERR_KEEP: usize = 32 << 10;
/// How long the output of a query that has exited may stay open (held by a process it
/// left behind) before what arrived is taken as its answer.
const LINGER_GRACE: Duration = Duration::from_secs(1);

/// Output of a finished query.
pub struct QueryOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    /// At most twice [`QUERY_STDERR_KEEP`] bytes: the start and the end, with a line
    /// saying how much was dropped between them.
    pub stderr: Vec<u8>,
    /// smolvm exited, but a process it started kept its output open: what was read
    /// until then is all there is.
    pub held_open: bool,
}

impl QueryOutput {
    /// A note for error messages when the output may be incomplete.
    pub fn held_open_note(&self) -> String {
        if self.held_open {
            format!(
                " (smolvm exited with status {}, but a process it started kept its output open; this is what it printed before)",
                self.code
            )
        } else {
            String::new()
        }
    }
}

/// The start and the end of a stream, with a count of what was dropped between them.
#[derive(Debug, Default)]
pub struct HeadTail {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
    keep: usize,
}

impl HeadTail {
    pub fn new(keep: usize) -> HeadTail {
        HeadTail {
            keep,
            ..HeadTail::default()
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        let room = self.keep - self.head.len();
        let n = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..n]);
        bytes = &bytes[n..];
        if bytes.len() >= self.keep {
            self.dropped += (self.tail.len() + bytes.len() - self.keep) as u64;
            self.tail.clear();
            bytes = &bytes[bytes.len() - self.keep..];
        }
        let over = (self.tail.len() + bytes.len()).saturating_sub(self.keep);
        self.tail.drain(..over);
        self.dropped += over as u64;
        self.tail.extend(bytes);
    }

    pub fn into_bytes(self) -> Vec<u8> {
        let mut v = self.head;
        if self.dropped > 0 {
            v.extend_from_slice(
                format!("\n[… {} dropped …]\n", crate::format::bytes(self.dropped)).as_bytes(),
            );
        }
        v.extend(self.tail);
        v
    }
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
    /// Its stdout may be at most [`MAX_QUERY_STDOUT`]; of its stderr the start and the end
    /// are kept. Its exit is awaited apart from the end of its output: a process it left
    /// behind may hold the pipes open, and that is not a command that did not answer.
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
        use tokio::io::AsyncReadExt;
        let mut cmd = self.command_with(args, json_errors);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = GroupChild::spawn(&mut cmd).map_err(|e| self.spawn_error(e))?;
        let (mut out, mut err) = (child.inner().stdout.take(), child.inner().stderr.take());
        // Shared with the reads below, which may still be pending when a process left
        // behind holds the pipes; locked only between awaits.
        let stdout = std::sync::Mutex::new(Vec::new());
        let stderr = std::sync::Mutex::new(HeadTail::new(QUERY_STDERR_KEEP));
        let too_large = std::sync::atomic::AtomicBool::new(false);
        // Both pipes at once: a child blocked on a full stderr pipe stops writing stdout.
        let reads = async {
            let read_o = async {
                let mut buf = vec![0u8; 64 << 10];
                while let Some(s) = out.as_mut() {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut o = stdout.lock().unwrap_or_else(|p| p.into_inner());
                            if (o.len() + n) as u64 > MAX_QUERY_STDOUT {
                                too_large.store(true, std::sync::atomic::Ordering::Relaxed);
                                // Closing the pipe stops a writer that would block on it.
                                out = None;
                                break;
                            }
                            o.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            };
            let read_e = async {
                let mut buf = vec![0u8; 64 << 10];
                while let Some(s) = err.as_mut() {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => stderr
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(&buf[..n]),
                    }
                }
            };
            tokio::join!(read_o, read_e);
        };
        tokio::pin!(reads);
        let deadline = tokio::time::Instant::now() + self.query_timeout;
        let timeout = || SmolvmError::Timeout {
            command: self.display(args),
            secs: self.query_timeout.as_secs(),
        };
        let mut status = None;
        let mut read_all = false;
        let mut held_open = false;
        while !read_all || status.is_none() {
            // Once it has exited, its output gets a short grace to end.
            let until = match status {
                Some(_) => deadline.min(tokio::time::Instant::now() + LINGER_GRACE),
                None => deadline,
            };
            tokio::select! {
                () = &mut reads, if !read_all => {
                    read_all = true;
                    if too_large.load(std::sync::atomic::Ordering::Relaxed) {
                        child.kill_and_wait().await;
                        return Err(SmolvmError::TooLarge {
                            command: self.display(args),
                            limit: MAX_QUERY_STDOUT,
                        });
                    }
                }
                s = child.wait(), if status.is_none() => {
                    status = Some(s.map_err(|e| self.spawn_error(e))?);
                }
                () = tokio::time::sleep_until(until) => {
                    if too_large.load(std::sync::atomic::Ordering::Relaxed) {
                        child.kill_and_wait().await;
                        return Err(SmolvmError::TooLarge {
                            command: self.display(args),
                            limit: MAX_QUERY_STDOUT,
                        });
                    }
                    if status.is_none() {
                        return Err(timeout());
                    }
                    // It exited; what it left behind in its process group holds the pipes.
                    // Stop that, and take what was read as the answer.
                    child.kill_group();
                    held_open = true;
                    tracing::warn!(
                        command = %self.display(args),
                        "smolvm exited but a process it started kept its output open"
                    );
                    let _ = tokio::time::timeout(LINGER_GRACE, &mut reads).await;
                    break;
                }
            }
        }
        let Some(status) = status else {
            return Err(timeout());
        };
        let stdout = std::mem::take(&mut *stdout.lock().unwrap_or_else(|p| p.into_inner()));
        let stderr = std::mem::take(&mut *stderr.lock().unwrap_or_else(|p| p.into_inner()));
        let stderr = stderr.into_bytes();
        Ok(QueryOutput {
            code: status_code(&status),
            stdout,
            stderr: match self.wheel_note {
                true => note::NoteFilter::strip(&stderr),
                false => stderr,
            },
            held_open,
        })
    }

    /// Runs a query that must succeed.
    pub async fn query_ok(&self, args: &[&str]) -> Result<QueryOutput, SmolvmError> {
        let out = self.query(args).await?;
        if out.code != 0 {
            return Err(SmolvmError::Failed {
                command: self.display(args),
                code: out.code,
                stderr: stderr_or_placeholder(&crate::smolvm::error::readable(&out.stderr))
                    + &out.held_open_note(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_tail_keeps_both_ends_and_counts_the_rest() {
        let mut h = HeadTail::new(4);
        h.push(b"ab");
        h.push(b"cdefgh");
        h.push(b"ij");
        h.push(b"klmnopqrst");
        h.push(b"uv");
        let text = String::from_utf8(h.into_bytes()).unwrap();
        assert!(text.starts_with("abcd"), "{text}");
        assert!(text.ends_with("stuv"), "{text}");
        assert!(text.contains("14 B dropped"), "{text}");
        let mut small = HeadTail::new(4);
        small.push(b"abcdef");
        assert_eq!(small.into_bytes(), b"abcdef");
    }
}
