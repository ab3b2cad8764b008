//! The ephemeral registry's life: spawned on a free loopback port with storage in the
//! freeze's private temp folder, waited for, and always stopped.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::process::GroupChild;

/// Binary names tried in order when none is given: upstream's, then Debian's.
pub const REGISTRY_BINARIES: &[&str] = &["registry", "docker-registry"];

/// How long a freshly spawned registry may take to answer `/v2/`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports tried before giving up when the chosen one turns out to be taken.
const PORT_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no registry binary found (tried {tried}); install Debian's docker-registry or upstream's registry, or pass --registry-bin / --registry HOST:PORT")]
    NotFound { tried: String },
    #[error("cannot start {bin}: {source}")]
    Spawn { bin: String, source: io::Error },
    #[error("registry {bin} did not become ready on {addr}: {why}; its log: {log}")]
    NotReady {
        bin: String,
        addr: SocketAddr,
        why: String,
        log: String,
    },
    #[error("cannot prepare the registry's folder {path}: {source}")]
    Folder { path: PathBuf, source: io::Error },
}

/// Finds the registry binary: the given one, else the first of [`REGISTRY_BINARIES`] on PATH.
pub fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, RegistryError> {
    if let Some(p) = explicit {
        return if is_executable(p) || which(p).is_some() {
            Ok(which(p).unwrap_or_else(|| p.to_path_buf()))
        } else {
            Err(RegistryError::NotFound {
                tried: p.display().to_string(),
            })
        };
    }
    REGISTRY_BINARIES
        .iter()
        .find_map(|b| which(Path::new(b)))
        .ok_or_else(|| RegistryError::NotFound {
            tried: REGISTRY_BINARIES.join(", "),
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn which(p: &Path) -> Option<PathBuf> {
    if p.components().count() > 1 {
        return is_executable(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| is_executable(c))
}

/// A registry we spawned. Dropping it kills it; [`SpawnedRegistry::stop`] does so and waits.
pub struct SpawnedRegistry {
    child: GroupChild,
    addr: SocketAddr,
    log_path: PathBuf,
    bin: PathBuf,
    config_path: PathBuf,
}

impl SpawnedRegistry {
    /// Starts `bin` on a free 127.0.0.1 port with storage and config in `dir` (which must
    /// be private to us) and waits until `/v2/` answers.
    /// `preferred` is tried first; when it is taken, a free port is chosen instead.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        preferred: Option<u16>,
    ) -> Result<SpawnedRegistry, RegistryError> {
        let mut last = None;
        for attempt in 0..PORT_ATTEMPTS {
            let wanted = preferred.filter(|p| attempt == 0 && port_is_free(*p));
            let port = match wanted {
                Some(p) => p,
                None => free_port().map_err(|source| RegistryError::Spawn {
                    bin: bin.display().to_string(),
                    source,
                })?,
            };
            match Self::start_on(bin, dir, port, attempt).await {
                Ok(r) => return Ok(r),
                // Another process may take the port between our probe and the registry's
                // bind; try a fresh one.
                Err(e @ RegistryError::NotReady { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(RegistryError::NotFound {
            tried: bin.display().to_string(),
        }))
    }

    async fn start_on(
        bin: &Path,
        dir: &Path,
        port: u16,
        attempt: usize,
    ) -> Result<SpawnedRegistry, RegistryError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let folder_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RegistryError::Folder { path, source }
        };
        let storage = dir.join("registry-storage");
        // The blobs are the guest's root: private, like the folder holding them.
        crate::private::create_dir_all(&storage).map_err(folder_err(&storage))?;
        let config_path = dir.join(format!("registry-{attempt}.yml"));
        std::fs::write(&config_path, config_yaml(&storage, addr))
            .map_err(folder_err(&config_path))?;
        let log_path = dir.join(format!("registry-{attempt}.log"));
        let log = std::fs::File::create(&log_path).map_err(folder_err(&log_path))?;
        let log_err = log.try_clone().map_err(folder_err(&log_path))?;

        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: umask is async-signal-safe and touches no memory of the parent. The
        // registry writes its blobs 0644 under the default umask; ours makes them 0600.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o077);
                Ok(())
            });
        }
        let child = GroupChild::spawn(&mut cmd).map_err(|source| RegistryError::Spawn {
            bin: bin.display().to_string(),
            source,
        })?;
        let mut reg = SpawnedRegistry {
            child,
            addr,
            log_path,
            bin: bin.to_path_buf(),
            config_path,
        };
        if let Err(why) = reg.wait_ready().await {
            reg.child.kill_and_wait().await;
            return Err(RegistryError::NotReady {
                bin: reg.bin.display().to_string(),
                addr,
                why,
                log: reg.log_tail(),
            });
        }
        Ok(reg)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.inner().try_wait() {
                return Err(format!("it exited with {status}"));
            }
            if v2_answers(self.addr).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no answer within {} s", READY_TIMEOUT.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The configuration file it was started with (`<bin> serve <config>`).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// `host:port` as the daemon and smolvm reach it on this host.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The registry's pid with its start time and executable, for the record: recovery
    /// after a crash kills only a process that still matches it.
    pub fn stamp(&self) -> Option<crate::proc_stamp::ProcessStamp> {
        crate::proc_stamp::ProcessStamp::of(self.child.id()?)
    }

    /// The last lines of the registry's own log, for error messages.
    pub fn log_tail(&self) -> String {
        read_tail(&self.log_path, 2048)
    }

    pub async fn stop(mut self) {
        self.child.kill_and_wait().await;
    }
}

fn read_tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) if bytes.trim_ascii().is_empty() => "<empty>".into(),
        Ok(bytes) => crate::sanitize::escape_bytes(&bytes[bytes.len().saturating_sub(max)..]),
        Err(e) => format!("<unreadable: {e}>"),
    }
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Config for CNCF distribution 2.x; paths quoted as JSON strings, which YAML accepts.
fn config_yaml(storage: &Path, addr: SocketAddr) -> String {
    let quoted = serde_json::to_string(&storage.to_string_lossy()).unwrap_or_default();
    format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {quoted}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n"
    )
}

/// Whether `GET http://ADDR/v2/` answers 200 — the registry API's version check.
pub async fn v2_answers(addr: SocketAddr) -> bool {
    let url = format!("http://{addr}/v2/");
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        matches!(agent.get(&url).call(), Ok(r) if r.status() == 200)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_binds_loopback_only() {
        let yaml = config_yaml(Path::new("/tmp/x y"), "127.0.0.1:5000".parse().unwrap());
        assert!(yaml.contains("addr: 127.0.0.1:5000"));
        assert!(yaml.contains("rootdirectory: \"/tmp/x y\""));
    }
}
