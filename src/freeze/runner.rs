//! The runner: stages in order, one event stream, a cancel token, cleanup on every path out.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::report::Reporter;
use super::{build, exec_tar, pack, push, Artifact, EventTx, Failure, Stage};
use crate::history::{new_id, History, Kind, Record};
use crate::names::Slug;
use crate::registry::{find_binary, v2_answers, SpawnedRegistry};
use crate::smolvm::Smolvm;

/// Which exec-tar transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportChoice {
    /// The pipe, falling back to the guest file when smolvm's exec output cap stops it.
    Auto,
    Pipe,
    GuestFile,
}

/// Where the image is pushed and pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryChoice {
    /// Spawn a throw-away registry (this binary, or `registry`/`docker-registry` on PATH).
    Spawn { bin: Option<PathBuf> },
    /// An existing registry at `host:port`.
    Existing { addr: String },
}

/// Everything a freeze needs to know, whichever front end started it.
#[derive(Debug, Clone)]
pub struct FreezeConfig {
    pub smolvm: Smolvm,
    pub prefix: String,
    pub state_dir: PathBuf,
    /// Parent of the private temp folders.
    pub tmp_dir: PathBuf,
    pub transport: TransportChoice,
    pub guest_scratch_dir: String,
    pub user: String,
    pub workdir: String,
    pub registry: RegistryChoice,
    /// Host the daemon pushes to; the registry's port is kept.
    pub push_host: String,
    /// Host smolvm pulls from; the registry's port is kept.
    pub pull_host: String,
}

impl FreezeConfig {
    /// Checks values that end up in a Dockerfile or an image reference.
    pub fn validate(&self) -> Result<(), String> {
        for (what, v) in [
            ("user", &self.user),
            ("workdir", &self.workdir),
            ("push host", &self.push_host),
            ("pull host", &self.pull_host),
            ("guest scratch dir", &self.guest_scratch_dir),
        ] {
            if v.is_empty() || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(format!(
                    "the {what} {:?} is empty or has spaces or control characters",
                    v
                ));
            }
        }
        if !self.workdir.starts_with('/') || !self.guest_scratch_dir.starts_with('/') {
            return Err("workdir and guest scratch dir must be absolute paths".into());
        }
        Ok(())
    }
}

/// How a stage, and so the freeze, ended when it did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum StageError {
    Failed(Failure),
    Cancelled,
}

/// A Docker error as one line, with the daemon's own message when there is one.
pub fn docker_error_message(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        E::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn preflight_failure(stage: Stage, message: String) -> StageError {
    StageError::Failed(Failure {
        stage,
        message: format!("pre-flight: {message}"),
        exit_status: None,
        stderr_tail: "<no stderr>".into(),
    })
}

/// The outcome of a run, as the front ends need it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Frozen(Artifact),
    Exported {
        path: PathBuf,
        bytes: u64,
        entries: u64,
    },
    Failed(Failure),
    Cancelled,
}

/// What a run holds that must be undone on every path out.
struct Leftovers {
    temp: Option<tempfile::TempDir>,
    registry: Option<SpawnedRegistry>,
    guest_scratch: Option<String>,
}

impl Leftovers {
    async fn clean(&mut self, smolvm: &Smolvm, machine: &str, rep: &mut Reporter) {
        if let Some(reg) = self.registry.take() {
            reg.stop().await;
        }
        if let Some(scratch) = self.guest_scratch.take() {
            if let Err(e) = exec_tar::remove_guest_scratch(smolvm, machine, &scratch).await {
                rep.emit.note(
                    Stage::ExecTar,
                    format!("could not remove the scratch archive {scratch} in the guest: {e}"),
                );
            }
        }
        if let Some(t) = self.temp.take() {
            let _ = t.close();
        }
    }
}

fn make_temp(cfg: &FreezeConfig) -> Result<tempfile::TempDir, StageError> {
    // tempfile makes the folder 0700: the archive is the VM's whole root.
    tempfile::Builder::new()
        .prefix("bot-bottle-vm-commit.")
        .tempdir_in(&cfg.tmp_dir)
        .map_err(|e| {
            StageError::Failed(Failure {
                stage: Stage::ExecTar,
                message: format!(
                    "cannot create a temp folder in {}: {e}",
                    cfg.tmp_dir.display()
                ),
                exit_status: None,
                stderr_tail: "<no stderr>".into(),
            })
        })
}

