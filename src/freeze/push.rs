//! Stage push: tag the built image for the throw-away registry and push it through the
//! daemon, reporting bytes per layer.

use std::collections::BTreeMap;
use std::time::Instant;

use bollard::query_parameters::{
    PushImageOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::freeze::events::{Failure, OutputStream, Progress, Stage};
use crate::freeze::report::{Reporter, Throttle};
use crate::freeze::StageError;

/// The repository name in the registry.
pub const REPOSITORY: &str = "bot-bottle-committed";

/// The tag: the first 16 hex digits of the image id.
pub fn tag_for(image_id: &str) -> String {
    image_id
        .trim_start_matches("sha256:")
        .chars()
        .take(16)
        .collect()
}

/// How the image reaches the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PushVia {
    /// `docker save` streamed into the registry's API, uncompressed (the default).
    Stream,
    /// The daemon's own push (gzips every layer).
    Daemon,
}

/// Streams the image from the daemon (`docker save`) into the registry at `endpoint`.
pub async fn run_streamed(
    rep: &mut Reporter,
    docker: &Docker,
    image: &str,
    image_id: &str,
    endpoint: &str,
    registry_log: impl Fn() -> String,
) -> Result<Pushed, StageError> {
    use futures_util::TryStreamExt;
    let tag = tag_for(image_id);
    rep.command_io(
        vec!["docker".into(), "save".into(), image.into()],
        Some(format!(
            "stdout: uploaded by bottle-freeze to http://{endpoint}/v2/{REPOSITORY}/, tag {tag}"
        )),
    );
    let body = docker
        .export_image(image)
        .map_err(|e| std::io::Error::other(crate::freeze::docker_error_message(&e)));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(body));
    upload_saved(rep, reader, image, &tag, endpoint, registry_log).await
}

/// Pushes a `docker save` archive read from `reader` (on a blocking thread) to the
/// registry at `endpoint` as `REPOSITORY:tag`; `what` names the image in messages.
pub async fn upload_saved(
    rep: &mut Reporter,
    reader: impl std::io::Read + Send + 'static,
    what: &str,
    tag: &str,
    endpoint: &str,
    registry_log: impl Fn() -> String,
) -> Result<Pushed, StageError> {
    let (image, tag) = (what, tag.to_string());
    let emit = rep.emit.clone();
    let started = Instant::now();
    let (endpoint_s, tag_s) = (endpoint.to_string(), tag.clone());
    // Set when this future is dropped (the freeze was cancelled): the blocking upload
    // cannot be aborted from outside, so it checks this between chunks.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let upload = tokio::task::spawn_blocking(move || {
        let mut throttle = Throttle::new();
        let mut progress = |bytes: u64, layers: &[crate::freeze::events::LayerProgress]| {
            if throttle.ready() {
                emit.progress(
                    Stage::Push,
                    Progress {
                        bytes,
                        elapsed_ms: started.elapsed().as_millis() as u64,
                        layers: layers.to_vec(),
                        ..Progress::default()
                    },
                );
            }
        };
        crate::freeze::stream_push::push_saved_image(
            reader,
            &endpoint_s,
            REPOSITORY,
            &tag_s,
            &mut progress,
            &stop,
        )
    });
    let result = match tokio_util::task::AbortOnDropHandle::new(upload).await {
        Ok(r) => r,
        Err(e) => Err(format!("the push task ended abnormally: {e}")),
    };
    match result {
        Ok((bytes, layers)) => {
            rep.emit.progress(
                Stage::Push,
                Progress {
                    bytes,
                    total: Some(bytes),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    layers,
                    ..Progress::default()
                },
            );
            Ok(Pushed {
                reference: format!("{REPOSITORY}:{tag}"),
                tag,
                bytes,
            })
        }
        Err(msg) => Err(StageError::Failed(Failure {
            stage: Stage::Push,
            message: format!(
                "pushing {image} to {endpoint}/{REPOSITORY}:{tag} failed: {}",
                crate::sanitize::escape_str(&msg)
            ),
            exit_status: None,
            stderr_tail: format!("registry log: {}", registry_log()),
        })),
    }
}

struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

pub struct Pushed {
    /// `bot-bottle-committed:<tag>`.
    pub reference: String,
    pub tag: String,
    pub bytes: u64,
}

