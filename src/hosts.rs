//! The fleet: which smolvm hosts to look at, and their machines, each host asked on its
//! own with its own timeout so a slow or dead one delays none of the others.
//!
//! A host is `local` (the smolvm CLI, as without hosts), `unix:///path/to/smolvm.sock` or
//! `http://127.0.0.1:PORT` (smolvm's API, `smolvm serve start`), optionally `LABEL=` first.
//! smolvm's API has no authentication, so a plain `http://` host must be loopback (an SSH
//! forward) unless the operator says `--insecure-remote`. No UI in here.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::machines::{self, Machine};
use crate::names::Slug;
use crate::serve_client::{Endpoint, Health, MachineInfo, ServeClient};
use crate::smolvm::Smolvm;

/// The label of the local host.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTarget {
    /// The smolvm CLI on this machine.
    Local,
    /// smolvm's HTTP API.
    Api(Endpoint),
}

/// One host: a label (used in lists, in `HOST/SLUG` and as a folder of the state dir)
/// and where it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub label: Slug,
    pub target: HostTarget,
}

impl Host {
    pub fn local() -> Host {
        Host {
            label: Slug::parse(LOCAL).unwrap_or_else(|_| unreachable!("'local' is a valid slug")),
            target: HostTarget::Local,
        }
    }

    pub fn is_local(&self) -> bool {
        self.target == HostTarget::Local
    }

    /// Where it is reached, for people.
    pub fn address(&self) -> String {
        match &self.target {
            HostTarget::Local => "smolvm CLI".into(),
            HostTarget::Api(e) => e.to_string(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("host {spec:?}: {why}")]
    Invalid { spec: String, why: String },
    #[error(
        "host {spec:?}: refusing plain http to {host}, which is not loopback: smolvm's API has \
         no authentication, so anyone on that network could run commands in its machines. \
         Reach it through an SSH forward instead (ssh -N -L 7070:/run/smolvm.sock HOST, then \
         --host http://127.0.0.1:7070), or pass --insecure-remote if that network is yours alone"
    )]
    NotLoopback { spec: String, host: String },
    #[error("two hosts are labelled {0:?}; give one a label of its own (LABEL=URL)")]
    Duplicate(String),
}

/// Parses `[LABEL=]local|unix:///PATH|http://HOST:PORT`.
pub fn parse(spec: &str, insecure_remote: bool) -> Result<Host, HostError> {
    let invalid = |why: &str| HostError::Invalid {
        spec: spec.to_string(),
        why: why.to_string(),
    };
    let spec_t = spec.trim();
    // A label never contains ':' or '/', a target always starts with a scheme or is `local`.
    let (label, target) = match spec_t.split_once('=') {
        Some((l, t)) if !l.contains(':') && !l.contains('/') => (Some(l.trim()), t.trim()),
        _ => (None, spec_t),
    };
    let (target, default_label) = if target == LOCAL {
        (HostTarget::Local, LOCAL.to_string())
    } else if let Some(path) = target.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(invalid(
                "a unix socket needs an absolute path (unix:///path)",
            ));
        }
        let p = PathBuf::from(path);
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        (HostTarget::Api(Endpoint::Unix(p)), stem)
    } else if let Some(rest) = target.strip_prefix("http://") {
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') || authority.contains('@') {
            return Err(invalid("an http host is http://HOST:PORT, without a path"));
        }
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| invalid("an http host needs a port (http://127.0.0.1:PORT)"))?;
        port.parse::<u16>()
            .map_err(|_| invalid("the port is not a number from 1 to 65535"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() {
            return Err(invalid("the host is empty"));
        }
        if !insecure_remote && !is_loopback(bare) {
            return Err(HostError::NotLoopback {
                spec: spec.to_string(),
                host: bare.to_string(),
            });
        }
        let name = match bare.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) if v6.is_loopback() => "localhost".to_string(),
            _ => bare
                .replace(':', "-")
                .trim_matches('-')
                .to_ascii_lowercase(),
        };
        let label = format!("{name}-{port}");
        (HostTarget::Api(Endpoint::Tcp(authority.to_string())), label)
    } else if target.starts_with("https://") {
        return Err(invalid(
            "https is not supported: smolvm serves plain HTTP; use an SSH forward",
        ));
    } else {
        return Err(invalid(
            "expected local, unix:///PATH or http://HOST:PORT, optionally LABEL= first",
        ));
    };
    let label = match label {
        Some(l) => Slug::parse(l).map_err(|why| invalid(&format!("bad label: {why}")))?,
        None => Slug::parse(&default_label).map_err(|why| {
            invalid(&format!(
                "cannot make a label from it ({why}); write LABEL= before it"
            ))
        })?,
    };
    Ok(Host { label, target })
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Parses every spec; labels must be unique. An empty list stays empty (no fleet).
pub fn parse_all(specs: &[String], insecure_remote: bool) -> Result<Vec<Host>, HostError> {
    let mut out: Vec<Host> = Vec::new();
    for s in specs {
        let h = parse(s, insecure_remote)?;
        if out.iter().any(|o| o.label == h.label) {
            return Err(HostError::Duplicate(h.label.to_string()));
        }
        out.push(h);
    }
    Ok(out)
}

