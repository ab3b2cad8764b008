//! Stage build: the Docker daemon builds `bot-bottle-committed-<slug>:latest` from a
//! context of `rootfs.tar` plus a Dockerfile. The context is a tar stream made on the fly
//! from the archive on disk, so memory stays flat and no second copy is written.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio_util::io::ReaderStream;

use crate::freeze::capture::{CaptureLimits, OutputCapture};
use crate::freeze::command::{flush_batch, SharedCapture};
use crate::freeze::events::{Failure, OutputStream, Progress, Stage};
use crate::freeze::report::{Reporter, Throttle};
use crate::freeze::StageError;

const READ_CHUNK: usize = 256 * 1024;

pub struct Built {
    pub image: String,
    pub image_id: String,
    pub context_bytes: u64,
}

/// The Dockerfile of the committed image.
pub fn dockerfile(user: &str, workdir: &str) -> String {
    format!("FROM scratch\nADD rootfs.tar /\nUSER {user}\nWORKDIR {workdir}\n")
}

/// The image name for a slug.
pub fn image_name(slug: &str) -> String {
    format!("bot-bottle-committed-{slug}:latest")
}

fn fail(message: impl Into<String>, stderr_tail: String) -> StageError {
    StageError::Failed(Failure {
        stage: Stage::Build,
        message: message.into(),
        exit_status: None,
        stderr_tail,
    })
}

/// A ustar header for a regular file of `size` bytes.
fn file_header(name: &str, size: u64) -> Result<[u8; 512], String> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).map_err(|e| e.to_string())?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    Ok(out)
}

fn padding(size: u64) -> Bytes {
    Bytes::from(vec![0u8; ((512 - size % 512) % 512) as usize])
}

/// The build context as a stream: Dockerfile, then rootfs.tar read from disk in chunks,
/// then the end-of-archive blocks. Returns the stream and its exact length.
pub async fn context_stream(
    archive: &Path,
    dockerfile: &str,
) -> Result<
    (
        impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
        u64,
    ),
    String,
> {
    let file = tokio::fs::File::open(archive)
        .await
        .map_err(|e| format!("cannot open {}: {e}", archive.display()))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| format!("cannot read {}: {e}", archive.display()))?
        .len();
    let df = Bytes::from(dockerfile.as_bytes().to_vec());
    let df_len = df.len() as u64;
    let head: Vec<Bytes> = vec![
        Bytes::copy_from_slice(&file_header("Dockerfile", df_len)?),
        df,
        padding(df_len),
        Bytes::copy_from_slice(&file_header("rootfs.tar", size)?),
    ];
    let tail: Vec<Bytes> = vec![padding(size), Bytes::from(vec![0u8; 1024])];
    let total = 512 + df_len.div_ceil(512) * 512 + 512 + size.div_ceil(512) * 512 + 1024;
    let body = stream::iter(head.into_iter().map(Ok))
        .chain(ReaderStream::with_capacity(file, READ_CHUNK))
        .chain(stream::iter(tail.into_iter().map(Ok)));
    Ok((body, total))
}

pub async fn run(
    rep: &mut Reporter,
    docker: &Docker,
    archive: &Path,
    slug: &str,
    user: &str,
    workdir: &str,
) -> Result<Built, StageError> {
    let image = image_name(slug);
    let log_path = rep.log_path(Stage::Build);
    let capture: SharedCapture = Arc::new(Mutex::new(
        OutputCapture::create(&log_path, CaptureLimits::default()).map_err(|e| {
            fail(
                format!("cannot create the log {}: {e}", log_path.display()),
                "<no stderr>".into(),
            )
        })?,
    ));
    let (body, total) = context_stream(archive, &dockerfile(user, workdir))
        .await
        .map_err(|e| fail(e, "<no stderr>".into()))?;
    rep.command_io(
        vec![
            "docker".into(),
            "build".into(),
            "--tag".into(),
            image.clone(),
            "-".into(),
        ],
        Some(format!(
            "stdin: a build context of a Dockerfile and {}",
            archive.display()
        )),
    );

    // Context bytes are counted as the daemon takes them.
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let body = body.inspect_ok(move |b| {
        counter.fetch_add(b.len() as u64, Ordering::Relaxed);
    });
    let opts = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&image)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(opts, None, Some(bollard::body_try_stream(body)));
    let started = Instant::now();
    let mut throttle = Throttle::new();
    let mut error: Option<String> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                let text = info.stream.or(info.status);
                if let Some(t) = text {
                    if let Ok(mut c) = capture.lock() {
                        let _ = c.push(t.as_bytes());
                    }
                }
                if let Some(detail) = info.error_detail {
                    error = Some(
                        detail
                            .message
                            .unwrap_or_else(|| "unknown build error".into()),
                    );
                }
            }
            Err(e) => {
                error = Some(crate::freeze::docker_error_message(&e));
                break;
            }
        }
        if throttle.ready() {
            flush_batch(&capture, &rep.emit, Stage::Build, OutputStream::Stdout);
            rep.emit.progress(
                Stage::Build,
                Progress {
                    bytes: sent.load(Ordering::Relaxed),
                    total: Some(total),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    ..Progress::default()
                },
            );
        }
    }
    flush_batch(&capture, &rep.emit, Stage::Build, OutputStream::Stdout);
    let context_bytes = sent.load(Ordering::Relaxed);
    rep.emit.progress(
        Stage::Build,
        Progress {
            bytes: context_bytes,
            total: Some(total),
            elapsed_ms: started.elapsed().as_millis() as u64,
            ..Progress::default()
        },
    );
    let tail = capture
        .lock()
        .map(|mut c| {
            let _ = c.finish();
            c.tail(20)
        })
        .unwrap_or_else(|_| "<no stderr>".into());
    if let Some(msg) = error {
        return Err(fail(
            format!(
                "the Docker daemon could not build {image}: {}",
                crate::sanitize::escape_str(&msg)
            ),
            tail,
        ));
    }
    let inspect = docker.inspect_image(&image).await.map_err(|e| {
        fail(
            format!(
                "{image} is not there after the build: {}",
                crate::freeze::docker_error_message(&e)
            ),
            tail.clone(),
        )
    })?;
    let image_id = inspect
        .id
        .ok_or_else(|| fail(format!("the daemon gave no id for {image}"), tail))?;
    Ok(Built {
        image,
        image_id,
        context_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn context_is_a_valid_tar_of_exact_length() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("rootfs.tar");
        std::fs::write(&archive, vec![7u8; 1000]).unwrap();
        let (s, total) = context_stream(&archive, &dockerfile("node", "/home/node"))
            .await
            .unwrap();
        let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
        let all: Vec<u8> = chunks.concat();
        assert_eq!(all.len() as u64, total);
        let mut ar = tar::Archive::new(&all[..]);
        let mut names = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
            if name == "Dockerfile" {
                assert_eq!(
                    String::from_utf8(buf).unwrap(),
                    "FROM scratch\nADD rootfs.tar /\nUSER node\nWORKDIR /home/node\n"
                );
            } else {
                assert_eq!(buf, vec![7u8; 1000]);
            }
            names.push(name);
        }
        assert_eq!(names, ["Dockerfile", "rootfs.tar"]);
    }
}
