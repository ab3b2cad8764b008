//! The runner: stages in order, one event stream, a cancel token, cleanup on every path out.

pub use crate::domain::RunOutcome;

mod discard;
mod precheck;
mod prune;
mod stages;
mod unfinished;
pub use discard::discard;
pub use precheck::{precheck_parts, same_disk, space_checks, CheckLevel, PreCheck};
pub use prune::{apply_prune, plan_prune, PrunePlan, PrunePolicy, PruneReport, PrunedRecord};
use stages::{freeze_stages, unreachable_registry};
pub use stages::{DOCKER_BUILD, NATIVE_ARCHIVE};
use std::path::{Path, PathBuf};
use unfinished::{drop_unrecorded, remove_build_images};

use tokio_util::sync::CancellationToken;

use super::image_archive::{ImageArchive, ImageSpec};
use super::probes::{self, Capabilities};
use super::report::Reporter;
use super::{
    build, exec_tar, pack, push, remote, report, Artifact, EventTx, Failure, FreezeEvent, Stage,
};
use crate::history::{new_id, History, Kept, Kind, Record};
use crate::lock::MachineLock;
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
    /// The port to try first for a spawned registry; another is chosen when it is taken.
    pub registry_port: Option<u16>,
    /// How the image reaches the registry.
    pub push_via: push::PushVia,
    /// Fail exec-tar when no bytes arrive for this long (None: wait for ever).
    pub stall_timeout: Option<std::time::Duration>,
    /// Paths the operator leaves out of the archive (`--exclude`, `exclude = [...]`).
    pub exclude: Vec<String>,
    /// Refuse a root holding files named like credentials, instead of warning.
    pub fail_on_secrets: bool,
    /// Who builds the image: we (in the exec-tar pass) or the Docker daemon.
    pub builder: Builder,
    /// A registry repository (`host[:port]/repo`) to publish the image to, through the
    /// Docker daemon.
    pub push_to: Option<String>,
}

