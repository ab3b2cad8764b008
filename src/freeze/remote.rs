//! exec-tar on a host reached through smolvm's HTTP API (`smolvm serve`): the guest-file
//! transport over the API. tar writes a scratch archive inside the guest (`exec/stream`,
//! `autoStart: false`), `GET …/files/<scratch>` streams it here, and the runner removes the
//! scratch file on every way out. `exec/stream` carries text (lossy UTF-8), so the archive
//! never travels through it. Every exec says `autoStart: false`: a freeze never wakes a
//! stopped machine, smolvm's 409 becomes a refusal. Build, push and pack then run here.

use std::path::Path;
use std::time::Instant;

use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use hyper::Method;
use tokio::io::AsyncWriteExt as _;

use crate::freeze::command::{flush_batch, SharedCapture};
use crate::freeze::events::{OutputStream, Progress, Stage, Transport};
use crate::freeze::exec_tar::{
    fail, finish_capture, new_capture, no_room_in_guest, parse_df, remove_partial, tail, tar_argv,
    warnings_for, wrap_download, Exported,
};
use crate::freeze::image_archive::ImageSpec;
use crate::freeze::report::{Reporter, Throttle};
use crate::freeze::tar_scan::scan_file_full;
use crate::freeze::StageError;
use crate::serve_client::{
    encode_segment, status_error, ExecRequest, ServeClient, ServeError, SseParser,
};

/// How long smolvm may take to start answering a download.
const DOWNLOAD_HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// A host reached through smolvm's API, for a freeze: its label (a folder of the state
/// dir, and the record's `host`) and its client.
#[derive(Debug, Clone)]
pub struct RemoteHost {
    pub label: crate::names::Slug,
    pub client: ServeClient,
}

impl RemoteHost {
    /// Checks the machine is there and running: a freeze never starts one.
    pub async fn check_machine(&self, machine: &str) -> Result<(), String> {
        let m = crate::sanitize::escape_str(machine);
        match self.client.machine(machine).await {
            Ok(info) if info.state == "running" => Ok(()),
            Ok(info) => Err(format!(
                "{m} on {} is {}; only running machines are frozen (a freeze never starts one)",
                self.label,
                crate::sanitize::escape_str(&info.state)
            )),
            Err(e) if e.is_not_found() => {
                Err(format!("smolvm on {} has no machine named {m}", self.label))
            }
            Err(e) => Err(format!("{}: {e}", self.label)),
        }
    }
}

/// The machine on a host: its client and its name there.
pub struct RemoteExecTar<'a> {
    pub client: &'a ServeClient,
    pub host: &'a str,
    pub machine: &'a str,
    /// The operator's `--exclude` options for the guest's tar (`--exclude=./home/x/.ssh`).
    pub exclude: &'a [String],
    pub guest_scratch_dir: &'a str,
    /// Set while a scratch archive may exist in the guest (the runner removes it).
    pub guest_scratch: &'a mut Option<String>,
    /// Wrap the downloaded tar into a `docker save` archive (the native build), as the
    /// local guest-file transport does.
    pub image: Option<ImageSpec>,
}

/// "not running" for smolvm's 409, else the error as it is.
fn api_failure(host: &str, machine: &str, what: &str, e: ServeError) -> StageError {
    let m = crate::sanitize::escape_str(machine);
    if e.is_not_running() {
        return fail(
            format!(
                "{m} on {host} is not running; a freeze never starts a machine (smolvm answered 409 to autoStart: false)"
            ),
            None,
            "<no stderr>".into(),
        );
    }
    fail(format!("{what} on {host}: {e}"), None, "<no stderr>".into())
}

