//! Freeze records and their logs on disk, under `<state>/history/<id>/`.
//!
//! `record.json` is rewritten atomically (write a temp file, then rename) at every stage
//! transition, so a crash leaves the previous whole record, never half of one. Each
//! stage's full output is in `<stage>.log` beside it, bounded by the capture that wrote it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::domain::{Artifact, Failure, Stage, Transport};
pub use crate::domain::{Kind, Outcome, StageStatus};

/// The XDG state home's `bot-bottle/`, the default state folder.
pub fn default_state_dir() -> PathBuf {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("bot-bottle")
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub stage: Stage,
    pub status: StageStatus,
    pub started_at_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub bytes: u64,
    /// File name of the stage's log beside the record, once it has one.
    pub log: Option<String>,
    /// What the stage did in this run ("native archive", "docker load", …).
    #[serde(default)]
    pub does: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub kind: Kind,
    /// The smolvm host's label when the machine was on another host (`--host`); absent
    /// for the local smolvm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub machine: String,
    pub slug: String,
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    pub outcome: Outcome,
    pub stages: Vec<StageRecord>,
    pub transport: Option<Transport>,
    /// Archive bytes streamed out of the VM.
    pub bytes: u64,
    pub entries: u64,
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub artifact: Option<Artifact>,
    pub failure: Option<Failure>,
    pub warnings: Vec<String>,
    /// The commands run, as argument vectors, so a stage can be reproduced by hand.
    pub commands: Vec<Vec<String>>,
    /// The process that ran the freeze, to spot interrupted ones on a later start.
    pub pid: u32,
    /// The freeze's private temp folder while it exists.
    pub temp_dir: Option<PathBuf>,
    /// The registry we spawned, while it runs (to stop it after a crash).
    #[serde(default)]
    pub registry_pid: Option<u32>,
    /// Proof that `registry_pid` is the registry we started (its start time and
    /// executable): recovery kills nothing it cannot prove is ours.
    #[serde(default)]
    pub registry_stamp: Option<crate::proc_stamp::ProcessStamp>,
    /// The scratch archive in the guest, while it may exist.
    #[serde(default)]
    pub guest_scratch: Option<String>,
    /// What a failed freeze kept so it can be resumed without streaming again.
    #[serde(default)]
    pub kept: Option<Kept>,
    /// The freeze this one resumed.
    #[serde(default)]
    pub resumed_from: Option<String>,
    /// Files in the archive named like credential files (names only), once exec-tar has
    /// listed them.
    #[serde(default)]
    pub credentials: Option<crate::secrets::Findings>,
    /// The image layer's digest (its diff_id), when the native build wrote it.
    #[serde(default)]
    pub layer_digest: Option<String>,
    /// What became of the image in the local Docker daemon (native build).
    #[serde(default)]
    pub docker: Option<String>,
    /// Pack's staging folder (`<state>/<slug>/.pack-<id>/`) while it may exist.
    #[serde(default)]
    pub pack_staging: Option<PathBuf>,
    /// Where the Docker daemon's build (`--builder docker`) was: recovery waits for the
    /// step a killed run's daemon was in before it removes the build's images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_steps: Option<BuildSteps>,
    /// Bytes and entries per directory of the root, once exec-tar has read it whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<crate::content::ContentSummary>,
}

/// The steps of a Dockerfile build as the daemon reported them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildSteps {
    /// The step the daemon is in (`ADD rootfs.tar /`), until it reports its image.
    pub in_flight: Option<String>,
    /// The (short) ids of the images its steps committed.
    pub committed: Vec<String>,
}

/// What a failed freeze keeps for `freeze --resume`: the archive until the image is built,
/// then the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// The private temp folder holding `rootfs.tar`, if the build had not succeeded.
    pub temp_dir: Option<PathBuf>,
    pub archive: Option<PathBuf>,
    /// The built image, if the build succeeded.
    pub image: Option<String>,
    pub image_id: Option<String>,
    /// The stage to resume from.
    pub from: Stage,
}

