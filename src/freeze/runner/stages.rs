//! The stages of a freeze after exec-tar: the Docker builder's and the native one's.

use super::*;

/// How long pre-flight waits for an optional Docker daemon.
pub(super) const DOCKER_PROBE: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) async fn freeze_stages(
    cfg: &FreezeConfig,
    slug: &Slug,
    machine: &str,
    rep: &mut Reporter,
    left: &mut Leftovers,
    resume: Option<&Kept>,
) -> Result<Artifact, StageError> {
    cfg.validate()
        .map_err(|e| preflight_failure(Stage::ExecTar, e))?;
    // A resumed freeze goes on the way it began: a kept image archive is the native build's.
    let native = match resume {
        Some(k) if k.from >= Stage::Push => k.archive.is_some(),
        Some(_) => false,
        None => cfg.builder == Builder::Native,
    };
    // Pre-flight: everything the later stages need is checked before minutes of streaming.
    let caps = if resume.is_none() {
        check_and_probe(cfg, left.host.as_ref(), machine).await?
    } else {
        probes::capabilities(&cfg.smolvm, &cfg.state_dir)
            .await
            .map_err(|e| preflight_failure(Stage::ExecTar, e.to_string()))?
    };
    // The native build needs Docker only to load the image beside pack (and to publish
    // it); the Dockerfile build needs it for everything.
    let docker = if native {
        match tokio::time::timeout(DOCKER_PROBE, crate::docker::connect()).await {
            Ok(Ok(d)) => Ok(d),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the Docker daemon at {} did not answer within {} s",
                crate::docker::host(),
                DOCKER_PROBE.as_secs()
            )),
        }
    } else {
        Ok(crate::docker::connect()
            .await
            .map_err(|e| preflight_failure(Stage::Build, e.to_string()))?)
    };
    if let (Some(target), Err(why)) = (&cfg.push_to, &docker) {
        return Err(preflight_failure(
            Stage::Push,
            format!("--push-to {target} publishes through the Docker daemon: {why}"),
        ));
    }
    let needs_registry = !native || !caps.pack_archive;
    let registry_bin = if needs_registry {
        registry_preflight(cfg).await?
    } else {
        None
    };

    let from = resume.map(|k| k.from).unwrap_or(Stage::ExecTar);
    let temp = match &left.temp {
        Some(t) => t.clone(),
        None => {
            let t = make_temp(cfg)?;
            left.temp = Some(t.clone());
            t
        }
    };
    rep.set_temp_dir(Some(&temp));
    let archive = resume
        .and_then(|k| k.archive.clone())
        .unwrap_or_else(|| temp.join(if native { NATIVE_ARCHIVE } else { "rootfs.tar" }));

    let mut written = None;
    if from == Stage::ExecTar {
        rep.stage_started(Stage::ExecTar);
        let spec = native.then(|| ImageSpec {
            repo_tag: build::image_name(slug.as_str()),
            user: cfg.user.clone(),
            workdir: cfg.workdir.clone(),
            machine: machine.to_string(),
        });
        written = exec_tar_stage(cfg, machine, &archive, rep, left, caps, spec)
            .await?
            .image;
    }

    if native {
        let image = match written {
            Some(a) => a,
            None if left.verified.is_some() => left.verified.take().ok_or_else(|| {
                preflight_failure(Stage::Push, "the kept archive was not checked".into())
            })?,
            None => ImageArchive::read(&archive).map_err(|e| {
                preflight_failure(
                    Stage::Push,
                    format!("the kept archive {} is unusable: {e}", archive.display()),
                )
            })?,
        };
        let stages = NativeStages {
            cfg,
            slug,
            caps,
            docker: docker.as_ref().ok(),
            no_docker: docker.as_ref().err().cloned(),
            registry_bin,
            temp: &temp,
            host_dir: host_dir(cfg, left.label.as_ref()),
        };
        return stages.run(rep, left, image).await;
    }
    let docker = docker.map_err(|e| preflight_failure(Stage::Build, e))?;

    let (image, image_id) = if from <= Stage::Build {
        rep.stage_doing(Stage::Build, Some(DOCKER_BUILD));
        // Every path out of a build that does not complete removes what it left.
        let track = build::Track::new(&docker);
        left.build = Some(track.clone());
        let built = build::run(
            rep,
            &track,
            &archive,
            slug.as_str(),
            &cfg.user,
            &cfg.workdir,
        )
        .await?;
        rep.record.image = Some(built.image.clone());
        rep.record.image_id = Some(built.image_id.clone());
        // Still the build stage: an image without the root is removed with the build's.
        let counted =
            build::check_holds_root(&docker, &built.image, &built.image_id, rep.record.entries)
                .await?;
        rep.emit.note(
            Stage::Build,
            format!(
                "the image's layer holds {counted} entries (exec-tar streamed {})",
                rep.record.entries
            ),
        );
        rep.stage_finished(Stage::Build, built.context_bytes, Vec::new());
        // The archive is in the image now; free the disk before the push copies more
        // (a resume's archive is the earlier run's until this one succeeds).
        if !left.borrowed {
            let _ = std::fs::remove_file(&archive);
        }
        (built.image, built.image_id)
    } else {
        // Exactly the image the record kept, by its id: the tag may name a later build.
        let image = resume.and_then(|k| k.image.clone()).unwrap_or_default();
        let kept_id = resume
            .and_then(|k| k.image_id.clone())
            .unwrap_or_else(|| image.clone());
        let id = match docker.inspect_image(&kept_id).await {
            Ok(i) => i.id.unwrap_or_default(),
            Err(e) => {
                return Err(preflight_failure(
                    Stage::Push,
                    format!(
                        "the kept image {image} ({kept_id}) is gone: {}",
                        docker_error_message(&e)
                    ),
                ))
            }
        };
        rep.record.image = Some(image.clone());
        rep.record.image_id = Some(id.clone());
        (image, id)
    };
    // A resume pushes by id: the tag may have moved to a later build since.
    let source = if resume.is_some() {
        image_id.clone()
    } else {
        image.clone()
    };

    rep.stage_doing(
        Stage::Push,
        Some(match cfg.push_via {
            push::PushVia::Stream => "registry (docker save stream)",
            push::PushVia::Daemon => "registry (daemon push)",
        }),
    );
    let port = start_registry(cfg, registry_bin, &temp, rep, left).await?;
    let push_endpoint = endpoint(&cfg.registry, &cfg.push_host, port);
    let pull_endpoint = endpoint(&cfg.registry, &cfg.pull_host, port);
    let registry_log = {
        let log = left.registry.as_ref().map(|r| r.log_tail());
        move || log.clone().unwrap_or_else(|| "<not ours>".into())
    };
    let pushed = match cfg.push_via {
        push::PushVia::Stream => {
            push::run_streamed(
                rep,
                &docker,
                &source,
                &image_id,
                &push_endpoint,
                registry_log,
            )
            .await?
        }
        push::PushVia::Daemon => {
            push::run(
                rep,
                &docker,
                &source,
                &image_id,
                &push_endpoint,
                registry_log,
            )
            .await?
        }
    };
    rep.stage_finished(Stage::Push, pushed.bytes, Vec::new());

    rep.stage_doing(Stage::Pack, Some("from the registry"));
    // A remote host's artifacts go under its label: `<state>/<host>/<slug>/`.
    let bottle_dir = host_dir(cfg, left.label.as_ref()).join(slug.as_str());
    let image_ref = format!("{pull_endpoint}/{}", pushed.reference);
    let (launcher, sidecar) =
        pack::run(rep, &cfg.smolvm, &image_ref, &bottle_dir, slug.as_str()).await?;
    let bytes = std::fs::metadata(&sidecar).map(|m| m.len()).unwrap_or(0);
    rep.stage_finished(Stage::Pack, bytes, Vec::new());
    Ok(pack::artifact(
        launcher,
        sidecar,
        image,
        pushed.reference,
        slug.as_str(),
    ))
}

