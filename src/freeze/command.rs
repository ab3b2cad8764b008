//! Running a stage's external command with its output captured, batched to the front end
//! and logged, and its whole process group killed if the stage is dropped.

use std::io;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio_util::task::AbortOnDropHandle;

use crate::freeze::capture::{drain, OutputCapture};
use crate::freeze::events::{OutputStream, Stage, PROGRESS_INTERVAL};
use crate::freeze::report::Emitter;
use crate::process::{status_code, GroupChild};

pub type SharedCapture = Arc<Mutex<OutputCapture>>;

/// Sends the lines captured since the last call as one batch.
pub fn flush_batch(capture: &SharedCapture, emit: &Emitter, stage: Stage, stream: OutputStream) {
    let batch = capture.lock().ok().and_then(|mut c| c.take_batch());
    if let Some((lines, dropped)) = batch {
        emit.output(stage, stream, lines, dropped);
    }
}

/// Starts draining a child's pipe into `capture` on its own task, aborted if dropped.
pub fn spawn_drain<R>(
    reader: Option<R>,
    capture: &SharedCapture,
) -> Option<AbortOnDropHandle<io::Result<u64>>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let capture = capture.clone();
    reader.map(|r| AbortOnDropHandle::new(tokio::spawn(drain(r, capture))))
}

/// Runs `cmd` to its end with stdout and stderr both drained into `capture`, sending line
/// batches every [`PROGRESS_INTERVAL`] and calling `on_tick` as often (for progress that
/// is polled, such as a growing file). Returns the exit status.
pub async fn run_captured(
    mut cmd: Command,
    capture: &SharedCapture,
    emit: &Emitter,
    stage: Stage,
    mut on_tick: impl FnMut(),
) -> io::Result<i32> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = GroupChild::spawn(&mut cmd)?;
    let out = spawn_drain(child.inner().stdout.take(), capture);
    let err = spawn_drain(child.inner().stderr.take(), capture);
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    let status = loop {
        tokio::select! {
            s = child.wait() => break s?,
            _ = tick.tick() => {
                flush_batch(capture, emit, stage, OutputStream::Stderr);
                on_tick();
            }
        }
    };
    // The pipes close when the group exits; what is left in them is read before we report.
    // A straggler holding a pipe open must not hang the stage: give it a moment, then go.
    for h in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
    }
    child.kill_group();
    flush_batch(capture, emit, stage, OutputStream::Stderr);
    on_tick();
    Ok(status_code(&status))
}
