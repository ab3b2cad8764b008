//! The API's routes and answers. Shapes are smolvm 1.32.2's (`serve openapi`, and its
//! server as tried on our machines): camelCase keys, errors as `{"error","code"}`, a request
//! body that names an unknown field answered 422 in plain text (axum's JSON extractor), and
//! a machine that is not running answered 409 when `autoStart` is false.

use std::collections::BTreeMap;
use std::io;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::exec::ensure_running;
use crate::guestpath::resolve;
use crate::serve::State;
use crate::store::{MachineRecord, MachineState};

pub type Body = BoxBody<Bytes, io::Error>;

/// The version `/health` reports: smolvm's, marked as the double's.
const VERSION: &str = concat!("1.32.2-sim+", env!("CARGO_PKG_VERSION"));

/// Request bodies are small JSON documents.
const MAX_REQUEST: usize = 1024 * 1024;

const CHUNK: usize = 64 * 1024;

pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (segs.as_slice(), &method) {
        (["health"], &Method::GET) => health(&state),
        (["health"], _) => not_allowed("GET,HEAD"),
        (["api", "v1", "machines"], &Method::GET) => list(&state).await,
        (["api", "v1", "machines", name], &Method::GET) => status(&state, name),
        (["api", "v1", "machines", name, "exec"], &Method::POST) => {
            let name = name.to_string();
            exec(state, &name, req, false).await
        }
        (["api", "v1", "machines", name, "exec", "stream"], &Method::POST) => {
            let name = name.to_string();
            exec(state, &name, req, true).await
        }
        (["api", "v1", "machines", _, "exec"], _)
        | (["api", "v1", "machines", _, "exec", "stream"], _) => not_allowed("POST"),
        (["api", "v1", "machines", name, "files", rest @ ..], &Method::GET)
            if !rest.is_empty() && !rest.iter().all(|s| s.is_empty()) =>
        {
            let guest = format!("/{}", rest.join("/"));
            download(&state, name, &guest).await
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}

fn health(state: &State) -> Response<Body> {
    let machines = state.home.list().unwrap_or_default();
    let running = machines
        .iter()
        .filter(|m| m.state == MachineState::Running)
        .count();
    json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "version": VERSION,
            "machines": {"total": machines.len(), "running": running},
            "uptime_seconds": state.started.elapsed().as_secs(),
            "nested_virt": false,
        }),
    )
}

async fn list(state: &State) -> Response<Body> {
    let cfg = match state.home.config() {
        Ok(c) => c,
        Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", e),
    };
    // The sim's list faults apply to the API as to the CLI: a slow or failing host.
    if cfg.ls_hang_secs > 0 {
        tokio::time::sleep(Duration::from_secs(cfg.ls_hang_secs)).await;
    }
    if let Some(msg) = cfg.ls_fail {
        return api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", msg);
    }
    match state.home.list() {
        Ok(ms) => {
            let machines: Vec<Value> = ms.iter().map(machine_info).collect();
            json_response(StatusCode::OK, &json!({ "machines": machines }))
        }
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", e),
    }
}

fn status(state: &State, name: &str) -> Response<Body> {
    match lookup(state, name) {
        Ok(rec) => json_response(StatusCode::OK, &machine_info(&rec)),
        Err(resp) => *resp,
    }
}

/// `MachineInfo`: the required keys always, optional ones only when known (the real
/// server leaves absent values out rather than writing null).
pub fn machine_info(m: &MachineRecord) -> Value {
    let mut v = json!({
        "name": m.name,
        "state": api_state(m.state),
        "cpus": m.cpus,
        "memoryMb": m.memory_mib,
        "mounts": [],
        "ports": [],
        "network": m.network,
        "gpu": false,
        "cuda": false,
        "storageGb": m.storage_gb.unwrap_or(20),
        "overlayGb": m.overlay_gb.unwrap_or(10),
        "blockIo": "sync",
        "diskDurability": "full",
        "branchable": false,
        "forkable": false,
        "branchpointHeld": false,
        "forkpointHeld": false,
        "diskUsedMb": 0,
        "createdAt": m.created_at,
    });
    if let Some(obj) = v.as_object_mut() {
        if let (MachineState::Running, Some(pid)) = (m.state, m.pid) {
            obj.insert("pid".into(), json!(pid));
        }
        if let Some(image) = &m.image {
            obj.insert("image".into(), json!(image));
        }
    }
    v
}

/// The API's word for a state: a machine never started (`created`) is `stopped` there.
fn api_state(s: MachineState) -> &'static str {
    match s {
        MachineState::Running => "running",
        MachineState::Created | MachineState::Stopped | MachineState::Failed => "stopped",
        MachineState::Unreachable => "unreachable",
        MachineState::Frozen => "frozen",
    }
}

