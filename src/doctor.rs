//! `bottle-freeze doctor`: what this host offers a freeze, one line per part, each ending
//! with ✓ or with what to do. The dashboard shows [`Report::summary`] when a part is
//! missing, and the versions in its title.

use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::sanitize::escape_str;
use crate::smolvm::argv;
use crate::smolvm::Smolvm;

/// One examined part of the host.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    /// Short and stable (`smolvm`, `exec-stream`, …): scripts read it from `--json`.
    pub name: &'static str,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do, when not ok.
    pub fix: Option<String>,
}

/// The versions of the parts, for the dashboard's title.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Versions {
    pub smolvm: Option<String>,
    pub docker: Option<String>,
    pub registry: Option<String>,
}

impl Versions {
    /// `smolvm 1.32.2 · Docker 20.10.24 · registry 2.8.2`, naming what is missing.
    pub fn line(&self) -> String {
        let part = |v: &Option<String>, missing: &str| v.clone().unwrap_or(missing.to_string());
        format!(
            "{} · {} · {}",
            part(&self.smolvm, "no smolvm"),
            part(&self.docker, "no Docker"),
            part(&self.registry, "no registry")
        )
    }
}

/// One configured smolvm host, as `doctor` found it (`--host`, `hosts`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostCheck {
    /// Its label.
    pub host: String,
    /// Where it is reached.
    pub address: String,
    /// It answered its machine list.
    pub ok: bool,
    /// smolvm's version there (`/health`), when it said.
    pub version: Option<String>,
    /// What was found: its machines, or why it did not answer (escaped).
    pub detail: String,
    /// What to do, when not ok.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub checks: Vec<Check>,
    pub versions: Versions,
    /// Every configured host, when hosts are configured.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostCheck>,
}

impl Report {
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok) && self.hosts.iter().all(|h| h.ok)
    }

    /// One line naming what is missing, or None when everything is there.
    pub fn summary(&self) -> Option<String> {
        let missing: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "missing on this host: {} · `bottle-freeze doctor` says what to do",
                missing.join(", ")
            )
        })
    }

    /// The text `bottle-freeze doctor` prints.
    pub fn render(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let end = match (&c.fix, c.ok) {
                (_, true) => "✓".to_string(),
                (Some(fix), false) => format!("✗ {fix}"),
                (None, false) => "✗".to_string(),
            };
            out.push_str(&format!("{:<width$}  {} {end}\n", c.name, c.detail));
        }
        for h in &self.hosts {
            let end = match (&h.fix, h.ok) {
                (_, true) => "✓".to_string(),
                (Some(fix), false) => format!("✗ {fix}"),
                (None, false) => "✗".to_string(),
            };
            let version = h
                .version
                .as_deref()
                .map(|v| format!("smolvm {v} · "))
                .unwrap_or_default();
            out.push_str(&format!(
                "host {}  {} · {version}{} {end}\n",
                h.host, h.address, h.detail
            ));
        }
        out
    }
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
        fix: fix.filter(|_| !ok),
    }
}

/// The device smolvm opens to start a VM.
pub const KVM: &str = "/dev/kvm";

/// What doctor looks at.
pub struct Inputs<'a> {
    pub smolvm: &'a Smolvm,
    pub state_dir: &'a Path,
    pub registry_bin: Option<&'a Path>,
    pub kvm: &'a Path,
}