/// What one host said when asked for its machines.
#[derive(Debug, Clone)]
pub struct HostListing {
    pub host: Host,
    /// `/health` of an API host (None for local, or when health alone failed).
    pub health: Option<Health>,
    /// The machines, or why the host could not be listed (one line, escaped).
    pub machines: Result<Vec<Machine>, String>,
    pub took: Duration,
    pub at: SystemTime,
}

impl HostListing {
    pub fn reachable(&self) -> bool {
        self.machines.is_ok()
    }
}

/// smolvm's API `MachineInfo` as the machine list's `Machine` (the API says `stopped`
/// where the CLI says `created`; both mean "not running").
pub fn machine_from_api(m: MachineInfo) -> Machine {
    Machine {
        name: m.name,
        state: Some(m.state),
        cpus: m.cpus,
        memory_mib: m.memory_mb,
        pid: m.pid,
        created_at: m.created_at,
        image: m.image,
        // The API's MachineInfo carries neither (1.32.2's document has no `lastExit`).
        last_exit: None,
        state_reason: None,
    }
}

/// A client for an API host, with `timeout` for each request.
pub fn client(host: &Host, timeout: Duration) -> Option<ServeClient> {
    match &host.target {
        HostTarget::Local => None,
        HostTarget::Api(e) => Some(ServeClient::new(e.clone(), timeout)),
    }
}

/// Lists one host: the CLI for `local`, the API (health and machines at once) otherwise.
pub async fn list_host(host: &Host, smolvm: &Smolvm, timeout: Duration) -> HostListing {
    let started = Instant::now();
    let (health, machines) = match client(host, timeout) {
        None => {
            let m = machines::list(&smolvm.clone().with_query_timeout(timeout))
                .await
                .map_err(|e| crate::sanitize::escape_str(&e.to_string()));
            (None, m)
        }
        Some(c) => {
            let (h, m) = tokio::join!(c.health(), c.machines());
            let m = m
                .map(|ms| ms.into_iter().map(machine_from_api).collect())
                .map_err(|e| crate::sanitize::escape_str(&e.to_string()));
            (h.ok(), m)
        }
    };
    HostListing {
        host: host.clone(),
        health,
        machines,
        took: started.elapsed(),
        at: SystemTime::now(),
    }
}

/// Lists every host concurrently; the answer keeps the hosts' order.
pub async fn list_hosts(hosts: &[Host], smolvm: &Smolvm, timeout: Duration) -> Vec<HostListing> {
    futures_util::future::join_all(hosts.iter().map(|h| list_host(h, smolvm, timeout))).await
}

/// Lists every host on a task of its own and sends each answer as it arrives, so a slow
/// host holds back only its own rows (what a live view refreshes from). Dropping the
/// receiver lets the remaining tasks end at their next answer or timeout.
pub fn spawn_listings(
    hosts: Vec<Host>,
    smolvm: Smolvm,
    timeout: Duration,
) -> tokio::sync::mpsc::UnboundedReceiver<HostListing> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for host in hosts {
        let (tx, smolvm) = (tx.clone(), smolvm.clone());
        tokio::spawn(async move {
            let _ = tx.send(list_host(&host, &smolvm, timeout).await);
        });
    }
    rx
}

/// `HOST/SLUG` or a bare `SLUG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Option<Slug>,
    pub slug: String,
}

pub fn split_target(arg: &str) -> Result<Target, String> {
    match arg.split_once('/') {
        Some((h, s)) => {
            let host = Slug::parse(h).map_err(|why| format!("bad host label in {arg:?}: {why}"))?;
            Ok(Target {
                host: Some(host),
                slug: s.to_string(),
            })
        }
        None => Ok(Target {
            host: None,
            slug: arg.to_string(),
        }),
    }
}