impl RemoteExecTar<'_> {
    /// The failure an answer that is not a success says, its body read within the query
    /// timeout: a server that sends headers and then stalls must not hang the freeze.
    async fn refused(
        &self,
        resp: hyper::Response<hyper::body::Incoming>,
        what: &str,
        request: &str,
    ) -> StageError {
        let status = resp.status();
        let body = tokio::time::timeout(self.client.timeout(), resp.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let answer = crate::serve_client::Answer {
            status,
            content_type: None,
            body,
        };
        api_failure(
            self.host,
            self.machine,
            what,
            status_error(request, &answer),
        )
    }

    fn exec(&self, command: Vec<String>) -> ExecRequest {
        ExecRequest::running_only(command)
    }

    fn record(&self, rep: &mut Reporter, method: &str, path: &str, body: Option<&ExecRequest>) {
        let mut argv = vec![
            method.to_string(),
            format!("{}{path}", self.client.endpoint()),
        ];
        if let Some(b) = body {
            argv.push(serde_json::to_string(b).unwrap_or_default());
        }
        rep.command(argv);
    }

    pub async fn run(&mut self, rep: &mut Reporter, out: &Path) -> Result<Exported, StageError> {
        rep.transport(Transport::GuestFile);
        let dir = self.guest_scratch_dir.trim_end_matches('/');
        let dir = if dir.is_empty() { "/" } else { dir };
        let scratch = format!(
            "{}/bottle-freeze-{}.tar",
            dir.trim_end_matches('/'),
            rep.record.id
        );
        let exec_path = format!(
            "/api/v1/machines/{}/exec",
            encode_segment(self.machine, false)
        );

        // Room in the guest: the archive is about as large as what the root uses. This
        // first exec is also where a stopped machine is refused (409), before anything.
        let df_req = self.exec(vec!["df".into(), "-Pk".into(), "/".into(), dir.to_string()]);
        self.record(rep, "POST", &exec_path, Some(&df_req));
        let df = self
            .client
            .exec(self.machine, &df_req)
            .await
            .map_err(|e| api_failure(self.host, self.machine, "df in the guest", e))?;
        let text = String::from_utf8_lossy(&df.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let root = lines
            .next()
            .and_then(|l| parse_df(format!("{header}\n{l}").as_bytes()));
        let target = lines
            .next()
            .and_then(|l| parse_df(format!("{header}\n{l}").as_bytes()));
        let estimate = root.as_ref().map(|d| d.used_bytes);
        if let (Some(t), Some(est)) = (&target, estimate) {
            if t.avail_bytes < est {
                return Err(no_room_in_guest(t.avail_bytes, est, dir));
            }
        }

        let capture = new_capture(rep, None)?;
        *self.guest_scratch = Some(scratch.clone());
        rep.record.guest_scratch = Some(scratch.clone());
        rep.save();
        let exclude = format!(".{scratch}");
        let mut tar = tar_argv(&scratch, Some(&exclude));
        let at = tar
            .iter()
            .position(|a| a.starts_with("--file="))
            .unwrap_or(tar.len());
        tar.splice(at..at, self.exclude.iter().cloned());
        let tar_req = self.exec(tar);
        let stream_path = format!("{exec_path}/stream");
        self.record(rep, "POST", &stream_path, Some(&tar_req));
        rep.emit.note(
            Stage::ExecTar,
            format!("tar is writing {scratch} inside the guest on {}", self.host),
        );
        let code = self
            .stream_tar(rep, &stream_path, &tar_req, &capture)
            .await?;
        if code != 0 && code != 1 {
            finish_capture(&capture);
            return Err(fail(
                format!(
                    "tar in {} on {} failed",
                    crate::sanitize::escape_str(self.machine),
                    self.host
                ),
                Some(code),
                tail(&capture),
            ));
        }
        let warnings = warnings_for(code, &capture);
        finish_capture(&capture);

        // `files` has no autoStart and would boot a stopped machine: it is only asked
        // while the machine is seen running.
        match self.client.machine(self.machine).await {
            Ok(m) if m.state == "running" => {}
            Ok(m) => {
                return Err(fail(
                    format!(
                        "{} on {} stopped while it was being frozen (it is {}); not downloading, which would start it",
                        crate::sanitize::escape_str(self.machine),
                        self.host,
                        crate::sanitize::escape_str(&m.state)
                    ),
                    None,
                    "<no stderr>".into(),
                ))
            }
            Err(e) => return Err(api_failure(self.host, self.machine, "machine status", e)),
        }
        let files_path = format!(
            "/api/v1/machines/{}/files/{}",
            encode_segment(self.machine, false),
            encode_segment(scratch.trim_start_matches('/'), true)
        );
        self.record(rep, "GET", &files_path, None);
        // For an image archive the bare tar lands beside it and is wrapped afterwards.
        let download = if self.image.is_some() {
            out.with_extension("download.tar")
        } else {
            out.to_path_buf()
        };
        if let Err(e) = self.download(rep, &files_path, &download, estimate).await {
            remove_partial(&download);
            return Err(e);
        }
        let bytes = std::fs::metadata(&download).map(|m| m.len()).unwrap_or(0);
        let (entries, oci, credentials, content) = match scan_file_full(&download) {
            Ok(s) => (s.summary.entries, s.oci, s.credentials, s.content),
            Err(e) => {
                remove_partial(&download);
                return Err(fail(
                    format!("incomplete archive from {}: {e}", self.host),
                    Some(code),
                    tail(&capture),
                ));
            }
        };
        let mut warnings = warnings;
        warnings.extend(oci.lines());
        let mut done = Exported {
            path: download.clone(),
            bytes,
            entries,
            transport: Transport::GuestFile,
            warnings,
            credentials,
            image: None,
            content: Some(content),
        };
        if let Some(spec) = &self.image {
            wrap_download(rep, &download, out, spec, &mut done)?;
        }
        Ok(done)
    }

    /// Runs tar through `exec/stream`, its stderr into the capture; returns its exit status.
    async fn stream_tar(
        &self,
        rep: &mut Reporter,
        path: &str,
        req: &ExecRequest,
        capture: &SharedCapture,
    ) -> Result<i32, StageError> {
        let body = serde_json::to_vec(req).map_err(|e| fail(e.to_string(), None, "".into()))?;
        let resp = self
            .client
            .send(Method::POST, path, Some(body))
            .await
            .map_err(|e| api_failure(self.host, self.machine, "exec", e))?;
        if !resp.status().is_success() {
            return Err(self.refused(resp, "exec", &format!("POST {path}")).await);
        }
        let mut parser = SseParser::default();
        let mut frames = resp.into_body().into_data_stream();
        let mut code = None;
        while let Some(chunk) = frames.next().await {
            let chunk = chunk.map_err(|e| {
                fail(
                    format!("the exec stream from {} broke: {e}", self.host),
                    None,
                    tail(capture),
                )
            })?;
            for ev in parser.push(&chunk) {
                match ev.event.as_str() {
                    "stderr" | "stdout" => {
                        // tar writes the archive to the scratch file; anything it prints
                        // is diagnostics.
                        let mut text = ev.data.into_bytes();
                        text.push(b'\n');
                        if let Ok(mut c) = capture.lock() {
                            let _ = c.push(&text);
                        }
                    }
                    "exit" => {
                        let v: serde_json::Value =
                            serde_json::from_str(&ev.data).unwrap_or_default();
                        code = v["exitCode"].as_i64().map(|c| c as i32);
                    }
                    "error" => {
                        flush_batch(capture, &rep.emit, Stage::ExecTar, OutputStream::Stderr);
                        return Err(fail(
                            format!(
                                "smolvm on {} reported: {}",
                                self.host,
                                crate::sanitize::escape_str(&ev.data)
                            ),
                            None,
                            tail(capture),
                        ));
                    }
                    _ => {}
                }
            }
            flush_batch(capture, &rep.emit, Stage::ExecTar, OutputStream::Stderr);
        }
        flush_batch(capture, &rep.emit, Stage::ExecTar, OutputStream::Stderr);
        code.ok_or_else(|| {
            fail(
                format!(
                    "the exec stream from {} ended without tar's exit status",
                    self.host
                ),
                None,
                tail(capture),
            )
        })
    }

    /// Streams the scratch archive into `out` (0600), with progress.
    async fn download(
        &self,
        rep: &mut Reporter,
        path: &str,
        out: &Path,
        estimate: Option<u64>,
    ) -> Result<(), StageError> {
        // smolvm reads the whole file before it answers (files.rs), so the head of a large
        // archive's answer may take long: the query timeout would cut it off.
        let resp = self
            .client
            .with_timeout(DOWNLOAD_HEAD_TIMEOUT)
            .send(Method::GET, path, None)
            .await
            .map_err(|e| api_failure(self.host, self.machine, "download", e))?;
        if !resp.status().is_success() {
            return Err(self.refused(resp, "download", &format!("GET {path}")).await);
        }
        let file = {
            let mut o = tokio::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true).mode(0o600);
            o.open(out).await
        }
        .map_err(|e| {
            fail(
                format!("cannot create {}: {e}", out.display()),
                None,
                "<no stderr>".into(),
            )
        })?;
        let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut frames = resp.into_body().into_data_stream();
        let started = Instant::now();
        let mut throttle = Throttle::new();
        let mut bytes = 0u64;
        while let Some(chunk) = frames.next().await {
            let chunk = chunk.map_err(|e| {
                fail(
                    format!("the download from {} broke: {e}", self.host),
                    None,
                    "<no stderr>".into(),
                )
            })?;
            file.write_all(&chunk).await.map_err(|e| {
                fail(
                    format!("cannot write {}: {e}", out.display()),
                    None,
                    "<no stderr>".into(),
                )
            })?;
            bytes += chunk.len() as u64;
            if throttle.ready() {
                rep.emit.progress(
                    Stage::ExecTar,
                    Progress {
                        bytes,
                        total: estimate,
                        elapsed_ms: started.elapsed().as_millis() as u64,
                        ..Progress::default()
                    },
                );
            }
        }
        file.flush().await.map_err(|e| {
            fail(
                format!("cannot write {}: {e}", out.display()),
                None,
                "<no stderr>".into(),
            )
        })?;
        rep.emit.progress(
            Stage::ExecTar,
            Progress {
                bytes,
                total: estimate,
                elapsed_ms: started.elapsed().as_millis() as u64,
                ..Progress::default()
            },
        );
        Ok(())
    }
}

