//! Stage exec-tar: the VM's root filesystem as `rootfs.tar`, through one of two transports.
//!
//! *Pipe*: `smolvm machine exec --stream -- tar … --file=-` with stdout a pipe that we
//! copy to the file while stderr is drained at the same time (a child blocked on a full
//! stderr pipe stops writing stdout). *Guest file*: tar writes a scratch file inside the
//! guest, which `machine cp` downloads; needed since smolvm caps exec output at 11 MiB.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::freeze::capture::{CaptureLimits, OutputCapture};
use crate::freeze::command::{flush_batch, run_captured, spawn_drain, SharedCapture};
use crate::freeze::events::{Failure, OutputStream, Progress, Stage, Transport, PROGRESS_INTERVAL};
use crate::freeze::image_archive::{self, ImageArchive, ImageSpec};
use crate::freeze::report::{Emitter, Reporter, Throttle};
use crate::freeze::stream_copy::{copy_archive, Copied, CopyOptions};
use crate::freeze::tar_scan::scan_file_full;
use crate::freeze::{StageError, TransportChoice};
use crate::process::{status_code, GroupChild};
use crate::smolvm::argv as smolvm_argv;
use crate::smolvm::Smolvm;

/// Paths tar leaves out: kernel and runtime filesystems, not part of the root's content.
pub const TAR_EXCLUDES: [&str; 4] = [
    "--exclude=./proc",
    "--exclude=./sys",
    "--exclude=./dev",
    "--exclude=./run",
];

/// smolvm's exec output cap error contains this (src/agent/client.rs).
const CAP_MARKER: &str = "byte cap";

/// Lines of stderr carried in a failure message.
const TAIL_LINES: usize = 20;

/// What exec-tar produced.
#[derive(Debug, Clone)]
pub struct Exported {
    pub path: PathBuf,
    pub bytes: u64,
    pub entries: u64,
    pub transport: Transport,
    pub warnings: Vec<String>,
    /// Regular files named like credential files.
    pub credentials: crate::secrets::Findings,
    /// The image archive around the guest's tar, when one was asked for.
    pub image: Option<ImageArchive>,
    /// Bytes and entries per directory, from the tar headers.
    pub content: Option<crate::content::ContentSummary>,
}

/// Everything exec-tar needs, borrowed from the runner.
pub struct ExecTar<'a> {
    pub smolvm: &'a Smolvm,
    pub machine: &'a str,
    pub choice: TransportChoice,
    pub guest_scratch_dir: &'a str,
    /// Set while a scratch archive may exist in the guest, so the runner removes it on
    /// every path out, cancellation included.
    pub guest_scratch: &'a mut Option<String>,
    /// About how large the archive will be (`df` of the guest's root), once asked.
    pub estimate: Option<u64>,
    /// The operator's `--exclude` options for the guest's tar (`--exclude=./home/x/.ssh`).
    pub exclude: &'a [String],
    /// Whether `machine exec` knows `--stream` (from [`crate::freeze::probes`]).
    pub stream_flag: bool,
    /// Write a `docker save` archive with the guest's tar as its layer (the native
    /// build), instead of the bare tar.
    pub image: Option<ImageSpec>,
}

/// The tar command inside the guest, writing to `file` (`-` for stdout).
pub fn tar_argv(file: &str, extra_exclude: Option<&str>) -> Vec<String> {
    let mut v = vec!["tar".to_string(), "--create".to_string()];
    v.extend(TAR_EXCLUDES.iter().map(|s| s.to_string()));
    if let Some(x) = extra_exclude {
        v.push(format!("--exclude={x}"));
    }
    v.push(format!("--file={file}"));
    v.push("--directory=/".to_string());
    v.push(".".to_string());
    v
}

/// The guest's scratch folder cannot hold an archive about as large as the root.
pub(crate) fn no_room_in_guest(avail: u64, estimate: u64, dir: &str) -> StageError {
    fail(
        format!(
            "not enough room in the guest for the scratch archive: {} free in {dir}, the root holds about {}",
            crate::format::bytes(avail),
            crate::format::bytes(estimate)
        ),
        None,
        "<no stderr>".into(),
    )
}

