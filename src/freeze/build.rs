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
use crate::history::BuildSteps;

const READ_CHUNK: usize = 256 * 1024;

pub struct Built {
    pub image: String,
    pub image_id: String,
    pub context_bytes: u64,
}

/// The label every image of a Dockerfile build carries, intermediate ones included: its
/// value is the run's id, so that what an interrupted build left can be found and removed.
pub const RUN_LABEL: &str = "bottle-freeze.run";

/// The Dockerfile of the committed image, built by run `run_id`. The label comes right
/// after `FROM scratch`: every later step's image inherits it.
pub fn dockerfile(user: &str, workdir: &str, run_id: &str) -> String {
    format!(
        "FROM scratch\nLABEL {RUN_LABEL}=\"{run_id}\"\nADD rootfs.tar /\nUSER {user}\nWORKDIR {workdir}\n"
    )
}

/// Follows the daemon's build output: a step is in flight from its `Step N/M :` line to
/// its ` ---> <id>`. Returns whether that changed.
pub fn follow(steps: &mut BuildSteps, text: &str) -> bool {
    let before = steps.clone();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Step ") {
            let step = rest.split_once(" : ").map(|(_, s)| s).unwrap_or(rest);
            steps.in_flight = Some(crate::sanitize::escape_str(step));
        } else if let Some(rest) = line.strip_prefix("--->") {
            let rest = rest.trim();
            if rest.is_empty() {
                // `FROM scratch` makes no image.
                steps.in_flight = None;
            } else if rest.len() >= 12 && rest.chars().all(|c| c.is_ascii_hexdigit()) {
                steps.in_flight = None;
                steps.committed.push(rest.to_string());
            }
        }
    }
    *steps != before
}

/// A Dockerfile build under way: the daemon to clean up in when it does not complete
/// (cancel, failure; recovery connects on its own), and the task reading its answer.
#[derive(Clone)]
pub struct Track {
    pub docker: Docker,
    reader: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Track {
    pub fn new(docker: &Docker) -> Track {
        Track {
            docker: docker.clone(),
            reader: Arc::default(),
        }
    }

    /// The task reading the daemon's answer: it ends when the daemon's build does.
    pub fn take_reader(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.reader.lock().ok().and_then(|mut r| r.take())
    }
}

/// How long an interrupted build's last step may take to end.
pub const STEP_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

fn label_filter(run_id: &str) -> std::collections::HashMap<&'static str, Vec<String>> {
    std::collections::HashMap::from([("label", vec![format!("{RUN_LABEL}={run_id}")])])
}

/// An image of a run, as the daemon lists it.
struct RunImage {
    id: String,
    created: i64,
    parent: String,
}

/// The kept image and its parents among `images`: they stay.
fn ancestry<'a>(images: &'a [RunImage], keep: Option<&'a str>) -> Vec<&'a str> {
    let mut kept: Vec<&str> = keep.into_iter().collect();
    while let Some(parent) = kept
        .last()
        .and_then(|k| images.iter().find(|i| i.id == *k))
        .map(|i| i.parent.as_str())
        .filter(|p| !p.is_empty() && !kept.contains(p))
    {
        kept.push(parent);
    }
    kept
}

/// Every image (intermediate ones too) of run `run_id`, and its containers (a build
/// step's) with their images.
async fn of_run(
    docker: &Docker,
    run_id: &str,
) -> Result<(Vec<RunImage>, Vec<(String, Option<String>)>), String> {
    use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder};
    let filters = label_filter(run_id);
    let images = docker
        .list_images(Some(
            ListImagesOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| crate::freeze::docker_error_message(&e))?;
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| crate::freeze::docker_error_message(&e))?;
    Ok((
        images
            .into_iter()
            .map(|i| RunImage {
                id: i.id,
                created: i.created,
                parent: i.parent_id,
            })
            .collect(),
        containers
            .into_iter()
            .filter_map(|c| Some((c.id?, c.image_id)))
            .collect(),
    ))
}

/// Removes what a Dockerfile build of run `run_id` that did not complete left in the
/// daemon: every image with its label but `keep` (an image a record keeps for resume).
///
/// The daemon may go on after its client has gone (it notices late), so the build is
/// stopped, not outwaited: a step's container is removed (the step fails, and the build
/// with it), and once the run's images are gone no later step can start from them. A copy
/// (`ADD`, which `steps` says is in flight) runs without a container: its image is waited
/// for (at most [`STEP_GRACE`]). Returns how many images went.
pub async fn remove_run_images(
    docker: &Docker,
    run_id: &str,
    steps: Option<&BuildSteps>,
    keep: Option<&str>,
) -> Result<usize, String> {
    remove_run_images_after(docker, run_id, steps, keep, None).await
}