/// Which host a freeze of `target` means: the named one; for a bare slug, `local` when it
/// is configured and has the machine, else the only host that has it.
pub fn choose_host<'a>(
    target: &Target,
    machine_name: &str,
    listings: &'a [HostListing],
) -> Result<&'a HostListing, String> {
    if let Some(label) = &target.host {
        return listings
            .iter()
            .find(|l| &l.host.label == label)
            .ok_or_else(|| {
                let known: Vec<String> = listings.iter().map(|l| l.host.to_string()).collect();
                format!(
                    "no host is labelled {label:?} (hosts: {})",
                    known.join(", ")
                )
            });
    }
    let has = |l: &&HostListing| {
        l.machines
            .as_ref()
            .is_ok_and(|ms| ms.iter().any(|m| m.name == machine_name))
    };
    if let Some(local) = listings.iter().filter(|l| l.host.is_local()).find(has) {
        return Ok(local);
    }
    let with: Vec<&HostListing> = listings.iter().filter(has).collect();
    match with.as_slice() {
        [one] => Ok(one),
        [] => {
            let down: Vec<String> = listings
                .iter()
                .filter(|l| !l.reachable())
                .map(|l| l.host.to_string())
                .collect();
            let mut msg = format!("no host has a machine named {machine_name:?}");
            if !down.is_empty() {
                msg.push_str(&format!(" (unreachable: {})", down.join(", ")));
            }
            Err(msg)
        }
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|l| format!("{}/{}", l.host, target.slug))
                .collect();
            Err(format!(
                "{} is on several hosts; name one: {}",
                target.slug,
                names.join(" or ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_kinds_with_labels() {
        let l = parse("local", false).unwrap();
        assert!(l.is_local());
        assert_eq!(l.label.as_str(), "local");
        let u = parse("unix:///run/user/1/smolvm.sock", false).unwrap();
        assert_eq!(u.label.as_str(), "smolvm");
        assert_eq!(
            u.target,
            HostTarget::Api(Endpoint::Unix("/run/user/1/smolvm.sock".into()))
        );
        let h = parse("build=http://127.0.0.1:7070", false).unwrap();
        assert_eq!(h.label.as_str(), "build");
        assert_eq!(
            h.target,
            HostTarget::Api(Endpoint::Tcp("127.0.0.1:7070".into()))
        );
        assert_eq!(
            parse("http://[::1]:9", false).unwrap().label.as_str(),
            "localhost-9"
        );
        assert_eq!(
            parse("http://localhost:9", false).unwrap().label.as_str(),
            "localhost-9"
        );
    }

    #[test]
    fn refuses_remote_http_unless_insecure() {
        let e = parse("http://10.0.0.5:7070", false).unwrap_err();
        assert!(matches!(e, HostError::NotLoopback { .. }));
        let msg = e.to_string();
        assert!(msg.contains("no authentication"), "{msg}");
        assert!(msg.contains("--insecure-remote"), "{msg}");
        assert!(msg.contains("ssh -N -L"), "{msg}");
        assert!(parse("http://10.0.0.5:7070", true).is_ok());
        assert!(parse("http://build.example:7070", false).is_err());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "unix://relative.sock",
            "http://127.0.0.1",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:80/api",
            "https://127.0.0.1:443",
            "ssh://x",
            "Bad=local",
            "../x=local",
        ] {
            assert!(parse(bad, false).is_err(), "{bad} parsed");
        }
        let e = parse_all(&["local".into(), "local".into()], false).unwrap_err();
        assert_eq!(e, HostError::Duplicate("local".into()));
    }

    fn listing(label: &str, names: &[&str], up: bool) -> HostListing {
        let host = if label == LOCAL {
            Host::local()
        } else {
            parse(&format!("{label}=http://127.0.0.1:1"), false).unwrap()
        };
        HostListing {
            host,
            health: None,
            machines: if up {
                Ok(names
                    .iter()
                    .map(|n| Machine {
                        name: n.to_string(),
                        ..Machine::default()
                    })
                    .collect())
            } else {
                Err("down".into())
            },
            took: Duration::ZERO,
            at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn bare_slug_means_local_or_the_only_host() {
        let ls = vec![
            listing("local", &["bot-bottle-a"], true),
            listing("b", &["bot-bottle-a", "bot-bottle-x"], true),
            listing("c", &["bot-bottle-x", "bot-bottle-y"], true),
            listing("d", &[], false),
        ];
        let t = |s: &str| split_target(s).unwrap();
        assert_eq!(
            choose_host(&t("a"), "bot-bottle-a", &ls)
                .unwrap()
                .host
                .label
                .as_str(),
            "local"
        );
        assert_eq!(
            choose_host(&t("y"), "bot-bottle-y", &ls)
                .unwrap()
                .host
                .label
                .as_str(),
            "c"
        );
        let many = choose_host(&t("x"), "bot-bottle-x", &ls).unwrap_err();
        assert!(many.contains("b/x or c/x"), "{many}");
        let none = choose_host(&t("z"), "bot-bottle-z", &ls).unwrap_err();
        assert!(none.contains("unreachable: d"), "{none}");
        assert_eq!(
            choose_host(&t("b/a"), "bot-bottle-a", &ls)
                .unwrap()
                .host
                .label
                .as_str(),
            "b"
        );
        assert!(choose_host(&t("zz/a"), "bot-bottle-a", &ls).is_err());
        assert!(split_target("Bad/a").is_err());
    }
}