/// What the build stage does with `--builder docker` (in the record: recovery looks for
/// it to remove the images of a build that was killed).
pub const DOCKER_BUILD: &str = "docker build";

/// The native build's archive in the temp folder.
pub const NATIVE_ARCHIVE: &str = "image.tar";

/// Build, push and pack after a native exec-tar: the archive is the image already.
struct NativeStages<'a> {
    cfg: &'a FreezeConfig,
    slug: &'a Slug,
    caps: Capabilities,
    docker: Option<&'a bollard::Docker>,
    /// Why there is no daemon, when there is none.
    no_docker: Option<String>,
    registry_bin: Option<PathBuf>,
    temp: &'a Path,
    /// Where the artifact folders of the machine's host live (see [`host_dir`]).
    host_dir: PathBuf,
}

impl NativeStages<'_> {
    /// What the push stage does: load into Docker, feed the registry, publish.
    fn push_does(&self) -> String {
        let mut parts = Vec::new();
        if !self.caps.pack_archive {
            parts.push("registry");
        }
        if self.docker.is_some() {
            parts.push("docker load");
            if self.cfg.push_to.is_some() {
                parts.push("publish");
            }
        }
        if parts.is_empty() {
            "nothing: no Docker daemon".into()
        } else {
            parts.join(" + ")
        }
    }

    async fn run(
        self,
        rep: &mut Reporter,
        left: &mut Leftovers,
        archive: ImageArchive,
    ) -> Result<Artifact, StageError> {
        let slug = self.slug.as_str();
        let image = build::image_name(slug);
        let tag = push::tag_for(&archive.image_id);

        // Build: written in the exec-tar pass; here it is only recorded.
        rep.stage_doing(Stage::Build, Some("native archive"));
        rep.emit.note(
            Stage::Build,
            format!(
                "native archive: {image} written during exec-tar (layer {}, image {})",
                archive.diff_id, archive.image_id
            ),
        );
        rep.record.image = Some(image.clone());
        rep.record.image_id = Some(archive.image_id.clone());
        rep.record.layer_digest = Some(archive.diff_id.clone());
        rep.stage_finished(Stage::Build, archive.archive_bytes, Vec::new());

        // Push (docker load, and the registry when smolvm cannot read archives) beside pack.
        rep.stage_doing(Stage::Push, Some(&self.push_does()));
        let emit = rep.emit.clone();
        let load = async {
            let Some(docker) = self.docker else {
                return Ok(None);
            };
            let loaded = crate::freeze::docker_load::load(docker, &archive, &image, &emit)
                .await
                .map_err(|e| {
                    StageError::Failed(Failure {
                        stage: Stage::Push,
                        message: format!(
                            "docker load of {} failed: {}",
                            archive.path.display(),
                            crate::sanitize::escape_str(&e)
                        ),
                        exit_status: None,
                        stderr_tail: "<no stderr>".into(),
                    })
                })?;
            if let Some(target) = &self.cfg.push_to {
                crate::freeze::docker_load::publish(docker, &image, target, &emit)
                    .await
                    .map_err(|e| {
                        StageError::Failed(Failure {
                            stage: Stage::Push,
                            message: format!(
                                "publishing {image} to {target} failed: {}",
                                crate::sanitize::escape_str(&e)
                            ),
                            exit_status: None,
                            stderr_tail: "<no stderr>".into(),
                        })
                    })?;
            }
            Ok(Some(loaded))
        };
        let deliver = self.deliver(rep, left, &archive, &tag);
        let (loaded, (launcher, sidecar, pushed)) = tokio::try_join!(load, deliver)?;

        rep.record.docker = Some(match (&loaded, &self.no_docker) {
            (Some(l), _) => format!("loaded as {} ({})", l.image, l.image_id),
            (None, Some(why)) => format!("not loaded: {why}"),
            (None, None) => "not loaded".into(),
        });
        if loaded.is_none() {
            rep.emit.note(
                Stage::Push,
                format!(
                    "no Docker daemon: {image} was not loaded into Docker ({}); pack did not need it",
                    self.no_docker.as_deref().unwrap_or("unreachable")
                ),
            );
        }
        let pushed_bytes = pushed + loaded.as_ref().map(|l| l.bytes).unwrap_or(0);
        rep.stage_finished(Stage::Push, pushed_bytes, Vec::new());
        Ok(pack::artifact(
            launcher,
            sidecar,
            image,
            format!("{}:{tag}", push::REPOSITORY),
            slug,
        ))
    }

    /// Pack from the archive, or through the registry when this smolvm cannot read one.
    /// Returns the launcher, the sidecar and the bytes pushed to the registry.
    async fn deliver(
        &self,
        rep: &mut Reporter,
        left: &mut Leftovers,
        archive: &ImageArchive,
        tag: &str,
    ) -> Result<(PathBuf, PathBuf, u64), StageError> {
        let (image_ref, pushed) = if self.caps.pack_archive {
            (archive.path.display().to_string(), 0)
        } else {
            rep.emit.note(
                Stage::Push,
                "this smolvm's pack create takes only registry references: pushing the archive to the ephemeral registry",
            );
            let port =
                start_registry(self.cfg, self.registry_bin.clone(), self.temp, rep, left).await?;
            let push_endpoint = endpoint(&self.cfg.registry, &self.cfg.push_host, port);
            let pull_endpoint = endpoint(&self.cfg.registry, &self.cfg.pull_host, port);
            let registry_log = {
                let log = left.registry.as_ref().map(|r| r.log_tail());
                move || log.clone().unwrap_or_else(|| "<not ours>".into())
            };
            let file = std::fs::File::open(&archive.path).map_err(|e| {
                StageError::Failed(Failure {
                    stage: Stage::Push,
                    message: format!("cannot open {}: {e}", archive.path.display()),
                    exit_status: None,
                    stderr_tail: "<no stderr>".into(),
                })
            })?;
            // bottle-freeze uploads the archive itself: no command runs, so no command
            // event (those hold only argv an operator can rerun).
            rep.emit.note(
                Stage::Push,
                format!(
                    "uploading {} to http://{push_endpoint}/v2/{}/ as tag {tag}",
                    archive.path.display(),
                    push::REPOSITORY
                ),
            );
            let what = archive.path.display().to_string();
            let pushed =
                push::upload_saved(rep, file, &what, tag, &push_endpoint, registry_log).await?;
            (
                format!("{pull_endpoint}/{}", pushed.reference),
                pushed.bytes,
            )
        };
        rep.stage_doing(
            Stage::Pack,
            Some(if self.caps.pack_archive {
                "from the archive"
            } else {
                "from the registry"
            }),
        );
        let bottle_dir = self.host_dir.join(self.slug.as_str());
        let (launcher, sidecar) = pack::run(
            rep,
            &self.cfg.smolvm,
            &image_ref,
            &bottle_dir,
            self.slug.as_str(),
        )
        .await?;
        let bytes = std::fs::metadata(&sidecar).map(|m| m.len()).unwrap_or(0);
        rep.stage_finished(Stage::Pack, bytes, Vec::new());
        Ok((launcher, sidecar, pushed))
    }
}

pub(super) fn unreachable_registry() -> Result<u16, StageError> {
    Err(preflight_failure(
        Stage::Push,
        "no registry binary was found".into(),
    ))
}

/// `host:port` for pushing or pulling: an existing registry's own address unless the
/// operator set another host.
fn endpoint(choice: &RegistryChoice, host: &str, port: u16) -> String {
    match choice {
        RegistryChoice::Existing { addr } if host == "127.0.0.1" => addr.clone(),
        _ => format!("{host}:{port}"),
    }
}
