//! A client of smolvm's HTTP API (`smolvm serve start`), over a unix socket or loopback TCP.
//! One HTTP/1.1 connection per request (hyper), each bounded by the client's timeout; the
//! shapes are those of smolvm 1.32.2's OpenAPI document (docs/smolvm-serve-api.md).
//! It knows nothing of hosts, lists or screens: it sends a request and reads the answer.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpStream, UnixStream};

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, as the operator wrote it.
    Tcp(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "http://{a}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot reach {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("{endpoint} did not answer {what} within {}", crate::format::duration(*after))]
    Timeout {
        endpoint: String,
        what: String,
        after: Duration,
    },
    #[error("{endpoint}: {what}: HTTP error: {source}")]
    Http {
        endpoint: String,
        what: String,
        source: hyper::Error,
    },
    /// The server answered with an error status; `code` is smolvm's (`NOT_FOUND`, …).
    #[error("{what}: {status} {}: {message}", code.as_deref().unwrap_or("-"))]
    Status {
        what: String,
        status: u16,
        code: Option<String>,
        message: String,
    },
    #[error("{what}: unexpected answer: {error}")]
    Malformed { what: String, error: String },
}

impl ServeError {
    /// smolvm's 409 for `autoStart: false` on a machine that is not running.
    pub fn is_not_running(&self) -> bool {
        matches!(self, ServeError::Status { status: 409, .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ServeError::Status { status: 404, .. })
    }
}

/// `GET /health`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Health {
    pub status: String,
    pub version: String,
    #[serde(default)]
    pub machines: Option<MachineCounts>,
    #[serde(default)]
    pub uptime_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct MachineCounts {
    pub total: u64,
    pub running: u64,
}

/// The part of `MachineInfo` we show; the server's other keys are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MachineInfo {
    pub name: String,
    pub state: String,
    #[serde(default)]
    pub cpus: Option<u64>,
    #[serde(default)]
    pub memory_mb: Option<u64>,
    #[serde(default)]
    pub pid: Option<i64>,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub image: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ListMachines {
    machines: Vec<MachineInfo>,
}

/// `ExecRequest`. The server denies unknown fields, so only these are ever sent.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecRequest {
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Always sent: a freeze must never wake a stopped machine.
    pub auto_start: bool,
}

impl ExecRequest {
    /// A command for a machine that must already be running.
    pub fn running_only(command: Vec<String>) -> ExecRequest {
        ExecRequest {
            command,
            timeout_secs: None,
            auto_start: false,
        }
    }
}

/// `ExecResponse`, decoded from its byte-exact base64 fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecResponse {
    exit_code: i32,
    stdout_b64: String,
    stderr_b64: String,
}

#[derive(Debug, Deserialize)]
struct ApiErrorResponse {
    error: String,
    code: String,
}

/// An answer read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub struct ServeClient {
    endpoint: Endpoint,
    timeout: Duration,
}