/// Who builds the committed image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Builder {
    /// A `docker save` archive written as exec-tar streams (no Docker needed).
    #[default]
    Native,
    /// The Docker daemon builds it from `rootfs.tar` and a Dockerfile.
    Docker,
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
        for x in &self.exclude {
            crate::secrets::tar_exclude(x)?;
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

/// What a run holds that must be undone on every path out (or kept for a resume).
#[derive(Default)]
struct Leftovers {
    temp: Option<PathBuf>,
    registry: Option<SpawnedRegistry>,
    guest_scratch: Option<String>,
    /// Keep the temp folder: a failed build leaves the archive for `--resume`.
    keep_temp: bool,
    /// The kept archive a resume checked before it began.
    verified: Option<ImageArchive>,
    /// The temp folder is an earlier run's (a resume): its archive stays until this run
    /// has built from it and succeeds.
    borrowed: bool,
    /// The host the machine is on, when not the local smolvm: where exec-tar runs and
    /// where its scratch archive is removed.
    host: Option<remote::RemoteHost>,
    /// That host's label (also on a resume, which needs no connection): its locks and
    /// artifacts live under `<state>/<label>/`.
    label: Option<Slug>,
    /// The Dockerfile build, once started: if it does not complete, its images go.
    build: Option<build::Track>,
}

/// Where a host's locks and artifact folders live: the state dir itself for the local
/// smolvm, `<state>/<label>/` for another host.
fn host_dir(cfg: &FreezeConfig, label: Option<&Slug>) -> PathBuf {
    match label {
        Some(l) => cfg.state_dir.join(l.as_str()),
        None => cfg.state_dir.clone(),
    }
}

impl Leftovers {
    async fn clean(&mut self, smolvm: &Smolvm, machine: &str, rep: &mut Reporter) {
        // A cancelled pack never reached its own clean-up.
        pack::remove_staging(rep);
        if let Some(track) = self.build.take() {
            remove_build_images(&track, rep).await;
        }
        if let Some(reg) = self.registry.take() {
            reg.stop().await;
            rep.record.registry_pid = None;
        }
        if let Some(scratch) = self.guest_scratch.take() {
            let removed = match &self.host {
                Some(h) => remote::remove_guest_scratch(&h.client, machine, &scratch).await,
                None => exec_tar::remove_guest_scratch(smolvm, machine, &scratch).await,
            };
            match removed {
                Ok(()) => rep.record.guest_scratch = None,
                Err(e) => rep.emit.note(
                    Stage::ExecTar,
                    format!("could not remove the scratch archive {scratch} in the guest: {e}"),
                ),
            }
        }
        if let Some(t) = self.temp.take() {
            if !self.keep_temp {
                let _ = std::fs::remove_dir_all(&t);
            }
        }
    }
}

fn make_temp(cfg: &FreezeConfig) -> Result<PathBuf, StageError> {
    // 0700 whatever the umask: the archive is the VM's whole root.
    crate::private::temp_dir(&cfg.tmp_dir, TEMP_PREFIX).map_err(|e| {
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

/// The name every private temp folder starts with.
pub const TEMP_PREFIX: &str = "bot-bottle-vm-commit.";

/// Checks the machine is there and running: smolvm's exec would start a stopped one.
async fn check_machine(
    cfg: &FreezeConfig,
    host: Option<&remote::RemoteHost>,
    machine: &str,
) -> Result<(), StageError> {
    if let Some(h) = host {
        return h
            .check_machine(machine)
            .await
            .map_err(|e| preflight_failure(Stage::ExecTar, e));
    }
    let machines = crate::machines::list(&cfg.smolvm)
        .await
        .map_err(|e| preflight_failure(Stage::ExecTar, e.to_string()))?;
    let found = crate::machines::find_unique(&machines, machine)
        .map_err(|e| preflight_failure(Stage::ExecTar, e))?;
    match found {
        None => Err(preflight_failure(
            Stage::ExecTar,
            format!("smolvm has no machine named {machine}"),
        )),
        Some(m) if !m.is_running() => Err(preflight_failure(
            Stage::ExecTar,
            format!(
                "{machine} is {}{}; only running machines are frozen",
                m.state.as_deref().unwrap_or("in an unknown state"),
                m.why_not_running()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// `machine ls` (is it there and running?) and the `--help` probes, all at once: the
/// start-up of exec-tar. `df` waits for the answer: exec on a stopped machine starts it.
async fn check_and_probe(
    cfg: &FreezeConfig,
    host: Option<&remote::RemoteHost>,
    machine: &str,
) -> Result<Capabilities, StageError> {
    let (checked, caps) = tokio::join!(
        check_machine(cfg, host, machine),
        probes::capabilities(&cfg.smolvm, &cfg.state_dir)
    );
    checked?;
    caps.map_err(|e| preflight_failure(Stage::ExecTar, e.to_string()))
}

/// Sends a refusal that never became a run (no record is written for it): the events let
/// a dashboard show it; the outcome is bad input (the machine is busy, or its lock file is
/// not one), not a stage that failed.
fn refuse(tx: &EventTx, id: &str, machine: &str, slug: &Slug, message: String) -> RunOutcome {
    let emit = report::Emitter::new(id, tx.clone());
    let (machine, slug_s) = (machine.to_string(), slug.to_string());
    emit.send(|id| FreezeEvent::Started {
        id,
        machine,
        slug: slug_s,
        at_ms: crate::history::now_ms(),
    });
    let failure = Failure {
        stage: Stage::ExecTar,
        message: message.clone(),
        exit_status: None,
        stderr_tail: "<no stderr>".into(),
    };
    emit.send(|id| FreezeEvent::Failed { id, failure });
    RunOutcome::Refused(message)
}

/// Takes the machine's lock and starts the run's record; a machine already being frozen
/// is refused without a record.
fn begin(
    cfg: &FreezeConfig,
    slug: &Slug,
    kind: Kind,
    tx: EventTx,
    host: Option<&remote::RemoteHost>,
) -> Result<(String, MachineLock, Reporter), RunOutcome> {
    let machine = format!("{}{}", cfg.prefix, slug);
    let id = new_id(slug.as_str());
    // One freeze per machine per host: a remote host's locks live under its label.
    let lock = MachineLock::acquire(&host_dir(cfg, host.map(|h| &h.label)), slug, &machine)
        .map_err(|e| refuse(&tx, &id, &machine, slug, e.to_string()))?;
    let mut record = Record::new(&id, kind, &machine, slug.as_str());
    record.host = host.map(|h| h.label.to_string());
    let mut rep = Reporter::new(record, History::new(&cfg.state_dir), tx);
    rep.stall_timeout = cfg.stall_timeout;
    rep.started();
    Ok((machine, lock, rep))
}

/// Freezes `slug`'s machine: exec-tar, build, push, pack. Events go to `tx`; the record
/// goes to the history. Cancelling `cancel` stops it and cleans up.
pub async fn run_freeze(
    cfg: FreezeConfig,
    slug: Slug,
    tx: EventTx,
    cancel: CancellationToken,
) -> RunOutcome {
    run_freeze_on(cfg, None, slug, tx, cancel).await
}

/// [`run_freeze`] for a machine on `host` (None: the local smolvm). On a remote host
/// exec-tar goes through smolvm's API; build, push and pack run here, and the artifact
/// lands in `<state>/<host>/<slug>/`.
pub async fn run_freeze_on(
    cfg: FreezeConfig,
    host: Option<remote::RemoteHost>,
    slug: Slug,
    tx: EventTx,
    cancel: CancellationToken,
) -> RunOutcome {
    let (machine, _lock, mut rep) = match begin(&cfg, &slug, Kind::Freeze, tx, host.as_ref()) {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let mut left = Leftovers {
        label: host.as_ref().map(|h| h.label.clone()),
        host,
        ..Leftovers::default()
    };
    let result = tokio::select! {
        r = freeze_stages(&cfg, &slug, &machine, &mut rep, &mut left, None) => r,
        _ = cancel.cancelled() => Err(StageError::Cancelled),
    };
    settle(&cfg, &machine, &mut rep, &mut left, &result).await;
    let outcome = finish(&mut rep, result.map(RunOutcome::Frozen));
    drop_unrecorded(&mut rep).await;
    outcome
}

/// Retries a failed freeze from the stage that failed, with what it kept: the archive
/// (build failed) or the image (push or pack failed). The VM is not streamed again.
pub async fn run_resume(
    cfg: FreezeConfig,
    from_id: String,
    tx: EventTx,
    cancel: CancellationToken,
) -> RunOutcome {
    let history = History::new(&cfg.state_dir);
    let old = match history.load(&from_id) {
        Ok(r) => r,
        Err(e) => return refuse_plain(&tx, &from_id, e.to_string()),
    };
    let Some(kept) = old.kept.clone() else {
        return refuse_plain(
            &tx,
            &from_id,
            format!("freeze {from_id} kept nothing to resume from"),
        );
    };
    let slug = match Slug::parse(&old.slug) {
        Ok(s) => s,
        Err(e) => return refuse_plain(&tx, &from_id, e),
    };
    let verified = match check_kept(&old, &kept).await {
        Ok(v) => v,
        Err(why) => return refuse_plain(&tx, &from_id, why),
    };
    let machine = old.machine.clone();
    let id = new_id(slug.as_str());
    // A resume starts after exec-tar, so a remote machine's host is only a label here.
    let label = match old.host.as_deref().map(Slug::parse).transpose() {
        Ok(l) => l,
        Err(e) => return refuse_plain(&tx, &from_id, format!("bad host label: {e}")),
    };
    let _lock = match MachineLock::acquire(&host_dir(&cfg, label.as_ref()), &slug, &machine) {
        Ok(l) => l,
        Err(e) => return refuse(&tx, &id, &machine, &slug, e.to_string()),
    };
    let mut record = Record::new(&id, Kind::Freeze, &machine, slug.as_str());
    record.host = old.host.clone();
    record.resumed_from = Some(from_id.clone());
    record.transport = old.transport;
    record.bytes = old.bytes;
    record.entries = old.entries;
    record.warnings = old.warnings.clone();
    record.layer_digest = old.layer_digest.clone();
    for stage in Stage::ALL.iter().filter(|s| **s < kept.from) {
        let prev = old.stage(*stage).clone();
        *record.stage_mut(*stage) = prev;
    }
    let mut rep = Reporter::new(record, history.clone(), tx);
    rep.stall_timeout = cfg.stall_timeout;
    rep.started();
    rep.emit.note(
        kept.from,
        format!("resuming freeze {from_id} from {}", kept.from),
    );
    // What the old run kept stays its own until this run succeeds or keeps something of
    // its own: a cancelled, killed or refused resume leaves it resumable.
    let mut left = Leftovers {
        temp: kept.temp_dir.clone(),
        verified,
        borrowed: true,
        label,
        ..Leftovers::default()
    };
    let result = tokio::select! {
        r = freeze_stages(&cfg, &slug, &machine, &mut rep, &mut left, Some(&kept)) => r,
        _ = cancel.cancelled() => Err(StageError::Cancelled),
    };
    left.keep_temp = false;
    keep_for_resume(&mut rep, &mut left, &result);
    let hand_over = result.is_ok() || rep.record.kept.is_some();
    if !hand_over {
        left.keep_temp = true;
        rep.record.temp_dir = None;
    }
    left.clean(&cfg.smolvm, &machine, &mut rep).await;
    if hand_over {
        if let Ok(mut old) = history.load(&from_id) {
            old.kept = None;
            let _ = history.save(&old);
        }
    }
    finish(&mut rep, result.map(RunOutcome::Frozen))
}

/// Proves that what a record kept is still exactly what it kept: the archive by its path
/// and image id (and layer digest), the image by its id. Returns the archive read.
async fn check_kept(old: &Record, kept: &Kept) -> Result<Option<ImageArchive>, String> {
    if let Some(a) = &kept.archive {
        if !a.is_file() {
            return Err(format!("the kept archive {} is gone", a.display()));
        }
        if let Some(t) = &kept.temp_dir {
            if a.parent() != Some(t.as_path()) || !is_our_temp(t) {
                return Err(format!(
                    "the kept archive {} is not in the run's temp folder",
                    a.display()
                ));
            }
        }
        if kept.from < Stage::Push {
            return Ok(None);
        }
        let read = ImageArchive::read(a)
            .map_err(|e| format!("the kept archive {} is unusable: {e}", a.display()))?;
        if let Some(id) = kept.image_id.as_ref().filter(|id| **id != read.image_id) {
            return Err(format!(
                "the kept archive {} holds image {}, not the kept {id}",
                a.display(),
                read.image_id
            ));
        }
        if let Some(d) = old.layer_digest.as_ref().filter(|d| **d != read.diff_id) {
            return Err(format!(
                "the kept archive {} holds layer {}, not the recorded {d}",
                a.display(),
                read.diff_id
            ));
        }
        return Ok(Some(read));
    }
    let Some(image) = &kept.image else {
        return Err("the record names neither an archive nor an image".into());
    };
    let Some(id) = &kept.image_id else {
        return Err(format!(
            "the record names the image {image} but not its id; it cannot be told from a later one"
        ));
    };
    let docker = crate::docker::connect()
        .await
        .map_err(|e| format!("the kept image {id} is in Docker, which is unreachable: {e}"))?;
    match docker.inspect_image(id).await {
        Ok(i) if i.id.as_deref() == Some(id.as_str()) => Ok(None),
        Ok(i) => Err(format!(
            "Docker answers {} for the kept image {id}",
            i.id.unwrap_or_default()
        )),
        Err(e) => Err(format!(
            "the kept image {image} ({id}) is gone: {}",
            docker_error_message(&e)
        )),
    }
}

/// A resume that cannot start: no event, no record; the front end says why.
fn refuse_plain(_tx: &EventTx, _id: &str, message: String) -> RunOutcome {
    RunOutcome::Refused(format!("cannot resume: {message}"))
}

/// Whether `path` is a temp folder this tool made (never remove anything else).
pub fn is_our_temp(path: &Path) -> bool {
    path.is_dir()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(TEMP_PREFIX))
}

/// Decides what to keep for a resume, and cleans the rest.
async fn settle(
    cfg: &FreezeConfig,
    machine: &str,
    rep: &mut Reporter,
    left: &mut Leftovers,
    result: &Result<Artifact, StageError>,
) {
    keep_for_resume(rep, left, result);
    left.clean(&cfg.smolvm, machine, rep).await;
}

/// What a failed run keeps for a resume: recorded in `kept`, and its temp folder marked.
fn keep_for_resume(
    rep: &mut Reporter,
    left: &mut Leftovers,
    result: &Result<Artifact, StageError>,
) {
    if let Err(StageError::Failed(f)) = result {
        let kept = match f.stage {
            Stage::Build if !f.message.starts_with("pre-flight") => {
                let archive = left.temp.as_ref().map(|t| t.join("rootfs.tar"));
                archive.filter(|a| a.exists()).map(|archive| {
                    left.keep_temp = true;
                    Kept {
                        temp_dir: left.temp.clone(),
                        archive: Some(archive),
                        image: None,
                        image_id: None,
                        from: Stage::Build,
                    }
                })
            }
            // The native build keeps its archive: the image is in it.
            Stage::Push | Stage::Pack
                if !f.message.starts_with("pre-flight") && rep.record.layer_digest.is_some() =>
            {
                let archive = left.temp.as_ref().map(|t| t.join(NATIVE_ARCHIVE));
                archive.filter(|a| a.exists()).map(|archive| {
                    left.keep_temp = true;
                    Kept {
                        temp_dir: left.temp.clone(),
                        archive: Some(archive),
                        image: None,
                        image_id: rep.record.image_id.clone(),
                        from: Stage::Push,
                    }
                })
            }
            Stage::Push | Stage::Pack if !f.message.starts_with("pre-flight") => {
                rep.record.image.clone().map(|image| Kept {
                    temp_dir: None,
                    archive: None,
                    image: Some(image),
                    image_id: rep.record.image_id.clone(),
                    from: Stage::Push,
                })
            }
            _ => None,
        };
        // The retry hint is given once the record holding `kept` is saved (Reporter::failed).
        rep.record.kept = kept;
    }
}

/// exec-tar alone, writing the archive to `output`.
pub async fn run_export(
    cfg: FreezeConfig,
    slug: Slug,
    output: PathBuf,
    tx: EventTx,
    cancel: CancellationToken,
) -> RunOutcome {
    let (machine, _lock, mut rep) = match begin(&cfg, &slug, Kind::Export, tx, None) {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let id = rep.record.id.clone();
    let mut left = Leftovers::default();
    // The archive is written beside the output and renamed into place, so a failure never
    // leaves half an archive under the name of a whole one. A device or FIFO given as the
    // output (`/dev/null`) gets the finished archive copied into it, and is never removed.
    let special = std::fs::metadata(&output).is_ok_and(|m| !m.is_file());
    let work = if special {
        None
    } else {
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Some(output.with_file_name(format!(".{name}.partial-{id}")))
    };
    let result = tokio::select! {
        r = export_stage(&cfg, &machine, &output, work.as_deref(), &mut rep, &mut left) => r,
        _ = cancel.cancelled() => Err(StageError::Cancelled),
    };
    if let Some(w) = &work {
        exec_tar::remove_partial(w);
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
    work: Option<&Path>,
    rep: &mut Reporter,
    left: &mut Leftovers,
) -> Result<RunOutcome, StageError> {
    let caps = check_and_probe(cfg, left.host.as_ref(), machine).await?;
    let work = match work {
        Some(w) => w.to_path_buf(),
        None => {
            let t = make_temp(cfg)?;
            left.temp = Some(t.clone());
            t.join("rootfs.tar")
        }
    };
    rep.stage_started(Stage::ExecTar);
    let exported = exec_tar_stage(cfg, machine, &work, rep, left, caps, None).await?;
    let placed = if left.temp.is_some() {
        std::fs::File::open(&work)
            .and_then(|mut from| {
                let mut to = std::fs::OpenOptions::new().write(true).open(output)?;
                std::io::copy(&mut from, &mut to)
            })
            .map(|_| ())
    } else {
        std::fs::rename(&work, output)
    };
    placed.map_err(|e| {
        StageError::Failed(Failure {
            stage: Stage::ExecTar,
            message: format!("cannot write {}: {e}", output.display()),
            exit_status: None,
            stderr_tail: "<no stderr>".into(),
        })
    })?;
    Ok(RunOutcome::Exported {
        path: output.to_path_buf(),
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
    caps: Capabilities,
    image: Option<ImageSpec>,
) -> Result<exec_tar::Exported, StageError> {
    let exclude: Vec<String> = cfg
        .exclude
        .iter()
        .filter_map(|x| crate::secrets::tar_exclude(x).ok())
        .collect();
    let mut exported = if let Some(host) = left.host.clone() {
        let mut stage = remote::RemoteExecTar {
            client: &host.client,
            host: host.label.as_str(),
            machine,
            exclude: &exclude,
            guest_scratch_dir: &cfg.guest_scratch_dir,
            guest_scratch: &mut left.guest_scratch,
            image,
        };
        stage.run(rep, output).await?
    } else {
        let mut stage = exec_tar::ExecTar {
            exclude: &exclude,
            smolvm: &cfg.smolvm,
            machine,
            choice: cfg.transport,
            guest_scratch_dir: &cfg.guest_scratch_dir,
            guest_scratch: &mut left.guest_scratch,
            estimate: None,
            stream_flag: caps.exec_stream,
            image,
        };
        stage.run(rep, output).await?
    };
    rep.record.bytes = exported.bytes;
    rep.record.entries = exported.entries;
    rep.record.content = exported.content.take();
    if !exported.credentials.is_empty() {
        let found = exported.credentials.summary();
        rep.record.credentials = Some(exported.credentials.clone());
        if cfg.fail_on_secrets {
            exec_tar::remove_partial(output);
            return Err(StageError::Failed(Failure {
                stage: Stage::ExecTar,
                message: format!("refused (--fail-on-secrets): the root holds {found}"),
                exit_status: None,
                stderr_tail: "<no stderr>".into(),
            }));
        }
        exported.warnings.push(format!("the root holds {found}"));
    }
    rep.stage_finished(Stage::ExecTar, exported.bytes, exported.warnings.clone());
    Ok(exported)
}

/// Checks the registry the freeze will need, before minutes of streaming: the binary to
/// spawn one, or an existing one that answers `/v2/`.
async fn registry_preflight(cfg: &FreezeConfig) -> Result<Option<PathBuf>, StageError> {
    match &cfg.registry {
        RegistryChoice::Spawn { bin } => {
            Ok(Some(find_binary(bin.as_deref()).map_err(|e| {
                preflight_failure(Stage::Push, e.to_string())
            })?))
        }
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
            Ok(None)
        }
    }
}

/// Starts the throw-away registry (or takes the existing one's port).
async fn start_registry(
    cfg: &FreezeConfig,
    registry_bin: Option<PathBuf>,
    temp: &Path,
    rep: &mut Reporter,
    left: &mut Leftovers,
) -> Result<u16, StageError> {
    match (&cfg.registry, registry_bin) {
        (RegistryChoice::Spawn { .. }, Some(bin)) => {
            let reg = SpawnedRegistry::start(&bin, temp, cfg.registry_port)
                .await
                .map_err(|e| {
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
                reg.config_path().display().to_string(),
            ]);
            let port = reg.addr().port();
            rep.record.registry_pid = reg.pid();
            rep.save();
            if let Some(wanted) = cfg.registry_port.filter(|p| *p != port) {
                rep.emit.note(
                    Stage::Push,
                    format!("registry port {wanted} was taken; using {port}"),
                );
            }
            left.registry = Some(reg);
            Ok(port)
        }
        (RegistryChoice::Existing { addr }, _) => Ok(addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(5000)),
        (RegistryChoice::Spawn { .. }, None) => unreachable_registry(),
    }
}