pub(crate) fn fail(
    message: impl Into<String>,
    exit_status: Option<i32>,
    stderr_tail: String,
) -> StageError {
    StageError::Failed(Failure {
        stage: Stage::ExecTar,
        message: message.into(),
        exit_status,
        stderr_tail,
    })
}

/// The stage's stderr capture; `note` drops the smolvm wheel's start-up note (local CLI only).
pub(crate) fn new_capture(
    rep: &Reporter,
    note: Option<crate::smolvm::note::NoteFilter>,
) -> Result<SharedCapture, StageError> {
    let path = rep.log_path(Stage::ExecTar);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let cap = OutputCapture::create(&path, CaptureLimits::default()).map_err(|e| {
        fail(
            format!("cannot create the log {}: {e}", path.display()),
            None,
            "<no stderr>".into(),
        )
    })?;
    Ok(Arc::new(Mutex::new(cap.with_filter(note))))
}

pub(crate) fn tail(capture: &SharedCapture) -> String {
    capture
        .lock()
        .map(|c| c.tail(TAIL_LINES))
        .unwrap_or_else(|_| "<no stderr>".into())
}

pub(crate) fn finish_capture(capture: &SharedCapture) {
    if let Ok(mut c) = capture.lock() {
        let _ = c.finish();
    }
}

/// tar's exit status 1 means "some files differ" (changed as we read them): on a live
/// system that is expected, so it is success with warnings; 2 and up are fatal.
pub(crate) fn warnings_for(code: i32, capture: &SharedCapture) -> Vec<String> {
    if code != 1 {
        return Vec::new();
    }
    let Ok(c) = capture.lock() else {
        return Vec::new();
    };
    let (files, more) = c.changed_files();
    let mut w: Vec<String> = files
        .iter()
        .map(|f| format!("file changed as we read it: {f}"))
        .collect();
    if more > 0 {
        w.push(format!("… and {more} more files changed as we read them"));
    }
    if w.is_empty() {
        w.push("tar exited with status 1 (some files differ)".into());
    }
    w
}

/// Exit status 1 is also smolvm's own failure (`Error: vm not found: …`, a machine that
/// stopped): then it is no tar warning but the stage's failure, in smolvm's words.
fn smolvm_failed(code: i32, capture: &SharedCapture, machine: &str) -> Option<StageError> {
    if code != 1 {
        return None;
    }
    let tail = tail(capture);
    let f = crate::smolvm::error::find(code, &tail)?;
    Some(fail(
        format!(
            "smolvm could not run tar in {}: {}",
            crate::sanitize::escape_str(machine),
            f.message
        ),
        Some(code),
        tail,
    ))
}

enum PipeEnd {
    Done(Box<Exported>),
    /// smolvm's exec output cap stopped the stream.
    CapHit {
        bytes: u64,
    },
}