/// Percent-encodes a path segment (machine names, guest paths keep their `/`).
pub fn encode_segment(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/');
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ServeClient {
    pub fn new(endpoint: Endpoint, timeout: Duration) -> ServeClient {
        ServeClient { endpoint, timeout }
    }

    /// The same server with another per-request bound.
    pub fn with_timeout(&self, timeout: Duration) -> ServeClient {
        ServeClient {
            endpoint: self.endpoint.clone(),
            timeout,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timed_out(&self, what: &str) -> ServeError {
        ServeError::Timeout {
            endpoint: self.endpoint.to_string(),
            what: what.to_string(),
            after: self.timeout,
        }
    }

    /// Connects and sends one request; returns once the answer's head has arrived (the
    /// body streams after that, unbounded by the timeout).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ServeError> {
        let what = format!("{method} {path}");
        tokio::time::timeout(self.timeout, self.send_inner(method, path, json, &what))
            .await
            .map_err(|_| self.timed_out(&what))?
    }

    async fn send_inner(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
        what: &str,
    ) -> Result<Response<Incoming>, ServeError> {
        let connect_err = |source| ServeError::Connect {
            endpoint: self.endpoint.to_string(),
            source,
        };
        let http_err = |source| ServeError::Http {
            endpoint: self.endpoint.to_string(),
            what: what.to_string(),
            source,
        };
        let (host, mut sender) = match &self.endpoint {
            Endpoint::Unix(p) => {
                let s = UnixStream::connect(p).await.map_err(connect_err)?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .map_err(http_err)?;
                tokio::spawn(conn);
                ("localhost".to_string(), sender)
            }
            Endpoint::Tcp(a) => {
                let s = TcpStream::connect(a).await.map_err(connect_err)?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .map_err(http_err)?;
                tokio::spawn(conn);
                (a.clone(), sender)
            }
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, host);
        let body = match json {
            Some(b) => {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(b))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req.body(body).map_err(|e| ServeError::Malformed {
            what: what.to_string(),
            error: e.to_string(),
        })?;
        sender.send_request(req).await.map_err(http_err)
    }

    /// One request, its whole answer read within the timeout.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Answer, ServeError> {
        let what = format!("{method} {path}");
        let run = async {
            let resp = self.send_inner(method, path, json, &what).await?;
            let status = resp.status();
            let content_type = resp
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|source| ServeError::Http {
                    endpoint: self.endpoint.to_string(),
                    what: what.clone(),
                    source,
                })?
                .to_bytes();
            Ok(Answer {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| self.timed_out(&what))?
    }

    /// A JSON answer with a success status, decoded; an error status becomes
    /// [`ServeError::Status`] with smolvm's code when the body has one.
    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ServeError> {
        let what = format!("{method} {path}");
        let a = self.request(method, path, body).await?;
        if !a.status.is_success() {
            return Err(status_error(&what, &a));
        }
        serde_json::from_slice(&a.body).map_err(|e| ServeError::Malformed {
            what,
            error: e.to_string(),
        })
    }

    pub async fn health(&self) -> Result<Health, ServeError> {
        self.json(Method::GET, "/health", None).await
    }

    pub async fn machines(&self) -> Result<Vec<MachineInfo>, ServeError> {
        let l: ListMachines = self.json(Method::GET, "/api/v1/machines", None).await?;
        Ok(l.machines)
    }

    pub async fn machine(&self, name: &str) -> Result<MachineInfo, ServeError> {
        let path = format!("/api/v1/machines/{}", encode_segment(name, false));
        self.json(Method::GET, &path, None).await
    }

    /// `POST …/exec`: the whole output, byte-exact. Bounded by the client's timeout.
    pub async fn exec(&self, name: &str, req: &ExecRequest) -> Result<ExecOutput, ServeError> {
        let path = format!("/api/v1/machines/{}/exec", encode_segment(name, false));
        let body = serde_json::to_vec(req).map_err(|e| ServeError::Malformed {
            what: path.clone(),
            error: e.to_string(),
        })?;
        let r: ExecResponse = self.json(Method::POST, &path, Some(body)).await?;
        let b64 = |s: &str, which: &str| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| ServeError::Malformed {
                    what: format!("{path}: {which}"),
                    error: e.to_string(),
                })
        };
        Ok(ExecOutput {
            exit_code: r.exit_code,
            stdout: b64(&r.stdout_b64, "stdoutB64")?,
            stderr: b64(&r.stderr_b64, "stderrB64")?,
        })
    }
}

/// One Server-Sent Event of `exec/stream`: `stdout`, `stderr` (text, lossy UTF-8 on the
/// server's side), `exit` (`{"exitCode":N}`) or `error` (`{"message":…}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Splits an SSE byte stream into events (fields `event` and `data`; comments and other
/// fields ignored; a blank line ends an event).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    out.push(SseEvent {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data,
                    });
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
                None => (line.clone(), String::new()),
            };
            match field.as_str() {
                "event" => self.event = Some(value),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(&value);
                    }
                    None => self.data = Some(value),
                },
                _ => {}
            }
        }
        out
    }
}

/// The error an answer with a failure status stands for.
pub fn status_error(what: &str, a: &Answer) -> ServeError {
    let (code, message) = match serde_json::from_slice::<ApiErrorResponse>(&a.body) {
        Ok(e) => (Some(e.code), e.error),
        // axum's extractors answer in plain text (e.g. 422 for an unknown field).
        Err(_) => (
            None,
            crate::sanitize::escape_bytes(&a.body[..a.body.len().min(400)]),
        ),
    };
    ServeError::Status {
        what: what.to_string(),
        status: a.status.as_u16(),
        code,
        message: crate::sanitize::escape_str(&message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_request_is_camel_case_and_always_says_auto_start() {
        let r = ExecRequest::running_only(vec!["true".into()]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"command": ["true"], "autoStart": false})
        );
    }

    #[test]
    fn parses_sse_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: stdout\ndata: a\nda").is_empty());
        let ev = p.push(b"ta: b\n\n: keep-alive\n\nevent: exit\r\ndata: {\"exitCode\":2}\n\n");
        assert_eq!(
            ev,
            vec![
                SseEvent {
                    event: "stdout".into(),
                    data: "a\nb".into()
                },
                SseEvent {
                    event: "exit".into(),
                    data: "{\"exitCode\":2}".into()
                },
            ]
        );
    }

    #[test]
    fn encodes_segments() {
        assert_eq!(encode_segment("bot-bottle-a b", false), "bot-bottle-a%20b");
        assert_eq!(encode_segment("tmp/x.tar", true), "tmp/x.tar");
        assert_eq!(encode_segment("a/b", false), "a%2Fb");
    }

    #[test]
    fn machine_info_reads_camel_case() {
        let m: MachineInfo = serde_json::from_str(
            r#"{"name":"n","state":"stopped","cpus":4,"memoryMb":512,"createdAt":7,"extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(m.memory_mb, Some(512));
        assert_eq!(m.created_at, Some(7));
    }
}
