//! Push stage, native build: `docker load` of the archive, streamed from the file, so that
//! `bot-bottle-committed-<slug>:latest` exists in the local daemon as the original tool
//! left it. Runs beside pack; the loaded image's diff_id must be the layer's we wrote.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bollard::query_parameters::ImportImageOptionsBuilder;
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use tokio_util::io::ReaderStream;

use crate::freeze::events::{Progress, Stage};
use crate::freeze::image_archive::ImageArchive;
use crate::freeze::report::Emitter;
use crate::freeze::PROGRESS_INTERVAL;

const READ_CHUNK: usize = 256 * 1024;

/// What the daemon holds after the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub image: String,
    pub image_id: String,
    pub bytes: u64,
}

/// Loads `archive` into the daemon and checks that `image` then has exactly the layer
/// and the config we wrote. Progress (bytes sent) goes to `emit` under the push stage.
pub async fn load(
    docker: &Docker,
    archive: &ImageArchive,
    image: &str,
    emit: &Emitter,
) -> Result<Loaded, String> {
    let file = tokio::fs::File::open(&archive.path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", archive.path.display()))?;
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let body = ReaderStream::with_capacity(file, READ_CHUNK).inspect_ok(move |b| {
        counter.fetch_add(b.len() as u64, Ordering::Relaxed);
    });
    let opts = ImportImageOptionsBuilder::new().quiet(true).build();
    let mut replies = docker.import_image(opts, bollard::body_try_stream(body), None);
    let started = Instant::now();
    // One layer: the guest's root, named by its digest; the archive around it is small.
    let layer: String = archive
        .diff_id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    let progress = |bytes: u64| Progress {
        bytes,
        total: Some(archive.archive_bytes),
        elapsed_ms: started.elapsed().as_millis() as u64,
        layers: vec![crate::freeze::events::LayerProgress {
            layer: layer.clone(),
            bytes: bytes.min(archive.layer_bytes),
            total: Some(archive.layer_bytes),
        }],
        ..Progress::default()
    };
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    loop {
        tokio::select! {
            reply = replies.next() => match reply {
                None => break,
                Some(Ok(info)) => {
                    if let Some(d) = info.error_detail {
                        return Err(d.message.unwrap_or_else(|| "docker load failed".into()));
                    }
                }
                Some(Err(e)) => return Err(crate::freeze::docker_error_message(&e)),
            },
            _ = tick.tick() => emit.progress(Stage::Push, progress(sent.load(Ordering::Relaxed))),
        }
    }
    let bytes = sent.load(Ordering::Relaxed);
    emit.progress(Stage::Push, progress(bytes));
    let inspect = docker.inspect_image(image).await.map_err(|e| {
        format!(
            "{image} is not in the daemon after docker load: {}",
            crate::freeze::docker_error_message(&e)
        )
    })?;
    let layers = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
    if layers != [archive.diff_id.clone()] {
        return Err(format!(
            "the daemon's {image} has layers {layers:?}, but the layer written was {}",
            archive.diff_id
        ));
    }
    let image_id = inspect.id.unwrap_or_default();
    if image_id != archive.image_id {
        return Err(format!(
            "the daemon's {image} has id {image_id}, but the archive's config is {}",
            archive.image_id
        ));
    }
    Ok(Loaded {
        image: image.to_string(),
        image_id,
        bytes,
    })
}

/// Publishes the loaded `image` to `target` (`host[:port]/repo[:tag]`, tag `latest` when
/// none is given) through the daemon, with the credentials of the usual Docker config file.
pub async fn publish(
    docker: &Docker,
    image: &str,
    target: &str,
    emit: &Emitter,
) -> Result<String, String> {
    use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
    let (repo, tag) = split_tag(target);
    docker
        .tag_image(
            image,
            Some(
                TagImageOptionsBuilder::default()
                    .repo(repo)
                    .tag(tag)
                    .build(),
            ),
        )
        .await
        .map_err(|e| {
            format!(
                "cannot tag {image} as {repo}:{tag}: {}",
                crate::freeze::docker_error_message(&e)
            )
        })?;
    let creds = credentials_for(registry_of(repo), &docker_config_path());
    emit.note(
        Stage::Push,
        format!(
            "publishing {repo}:{tag}{}",
            if creds.is_some() {
                " with credentials from the Docker config file"
            } else {
                ""
            }
        ),
    );
    let mut replies = docker.push_image(
        repo,
        Some(PushImageOptionsBuilder::default().tag(tag).build()),
        creds,
    );
    while let Some(reply) = replies.next().await {
        match reply {
            Ok(info) => {
                if let Some(d) = info.error_detail {
                    return Err(d.message.unwrap_or_else(|| "push failed".into()));
                }
            }
            Err(e) => return Err(crate::freeze::docker_error_message(&e)),
        }
    }
    Ok(format!("{repo}:{tag}"))
}

/// `host/repo:tag` -> (`host/repo`, `tag`); a colon before the last slash is a port.
pub fn split_tag(target: &str) -> (&str, &str) {
    match target.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (target, "latest"),
    }
}