/// How long a finished exec-tar waits for its `df` query before killing it.
const DF_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl ExecTar<'_> {
    pub async fn run(&mut self, rep: &mut Reporter, out: &Path) -> Result<Exported, StageError> {
        // The pipe does not wait for `df`: its estimate arrives while bytes already flow.
        // The guest file needs it first, to check the guest has room.
        let estimate = Arc::new(AtomicU64::new(0));
        let df = {
            let (smolvm, machine, est) = (
                self.smolvm.clone(),
                self.machine.to_string(),
                estimate.clone(),
            );
            let parent = out.parent().map(Path::to_path_buf);
            let emit = rep.emit.clone();
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                let used = guest_df(&smolvm, &machine, "/")
                    .await
                    .ok()
                    .map(|d| d.used_bytes)?;
                est.store(used, Ordering::Relaxed);
                if let Some(free) = parent.as_deref().and_then(free_bytes) {
                    if used > free {
                        emit.note(
                            Stage::ExecTar,
                            format!(
                                "warning: the root holds about {} but {} has only {} free",
                                crate::format::bytes(used),
                                parent
                                    .as_deref()
                                    .map(|p| p.display().to_string())
                                    .unwrap_or_default(),
                                crate::format::bytes(free)
                            ),
                        );
                    }
                }
                Some(used)
            }))
        };
        let mut df = Some(df);
        if self.choice == TransportChoice::GuestFile {
            if let Some(df) = df.take() {
                self.estimate = df.await.ok().flatten();
            }
        }
        let result = self.stream(rep, out, estimate).await;
        // A stream that failed at once must not leave the `df` query behind: give it a
        // moment to end on its own (reaped), then kill it, before the run goes on.
        if let Some(df) = df {
            let _ = tokio::time::timeout(DF_GRACE, df).await;
        }
        result
    }

    /// The archive through the chosen transport (and the guest file after a capped pipe).
    async fn stream(
        &mut self,
        rep: &mut Reporter,
        out: &Path,
        estimate: Arc<AtomicU64>,
    ) -> Result<Exported, StageError> {
        let stream_flag = self.stream_flag;
        if !stream_flag {
            rep.emit.note(
                Stage::ExecTar,
                "this smolvm's machine exec has no --stream: output arrives only when tar ends, so there is no live progress",
            );
        }
        match self.choice {
            TransportChoice::GuestFile => self.via_guest_file(rep, out, stream_flag).await,
            TransportChoice::Pipe | TransportChoice::Auto => {
                let piped = self
                    .via_pipe(rep, out, stream_flag, estimate.clone())
                    .await?;
                let known = estimate.load(Ordering::Relaxed);
                self.estimate = (known > 0).then_some(known);
                match piped {
                    PipeEnd::Done(e) => Ok(*e),
                    PipeEnd::CapHit { bytes } if self.choice == TransportChoice::Auto => {
                        remove_partial(out);
                        rep.emit.note(
                            Stage::ExecTar,
                            format!(
                                "smolvm's exec output cap stopped the pipe after {}; discarded the partial archive and switching to the guest-file transport",
                                crate::format::bytes(bytes)
                            ),
                        );
                        self.via_guest_file(rep, out, stream_flag).await
                    }
                    PipeEnd::CapHit { .. } => {
                        remove_partial(out);
                        Err(fail(
                            "smolvm's exec output cap stopped the stream (use --transport guest-file or auto)",
                            None,
                            "streaming output exceeded smolvm's exec output cap".into(),
                        ))
                    }
                }
            }
        }
    }

    fn exec_argv(&self, stream_flag: bool, cmd: Vec<String>) -> Vec<String> {
        let opts = smolvm_argv::ExecOptions {
            stream: stream_flag,
            timeout: None,
        };
        smolvm_argv::exec(self.machine, opts, cmd)
    }

    /// The operator's excludes, before tar's `--file`.
    fn with_excludes(&self, mut tar: Vec<String>) -> Vec<String> {
        let at = tar
            .iter()
            .position(|a| a.starts_with("--file="))
            .unwrap_or(tar.len());
        tar.splice(at..at, self.exclude.iter().cloned());
        tar
    }

    fn record(&self, rep: &mut Reporter, argv: &[String]) {
        rep.command(self.smolvm.command_line(argv));
    }

    async fn via_pipe(
        &mut self,
        rep: &mut Reporter,
        out: &Path,
        stream_flag: bool,
        estimate: Arc<AtomicU64>,
    ) -> Result<PipeEnd, StageError> {
        rep.transport(Transport::Pipe);
        let argv = self.exec_argv(stream_flag, self.with_excludes(tar_argv("-", None)));
        self.record(rep, &argv);
        let capture = new_capture(rep, self.smolvm.note_filter())?;
        let mut file = create_private(out)
            .and_then(|mut f| {
                if self.image.is_some() {
                    image_archive::begin(&mut f)?;
                }
                Ok(f)
            })
            .map_err(|e| {
                fail(
                    format!("cannot create {}: {e}", out.display()),
                    None,
                    "<no stderr>".into(),
                )
            })?;

        // Our own pipe, read with blocking reads on a thread of its own: it keeps the hot
        // copy loop out of the async runtime and leaves room for zero-copy later.
        let (reader, writer) = io::pipe().map_err(|e| {
            fail(
                format!("cannot make a pipe: {e}"),
                None,
                "<no stderr>".into(),
            )
        })?;
        let mut cmd = self.smolvm.command(&argv);
        cmd.stdout(Stdio::from(writer)).stderr(Stdio::piped());
        let spawned = GroupChild::spawn(&mut cmd);
        drop(cmd); // our copy of the write end must close, or EOF never comes
        let mut child = spawned.map_err(|e| {
            fail(
                self.smolvm.spawn_error(e).to_string(),
                None,
                "<no stderr>".into(),
            )
        })?;
        let drain = spawn_drain(child.inner().stderr.take(), &capture);

        let emit = rep.emit.clone();
        let out_path = out.to_path_buf();
        let hash = self.image.is_some();
        let est = estimate.clone();
        let copy = tokio::task::spawn_blocking(move || {
            copy_with_progress(reader, &mut file, &out_path, &emit, hash, &est).map(|c| (c, file))
        });
        let copy = tokio_util::task::AbortOnDropHandle::new(copy);

        let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
        tokio::pin!(copy);
        let copied = loop {
            tokio::select! {
                r = &mut copy => break r,
                _ = tick.tick() => {
                    flush_batch(&capture, &rep.emit, Stage::ExecTar, OutputStream::Stderr);
                    rep.checkpoint();
                    if let Some(idle) = rep.stalled() {
                        // The child is killed below; its pipe closes and the copy ends.
                        break Ok(Err(format!("stalled: no bytes for {}s (--stall-timeout)", idle.as_secs())));
                    }
                }
            }
        };
        let copied = match copied {
            Ok(r) => r,
            Err(e) => Err(format!("the copy task ended abnormally: {e}")),
        };
        let (copied, file) = match copied {
            Ok((c, f)) => (Ok(c), Some(f)),
            Err(e) => (Err(e), None),
        };
        let known = estimate.load(Ordering::Relaxed);
        if known > 0 {
            self.estimate = Some(known);
        }
        if copied.is_err() {
            // A write error leaves the child writing into a pipe nobody reads.
            child.kill_group();
        }
        let status = child.wait().await;
        if let Some(d) = drain {
            let _ = tokio::time::timeout(Duration::from_secs(5), d).await;
        }
        flush_batch(&capture, &rep.emit, Stage::ExecTar, OutputStream::Stderr);
        finish_capture(&capture);
        let code = match status {
            Ok(s) => status_code(&s),
            Err(e) => {
                return Err(fail(
                    format!("cannot wait for smolvm: {e}"),
                    None,
                    tail(&capture),
                ))
            }
        };

        let copied = match copied {
            Ok(c) => c,
            Err(msg) => {
                remove_partial(out);
                return Err(fail(
                    format!("{msg}{}", self.space_note(out)),
                    None,
                    tail(&capture),
                ));
            }
        };
        let cap_hit = code != 0
            && capture
                .lock()
                .map(|c| c.tail_contains(CAP_MARKER))
                .unwrap_or(false);
        if cap_hit {
            return Ok(PipeEnd::CapHit {
                bytes: copied.bytes,
            });
        }
        let digest = copied.sha256;
        let mut done = self.judge(code, copied, &capture, out, Transport::Pipe)?;
        if let (Some(spec), Some(mut file), Some(digest)) = (&self.image, file, digest) {
            let archive =
                image_archive::finish(&mut file, out, done.bytes, digest, spec).map_err(|e| {
                    remove_partial(out);
                    fail(
                        format!("cannot write the image archive {}: {e}", out.display()),
                        None,
                        "<no stderr>".into(),
                    )
                })?;
            done.image = Some(archive);
        }
        Ok(PipeEnd::Done(Box::new(done)))
    }

    /// Turns an exit status and a scanned archive into the stage's result.
    fn judge(
        &self,
        code: i32,
        copied: Copied,
        capture: &SharedCapture,
        out: &Path,
        transport: Transport,
    ) -> Result<Exported, StageError> {
        if let Some(e) = smolvm_failed(code, capture, self.machine) {
            remove_partial(out);
            return Err(e);
        }
        if code != 0 && code != 1 {
            remove_partial(out);
            return Err(fail(
                format!(
                    "tar in {} failed",
                    crate::sanitize::escape_str(self.machine)
                ),
                Some(code),
                tail(capture),
            ));
        }
        match copied.scan {
            Ok(entries) => {
                let mut warnings = warnings_for(code, capture);
                warnings.extend(copied.oci.lines());
                Ok(Exported {
                    path: out.to_path_buf(),
                    bytes: copied.bytes,
                    entries,
                    transport,
                    warnings,
                    image: None,
                    credentials: copied.credentials,
                    content: copied.content,
                })
            }
            Err(e) => {
                remove_partial(out);
                Err(fail(
                    format!("incomplete archive: {e}"),
                    Some(code),
                    tail(capture),
                ))
            }
        }
    }

    async fn via_guest_file(
        &mut self,
        rep: &mut Reporter,
        out: &Path,
        stream_flag: bool,
    ) -> Result<Exported, StageError> {
        rep.transport(Transport::GuestFile);
        let dir = self.guest_scratch_dir.trim_end_matches('/');
        let dir = if dir.is_empty() { "/" } else { dir };
        let scratch = format!(
            "{}/bottle-freeze-{}.tar",
            dir.trim_end_matches('/'),
            rep.record.id
        );

        // Room in the guest: the archive is about as large as what the root uses.
        let estimate = self.estimate;
        if let Ok(df) = self.guest_df(rep, dir).await {
            if let Some(est) = estimate {
                if df.avail_bytes < est {
                    return Err(no_room_in_guest(df.avail_bytes, est, dir));
                }
            }
        }

        let capture = new_capture(rep, self.smolvm.note_filter())?;
        *self.guest_scratch = Some(scratch.clone());
        // Recorded before tar starts, so a crash leaves enough to clean the guest later.
        rep.record.guest_scratch = Some(scratch.clone());
        rep.save();
        let exclude = format!(".{scratch}");
        let argv = self.exec_argv(
            stream_flag,
            self.with_excludes(tar_argv(&scratch, Some(&exclude))),
        );
        self.record(rep, &argv);
        rep.emit.note(
            Stage::ExecTar,
            format!("tar is writing {scratch} inside the guest"),
        );
        let code = run_captured(
            self.smolvm.command(&argv),
            &capture,
            &rep.emit,
            Stage::ExecTar,
            || {},
        )
        .await
        .map_err(|e| fail(self.smolvm.spawn_error(e).to_string(), None, tail(&capture)))?;
        if let Some(e) = smolvm_failed(code, &capture, self.machine) {
            finish_capture(&capture);
            return Err(e);
        }
        if code != 0 && code != 1 {
            finish_capture(&capture);
            return Err(fail(
                format!(
                    "tar in {} failed",
                    crate::sanitize::escape_str(self.machine)
                ),
                Some(code),
                tail(&capture),
            ));
        }
        let warnings = warnings_for(code, &capture);

        // Download; smolvm caps transfers at 4 GiB unless told otherwise. For an image
        // archive the bare tar lands beside it and is wrapped afterwards.
        let download = if self.image.is_some() {
            out.with_extension("download.tar")
        } else {
            out.to_path_buf()
        };
        let cp_argv = smolvm_argv::copy_out(self.machine, &scratch, &download);
        self.record(rep, &cp_argv);
        let mut cmd = self.smolvm.command(&cp_argv);
        if std::env::var_os("SMOLVM_FILE_TRANSFER_MAX_BYTES").is_none() {
            let gib = estimate.map(|e| (e >> 30) * 2 + 1).unwrap_or(0).max(64);
            cmd.env("SMOLVM_FILE_TRANSFER_MAX_BYTES", format!("{gib}G"));
        }
        let started = Instant::now();
        let emit = rep.emit.clone();
        let out_path = download.clone();
        let mut throttle = Throttle::new();
        let code = run_captured(cmd, &capture, &rep.emit, Stage::ExecTar, || {
            if throttle.ready() {
                let bytes = std::fs::metadata(&out_path).map(|m| m.len()).unwrap_or(0);
                emit.progress(
                    Stage::ExecTar,
                    Progress {
                        bytes,
                        total: estimate,
                        elapsed_ms: started.elapsed().as_millis() as u64,
                        ..Progress::default()
                    },
                );
            }
        })
        .await
        .map_err(|e| fail(self.smolvm.spawn_error(e).to_string(), None, tail(&capture)))?;
        finish_capture(&capture);
        if code != 0 {
            remove_partial(&download);
            return Err(fail(
                "machine cp could not download the archive",
                Some(code),
                tail(&capture),
            ));
        }
        let summary = scan_file_full(&download);
        let bytes = std::fs::metadata(&download).map(|m| m.len()).unwrap_or(0);
        let (scan, oci, credentials, content) = match summary {
            Ok(s) => (Ok(s.summary.entries), s.oci, s.credentials, Some(s.content)),
            Err(e) => (
                Err(e.to_string()),
                Default::default(),
                Default::default(),
                None,
            ),
        };
        let copied = Copied {
            bytes,
            scan,
            credentials,
            oci,
            sha256: None,
            content,
        };
        let mut done = self.judge(0, copied, &capture, &download, Transport::GuestFile)?;
        let mut all = warnings;
        all.append(&mut done.warnings);
        done.warnings = all;
        if let Some(spec) = &self.image {
            wrap_download(rep, &download, out, spec, &mut done)?;
        }
        Ok(done)
    }

    /// "; DIR has X free, the archive needs about Y" when space is the likely cause.
    fn space_note(&self, out: &Path) -> String {
        let dir = out.parent().unwrap_or(Path::new("."));
        let (Some(free), Some(est)) = (free_bytes(dir), self.estimate) else {
            return String::new();
        };
        if free >= est.saturating_sub(std::fs::metadata(out).map(|m| m.len()).unwrap_or(0))
            && free > 1 << 20
        {
            return String::new();
        }
        format!(
            "; {} has {} free, the archive needs about {}",
            dir.display(),
            crate::format::bytes(free),
            crate::format::bytes(est)
        )
    }

    async fn guest_df(&self, rep: &mut Reporter, path: &str) -> Result<GuestDf, String> {
        let argv = self.exec_argv(false, smolvm_argv::guest_df(path));
        self.record(rep, &argv);
        guest_df(self.smolvm, self.machine, path).await
    }
}