/// Examines the host; every part is looked at even when an earlier one is missing.
pub async fn examine(inp: &Inputs<'_>) -> Report {
    let mut checks = Vec::new();
    let mut versions = Versions::default();

    let smolvm = inp.smolvm;
    let program = crate::freeze::probes::resolve(smolvm.program());
    let shown = program
        .as_deref()
        .unwrap_or(smolvm.program())
        .display()
        .to_string();
    let version = query_text(smolvm, &argv::version()).await;
    let found = version.is_ok();
    match &version {
        Ok(v) => {
            let first = v.lines().next().unwrap_or("").trim();
            versions.smolvm = Some(escape_str(first));
            checks.push(check(
                "smolvm",
                true,
                format!("{shown}: {}", escape_str(first)),
                None,
            ));
        }
        Err(e) => checks.push(check(
            "smolvm",
            false,
            format!("{shown}: {e}"),
            Some(
                "install smolvm (`pip install smolmachines` ships it as smol/smol-vmm) and point \
                 --smolvm or BOTTLE_FREEZE_SMOLVM at it"
                    .into(),
            ),
        )),
    }

    if found {
        let probes = [
            argv::help(&[]),
            argv::help(&["machine", "exec"]),
            argv::help(&["pack", "create"]),
        ];
        let (top, exec, pack) = tokio::join!(
            query_text(smolvm, &probes[0]),
            query_text(smolvm, &probes[1]),
            query_text(smolvm, &probes[2]),
        );
        let stream = exec.as_deref().is_ok_and(|t| t.contains("--stream"));
        checks.push(check(
            "exec-stream",
            stream,
            if stream {
                "machine exec --stream: live progress while tar runs"
            } else {
                "machine exec has no --stream: output arrives only when tar ends"
            },
            Some("upgrade smolvm for live progress (the freeze still works)".into()),
        ));
        let cap = program.as_deref().and_then(|p| carries_exec_cap(p).ok());
        checks.push(check(
            "exec-cap",
            true,
            match cap {
                Some(true) => "exec output is capped at 11 MiB: larger roots go through a guest file and machine cp",
                Some(false) => "no exec output cap found: the root streams through the pipe",
                None => "exec output cap unknown: --transport auto falls back to the guest file when hit",
            },
            None,
        ));
        let archive = pack
            .as_deref()
            .is_ok_and(crate::freeze::probes::takes_archive);
        checks.push(check(
            "archive-pack",
            true,
            if archive {
                "pack create --image takes a docker save archive: no registry needed"
            } else {
                "pack create takes registry references only: the image goes through a loopback registry"
            },
            None,
        ));
        let json = top.as_deref().is_ok_and(|t| t.contains("--error-format"));
        checks.push(check(
            "error-format-json",
            true,
            if json {
                "--error-format json: failures are told apart by their stable code"
            } else {
                "no --error-format json: failures are told apart by their wording"
            },
            None,
        ));
    }

    match crate::docker::connect().await {
        Ok(d) => {
            let v = d
                .version()
                .await
                .ok()
                .and_then(|v| v.version)
                .unwrap_or_else(|| "?".into());
            versions.docker = Some(format!("Docker {}", escape_str(&v)));
            checks.push(check(
                "docker",
                true,
                format!("Docker {} at {}", escape_str(&v), crate::docker::host()),
                None,
            ));
        }
        Err(e) => checks.push(check(
            "docker",
            false,
            format!("not reachable: {e}"),
            Some(
                "start dockerd or set DOCKER_HOST / --docker-host (needed to build with Docker and \
                 to load the frozen image into it)"
                    .into(),
            ),
        )),
    }

    match crate::registry::find_binary(inp.registry_bin) {
        Ok(bin) => {
            let v = registry_version(&bin).await;
            versions.registry = Some(v.clone().unwrap_or_else(|| "registry".into()));
            checks.push(check(
                "registry",
                true,
                format!(
                    "{}{}",
                    bin.display(),
                    v.map(|v| format!(": {v}")).unwrap_or_default()
                ),
                None,
            ));
        }
        Err(e) => checks.push(check(
            "registry",
            false,
            e.to_string(),
            Some(
                "install Debian's docker-registry (or distribution's `registry`) or point \
                 --registry-bin at it (needed when smolvm packs from a registry)"
                    .into(),
            ),
        )),
    }

    checks.push(state_dir_check(inp.state_dir));
    // The test double runs no VM, so the hypervisor is not its concern.
    let sim = versions
        .smolvm
        .as_deref()
        .is_some_and(|v| v.starts_with("smolvm-sim "));
    checks.push(if sim {
        check("kvm", true, "not needed: smolvm-sim runs no VM", None)
    } else {
        kvm_check(inp.kvm)
    });
    Report {
        checks,
        versions,
        hosts: Vec::new(),
    }
}

/// stdout (else stderr) of a query that must succeed.
async fn query_text(smolvm: &Smolvm, args: &[String]) -> Result<String, String> {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = smolvm.query_ok(&refs).await.map_err(|e| match e {
        // The fix line says what to do; the detail keeps to what happened.
        crate::smolvm::SmolvmError::Spawn { source, .. } => source.to_string(),
        e => e.to_string(),
    })?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// The message smolvm's agent ends a capped exec with is compiled into every smolvm
/// that has the cap (src/agent/client.rs); its help does not mention the cap.
const CAP_TEXT: &[u8] = b"byte cap; exec terminated";

fn carries_exec_cap(program: &Path) -> std::io::Result<bool> {
    let finder = memchr::memmem::Finder::new(CAP_TEXT);
    let mut file = std::fs::File::open(program)?;
    let mut buf = vec![0u8; 1 << 20];
    let keep = CAP_TEXT.len() - 1;
    let mut filled = 0;
    loop {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(false);
        }
        let end = filled + n;
        if finder.find(&buf[..end]).is_some() {
            return Ok(true);
        }
        // The text may straddle two reads: keep the tail of this one.
        let tail = end.saturating_sub(keep);
        buf.copy_within(tail..end, 0);
        filled = end - tail;
    }
}