impl Record {
    pub fn new(id: &str, kind: Kind, machine: &str, slug: &str) -> Record {
        let stages = Stage::ALL
            .iter()
            .map(|&stage| StageRecord {
                stage,
                status: if kind == Kind::Export && stage != Stage::ExecTar {
                    StageStatus::Skipped
                } else {
                    StageStatus::Waiting
                },
                started_at_ms: None,
                duration_ms: None,
                bytes: 0,
                log: None,
                does: None,
            })
            .collect();
        Record {
            id: id.to_string(),
            kind,
            host: None,
            machine: machine.to_string(),
            slug: slug.to_string(),
            started_at_ms: now_ms(),
            ended_at_ms: None,
            outcome: Outcome::Running,
            stages,
            transport: None,
            bytes: 0,
            entries: 0,
            image: None,
            image_id: None,
            artifact: None,
            failure: None,
            warnings: Vec::new(),
            commands: Vec::new(),
            pid: std::process::id(),
            temp_dir: None,
            registry_pid: None,
            registry_stamp: None,
            guest_scratch: None,
            kept: None,
            resumed_from: None,
            credentials: None,
            layer_digest: None,
            docker: None,
            pack_staging: None,
            build_steps: None,
            content: None,
        }
    }

    pub fn stage(&self, stage: Stage) -> &StageRecord {
        &self.stages[stage.index()]
    }

    pub fn stage_mut(&mut self, stage: Stage) -> &mut StageRecord {
        &mut self.stages[stage.index()]
    }

    pub fn duration_ms(&self) -> Option<u64> {
        Some(self.ended_at_ms?.saturating_sub(self.started_at_ms))
    }
}

impl Record {
    /// `failed at build`, `succeeded`…, as both front ends show it.
    pub fn outcome_text(&self) -> String {
        match &self.failure {
            Some(f) => format!("{} at {}", self.outcome.name(), f.stage),
            None => self.outcome.name().to_string(),
        }
    }

    /// The stages in the order a reader wants them: the failed one first.
    pub fn stages_failed_first(&self) -> Vec<Stage> {
        let mut v: Vec<Stage> = Stage::ALL.to_vec();
        v.sort_by_key(|s| self.stage(*s).status != StageStatus::Failed);
        v
    }
}

/// A timestamp (Unix ms) as RFC 3339, UTC, to the second.
pub fn when(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot write history under {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a freeze record: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("no freeze with id {0:?} in the history")]
    NotFound(String),
    #[error("{path} is damaged: {why}")]
    Damaged { path: PathBuf, why: String },
}

/// A record folder that could not be used, with why; `history` lists these instead of
/// dropping them silently.
#[derive(Debug, Clone, PartialEq)]
pub struct DamagedRecord {
    /// The folder's name (escaped).
    pub folder: String,
    pub why: String,
}

/// A `record.json` larger than this is not read: a record is a few KiB, and its stderr
/// is bounded when written, so anything this big was not written by us.
pub const MAX_RECORD_BYTES: u64 = 8 << 20;

/// Room a running freeze sets aside beside its record for its last save: many times the
/// size of a record (a few KiB; its stderr is bounded when written).
pub const RESERVE_BYTES: usize = 256 << 10;

/// The file holding that room, in the run's record folder.
const RESERVE_FILE: &str = ".reserve";

/// The history folder of one state folder.
#[derive(Debug, Clone)]
pub struct History {
    root: PathBuf,
}