/// The registry host of a repository, as the Docker config file keys it.
pub fn registry_of(repo: &str) -> &str {
    match repo.split_once('/') {
        Some((host, _)) if host.contains('.') || host.contains(':') || host == "localhost" => host,
        _ => "https://index.docker.io/v1/",
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> std::path::PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => std::path::PathBuf::from(d).join("config.json"),
        None => dirs::home_dir()
            .unwrap_or_default()
            .join(".docker/config.json"),
    }
}

/// The credentials for `registry` in a Docker config file (`auths.<registry>.auth`,
/// base64 of `user:password`, or an identity token); None when there are none.
pub fn credentials_for(
    registry: &str,
    config: &std::path::Path,
) -> Option<bollard::auth::DockerCredentials> {
    use base64::Engine;
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(config).ok()?).ok()?;
    let auths = doc.get("auths")?.as_object()?;
    let entry = auths.get(registry).or_else(|| {
        auths
            .iter()
            .find(|(k, _)| {
                k.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    == registry
            })
            .map(|(_, v)| v)
    })?;
    let mut creds = bollard::auth::DockerCredentials {
        serveraddress: Some(registry.to_string()),
        ..Default::default()
    };
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        creds.username = Some(user.to_string());
        creds.password = Some(pass.to_string());
    }
    if let Some(t) = entry.get("identitytoken").and_then(|a| a.as_str()) {
        creds.identitytoken = Some(t.to_string());
    }
    (creds.username.is_some() || creds.identitytoken.is_some()).then_some(creds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_repo_and_tag() {
        assert_eq!(
            split_tag("127.0.0.1:5000/team/bottle"),
            ("127.0.0.1:5000/team/bottle", "latest")
        );
        assert_eq!(split_tag("reg.example/x:v2"), ("reg.example/x", "v2"));
        assert_eq!(registry_of("127.0.0.1:5000/x"), "127.0.0.1:5000");
        assert_eq!(registry_of("library/x"), "https://index.docker.io/v1/");
    }

    #[test]
    fn credentials_come_from_the_docker_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        // base64("ops:s3cret")
        std::fs::write(
            &cfg,
            r#"{"auths":{"https://reg.example":{"auth":"b3BzOnMzY3JldA=="},"tok.example":{"identitytoken":"T"}}}"#,
        )
        .unwrap();
        let c = credentials_for("reg.example", &cfg).unwrap();
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("ops"), Some("s3cret"))
        );
        let t = credentials_for("tok.example", &cfg).unwrap();
        assert_eq!(t.identitytoken.as_deref(), Some("T"));
        assert!(credentials_for("other.example", &cfg).is_none());
        assert!(credentials_for("reg.example", &dir.path().join("missing.json")).is_none());
    }
}
