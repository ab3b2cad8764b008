//! The sim's state under `$SMOLVM_SIM_HOME`: home-wide settings and one record per machine.
//!
//! Layout: `sim.json` (settings), `machines/m-<hex of name>.json` (records), `roots/m-<hex>/`
//! (roots the sim made itself). Names are hex-encoded so hostile names (`../x`, spaces,
//! newlines) never become paths.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Failure};
use crate::units::hex;

/// Machine states as smolvm's `RecordState` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    Created,
    Running,
    Stopped,
    Failed,
    Unreachable,
    Frozen,
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            MachineState::Created => "created",
            MachineState::Running => "running",
            MachineState::Stopped => "stopped",
            MachineState::Failed => "failed",
            MachineState::Unreachable => "unreachable",
            MachineState::Frozen => "frozen",
        };
        f.write_str(s)
    }
}

/// Per-machine fault injection, set with `sim set` and cleared with `sim clear`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviours {
    pub exit_silent: Option<i32>,
    pub exit_after_stream: Option<i32>,
    pub stderr_flood: Option<u64>,
    pub stderr_hostile: bool,
    pub die_after: Option<u64>,
    pub truncate: bool,
    /// The archive's first header has a bad checksum.
    #[serde(default)]
    pub corrupt_header: bool,
    pub hang_after: Option<u64>,
    pub throttle: Option<u64>,
    pub synthetic_size: Option<u64>,
    pub df_avail_kb: Option<u64>,
}

/// One machine: the fields `machine ls --json` shows, its root on the host, and its faults.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineRecord {
    pub name: String,
    pub state: MachineState,
    pub cpus: u8,
    pub memory_mib: u32,
    pub pid: Option<u32>,
    pub mounts: usize,
    pub ports: usize,
    pub created_at: u64,
    pub storage_gb: Option<u64>,
    pub overlay_gb: Option<u64>,
    pub image: Option<String>,
    pub network: bool,
    pub ephemeral: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How the VM process last ended (smolvm 1.32 keeps it, e.g. after a failed start).
    #[serde(default)]
    pub last_exit: Option<LastExit>,
    /// Why the machine is in its state, when smolvm says.
    #[serde(default)]
    pub state_reason: Option<String>,
    /// The machine's filesystem as the guest sees it, rooted at `/`.
    pub root: PathBuf,
    /// True when the sim made `root` itself (and may delete it on `sim rm`).
    #[serde(default)]
    pub root_owned: bool,
    #[serde(default)]
    pub sim: Behaviours,
}

/// smolvm 1.32's `last_exit` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastExit {
    pub cause: String,
    pub exit_code: i32,
    pub exited_at_unix_ms: u64,
    pub pid: u32,
}

impl MachineRecord {
    /// Mark the machine running the way `machine start` would (exec and cp start it first).
    pub fn start(&mut self) {
        self.state = MachineState::Running;
        self.pid = Some(std::process::id());
    }
}

/// Home-wide settings (`sim config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// smolvm ≥ 2026-07 stops an exec past 11 MiB of output.
    pub exec_cap: bool,
    /// Whether `machine exec` knows `--stream` (off models an old smolvm).
    pub stream_flag: bool,
    /// Whether the CLI knows `--error-format` (off models an older smolvm without it).
    pub error_format_flag: bool,
    pub ls_hang_secs: u64,
    pub ls_fail: Option<String>,
    pub pack_fail: Option<String>,
    /// `pack create` waits this long before pulling (to cancel a freeze during pack).
    pub pack_delay_secs: u64,
    /// `pack create --image` also takes a `docker save` archive, `-` or a rootfs directory
    /// (smolvm 1.32); off models smolvm 1.9, which takes only a registry reference.
    pub pack_archive: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            exec_cap: true,
            stream_flag: true,
            error_format_flag: true,
            ls_hang_secs: 0,
            ls_fail: None,
            pack_fail: None,
            pack_delay_secs: 0,
            pack_archive: true,
        }
    }
}