pub async fn run(
    rep: &mut Reporter,
    docker: &Docker,
    image: &str,
    image_id: &str,
    push_endpoint: &str,
    registry_log: impl Fn() -> String,
) -> Result<Pushed, StageError> {
    let tag = tag_for(image_id);
    let repo = format!("{push_endpoint}/{REPOSITORY}");
    let fail = |message: String, tail: String| {
        StageError::Failed(Failure {
            stage: Stage::Push,
            message,
            exit_status: None,
            stderr_tail: tail,
        })
    };
    docker
        .tag_image(
            image,
            Some(
                TagImageOptionsBuilder::default()
                    .repo(&repo)
                    .tag(&tag)
                    .build(),
            ),
        )
        .await
        .map_err(|e| {
            fail(
                format!(
                    "cannot tag {image} as {repo}:{tag}: {}",
                    crate::freeze::docker_error_message(&e)
                ),
                "<no stderr>".into(),
            )
        })?;
    rep.command(vec![
        "docker".into(),
        "push".into(),
        format!("{repo}:{tag}"),
    ]);

    // The daemon's push messages carry no layer id in bollard's model, so layers are told
    // apart by their size; equal sizes would merge, which only blurs the display.
    let mut layers: BTreeMap<i64, i64> = BTreeMap::new();
    let mut log: Vec<String> = Vec::new();
    let mut throttle = Throttle::new();
    let started = Instant::now();
    let mut error = None;
    let mut stream = docker.push_image(
        &repo,
        Some(PushImageOptionsBuilder::default().tag(&tag).build()),
        None,
    );
    let progress = |layers: &BTreeMap<i64, i64>| Progress {
        bytes: layers.values().map(|&c| c.max(0) as u64).sum(),
        total: Some(layers.keys().map(|&t| t.max(0) as u64).sum()),
        elapsed_ms: started.elapsed().as_millis() as u64,
        // Named by size order, for want of an id (see above).
        layers: layers
            .iter()
            .enumerate()
            .map(|(i, (&t, &c))| crate::freeze::events::LayerProgress {
                layer: format!("layer {}", i + 1),
                bytes: c.max(0) as u64,
                total: Some(t.max(0) as u64),
            })
            .collect(),
        ..Progress::default()
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(d) = info.progress_detail {
                    if let (Some(cur), Some(total)) = (d.current, d.total) {
                        let e = layers.entry(total).or_insert(0);
                        *e = (*e).max(cur);
                    }
                }
                if let Some(s) = info.status {
                    if s == "Pushed" || s.contains("digest:") {
                        // A finished layer counts whole.
                        for (t, c) in layers.iter_mut() {
                            if s == "Pushed" && *c > 0 {
                                *c = *t;
                            }
                        }
                    }
                    if !s.starts_with("Pushing") {
                        let line = crate::sanitize::escape_str(&s);
                        rep.emit
                            .output(Stage::Push, OutputStream::Stdout, vec![line.clone()], 0);
                        log.push(line);
                    }
                }
                if let Some(d) = info.error_detail {
                    error = d.message;
                }
            }
            Err(e) => {
                error = Some(crate::freeze::docker_error_message(&e));
                break;
            }
        }
        if throttle.ready() {
            rep.emit.progress(Stage::Push, progress(&layers));
        }
    }
    let final_progress = progress(&layers);
    let bytes = final_progress.bytes;
    rep.emit.progress(Stage::Push, final_progress);
    if let Ok(path) = rep.history().log_path(rep.emit.id(), Stage::Push) {
        let _ = std::fs::write(path, log.join("\n") + "\n");
    }
    // The registry tag points at a port that is about to close; the image keeps its name.
    let untag = RemoveImageOptionsBuilder::default().noprune(true).build();
    let _ = docker
        .remove_image(&format!("{repo}:{tag}"), Some(untag), None)
        .await;
    if let Some(msg) = error {
        return Err(fail(
            format!(
                "pushing {repo}:{tag} failed: {}",
                crate::sanitize::escape_str(&msg)
            ),
            format!("registry log: {}", registry_log()),
        ));
    }
    Ok(Pushed {
        reference: format!("{REPOSITORY}:{tag}"),
        tag,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tag_is_16_hex() {
        assert_eq!(
            super::tag_for("sha256:0123456789abcdef0123"),
            "0123456789abcdef"
        );
    }
}