/// Removes the guest's scratch archive through the API (`rm -f`, `autoStart: false`, so
/// a machine that stopped meanwhile is left alone); bounded by the client's timeout.
pub async fn remove_guest_scratch(
    client: &ServeClient,
    machine: &str,
    scratch: &str,
) -> Result<(), String> {
    let req = ExecRequest::running_only(vec!["rm".into(), "-f".into(), scratch.into()]);
    match client.exec(machine, &req).await {
        Ok(o) if o.exit_code == 0 => Ok(()),
        Ok(o) => Err(format!(
            "rm -f {scratch} exited {}: {}",
            o.exit_code,
            crate::sanitize::escape_bytes(&o.stderr)
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// `df` of `path` in the guest through the API (`autoStart: false`: asking never wakes a
/// stopped machine), for the dashboard's estimate before a freeze.
pub async fn guest_df(
    client: &ServeClient,
    machine: &str,
    path: &str,
) -> Result<crate::freeze::exec_tar::GuestDf, String> {
    let req = ExecRequest::running_only(vec!["df".into(), "-Pk".into(), path.into()]);
    let out = client
        .exec(machine, &req)
        .await
        .map_err(|e| e.to_string())?;
    if out.exit_code != 0 {
        return Err(format!(
            "df exited {}: {}",
            out.exit_code,
            crate::sanitize::escape_bytes(&out.stderr)
        ));
    }
    parse_df(&out.stdout).ok_or_else(|| "unreadable df output".to_string())
}