async fn registry_version(bin: &Path) -> Option<String> {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::process::Command::new(bin)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `docker-registry github.com/docker/distribution 2.8.2+ds1`: the last word.
    let v = text.split_whitespace().last()?;
    Some(format!(
        "registry {}",
        escape_str(v.trim_start_matches('v'))
    ))
}

fn state_dir_check(dir: &Path) -> Check {
    let shown = dir.display().to_string();
    // The nearest folder that exists: the state dir is made on first use.
    let existing = dir.ancestors().find(|a| a.is_dir());
    let free = existing.and_then(|d| {
        let st = nix::sys::statvfs::statvfs(d).ok()?;
        Some(st.blocks_available() as u64 * st.fragment_size() as u64)
    });
    let writable =
        existing.is_some_and(|d| nix::unistd::access(d, nix::unistd::AccessFlags::W_OK).is_ok());
    match (free, writable) {
        (Some(free), true) if free >= 1 << 30 => check(
            "state-dir",
            true,
            format!("{shown}: {} free", crate::format::bytes(free)),
            None,
        ),
        (Some(free), true) => check(
            "state-dir",
            false,
            format!("{shown}: only {} free", crate::format::bytes(free)),
            Some("free some space there or point --state-dir elsewhere: a freeze holds the root's archive and image".into()),
        ),
        _ => check(
            "state-dir",
            false,
            format!("{shown}: not writable"),
            Some("point --state-dir or BOTTLE_FREEZE_STATE_DIR at a folder you can write".into()),
        ),
    }
}

/// smolvm's VMM runs as a per-VM uid, so `/dev/kvm` must be open to others (0666, as
/// udev sets it on most distributions); at 0600 every start fails with KvmOpen(13).
fn kvm_check(kvm: &Path) -> Check {
    use std::os::unix::fs::PermissionsExt;
    let shown = kvm.display().to_string();
    match std::fs::metadata(kvm) {
        Err(_) => check(
            "kvm",
            false,
            format!("no {shown}: no VM can run on this host"),
            Some(
                "enable KVM (or nested virtualization) to run the bottles; listing still works"
                    .into(),
            ),
        ),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            let ok = mode & 0o006 == 0o006;
            check(
                "kvm",
                ok,
                if ok {
                    format!("{shown} mode {mode:04o}: smolvm can start VMs")
                } else {
                    format!("{shown} mode {mode:04o}: smolvm's VMM (a per-VM uid) cannot open it, so no VM starts here")
                },
                Some(format!(
                    "`chmod 0666 {shown}` (or a udev rule) lets smolvm start VMs"
                )),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_mode_decides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kvm");
        std::fs::write(&f, b"").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = kvm_check(&f);
        assert!(
            !c.ok && c.fix.as_deref().unwrap().contains("chmod 0666"),
            "{c:?}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(kvm_check(&f).ok);
        let gone = kvm_check(&dir.path().join("none"));
        assert!(!gone.ok && gone.detail.starts_with("no "));
    }

    #[test]
    fn cap_text_is_found_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin");
        let mut data = vec![b'x'; (1 << 20) - 5];
        data.extend_from_slice(b"11534336 byte cap; exec terminated (output truncated)");
        data.extend_from_slice(&[0u8; 100]);
        std::fs::write(&f, &data).unwrap();
        assert!(carries_exec_cap(&f).unwrap());
        std::fs::write(&f, vec![b'x'; 3 << 20]).unwrap();
        assert!(!carries_exec_cap(&f).unwrap());
    }

    #[test]
    fn summary_and_render() {
        let r = Report {
            checks: vec![
                check("smolvm", true, "smolvm 1.32.2", None),
                check("kvm", false, "mode 0600", Some("chmod".into())),
            ],
            versions: Versions {
                smolvm: Some("smolvm 1.32.2".into()),
                ..Versions::default()
            },
            hosts: Vec::new(),
        };
        assert!(!r.all_ok());
        assert_eq!(
            r.summary().unwrap(),
            "missing on this host: kvm · `bottle-freeze doctor` says what to do"
        );
        assert_eq!(
            r.render(),
            "smolvm  smolvm 1.32.2 ✓\nkvm     mode 0600 ✗ chmod\n"
        );
        assert_eq!(r.versions.line(), "smolvm 1.32.2 · no Docker · no registry");
    }
}