/// Removes the guest's scratch archive; bounded in time since it runs on the way out.
pub async fn remove_guest_scratch(
    smolvm: &Smolvm,
    machine: &str,
    scratch: &str,
) -> Result<(), String> {
    let argv = smolvm_argv::exec(machine, Default::default(), smolvm_argv::guest_rm(scratch));
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    match tokio::time::timeout(Duration::from_secs(15), smolvm.query_ok(&args)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// `df -Pk PATH` inside the guest: used and free bytes of the filesystem holding PATH.
/// `df -Pk /`'s used bytes are the estimate of the archive's size.
pub async fn guest_df(smolvm: &Smolvm, machine: &str, path: &str) -> Result<GuestDf, String> {
    let argv = smolvm_argv::exec(machine, Default::default(), smolvm_argv::guest_df(path));
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = smolvm.query_ok(&args).await.map_err(|e| e.to_string())?;
    parse_df(&out.stdout).ok_or_else(|| "unreadable df output".to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestDf {
    pub used_bytes: u64,
    pub avail_bytes: u64,
}

/// Parses POSIX `df -Pk` output (1024-byte blocks), the second line's Used and Available.
pub fn parse_df(out: &[u8]) -> Option<GuestDf> {
    let text = String::from_utf8_lossy(out);
    let line = text.lines().nth(1)?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    // A long filesystem name may push the numbers; count from the end (…Used Avail Cap% Mount).
    let n = cols.len();
    if n < 6 {
        return None;
    }
    let used: u64 = cols[n - 4].parse().ok()?;
    let avail: u64 = cols[n - 3].parse().ok()?;
    Some(GuestDf {
        used_bytes: used * 1024,
        avail_bytes: avail * 1024,
    })
}

/// Runs the copy on this (blocking) thread, reporting progress at most every 50 ms and
/// once more at the end.
fn copy_with_progress(
    reader: io::PipeReader,
    file: &mut File,
    path: &Path,
    emit: &Emitter,
    hash: bool,
    estimate: &AtomicU64,
) -> Result<Copied, String> {
    let started = Instant::now();
    let mut throttle = Throttle::new();
    copy_archive(
        reader,
        file,
        path,
        CopyOptions::default(),
        hash,
        |bytes, scanner, last| {
            if throttle.ready() || last {
                let est = estimate.load(Ordering::Relaxed);
                let progress = Progress {
                    bytes,
                    total: (est > 0).then_some(est),
                    entries: Some(scanner.entries()),
                    current_path: scanner.current_path(),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    layers: Vec::new(),
                };
                emit.progress(Stage::ExecTar, progress);
            }
        },
    )
}

/// Removes a partial archive — only ever a regular file: a device or FIFO given as the
/// output (`/dev/null`) must never be unlinked, least of all as root.
pub fn remove_partial(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Free bytes for an unprivileged writer in the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Wraps a guest tar downloaded to `download` into the native image archive at `out` (in
/// place where the filesystem can insert a range), and points `done` at the archive.
pub(crate) fn wrap_download(
    rep: &Reporter,
    download: &Path,
    out: &Path,
    spec: &ImageSpec,
    done: &mut Exported,
) -> Result<(), StageError> {
    let (archive, in_place) = image_archive::wrap_file(download, out, spec).map_err(|e| {
        remove_partial(download);
        remove_partial(out);
        fail(
            format!("cannot write the image archive {}: {e}", out.display()),
            None,
            "<no stderr>".into(),
        )
    })?;
    if !in_place {
        rep.emit.note(
            Stage::ExecTar,
            "this filesystem cannot insert a range into a file: the download was copied into the image archive (written twice)",
        );
    }
    done.path = out.to_path_buf();
    done.image = Some(archive);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smolvm_failing_with_exit_1_is_no_tar_warning() {
        let capture = |text: &str| {
            let mut c = OutputCapture::in_memory(CaptureLimits::default());
            c.push(text.as_bytes()).unwrap();
            Arc::new(Mutex::new(c))
        };
        for stderr in [
            "Error: vm not found: bot-bottle-x\n",
            "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"vm not found: bot-bottle-x\"}}\n",
        ] {
            let Some(StageError::Failed(f)) = smolvm_failed(1, &capture(stderr), "bot-bottle-x")
            else {
                panic!("{stderr} not classified");
            };
            assert_eq!(
                f.message,
                "smolvm could not run tar in bot-bottle-x: vm not found: bot-bottle-x"
            );
            assert_eq!(f.exit_status, Some(1));
        }
        let tar = capture("tar: ./a: file changed as we read it\n");
        assert!(smolvm_failed(1, &tar, "m").is_none());
        assert!(smolvm_failed(2, &capture("Error: x\n"), "m").is_none());
    }

    #[test]
    fn tar_command_matches_the_convention() {
        assert_eq!(
            tar_argv("-", None).join(" "),
            "tar --create --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./run --file=- --directory=/ ."
        );
        let g = tar_argv("/tmp/x.tar", Some("./tmp/x.tar")).join(" ");
        assert!(g.contains("--exclude=./tmp/x.tar --file=/tmp/x.tar"), "{g}");
    }

    #[test]
    fn parses_df() {
        let out = b"Filesystem     1024-blocks    Used Available Capacity Mounted on\n/dev/vda         263174212 11000000 84000000      12% /\n";
        assert_eq!(
            parse_df(out),
            Some(GuestDf {
                used_bytes: 11_000_000 * 1024,
                avail_bytes: 84_000_000 * 1024
            })
        );
        assert_eq!(parse_df(b"garbage"), None);
    }
}