impl History {
    pub fn new(state_dir: &Path) -> History {
        History {
            root: state_dir.join("history"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one freeze; ids are ours, but are checked since they come back from
    /// the command line.
    pub fn dir(&self, id: &str) -> Result<PathBuf, HistoryError> {
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || id.starts_with('.')
        {
            return Err(HistoryError::NotFound(crate::sanitize::escape_str(id)));
        }
        Ok(self.root.join(id))
    }

    pub fn log_path(&self, id: &str, stage: Stage) -> Result<PathBuf, HistoryError> {
        Ok(self.dir(id)?.join(format!("{}.log", stage.name())))
    }

    /// Writes the record atomically and durably (fsync before the rename).
    pub fn save(&self, record: &Record) -> Result<(), HistoryError> {
        self.write(record, true)
    }

    /// Writes the record atomically, leaving durability to the filesystem: for the many
    /// saves while a run is under way, where an fsync each would cost more than it buys
    /// (the rename still never exposes half a record).
    pub fn save_quick(&self, record: &Record) -> Result<(), HistoryError> {
        self.write(record, false)
    }

    fn write(&self, record: &Record, durable: bool) -> Result<(), HistoryError> {
        let dir = self.dir(&record.id)?;
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HistoryError::Write { path, source }
        };
        // The records and logs hold the guest's file names and output: private.
        crate::private::create_dir_all(&dir).map_err(werr(&dir))?;
        let path = dir.join("record.json");
        let tmp = dir.join(format!(".record.json.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(record).map_err(|e| HistoryError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(werr(&tmp))?
        };
        // A full disk fails the write: the half-written temp file goes, the last whole
        // record stays.
        let written = f
            .write_all(&json)
            .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
            .map_err(werr(&tmp))
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(werr(&path)));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Sets aside [`RESERVE_BYTES`] beside the record of a run that begins, so that its
    /// last save can still be written when the filesystem fills up during the run
    /// ([`History::release_reserve`] gives the room back just before). Best effort:
    /// false when there was no room even for that.
    pub fn reserve(&self, id: &str) -> bool {
        use std::os::unix::fs::OpenOptionsExt as _;
        let Ok(dir) = self.dir(id) else {
            return false;
        };
        if crate::private::create_dir_all(&dir).is_err() {
            return false;
        }
        let path = dir.join(RESERVE_FILE);
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            // Zeros really written: a sparse file (set_len) would hold no blocks.
            .and_then(|mut f| {
                f.write_all(&vec![0u8; RESERVE_BYTES])?;
                f.sync_all()
            });
        if made.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        made.is_ok()
    }

    /// Gives back the room [`History::reserve`] set aside (also after a run was killed).
    pub fn release_reserve(&self, id: &str) -> bool {
        self.dir(id)
            .is_ok_and(|d| std::fs::remove_file(d.join(RESERVE_FILE)).is_ok())
    }

    /// The record in the folder `id`. Records are addressed by folder: one whose `id`
    /// says otherwise is damaged (saving it would overwrite another run's record).
    pub fn load(&self, id: &str) -> Result<Record, HistoryError> {
        use std::io::Read as _;
        let path = self.dir(id)?.join("record.json");
        let read_err = |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::NotFound {
                HistoryError::NotFound(id.to_string())
            } else {
                HistoryError::Read {
                    path: path.clone(),
                    source,
                }
            }
        };
        let file = std::fs::File::open(&path).map_err(read_err)?;
        let len = file.metadata().map_err(read_err)?.len();
        if len > MAX_RECORD_BYTES {
            return Err(HistoryError::Damaged {
                path,
                why: format!(
                    "it is {} long, more than a record can be ({})",
                    crate::format::bytes(len),
                    crate::format::bytes(MAX_RECORD_BYTES)
                ),
            });
        }
        let mut bytes = Vec::new();
        file.take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        let record: Record =
            serde_json::from_slice(&bytes).map_err(|source| HistoryError::Parse {
                path: path.clone(),
                source,
            })?;
        if record.id != id {
            return Err(HistoryError::Damaged {
                path,
                why: format!(
                    "its id {:?} is not its folder's name",
                    crate::sanitize::escape_str(&record.id)
                ),
            });
        }
        Ok(record)
    }

    /// Every readable record, newest first. Unreadable ones are skipped: one damaged
    /// folder must not hide the rest ([`History::list_all`] names them).
    pub fn list(&self) -> Result<Vec<Record>, HistoryError> {
        Ok(self.list_all()?.0)
    }

    /// Every readable record, newest first, and the folders holding damaged ones.
    pub fn list_all(&self) -> Result<(Vec<Record>, Vec<DamagedRecord>), HistoryError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()))
            }
            Err(source) => {
                return Err(HistoryError::Read {
                    path: self.root.clone(),
                    source,
                })
            }
        };
        let mut records = Vec::new();
        let mut damaged = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name();
            let shown = crate::sanitize::escape_str(&name.to_string_lossy());
            let Some(id) = name.to_str() else {
                damaged.push(DamagedRecord {
                    folder: shown,
                    why: "its name is not UTF-8".into(),
                });
                continue;
            };
            match self.load(id) {
                Ok(r) => records.push(r),
                // A folder without a record yet (a run writing its first one) is no damage.
                Err(HistoryError::NotFound(_)) => {}
                Err(e) => damaged.push(DamagedRecord {
                    folder: shown,
                    why: match e {
                        HistoryError::Damaged { why, .. } => why,
                        HistoryError::Parse { source, .. } => {
                            format!("record.json does not parse ({source})")
                        }
                        other => other.to_string(),
                    },
                }),
            }
        }
        records.sort_by(|a, b| b.started_at_ms.cmp(&a.started_at_ms).then(b.id.cmp(&a.id)));
        damaged.sort_by(|a, b| a.folder.cmp(&b.folder));
        Ok((records, damaged))
    }

    /// When the record was last saved (Unix ms): for a run killed without a word, the
    /// time of its last event (a running record is saved at least every second).
    pub fn last_saved_ms(&self, id: &str) -> Option<u64> {
        let path = self.dir(id).ok()?.join("record.json");
        let modified = std::fs::metadata(path).ok()?.modified().ok()?;
        let ms = modified.duration_since(UNIX_EPOCH).ok()?.as_millis();
        u64::try_from(ms).ok()
    }

    /// The full log of one stage, or None when the stage wrote none.
    pub fn read_log(&self, id: &str, stage: Stage) -> Result<Option<Vec<u8>>, HistoryError> {
        let path = self.log_path(id, stage)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(HistoryError::Read { path, source }),
        }
    }
}

