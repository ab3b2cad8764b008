//! What a freeze will need, checked before it is asked for: the parts the configured path
//! uses (Docker, a registry) and room for the archive and the artifact. The same probes as
//! the run's own pre-flight, answered as lines a front end can show; nothing is started.

use super::*;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckLevel {
    Ok,
    /// The freeze goes on, with less (no Docker for the native build) or at a risk.
    Warn,
    /// The freeze would fail.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreCheck {
    pub level: CheckLevel,
    pub text: String,
}

impl PreCheck {
    fn new(level: CheckLevel, text: impl Into<String>) -> PreCheck {
        PreCheck {
            level,
            text: text.into(),
        }
    }
}

/// Docker and the registry, for the path `cfg` configures: the native build needs Docker
/// only to load the image (and to publish it with `--push-to`); the Dockerfile build needs
/// it for everything; a registry is needed when the build is Docker's or this smolvm's
/// pack takes no archive.
pub async fn precheck_parts(cfg: &FreezeConfig) -> Vec<PreCheck> {
    use CheckLevel as L;
    let native = cfg.builder == Builder::Native;
    let (docker, caps) = tokio::join!(
        tokio::time::timeout(stages::DOCKER_PROBE, crate::docker::connect()),
        probes::capabilities(&cfg.smolvm, &cfg.state_dir)
    );
    let docker: Result<(), String> = match docker {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the Docker daemon at {} did not answer within {} s",
            crate::docker::host(),
            stages::DOCKER_PROBE.as_secs()
        )),
    };
    let mut out = Vec::new();
    match (&docker, native, &cfg.push_to) {
        (Ok(()), true, _) => out.push(PreCheck::new(
            L::Ok,
            format!(
                "Docker answers at {}: the image is loaded beside pack",
                crate::docker::host()
            ),
        )),
        (Ok(()), false, _) => out.push(PreCheck::new(
            L::Ok,
            format!(
                "Docker answers at {}: it builds the image",
                crate::docker::host()
            ),
        )),
        (Err(e), true, None) => out.push(PreCheck::new(
            L::Warn,
            format!("no Docker ({e}): the native build goes on without loading the image"),
        )),
        (Err(e), true, Some(target)) => out.push(PreCheck::new(
            L::Fail,
            format!("--push-to {target} publishes through the Docker daemon: {e}"),
        )),
        (Err(e), false, _) => out.push(PreCheck::new(
            L::Fail,
            format!("the Docker build needs the daemon: {e}"),
        )),
    }
    let pack_archive = match &caps {
        Ok(c) => c.pack_archive,
        Err(e) => {
            out.push(PreCheck::new(
                L::Fail,
                format!("cannot ask smolvm what it supports: {e}"),
            ));
            return out;
        }
    };
    if native && pack_archive {
        out.push(PreCheck::new(
            L::Ok,
            "smolvm packs from the archive: no registry needed",
        ));
        return out;
    }
    match registry_preflight(cfg).await {
        Ok(Some(bin)) => out.push(PreCheck::new(
            L::Ok,
            format!("registry: a throw-away one from {}", bin.display()),
        )),
        Ok(None) => out.push(PreCheck::new(
            L::Ok,
            format!(
                "registry: {} answers /v2/",
                match &cfg.registry {
                    RegistryChoice::Existing { addr } => addr.as_str(),
                    RegistryChoice::Spawn { .. } => "the registry",
                }
            ),
        )),
        Err(StageError::Failed(f)) => {
            out.push(PreCheck::new(L::Fail, format!("registry: {}", f.message)))
        }
        Err(StageError::Cancelled) => {}
    }
    out
}

/// Free space against what the freeze writes: the archive in the temp folder (about the
/// guest's used bytes), and the artifact in the state folder (up to as much again).
/// `same_disk`: both folders are on one filesystem ([`same_disk`]), which must hold both.
pub fn space_checks(
    tmp_dir: &Path,
    tmp_free: Option<u64>,
    state_dir: &Path,
    state_free: Option<u64>,
    estimate: Option<u64>,
    same_disk: bool,
) -> Vec<PreCheck> {
    use CheckLevel as L;
    let Some(need) = estimate else {
        return vec![PreCheck::new(
            L::Warn,
            "the guest's size is unknown: the freeze may run out of room",
        )];
    };
    let one = |what: &str, dir: &Path, free: Option<u64>| match free {
        None => PreCheck::new(
            L::Warn,
            format!("free space in the {what} ({}) is unknown", dir.display()),
        ),
        Some(free) if free < need => PreCheck::new(
            L::Warn,
            format!(
                "the {what} may be too small: {} free for ~{}",
                crate::format::bytes(free),
                crate::format::bytes(need)
            ),
        ),
        Some(free) => PreCheck::new(
            L::Ok,
            format!(
                "room enough in the {what}: {} free for ~{}",
                crate::format::bytes(free),
                crate::format::bytes(need)
            ),
        ),
    };
    // The same filesystem holds both: it needs room for the two.
    if same_disk {
        let both = need.saturating_mul(2);
        return vec![match tmp_free {
            None => one("temp and state folders", tmp_dir, None),
            Some(free) if free < both => PreCheck::new(
                L::Warn,
                format!(
                    "the temp and state folders share a disk that may be too small: {} free for ~{} (archive and artifact)",
                    crate::format::bytes(free),
                    crate::format::bytes(both)
                ),
            ),
            Some(free) => PreCheck::new(
                L::Ok,
                format!(
                    "room enough for the archive and the artifact: {} free for ~{}",
                    crate::format::bytes(free),
                    crate::format::bytes(both)
                ),
            ),
        }];
    }
    vec![
        one("temp folder", tmp_dir, tmp_free),
        one("state folder", state_dir, state_free),
    ]
}

/// Whether two folders (or their nearest existing parents) are on one filesystem.
pub fn same_disk(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let dev = |p: &Path| {
        p.ancestors()
            .find_map(|d| std::fs::metadata(d).ok())
            .map(|m| m.dev())
    };
    matches!((dev(a), dev(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_is_compared_with_the_estimate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let c = space_checks(p, Some(10), p, Some(10), Some(8), true);
        assert_eq!(c.len(), 1, "one disk: one line");
        assert_eq!(c[0].level, CheckLevel::Warn, "{c:?}");
        assert!(c[0].text.contains("archive and artifact"), "{c:?}");
        let c = space_checks(p, Some(100), p, Some(100), Some(8), true);
        assert_eq!(c[0].level, CheckLevel::Ok, "{c:?}");
        let c = space_checks(p, Some(100), p, Some(100), None, true);
        assert_eq!(c[0].level, CheckLevel::Warn, "{c:?}");
        // Two disks: two lines, each against the estimate.
        let c = space_checks(p, Some(100), Path::new("/proc"), Some(1), Some(8), false);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].level, CheckLevel::Ok);
        assert_eq!(c[1].level, CheckLevel::Warn);
        assert!(c[1].text.contains("state folder"), "{c:?}");
        assert!(same_disk(p, &p.join("not/made/yet")));
        assert!(!same_disk(p, Path::new("/proc")));
    }
}