/// Checks the machine is there and running: smolvm's exec would start a stopped one.
async fn check_machine(cfg: &FreezeConfig, machine: &str) -> Result<(), StageError> {
    let machines = cfg
        .smolvm
        .list()
        .await
        .map_err(|e| preflight_failure(Stage::ExecTar, e.to_string()))?;
    match machines.iter().find(|m| m.name == machine) {
        None => Err(preflight_failure(
            Stage::ExecTar,
            format!("smolvm has no machine named {machine}"),
        )),
        Some(m) if !m.is_running() => Err(preflight_failure(
            Stage::ExecTar,
            format!(
                "{machine} is {}; only running machines are frozen (exec would start it)",
                m.state.as_deref().unwrap_or("in an unknown state")
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Freezes `slug`'s machine: exec-tar, build, push, pack. Events go to `tx`; the record
/// goes to the history. Cancelling `cancel` stops it and cleans up.
pub async fn run_freeze(
    cfg: FreezeConfig,
    slug: Slug,
    tx: EventTx,
    cancel: CancellationToken,
) -> RunOutcome {
    let machine = format!("{}{}", cfg.prefix, slug);
    let id = new_id(slug.as_str());
    let mut rep = Reporter::new(
        Record::new(&id, Kind::Freeze, &machine, slug.as_str()),
        History::new(&cfg.state_dir),
        tx,
    );
    rep.started();
    let mut left = Leftovers {
        temp: None,
        registry: None,
        guest_scratch: None,
    };
    let result = tokio::select! {
        r = freeze_stages(&cfg, &slug, &machine, &mut rep, &mut left) => r,
        _ = cancel.cancelled() => Err(StageError::Cancelled),
    };
    left.clean(&cfg.smolvm, &machine, &mut rep).await;
    finish(&mut rep, result.map(RunOutcome::Frozen))
}

/// exec-tar alone, writing the archive to `output`.
pub async fn run_export(
    cfg: FreezeConfig,
    slug: Slug,
    output: PathBuf,
    tx: EventTx,
    cancel: CancellationToken,
) -> RunOutcome {
    let machine = format!("{}{}", cfg.prefix, slug);
    let id = new_id(slug.as_str());
    let mut rep = Reporter::new(
        Record::new(&id, Kind::Export, &machine, slug.as_str()),
        History::new(&cfg.state_dir),
        tx,
    );
    rep.started();
    let mut left = Leftovers {
        temp: None,
        registry: None,
        guest_scratch: None,
    };
    let result = tokio::select! {
        r = export_stage(&cfg, &machine, &output, &mut rep, &mut left) => r,
        _ = cancel.cancelled() => Err(StageError::Cancelled),
    };
    if result.is_err() {
        // A partial archive is worth nothing and may be large.
        let _ = std::fs::remove_file(&output);
    }
    left.clean(&cfg.smolvm, &machine, &mut rep).await;
    finish(&mut rep, result)
}

fn finish(rep: &mut Reporter, result: Result<RunOutcome, StageError>) -> RunOutcome {
    match result {
        Ok(RunOutcome::Frozen(a)) => {
            rep.done(a.clone());
            RunOutcome::Frozen(a)
        }
        Ok(RunOutcome::Exported {
            path,
            bytes,
            entries,
        }) => {
            rep.exported(&path, bytes, entries);
            RunOutcome::Exported {
                path,
                bytes,
                entries,
            }
        }
        Ok(other) => other,
        Err(StageError::Failed(f)) => {
            rep.failed(f.clone());
            RunOutcome::Failed(f)
        }
        Err(StageError::Cancelled) => {
            rep.cancelled();
            RunOutcome::Cancelled
        }
    }
}

async fn export_stage(
    cfg: &FreezeConfig,
    machine: &str,
    output: &Path,
    rep: &mut Reporter,
    left: &mut Leftovers,
) -> Result<RunOutcome, StageError> {
    check_machine(cfg, machine).await?;
    rep.stage_started(Stage::ExecTar);
    let exported = exec_tar_stage(cfg, machine, output, rep, left).await?;
    Ok(RunOutcome::Exported {
        path: exported.path,
        bytes: exported.bytes,
        entries: exported.entries,
    })
}

async fn exec_tar_stage(
    cfg: &FreezeConfig,
    machine: &str,
    output: &Path,
    rep: &mut Reporter,
    left: &mut Leftovers,
) -> Result<exec_tar::Exported, StageError> {
    let mut stage = exec_tar::ExecTar {
        smolvm: &cfg.smolvm,
        machine,
        choice: cfg.transport,
        guest_scratch_dir: &cfg.guest_scratch_dir,
        guest_scratch: &mut left.guest_scratch,
    };
    let exported = stage.run(rep, output).await?;
    rep.record.bytes = exported.bytes;
    rep.record.entries = exported.entries;
    rep.stage_finished(Stage::ExecTar, exported.bytes, exported.warnings.clone());
    Ok(exported)
}

async fn freeze_stages(
    cfg: &FreezeConfig,
    slug: &Slug,
    machine: &str,
    rep: &mut Reporter,
    left: &mut Leftovers,
) -> Result<Artifact, StageError> {
    cfg.validate()
        .map_err(|e| preflight_failure(Stage::ExecTar, e))?;
    // Pre-flight: everything the later stages need is checked before minutes of streaming.
    check_machine(cfg, machine).await?;
    let docker = crate::docker::connect()
        .await
        .map_err(|e| preflight_failure(Stage::Build, e.to_string()))?;
    let registry_bin = match &cfg.registry {
        RegistryChoice::Spawn { bin } => Some(
            find_binary(bin.as_deref())
                .map_err(|e| preflight_failure(Stage::Push, e.to_string()))?,
        ),
        RegistryChoice::Existing { addr } => {
            let sock = tokio::net::lookup_host(addr.as_str())
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    preflight_failure(
                        Stage::Push,
                        format!("cannot resolve the registry address {addr}"),
                    )
                })?;
            if !v2_answers(sock).await {
                return Err(preflight_failure(
                    Stage::Push,
                    format!("the registry at {addr} does not answer /v2/"),
                ));
            }
            None
        }
    };

    let temp = make_temp(cfg)?;
    let archive = temp.path().join("rootfs.tar");
    rep.set_temp_dir(Some(temp.path()));
    left.temp = Some(temp);

    rep.stage_started(Stage::ExecTar);
    exec_tar_stage(cfg, machine, &archive, rep, left).await?;

    rep.stage_started(Stage::Build);
    let built = build::run(
        rep,
        &docker,
        &archive,
        slug.as_str(),
        &cfg.user,
        &cfg.workdir,
    )
    .await?;
    rep.record.image = Some(built.image.clone());
    rep.record.image_id = Some(built.image_id.clone());
    rep.stage_finished(Stage::Build, built.context_bytes, Vec::new());
    // The archive is in the image now; free the disk before the push copies more.
    let _ = std::fs::remove_file(&archive);

    rep.stage_started(Stage::Push);
    let port = match (&cfg.registry, registry_bin) {
        (RegistryChoice::Spawn { .. }, Some(bin)) => {
            let dir = left
                .temp
                .as_ref()
                .map(|t| t.path().to_path_buf())
                .unwrap_or_default();
            let reg = SpawnedRegistry::start(&bin, &dir).await.map_err(|e| {
                StageError::Failed(Failure {
                    stage: Stage::Push,
                    message: e.to_string(),
                    exit_status: None,
                    stderr_tail: "<no stderr>".into(),
                })
            })?;
            rep.command(vec![
                bin.display().to_string(),
                "serve".into(),
                "<generated config>".into(),
            ]);
            let port = reg.addr().port();
            left.registry = Some(reg);
            port
        }
        (RegistryChoice::Existing { addr }, _) => addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(5000),
        (RegistryChoice::Spawn { .. }, None) => unreachable_registry()?,
    };
    let push_endpoint = endpoint(&cfg.registry, &cfg.push_host, port);
    let pull_endpoint = endpoint(&cfg.registry, &cfg.pull_host, port);
    let registry_log = {
        let log = left.registry.as_ref().map(|r| r.log_tail());
        move || log.clone().unwrap_or_else(|| "<not ours>".into())
    };
    let pushed = push::run(
        rep,
        &docker,
        &built.image,
        &built.image_id,
        &push_endpoint,
        registry_log,
    )
    .await?;
    rep.stage_finished(Stage::Push, pushed.bytes, Vec::new());

    rep.stage_started(Stage::Pack);
    let bottle_dir = cfg.state_dir.join(slug.as_str());
    let image_ref = format!("{pull_endpoint}/{}", pushed.reference);
    let (launcher, sidecar) =
        pack::run(rep, &cfg.smolvm, &image_ref, &bottle_dir, slug.as_str()).await?;
    let bytes = std::fs::metadata(&sidecar).map(|m| m.len()).unwrap_or(0);
    rep.stage_finished(Stage::Pack, bytes, Vec::new());
    Ok(pack::artifact(
        launcher,
        sidecar,
        built.image,
        pushed.reference,
        slug.as_str(),
    ))
}

fn unreachable_registry() -> Result<u16, StageError> {
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
