//! What a run that did not finish leaves and no record can own: the images of a
//! Dockerfile build that did not complete, and what a failed run kept but could not record.

use super::*;

/// After a Dockerfile build that did not complete (cancelled, failed): every image it
/// made but the one its record keeps for resume.
pub(super) async fn remove_build_images(track: &build::Track, rep: &mut Reporter) {
    if rep.record.stage(Stage::Build).status != crate::history::StageStatus::Running {
        // Built: the image is the run's result (or kept); its parents are its own.
        return;
    }
    let steps = rep.record.build_steps.clone();
    if let Some(step) = steps.as_ref().and_then(|s| s.in_flight.as_ref()) {
        rep.emit.note(
            Stage::Build,
            format!(
                "waiting for Docker to end the build step it was in ({step}), to remove its image"
            ),
        );
    }
    let keep = rep.record.kept.as_ref().and_then(|k| k.image_id.clone());
    let mut reader = track.take_reader();
    let started = steps
        .as_ref()
        .is_some_and(|s| s.in_flight.is_some() || !s.committed.is_empty());
    if !started {
        // Still sending the context: cut it off, and the daemon builds nothing.
        if let Some(r) = reader.take() {
            r.abort();
            let _ = r.await;
        }
    }
    let removed = build::remove_run_images_after(
        &track.docker,
        &rep.record.id,
        steps.as_ref(),
        keep.as_deref(),
        reader,
    )
    .await;
    match removed {
        Ok(0) => {}
        Ok(n) => rep.emit.note(
            Stage::Build,
            format!("removed {n} image(s) of the unfinished build"),
        ),
        Err(e) => rep.emit.note(
            Stage::Build,
            format!("could not remove the unfinished build's images: {e}"),
        ),
    }
}

/// Removes what a failed run kept when its record could not be saved (a full state
/// folder): no record names it, so nothing could resume from it or discard it.
pub(super) async fn drop_unrecorded(rep: &mut Reporter) {
    let Some(kept) = rep.unrecorded_kept().cloned() else {
        return;
    };
    let what = report::kept_what(&kept);
    let removed = if let Some(t) = kept.temp_dir.as_ref().filter(|t| is_our_temp(t)) {
        std::fs::remove_dir_all(t).map_err(|e| e.to_string())
    } else if let (None, Some(id)) = (&kept.archive, &kept.image_id) {
        // This run built the image: by its id, so a later build's tag is never touched.
        match crate::docker::connect().await {
            Ok(d) => d
                .remove_image(
                    id,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await
                .map(|_| ())
                .map_err(|e| docker_error_message(&e)),
            Err(e) => Err(e.to_string()),
        }
    } else {
        Err("it is not in a temp folder of ours".into())
    };
    let stage = rep
        .record
        .failure
        .as_ref()
        .map(|f| f.stage)
        .unwrap_or(Stage::Pack);
    rep.emit.note(
        stage,
        match removed {
            Ok(()) => format!("removed {what}"),
            Err(e) => format!("could not remove {what}: {e}"),
        },
    );
}