/// A new freeze id: UTC time, slug and a short random part, sortable and path-safe.
pub fn new_id(slug: &str) -> String {
    let now = SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace([':', '-'], "");
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let rand = (nanos ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{stamp}-{slug}-{rand:04x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_list_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path());
        let mut a = Record::new("20261128T000000Z-a-0001", Kind::Freeze, "bot-bottle-a", "a");
        a.started_at_ms = 1;
        let mut b = Record::new("20261128T000001Z-b-0002", Kind::Export, "bot-bottle-b", "b");
        b.started_at_ms = 2;
        h.save(&a).unwrap();
        h.save(&b).unwrap();
        a.outcome = Outcome::Failed;
        h.save(&a).unwrap();
        assert_eq!(h.load(&a.id).unwrap().outcome, Outcome::Failed);
        let ids: Vec<_> = h.list().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, [b.id.clone(), a.id.clone()]);
        assert_eq!(
            h.load(&b.id).unwrap().stage(Stage::Build).status,
            StageStatus::Skipped
        );
        // No temp files are left beside the records.
        let leftovers: Vec<_> = std::fs::read_dir(h.dir(&a.id).unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn damaged_record_does_not_hide_others() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path());
        h.save(&Record::new("ok-1", Kind::Freeze, "bot-bottle-a", "a"))
            .unwrap();
        std::fs::create_dir_all(h.root().join("bad-1")).unwrap();
        std::fs::write(h.root().join("bad-1/record.json"), b"{half").unwrap();
        assert_eq!(h.list().unwrap().len(), 1);
        assert!(matches!(h.load("bad-1"), Err(HistoryError::Parse { .. })));
        let (_, damaged) = h.list_all().unwrap();
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0].folder, "bad-1");
    }

    #[test]
    fn a_record_whose_id_is_not_its_folder_is_damaged_and_never_saved_over_another() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path());
        let mut b = Record::new("run-b", Kind::Freeze, "bot-bottle-b", "b");
        b.outcome = Outcome::Succeeded;
        h.save(&b).unwrap();
        // Folder "run-a" holds a record claiming to be "run-b".
        let mut forged = Record::new("run-b", Kind::Freeze, "bot-bottle-a", "a");
        forged.outcome = Outcome::Running;
        std::fs::create_dir_all(h.root().join("run-a")).unwrap();
        std::fs::write(
            h.root().join("run-a/record.json"),
            serde_json::to_vec(&forged).unwrap(),
        )
        .unwrap();
        assert!(matches!(h.load("run-a"), Err(HistoryError::Damaged { .. })));
        let (records, damaged) = h.list_all().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].machine, "bot-bottle-b");
        assert_eq!(damaged.len(), 1);
        assert!(
            damaged[0].why.contains("not its folder"),
            "{:?}",
            damaged[0]
        );
    }

    #[test]
    fn an_oversized_record_is_damaged_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path());
        std::fs::create_dir_all(h.root().join("huge")).unwrap();
        let f = std::fs::File::create(h.root().join("huge/record.json")).unwrap();
        f.set_len(MAX_RECORD_BYTES + 1).unwrap();
        assert!(matches!(h.load("huge"), Err(HistoryError::Damaged { .. })));
    }

    /// A state folder on a full filesystem (a tmpfs of 64 KiB, filled): the save fails and
    /// leaves no `.record.json.*.tmp` behind. Needs root to mount.
    #[test]
    fn a_full_disk_leaves_no_temp_record() {
        // The effective uid, from procfs (nix's `user` feature is not enabled).
        let root = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
        if !root {
            eprintln!("skipping: mounting a tmpfs needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(mounted.success(), "mount a tmpfs");
        let h = History::new(dir.path());
        let mut rec = Record::new("full-1", Kind::Freeze, "bot-bottle-a", "a");
        h.save(&rec).unwrap();
        // Fill the rest of the filesystem, then make the record bigger than a block.
        let filler = dir.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        drop(f);
        rec.warnings = vec!["x".repeat(16 << 10)];
        let saved = h.save(&rec);
        let left: Vec<_> = std::fs::read_dir(h.dir("full-1").unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        let _ = std::process::Command::new("umount")
            .arg(dir.path())
            .status();
        assert!(saved.is_err(), "the save succeeded on a full disk");
        assert_eq!(left, [std::ffi::OsString::from("record.json")], "{left:?}");
    }

    #[test]
    fn ids_are_checked() {
        let h = History::new(Path::new("/nonexistent"));
        for bad in ["../x", "a/b", "", ".hidden", "a\u{1b}b"] {
            assert!(h.dir(bad).is_err(), "{bad:?}");
        }
        let id = new_id("web");
        assert!(h.dir(&id).is_ok(), "{id}");
        assert!(id.contains("-web-"));
    }
}

/// `45s`, `30m`, `2h`, `3d`, `1w` as milliseconds (for `history --since`).
pub fn parse_age(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} is not an age like 45m, 2h or 3d"))?;
    let secs = match unit.trim() {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return Err(format!("{text:?} is not an age like 45m, 2h or 3d")),
    };
    Ok(n.saturating_mul(secs).saturating_mul(1000))
}

/// Which records to show: every field set narrows the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// A slug or a full machine name.
    pub machine: Option<String>,
    /// Outcomes wanted (empty: all).
    pub outcomes: Vec<Outcome>,
    /// Started no earlier than this (Unix ms).
    pub since_ms: Option<u64>,
    pub kind: Option<Kind>,
}