/// [`remove_run_images`] while this process still reads the daemon's answer (`reader`):
/// the build is stopped (its containers and images removed) until that answer ends, which
/// says for sure that the daemon's build is over; then what is left goes.
pub async fn remove_run_images_after(
    docker: &Docker,
    run_id: &str,
    mut steps: Option<&BuildSteps>,
    keep: Option<&str>,
    reader: Option<tokio::task::JoinHandle<()>>,
) -> Result<usize, String> {
    let mut removed = 0;
    if let Some(mut reader) = reader {
        let deadline = tokio::time::Instant::now() + STEP_GRACE;
        loop {
            tokio::select! {
                _ = &mut reader => break,
                _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                reader.abort();
                break;
            }
            let (images, containers) = of_run(docker, run_id).await?;
            for (id, image) in &containers {
                if keep.is_none() || image.as_deref() != keep {
                    force_remove_container(docker, id).await;
                }
            }
            let left: Vec<(String, i64)> = images
                .iter()
                .filter(|i| !ancestry(&images, keep).contains(&i.id.as_str()))
                .map(|i| (i.id.clone(), i.created))
                .collect();
            removed += remove_images(docker, run_id, left).await?;
        }
        // The daemon's build is over: nothing is in flight any more.
        steps = None;
    }
    let (in_flight, committed) = steps
        .map(|s| (s.in_flight.clone(), s.committed.clone()))
        .unwrap_or_default();
    let started = in_flight.is_some() || !committed.is_empty();
    let mut copying = in_flight
        .as_deref()
        .is_some_and(|s| s.starts_with("ADD") || s.starts_with("COPY"));
    let deadline = tokio::time::Instant::now() + STEP_GRACE;
    let mut settled = false;
    loop {
        let (images, containers) = of_run(docker, run_id).await?;
        // Containers of the kept image may be the operator's: never touched.
        let steps: Vec<&String> = containers
            .iter()
            .filter(|(_, image)| keep.is_none() || image.as_deref() != keep)
            .map(|(id, _)| id)
            .collect();
        copying &= !images.iter().any(|i| {
            let short = i.id.trim_start_matches("sha256:");
            !committed.iter().any(|c| short.starts_with(c.as_str()))
        });
        let kept = ancestry(&images, keep);
        let left: Vec<(String, i64)> = images
            .iter()
            .filter(|i| !kept.contains(&i.id.as_str()))
            .map(|i| (i.id.clone(), i.created))
            .collect();
        let now = tokio::time::Instant::now();
        if steps.is_empty() && left.is_empty() && !copying {
            // Looked twice, a moment apart: nothing was on its way. A build that had
            // not reached its first step has made nothing to wait for.
            if settled || (removed == 0 && !started) {
                return Ok(removed);
            }
            settled = true;
        } else {
            settled = false;
        }
        if now >= deadline {
            return Err(format!(
                "{} image(s) and {} container(s) labelled {RUN_LABEL}={run_id} remain",
                left.len(),
                steps.len()
            ));
        }
        for id in steps {
            force_remove_container(docker, id).await;
        }
        if !copying && !left.is_empty() {
            removed += remove_images(docker, run_id, left).await?;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Removes a build step's container, running or not. A failure is not worth reporting: the
/// caller looks again and says what remains.
async fn force_remove_container(docker: &bollard::Docker, id: &str) {
    let force = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    let _ = docker.remove_container(id, Some(force)).await;
}

/// Removes `images`, children before parents; the count of images deleted (removing a
/// child takes its untagged parents with it).
async fn remove_images(
    docker: &Docker,
    run_id: &str,
    mut images: Vec<(String, i64)>,
) -> Result<usize, String> {
    // Newest first: an image whose child is still there cannot go.
    images.sort_by_key(|i| std::cmp::Reverse(i.1));
    let mut deleted = 0;
    let mut refused = None;
    for (id, _) in &images {
        match docker
            .remove_image(
                id,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
        {
            Ok(items) => deleted += items.iter().filter(|i| i.deleted.is_some()).count(),
            // Already gone with its child.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => refused = Some(crate::freeze::docker_error_message(&e)),
        }
    }
    if let Some(e) = refused {
        // A child made meanwhile: the next look finds it.
        tracing::debug!("removing images labelled {RUN_LABEL}={run_id}: {e}");
    }
    Ok(deleted)
}

/// How many entries the largest layer of `image` holds: the root's (the other steps add
/// a folder at most). Read from the daemon's `docker save` stream, never written.
pub async fn layer_entries(docker: &Docker, image: &str) -> Result<u64, String> {
    let stream = docker
        .export_image(image)
        .map_err(|e| std::io::Error::other(crate::freeze::docker_error_message(&e)));
    let bridge = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    tokio::task::spawn_blocking(move || {
        let mut saved = tar::Archive::new(bridge);
        let mut most = 0u64;
        for entry in saved.entries().map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            // A layer is a tar; the JSON files beside it are not, and count nothing.
            let mut layer = tar::Archive::new(entry);
            let count = match layer.entries() {
                Ok(es) => es.map_while(Result::ok).count() as u64,
                Err(_) => 0,
            };
            most = most.max(count);
        }
        Ok(most)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Checks that the built image holds the root exec-tar streamed: Docker's `ADD` copies an
/// archive it cannot read (a corrupt first header) as a plain file, and the build succeeds.
/// The root folder itself (`./`) is the one entry a layer never lists.
pub async fn check_holds_root(
    docker: &Docker,
    image: &str,
    image_id: &str,
    streamed: u64,
) -> Result<u64, StageError> {
    let counted = layer_entries(docker, image_id).await.map_err(|e| {
        fail(
            format!("cannot read the layer of {image} back from Docker: {e}"),
            "<no stderr>".into(),
        )
    })?;
    if counted < streamed.saturating_sub(1) {
        return Err(fail(
            format!(
                "the image {image} does not hold the root: its layer has {counted} entries, exec-tar streamed {streamed} (Docker's ADD took rootfs.tar for a plain file?)"
            ),
            "<no stderr>".into(),
        ));
    }
    Ok(counted)
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
    track: &Track,
    archive: &Path,
    slug: &str,
    user: &str,
    workdir: &str,
) -> Result<Built, StageError> {
    let docker = &track.docker;
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
    let (body, total) = context_stream(archive, &dockerfile(user, workdir, &rep.record.id))
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
    let daemon = docker.clone();
    // The daemon's answer is read by a task of its own, which outlives a cancelled run:
    // the end of that answer is how a cancel knows the daemon's build is over (the daemon
    // notices a client that went away only a step or two later).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut stream = daemon.build_image(opts, None, Some(bollard::body_try_stream(body)));
        while let Some(item) = stream.next().await {
            let _ = tx.send(item);
        }
    });
    if let Ok(mut r) = track.reader.lock() {
        *r = Some(reader);
    }
    let started = Instant::now();
    let mut throttle = Throttle::new();
    let mut error: Option<String> = None;
    while let Some(item) = rx.recv().await {
        match item {
            Ok(info) => {
                let text = info.stream.or(info.status);
                if let Some(t) = text {
                    // Saved at once: a killed run's recovery must know the step in flight.
                    let steps = rep.record.build_steps.get_or_insert_with(Default::default);
                    if follow(steps, &t) {
                        rep.save();
                    }
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
        let (s, total) = context_stream(&archive, &dockerfile("node", "/home/node", "run-1"))
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
                    "FROM scratch\nLABEL bottle-freeze.run=\"run-1\"\nADD rootfs.tar /\nUSER node\nWORKDIR /home/node\n"
                );
            } else {
                assert_eq!(buf, vec![7u8; 1000]);
            }
            names.push(name);
        }
        assert_eq!(names, ["Dockerfile", "rootfs.tar"]);
    }

    #[test]
    fn the_step_in_flight_is_followed_from_the_build_output() {
        let mut s = BuildSteps::default();
        assert!(follow(&mut s, "Step 1/5 : FROM scratch\n"));
        assert_eq!(s.in_flight.as_deref(), Some("FROM scratch"));
        follow(&mut s, " ---> \n");
        assert_eq!(s.in_flight, None);
        follow(
            &mut s,
            "Step 2/5 : LABEL bottle-freeze.run=\"x\"\n ---> Running in 896fb6749abb\n",
        );
        assert!(s.in_flight.is_some());
        assert!(!follow(
            &mut s,
            "Removing intermediate container 896fb6749abb\n"
        ));
        follow(&mut s, " ---> fb3f80ee2c16\n");
        assert_eq!(s.in_flight, None);
        follow(&mut s, "Step 3/5 : ADD rootfs.tar /\n");
        assert_eq!(s.in_flight.as_deref(), Some("ADD rootfs.tar /"));
        assert_eq!(s.committed, ["fb3f80ee2c16"]);
    }
}