impl Config {
    /// Apply `SMOLVM_SIM_EXEC_CAP` / `SMOLVM_SIM_STREAM_FLAG` on top of the stored settings.
    pub fn with_env_overrides(mut self) -> Result<Config, Failure> {
        if let Some(v) = env_switch("SMOLVM_SIM_EXEC_CAP")? {
            self.exec_cap = v;
        }
        if let Some(v) = env_switch("SMOLVM_SIM_STREAM_FLAG")? {
            self.stream_flag = v;
        }
        if let Some(v) = env_switch("SMOLVM_SIM_ERROR_FORMAT_FLAG")? {
            self.error_format_flag = v;
        }
        if let Some(v) = env_switch("SMOLVM_SIM_PACK_ARCHIVE")? {
            self.pack_archive = v;
        }
        Ok(self)
    }
}

fn env_switch(var: &str) -> Result<Option<bool>, Failure> {
    match std::env::var(var) {
        Err(_) => Ok(None),
        Ok(v) => parse_switch(&v)
            .map(Some)
            .map_err(|_| Failure::sim(format!("{var} must be 'on' or 'off', not '{v}'"))),
    }
}

/// `on`/`off` (also `1`/`0`, `true`/`false`).
pub fn parse_switch(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "1" | "true" | "yes" => Ok(true),
        "off" | "0" | "false" | "no" => Ok(false),
        _ => Err(format!("expected 'on' or 'off', got '{v}'")),
    }
}

/// The sim's state directory.
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// `$SMOLVM_SIM_HOME`, created if missing; the sim refuses to guess a location.
    pub fn from_env() -> Result<Home, Failure> {
        let dir = std::env::var_os("SMOLVM_SIM_HOME")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Failure::sim(
                    "SMOLVM_SIM_HOME is not set; point it at a directory for the sim's machines",
                )
            })?;
        let dir = PathBuf::from(dir);
        fs::create_dir_all(dir.join("machines")).context(|| format!("create {}", dir.display()))?;
        Ok(Home { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("sim.json")
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.dir
            .join("machines")
            .join(format!("m-{}.json", hex(name.as_bytes())))
    }

    /// Where the sim makes a root for a machine created without `--root`.
    pub fn default_root(&self, name: &str) -> PathBuf {
        // Prefixed so even the empty name gets its own directory.
        self.dir
            .join("roots")
            .join(format!("m-{}", hex(name.as_bytes())))
    }

    /// Stored settings without env overrides (what `sim config` edits).
    pub fn stored_config(&self) -> Result<Config, Failure> {
        match fs::read(self.config_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .context(|| format!("parse {}", self.config_path().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Failure::sim(format!(
                "read {}: {e}",
                self.config_path().display()
            ))),
        }
    }

    /// Settings in force: stored ones with env overrides applied.
    pub fn config(&self) -> Result<Config, Failure> {
        self.stored_config()?.with_env_overrides()
    }

    pub fn save_config(&self, cfg: &Config) -> Result<(), Failure> {
        let bytes = serde_json::to_vec_pretty(cfg).context(|| "serialize settings".into())?;
        write_atomic(&self.config_path(), &bytes)
    }

    pub fn load(&self, name: &str) -> Result<Option<MachineRecord>, Failure> {
        let path = self.record_path(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .context(|| format!("parse {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::sim(format!("read {}: {e}", path.display()))),
        }
    }

    pub fn save(&self, rec: &MachineRecord) -> Result<(), Failure> {
        let bytes = serde_json::to_vec_pretty(rec).context(|| "serialize record".into())?;
        write_atomic(&self.record_path(&rec.name), &bytes)
    }

    pub fn remove(&self, name: &str) -> Result<(), Failure> {
        let path = self.record_path(name);
        fs::remove_file(&path).context(|| format!("remove {}", path.display()))
    }

    /// All records, sorted by name.
    pub fn list(&self) -> Result<Vec<MachineRecord>, Failure> {
        let dir = self.dir.join("machines");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).context(|| format!("read {}", dir.display()))? {
            let path = entry.context(|| format!("read {}", dir.display()))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = fs::read(&path).context(|| format!("read {}", path.display()))?;
            let rec: MachineRecord =
                serde_json::from_slice(&bytes).context(|| format!("parse {}", path.display()))?;
            out.push(rec);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Write via a temp file and rename, so a concurrent reader never sees half a record.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let dir = path
        .parent()
        .ok_or_else(|| Failure::sim(format!("no parent for {}", path.display())))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).context(|| format!("write {}", path.display()))?;
    tmp.write_all(bytes)
        .context(|| format!("write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| Failure::sim(format!("write {}: {}", path.display(), e.error)))?;
    Ok(())
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