impl RecordFilter {
    pub fn matches(&self, r: &Record) -> bool {
        if let Some(m) = &self.machine {
            if r.slug != *m && r.machine != *m {
                return false;
            }
        }
        if !self.outcomes.is_empty() && !self.outcomes.contains(&r.outcome) {
            return false;
        }
        if self.since_ms.is_some_and(|t| r.started_at_ms < t) {
            return false;
        }
        self.kind.is_none_or(|k| k == r.kind)
    }
}

/// How `history show` finds a record: `last`, an id, a unique prefix of one, or a slug
/// (its newest record). `records` are newest first.
pub fn resolve<'a>(records: &'a [Record], key: &str) -> Result<&'a Record, String> {
    if key == "last" {
        return records
            .first()
            .ok_or_else(|| "the history is empty".to_string());
    }
    if let Some(r) = records.iter().find(|r| r.id == key) {
        return Ok(r);
    }
    let by_prefix: Vec<&Record> = records.iter().filter(|r| r.id.starts_with(key)).collect();
    match by_prefix.len() {
        1 => return Ok(by_prefix[0]),
        0 => {}
        n => {
            let ids: Vec<&str> = by_prefix.iter().take(5).map(|r| r.id.as_str()).collect();
            return Err(format!(
                "{key:?} matches {n} records ({}{}); give more of the id",
                ids.join(", "),
                if n > 5 { ", …" } else { "" }
            ));
        }
    }
    records
        .iter()
        .find(|r| r.slug == key || r.machine == key)
        .ok_or_else(|| format!("no freeze with id, id prefix or machine {key:?} in the history"))
}

