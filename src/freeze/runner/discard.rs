//! `discard`: drop what a failed freeze kept, by its recorded ids, only when no other record uses it.

use super::*;

/// Drops what a resume could use, keeping a failed freeze's archive or image. The image
/// is removed by its recorded id (a tag may name a later build), and only when no other
/// record uses it; the record keeps whatever could not be removed. Fails, saying why, when
/// something it kept is still there.
pub async fn discard(cfg: &FreezeConfig, id: &str) -> Result<String, String> {
    let history = History::new(&cfg.state_dir);
    let mut record = history.load(id).map_err(|e| e.to_string())?;
    let Some(kept) = record.kept.clone() else {
        return Err(format!("freeze {id} kept nothing"));
    };
    let others: Vec<Record> = history
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.id != id)
        .collect();
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut left = kept.clone();
    if let Some(t) = &kept.temp_dir {
        let user = others.iter().find(|r| {
            r.kept
                .as_ref()
                .is_some_and(|k| k.temp_dir.as_ref() == Some(t))
                || (r.outcome == crate::history::Outcome::Running && r.temp_dir.as_ref() == Some(t))
        });
        if let Some(u) = user {
            failed.push(format!("left {}: freeze {} uses it", t.display(), u.id));
        } else if !t.exists() {
            done.push(format!("{} was already gone", t.display()));
            (left.temp_dir, left.archive) = (None, None);
        } else if is_our_temp(t) {
            match std::fs::remove_dir_all(t) {
                Ok(()) => {
                    done.push(format!("removed {}", t.display()));
                    (left.temp_dir, left.archive) = (None, None);
                }
                Err(e) => failed.push(format!("cannot remove {}: {e}", t.display())),
            }
        } else {
            failed.push(format!("left {}: not a temp folder of ours", t.display()));
        }
    }
    if let Some(image) = &kept.image {
        let target = kept.image_id.clone().unwrap_or_else(|| image.clone());
        let user = others.iter().find(|r| {
            r.image_id.as_ref() == Some(&target)
                || r.kept.as_ref().and_then(|k| k.image_id.as_ref()) == Some(&target)
        });
        if let Some(u) = user {
            // Another run's image: it stays, and is no longer this record's to keep.
            done.push(format!("left image {target}: freeze {} uses it", u.id));
            (left.image, left.image_id) = (None, None);
        } else {
            match crate::docker::connect().await {
                Err(e) => failed.push(format!("cannot remove image {image} ({target}): {e}")),
                Ok(docker) => match remove_image_by_id(&docker, &target).await {
                    Ok(_) => {
                        done.push(format!("removed image {image} ({target})"));
                        (left.image, left.image_id) = (None, None);
                    }
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => {
                        done.push(format!("image {target} was already gone"));
                        (left.image, left.image_id) = (None, None);
                    }
                    Err(e) => failed.push(format!(
                        "cannot remove image {image} ({target}): {}",
                        docker_error_message(&e)
                    )),
                },
            }
        }
    }
    record.kept = (left.temp_dir.is_some() || left.image.is_some()).then_some(left);
    if record.kept != Some(kept) {
        history.save(&record).map_err(|e| e.to_string())?;
    }
    if failed.is_empty() {
        Ok(done.join("; "))
    } else {
        done.extend(failed);
        Err(done.join("; "))
    }
}

/// Removes an image by id: first our own tags on it (the build's, the push's), then the
/// image, without force (a container using it keeps it, and that is said).
pub(super) async fn remove_image_by_id(
    docker: &bollard::Docker,
    id: &str,
) -> Result<(), bollard::errors::Error> {
    let info = docker.inspect_image(id).await?;
    for tag in info.repo_tags.unwrap_or_default() {
        let repo = tag.rsplit_once(':').map(|(r, _)| r).unwrap_or(&tag);
        let name = repo.rsplit('/').next().unwrap_or(repo);
        if name.starts_with("bot-bottle-committed") {
            let _ = docker
                .remove_image(
                    &tag,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
        }
    }
    match docker.inspect_image(id).await {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        _ => docker
            .remove_image(
                id,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .map(|_| ()),
    }
}