/// The machine's record, or the answer that says why there is none (boxed: it is large).
fn lookup(state: &State, name: &str) -> Result<MachineRecord, Box<Response<Body>>> {
    match state.home.load(name) {
        Ok(Some(rec)) => Ok(rec),
        Ok(None) => Err(Box::new(api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("machine '{name}' not found"),
        ))),
        Err(e) => Err(Box::new(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            e,
        ))),
    }
}

/// smolvm's `ExecRequest`, every field, so that exactly smolvm's unknown fields are refused.
/// `env` and `workdir` are accepted and ignored, as the sim's `machine exec` does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct ExecRequest {
    command: Vec<String>,
    #[serde(default)]
    env: Vec<EnvVar>,
    #[serde(default)]
    secrets: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default)]
    background: bool,
    #[serde(default = "yes")]
    auto_start: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EnvVar {
    name: String,
    value: String,
}

async fn read_exec_request(req: Request<Incoming>) -> Result<ExecRequest, Box<Response<Body>>> {
    let is_json = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(Box::new(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected request with `Content-Type: application/json`",
        )));
    }
    let body = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Err(Box::new(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("Failed to buffer the request body: {e}"),
            )))
        }
    };
    serde_json::from_slice::<ExecRequest>(&body).map_err(|e| {
        Box::new(if e.is_data() {
            text(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("Failed to deserialize the JSON body into the target type: {e}"),
            )
        } else {
            text(
                StatusCode::BAD_REQUEST,
                &format!("Failed to parse the request body as JSON: {e}"),
            )
        })
    })
}

async fn exec(
    state: Arc<State>,
    name: &str,
    req: Request<Incoming>,
    stream: bool,
) -> Response<Body> {
    let body = match read_exec_request(req).await {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    if body.command.is_empty() || body.command[0].is_empty() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "command cannot be empty",
        );
    }
    if body.secrets.as_ref().is_some_and(|s| !s.is_empty()) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "ad-hoc secrets are not accepted over the API",
        );
    }
    if body.background || body.stdin.is_some() || body.user.is_some() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "smolvm-sim does not simulate background, stdin or user in exec",
        );
    }
    let mut rec = match lookup(&state, name) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if rec.state != MachineState::Running {
        if !body.auto_start {
            return api_error(
                StatusCode::CONFLICT,
                "CONFLICT",
                "machine is not running and autoStart is false",
            );
        }
        if let Err(e) = ensure_running(&state.home, &mut rec) {
            return api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", e);
        }
    }
    let stream_flag = state.home.config().map(|c| c.stream_flag).unwrap_or(true);
    let mut cmd = match exec_child(&state, name, &body, stream_flag && stream) {
        Ok(c) => c,
        Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", e),
    };
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                format!("spawn exec: {e}"),
            )
        }
    };
    if stream {
        sse(child)
    } else {
        buffered(child).await
    }
}

/// The exec runs as the sim's own `machine exec`, so the API and the CLI share one guest
/// (its tar, its faults, its output cap).
fn exec_child(
    state: &State,
    name: &str,
    body: &ExecRequest,
    stream: bool,
) -> io::Result<tokio::process::Command> {
    let exe = std::env::current_exe()?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.env("SMOLVM_SIM_HOME", state.home.dir())
        .args(["machine", "exec", "--name", name]);
    if stream {
        cmd.arg("--stream");
    }
    if let Some(secs) = body.timeout_secs {
        cmd.arg("--timeout").arg(format!("{secs}s"));
    }
    cmd.arg("--")
        .args(&body.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok(cmd)
}

async fn read_all<R: AsyncRead + Unpin>(r: Option<R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut r) = r {
        let _ = r.read_to_end(&mut buf).await;
    }
    buf
}

async fn buffered(mut child: tokio::process::Child) -> Response<Body> {
    let out = child.stdout.take();
    let err = child.stderr.take();
    let (stdout, stderr) = tokio::join!(read_all(out), read_all(err));
    let code = match child.wait().await {
        Ok(s) => s.code().unwrap_or(-1),
        Err(e) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                format!("wait for exec: {e}"),
            )
        }
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    json_response(
        StatusCode::OK,
        &json!({
            "exitCode": code,
            "stdout": String::from_utf8_lossy(&stdout),
            "stderr": String::from_utf8_lossy(&stderr),
            "stdoutB64": b64.encode(&stdout),
            "stderrB64": b64.encode(&stderr),
        }),
    )
}

type FrameTx = mpsc::Sender<Result<Frame<Bytes>, io::Error>>;