/// The record `r`'s content is compared with: the newest successful run of the same kind
/// on the same machine and host that started before it and has a content summary.
pub fn previous_success<'a>(records: &'a [Record], r: &Record) -> Option<&'a Record> {
    records
        .iter()
        .filter(|p| {
            p.id != r.id
                && p.kind == r.kind
                && p.machine == r.machine
                && p.host == r.host
                && p.started_at_ms < r.started_at_ms
                && matches!(
                    p.outcome,
                    Outcome::Succeeded | Outcome::SucceededWithWarnings
                )
                && p.content.is_some()
        })
        .max_by_key(|p| p.started_at_ms)
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    fn rec(id: &str, slug: &str, outcome: Outcome, at: u64) -> Record {
        let mut r = Record::new(id, Kind::Freeze, &format!("bot-bottle-{slug}"), slug);
        r.outcome = outcome;
        r.started_at_ms = at;
        r
    }

    #[test]
    fn the_previous_success_is_the_same_machines_newest_earlier_one_with_content() {
        let with = |mut r: Record| {
            r.content = Some(Default::default());
            r
        };
        let records = vec![
            with(rec("f5", "a", Outcome::Succeeded, 500)),
            with(rec("f4", "a", Outcome::Failed, 400)),
            with(rec("f3", "b", Outcome::Succeeded, 300)),
            rec("f2", "a", Outcome::Succeeded, 200),
            with(rec("f1", "a", Outcome::SucceededWithWarnings, 100)),
            with(rec("f0", "a", Outcome::Succeeded, 50)),
        ];
        let p = previous_success(&records, &records[0]).map(|r| r.id.as_str());
        assert_eq!(p, Some("f1"));
        assert!(previous_success(&records, &records[5]).is_none());
        let mut export = records[0].clone();
        export.kind = Kind::Export;
        assert!(previous_success(&records, &export).is_none());
    }

    #[test]
    fn records_are_found_by_last_id_prefix_and_slug() {
        let rs = vec![
            rec("20270102T000000Z-web-bbbb", "web", Outcome::Failed, 3),
            rec("20270101T000000Z-api-aaaa", "api", Outcome::Succeeded, 2),
            rec("20270101T000000Z-web-cccc", "web", Outcome::Succeeded, 1),
        ];
        assert_eq!(resolve(&rs, "last").unwrap().id, rs[0].id);
        assert_eq!(resolve(&rs, "20270101T000000Z-api").unwrap().id, rs[1].id);
        assert_eq!(resolve(&rs, "web").unwrap().id, rs[0].id);
        assert_eq!(resolve(&rs, "bot-bottle-api").unwrap().id, rs[1].id);
        let e = resolve(&rs, "20270101").unwrap_err();
        assert!(e.contains("matches 2 records"), "{e}");
        assert!(resolve(&rs, "nothing").is_err());
        assert!(resolve(&[], "last").is_err());
    }

    #[test]
    fn the_filter_narrows_by_machine_outcome_age_and_kind() {
        let r = rec("x", "web", Outcome::Failed, 5_000);
        let mut f = RecordFilter::default();
        assert!(f.matches(&r));
        f.machine = Some("web".into());
        assert!(f.matches(&r));
        f.machine = Some("bot-bottle-api".into());
        assert!(!f.matches(&r));
        f.machine = None;
        f.outcomes = vec![Outcome::Succeeded];
        assert!(!f.matches(&r));
        f.outcomes.push(Outcome::Failed);
        assert!(f.matches(&r));
        f.since_ms = Some(6_000);
        assert!(!f.matches(&r));
        f.since_ms = None;
        f.kind = Some(Kind::Export);
        assert!(!f.matches(&r));
        assert_eq!(parse_age("2h"), Ok(7_200_000));
        assert_eq!(parse_age("45m"), Ok(2_700_000));
        assert!(parse_age("soon").is_err());
    }
}
