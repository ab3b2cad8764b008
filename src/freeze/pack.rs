//! Stage pack: `smolvm pack create` reads the image archive (smolvm 1.32) or pulls the
//! pushed image from the registry (1.9), and writes the launcher and its `.smolmachine`
//! sidecar. It packs into a staging folder first, so
//! a failed pack never destroys the artifact of an earlier freeze.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::freeze::capture::{CaptureLimits, OutputCapture};
use crate::freeze::command::run_captured;
use crate::freeze::events::{Artifact, Failure, Stage};
use crate::freeze::report::Reporter;
use crate::freeze::StageError;
use crate::smolvm::Smolvm;

pub const LAUNCHER: &str = "committed-smolmachine";

/// smolvm 1.32's default limit on a local image archive, and the variable that raises it
/// (`machine create --max-image-size` sets it; `pack create` has no flag).
const ARCHIVE_LIMIT: u64 = 8 << 30;
const MAX_IMAGE_ENV: &str = "SMOLVM_MAX_IMAGE_BYTES";

fn fail(message: impl Into<String>, exit_status: Option<i32>, tail: String) -> StageError {
    StageError::Failed(Failure {
        stage: Stage::Pack,
        message: message.into(),
        exit_status,
        stderr_tail: tail,
    })
}

/// `<launcher>.smolmachine`.
pub fn sidecar_of(launcher: &Path) -> PathBuf {
    let mut s = launcher.as_os_str().to_owned();
    s.push(".smolmachine");
    PathBuf::from(s)
}

pub async fn run(
    rep: &mut Reporter,
    smolvm: &Smolvm,
    image_ref: &str,
    bottle_dir: &Path,
    slug: &str,
) -> Result<(PathBuf, PathBuf), StageError> {
    let staging = bottle_dir.join(format!("{STAGING_PREFIX}{}", rep.record.id));
    // This run holds the machine's lock: any other staging folder here was left by a run
    // that was killed.
    remove_stale_staging(bottle_dir);
    // Recorded before it exists, so every way out (and recovery after a kill) removes it.
    rep.record.pack_staging = Some(staging.clone());
    rep.save();
    // The artifact being written is the guest's root: private, whatever the umask.
    crate::private::create_dir_all(&staging).map_err(|e| {
        fail(
            format!("cannot create {}: {e}", staging.display()),
            None,
            "<no stderr>".into(),
        )
    })?;
    let result = pack_into(rep, smolvm, image_ref, &staging, bottle_dir, slug).await;
    remove_staging(rep);
    result
}

/// Pack's staging folders start with this, followed by the run's id.
pub const STAGING_PREFIX: &str = ".pack-";

/// Removes the run's pack staging folder, if it recorded one (cancel, failure, success).
pub fn remove_staging(rep: &mut Reporter) {
    if let Some(s) = rep.record.pack_staging.take() {
        if is_staging(&s, &rep.record.id) {
            let _ = std::fs::remove_dir_all(&s);
        }
        rep.save();
    }
}

/// Whether `path` is the staging folder of run `id` (never remove anything else).
pub fn is_staging(path: &Path, id: &str) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.strip_prefix(STAGING_PREFIX) == Some(id))
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

fn remove_stale_staging(bottle_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(bottle_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && name.to_str().is_some_and(|n| n.starts_with(STAGING_PREFIX)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

async fn pack_into(
    rep: &mut Reporter,
    smolvm: &Smolvm,
    image_ref: &str,
    staging: &Path,
    bottle_dir: &Path,
    _slug: &str,
) -> Result<(PathBuf, PathBuf), StageError> {
    let staged = staging.join(LAUNCHER);
    let argv = crate::smolvm::argv::pack_create(image_ref, &staged);
    rep.command(smolvm.command_line(&argv));
    let log = rep.log_path(Stage::Pack);
    let capture = Arc::new(Mutex::new(
        OutputCapture::create(&log, CaptureLimits::default())
            .map_err(|e| {
                fail(
                    format!("cannot create the log {}: {e}", log.display()),
                    None,
                    "<no stderr>".into(),
                )
            })?
            .with_filter(smolvm.note_filter()),
    ));
    let mut cmd = smolvm.command(&argv);
    // smolvm 1.32 refuses local archives past 8 GiB unless SMOLVM_MAX_IMAGE_BYTES says more.
    if let Ok(m) = std::fs::metadata(image_ref) {
        if m.is_file() && m.len() >= ARCHIVE_LIMIT && std::env::var_os(MAX_IMAGE_ENV).is_none() {
            cmd.env(MAX_IMAGE_ENV, (m.len() + (1 << 30)).to_string());
        }
    }
    let code = run_captured(cmd, &capture, &rep.emit, Stage::Pack, || {})
        .await
        .map_err(|e| {
            fail(
                smolvm.spawn_error(e).to_string(),
                None,
                "<no stderr>".into(),
            )
        })?;
    let tail = capture
        .lock()
        .map(|mut c| {
            let _ = c.finish();
            c.tail(20)
        })
        .unwrap_or_else(|_| "<no stderr>".into());
    if code != 0 {
        return Err(fail(
            format!("smolvm pack create --image {image_ref} failed"),
            Some(code),
            tail,
        ));
    }
    let staged_sidecar = sidecar_of(&staged);
    match std::fs::metadata(&staged_sidecar) {
        Ok(m) if m.len() > 0 => {}
        Ok(_) => {
            return Err(fail(
                format!("{} is empty", staged_sidecar.display()),
                Some(code),
                tail,
            ))
        }
        Err(e) => {
            return Err(fail(
                format!("smolvm wrote no {}: {e}", staged_sidecar.display()),
                Some(code),
                tail,
            ))
        }
    }
    let launcher = bottle_dir.join(LAUNCHER);
    let sidecar = sidecar_of(&launcher);
    for (from, to) in [(&staged_sidecar, &sidecar), (&staged, &launcher)] {
        if from.exists() {
            std::fs::rename(from, to).map_err(|e| {
                fail(
                    format!("cannot move {} to {}: {e}", from.display(), to.display()),
                    None,
                    tail.clone(),
                )
            })?;
        }
    }
    Ok((launcher, sidecar))
}

/// The result shown to the operator.
pub fn artifact(
    launcher: PathBuf,
    sidecar: PathBuf,
    image: String,
    tag: String,
    slug: &str,
) -> Artifact {
    let hint = format!(
        "to export for migration: cp {} {slug}.smolmachine",
        sidecar.display()
    );
    Artifact {
        sidecar,
        launcher,
        image,
        tag,
        hint,
    }
}