/// One SSE event; data split into lines as the format requires (and as axum does).
pub fn sse_event(event: &str, data: &str) -> Bytes {
    let mut s = format!("event: {event}\n");
    for line in data.split(['\n', '\r']) {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

async fn pump<R: AsyncRead + Unpin>(r: Option<R>, event: &'static str, tx: FrameTx) {
    let Some(mut r) = r else { return };
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // Like smolvm's server: output travels as lossy UTF-8 text (not binary-safe).
                let frame = sse_event(event, &String::from_utf8_lossy(&buf[..n]));
                if tx.send(Ok(Frame::data(frame))).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn sse(mut child: tokio::process::Child) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, io::Error>>(16);
    tokio::spawn(async move {
        let out = child.stdout.take();
        let err = child.stderr.take();
        let done = {
            let run = async {
                tokio::join!(
                    pump(out, "stdout", tx.clone()),
                    pump(err, "stderr", tx.clone())
                );
                child.wait().await
            };
            tokio::select! {
                status = run => Some(status),
                _ = tx.closed() => None,
            }
        };
        match done {
            Some(Ok(status)) => {
                let data = format!("{{\"exitCode\":{}}}", status.code().unwrap_or(-1));
                let _ = tx.send(Ok(Frame::data(sse_event("exit", &data)))).await;
            }
            Some(Err(e)) => {
                let data = json!({ "message": format!("wait for exec: {e}") }).to_string();
                let _ = tx.send(Ok(Frame::data(sse_event("error", &data)))).await;
            }
            None => stop_child(&mut child).await,
        }
    });
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BoxBody::new(body))
        .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
}

/// The client went away: SIGTERM first, so the sim's exec takes its tar down with it.
async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// `GET …/files/{path}`: a file's bytes as a stream, a directory's entries as JSON. Like
/// smolvm's server it starts a machine that is not running (there is no `autoStart` here).
async fn download(state: &State, name: &str, guest: &str) -> Response<Body> {
    let mut rec = match lookup(state, name) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if let Err(e) = ensure_running(&state.home, &mut rec) {
        return api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", e);
    }
    let host = resolve(&rec.root, guest, true);
    let meta = match tokio::fs::metadata(&host).await {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return api_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("path '{guest}' not found in machine '{name}'"),
            )
        }
        Err(e) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                format!("read {guest}: {e}"),
            )
        }
    };
    if meta.is_dir() {
        return listing(&host, guest);
    }
    let file = match tokio::fs::File::open(&host).await {
        Ok(f) => f,
        Err(e) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                format!("read {guest}: {e}"),
            )
        }
    };
    let throttle = rec.sim.throttle.filter(|t| *t > 0);
    let chunks = tokio_util::io::ReaderStream::with_capacity(file, CHUNK).then(move |item| {
        let pause = match (&item, throttle) {
            (Ok(b), Some(rate)) => Duration::from_secs_f64(b.len() as f64 / rate as f64),
            _ => Duration::ZERO,
        };
        async move {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            item.map(Frame::data)
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/octet-stream")
        .header("content-length", meta.len())
        .body(BoxBody::new(StreamBody::new(chunks)))
        .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
}

fn listing(host: &std::path::Path, guest: &str) -> Response<Body> {
    let rd = match std::fs::read_dir(host) {
        Ok(rd) => rd,
        Err(e) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                format!("list {guest}: {e}"),
            )
        }
    };
    let mut entries: Vec<Value> = rd
        .flatten()
        .map(|e| {
            let meta = e.metadata().ok();
            let ft = e.file_type().ok();
            let kind = match ft {
                Some(t) if t.is_symlink() => "symlink",
                Some(t) if t.is_dir() => "dir",
                Some(t) if t.is_file() => "file",
                _ => "other",
            };
            json!({
                "name": e.file_name().to_string_lossy(),
                "kind": kind,
                "size": meta.map(|m| m.len()).unwrap_or(0),
            })
        })
        .collect();
    entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json_response(StatusCode::OK, &json!({ "entries": entries }))
}

fn full(bytes: impl Into<Bytes>) -> Body {
    BoxBody::new(Full::new(bytes.into()).map_err(|never| match never {}))
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(v.to_string()))
        .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
}

/// smolvm's `ApiErrorResponse`.
fn api_error(status: StatusCode, code: &str, msg: impl std::fmt::Display) -> Response<Body> {
    json_response(status, &json!({ "error": msg.to_string(), "code": code }))
}

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(full(msg.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
    r.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static(allow),
    );
    r
}

/// `%XX` escapes of a path segment; anything malformed is kept as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_segments() {
        assert_eq!(percent_decode("bad%20name"), "bad name");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41%42"), "AB");
    }

    #[test]
    fn sse_splits_lines() {
        assert_eq!(
            sse_event("stdout", "a\nb"),
            Bytes::from("event: stdout\ndata: a\ndata: b\n\n")
        );
    }
}
