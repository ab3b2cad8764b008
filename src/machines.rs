//! Discovery: `smolvm machine ls --json` -> the bot-bottle machines.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::names::{classify, NameKind, Slug};
use crate::sanitize::escape_bytes;
use crate::smolvm::{Smolvm, SmolvmError};

/// One machine as `smolvm machine ls --json` prints it. Fields smolvm may add later are
/// ignored; any of these may be null or missing.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Machine {
    pub name: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub cpus: Option<u64>,
    #[serde(default)]
    pub memory_mib: Option<u64>,
    #[serde(default)]
    pub pid: Option<i64>,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub image: Option<String>,
    /// How the VM process last ended (smolvm ≥ 1.32; absent until it has exited once).
    #[serde(default, deserialize_with = "lenient")]
    pub last_exit: Option<LastExit>,
    /// Why the machine is in its state, when smolvm says (smolvm ≥ 1.32).
    #[serde(default, deserialize_with = "lenient_text")]
    pub state_reason: Option<String>,
}

/// smolvm's `last_exit`: `{"cause":"exited","exit_code":1,"exited_at_unix_ms":…,"pid":…}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct LastExit {
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub exited_at_unix_ms: Option<i64>,
    #[serde(default)]
    pub signal: Option<i64>,
}

impl LastExit {
    /// `VMM exited with code 1`, as `smolvm machine status` words it.
    pub fn describe(&self) -> String {
        let cause = self.cause.as_deref().unwrap_or("ended");
        match (self.exit_code, self.signal) {
            (Some(code), _) => format!("VMM {cause} with code {code}"),
            (None, Some(sig)) => format!("VMM {cause} by signal {sig}"),
            (None, None) => format!("VMM {cause}"),
        }
    }
}

/// A field whose shape a later smolvm might change is dropped rather than failing the list.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// Text as given; any other JSON value in its compact form.
fn lenient_text<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

impl Machine {
    pub fn is_running(&self) -> bool {
        self.state.as_deref() == Some("running")
    }

    /// Why the machine is not running, as far as smolvm says: its `state_reason`, else how
    /// its VM last ended (`last start failed: VMM exited with code 1`). None when running
    /// or when smolvm says nothing.
    pub fn why_not_running(&self) -> Option<String> {
        if self.is_running() {
            return None;
        }
        if let Some(r) = self
            .state_reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
        {
            return Some(crate::sanitize::escape_str(r));
        }
        let exit = self.last_exit.as_ref()?;
        // `created` with a last exit: it never came up.
        let lead = if self.state.as_deref() == Some("created") {
            "last start failed"
        } else {
            "last exit"
        };
        Some(format!(
            "{lead}: {}",
            crate::sanitize::escape_str(&exit.describe())
        ))
    }
}

/// A machine seen through the bot-bottle convention, ready to show.
#[derive(Debug, Clone, PartialEq)]
pub struct BottleMachine {
    pub machine: Machine,
    /// The validated slug, or why this name cannot be frozen.
    pub slug: Result<Slug, String>,
    /// How many machines `machine ls` listed under this name: more than one is ambiguous,
    /// and such a machine is not frozen.
    pub listed: usize,
    /// The label of the smolvm API host it was listed on; None for the local smolvm CLI
    /// (as a freeze record's `host`).
    pub host: Option<Slug>,
}

impl BottleMachine {
    /// What tells it from every other machine of the fleet: its name on the local smolvm,
    /// `HOST/NAME` on an API host (a name never holds `/`, a label never does either).
    pub fn key(&self) -> String {
        key_of(self.host.as_ref().map(Slug::as_str), &self.machine.name)
    }

    /// Whether `key` is its [`key`](Self::key), without making one.
    pub fn is_key(&self, key: &str) -> bool {
        let name = self.machine.name.as_str();
        match &self.host {
            Some(h) => key
                .strip_prefix(h.as_str())
                .and_then(|k| k.strip_prefix('/'))
                .is_some_and(|k| k == name),
            None => key == name,
        }
    }

    /// Why this machine cannot be frozen now, if it cannot.
    pub fn refusal(&self) -> Option<String> {
        match &self.slug {
            Err(why) => Some(format!("unsafe machine name: {why}")),
            Ok(_) if self.listed > 1 => Some(ambiguous(&self.machine.name, self.listed)),
            Ok(_) if !self.machine.is_running() => {
                let state = self
                    .machine
                    .state
                    .as_deref()
                    .unwrap_or("in an unknown state");
                let why = self
                    .machine
                    .why_not_running()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default();
                Some(format!(
                    "machine is {state}{why}, only running machines are frozen"
                ))
            }
            Ok(_) => None,
        }
    }

    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        let created =
            UNIX_EPOCH + Duration::from_secs(u64::try_from(self.machine.created_at?).ok()?);
        now.duration_since(created).ok()
    }
}

/// [`BottleMachine::key`] from a host label (None: the local smolvm) and a machine name;
/// also what a freeze record's `host` and `machine` make.
pub fn key_of(host: Option<&str>, name: &str) -> String {
    match host {
        Some(h) => format!("{h}/{name}"),
        None => name.to_string(),
    }
}

fn ambiguous(name: &str, count: usize) -> String {
    format!(
        "smolvm lists {count} machines named {}: which one a freeze would read is ambiguous",
        crate::sanitize::escape_str(name)
    )
}

/// The one machine named `name`: None when there is none, an error saying so when
/// `machine ls` lists the name more than once (the first entry must not decide).
pub fn find_unique<'a>(machines: &'a [Machine], name: &str) -> Result<Option<&'a Machine>, String> {
    let mut same = machines.iter().filter(|m| m.name == name);
    let first = same.next();
    match same.count() {
        0 => Ok(first),
        more => Err(ambiguous(name, more + 1)),
    }
}

/// Parses `machine ls --json` output.
pub fn parse_ls_json(stdout: &[u8]) -> Result<Vec<Machine>, serde_json::Error> {
    serde_json::from_slice(stdout)
}

/// Keeps the machines named `<prefix><slug>`; non-running ones only when `all`.
pub fn bottle_machines(machines: Vec<Machine>, prefix: &str, all: bool) -> Vec<BottleMachine> {
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for m in &machines {
        *counts.entry(m.name.clone()).or_default() += 1;
    }
    let mut out: Vec<BottleMachine> = machines
        .into_iter()
        .filter_map(|m| {
            let slug = match classify(&m.name, prefix) {
                NameKind::Foreign => return None,
                NameKind::Bottle(s) => Ok(s),
                NameKind::Refused(why) => Err(why),
            };
            let listed = counts.get(&m.name).copied().unwrap_or(1);
            Some(BottleMachine {
                machine: m,
                slug,
                listed,
                host: None,
            })
        })
        .filter(|b| all || b.machine.is_running())
        .collect();
    out.sort_by(|a, b| a.machine.name.cmp(&b.machine.name));
    out
}

/// `smolvm machine ls --json`, parsed. `smolvm` runs the command; reading what it
/// printed is this module's business (the dependency goes one way: machines → smolvm).
pub async fn list(smolvm: &Smolvm) -> Result<Vec<Machine>, SmolvmError> {
    let argv = crate::smolvm::argv::list();
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = smolvm.query_ok(&args).await?;
    parse_ls_json(&out.stdout).map_err(|e| SmolvmError::Malformed {
        command: smolvm.display(&args),
        error: e.to_string(),
        head: escape_bytes(&out.stdout[..out.stdout.len().min(200)]) + &out.held_open_note(),
    })
}

/// Asks smolvm for its machines and keeps the bot-bottle ones.
pub async fn discover(
    smolvm: &Smolvm,
    prefix: &str,
    all: bool,
) -> Result<Vec<BottleMachine>, SmolvmError> {
    Ok(bottle_machines(list(smolvm).await?, prefix, all))
}

/// The stable JSON shape of `bottle-freeze list --json` (documented in the README).
#[derive(Debug, Serialize)]
pub struct ListEntry {
    /// The host's label, only when hosts are listed (`--host`, `--all-hosts`, `hosts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub name: String,
    pub slug: Option<String>,
    pub state: Option<String>,
    pub cpus: Option<u64>,
    pub memory_mib: Option<u64>,
    pub image: Option<String>,
    pub created_at: Option<i64>,
    pub age_seconds: Option<u64>,
    pub freezable: bool,
    pub refusal: Option<String>,
    /// smolvm's `state_reason` (escaped), when it gives one.
    pub state_reason: Option<String>,
    /// smolvm's `last_exit`, when the VM has exited once.
    pub last_exit: Option<LastExit>,
}

impl ListEntry {
    pub fn from_machine(b: &BottleMachine, now: SystemTime) -> ListEntry {
        let refusal = b.refusal();
        ListEntry {
            host: None,
            name: b.machine.name.clone(),
            slug: b.slug.as_ref().ok().map(|s| s.to_string()),
            state: b.machine.state.clone(),
            cpus: b.machine.cpus,
            memory_mib: b.machine.memory_mib,
            image: b.machine.image.clone(),
            created_at: b.machine.created_at,
            age_seconds: b.age(now).map(|d| d.as_secs()),
            freezable: refusal.is_none(),
            refusal,
            state_reason: b
                .machine
                .state_reason
                .as_deref()
                .map(crate::sanitize::escape_str),
            last_exit: b.machine.last_exit.clone().map(|mut e| {
                e.cause = e.cause.map(|c| crate::sanitize::escape_str(&c));
                e
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LS: &str = r#"[
      {"name":"bot-bottle-web","state":"running","cpus":2,"memory_mib":1024,"pid":42,
       "mounts":0,"ports":1,"created_at":1700000000,"storage_gb":20.0,"overlay_gb":null,
       "image":null,"network":true,"ephemeral":false,"labels":{},"future_field":[1,2]},
      {"name":"bot-bottle-old","state":"stopped","cpus":null,"memory_mib":null,"pid":null,
       "created_at":null,"image":"alpine"},
      {"name":"other","state":"running"},
      {"name":"bot-bottle-../../x","state":"running"}
    ]"#;

    #[test]
    fn parses_with_nulls_and_unknown_fields() {
        let ms = parse_ls_json(LS.as_bytes()).unwrap();
        assert_eq!(ms.len(), 4);
        assert_eq!(ms[0].pid, Some(42));
        assert_eq!(ms[1].cpus, None);
        assert!(parse_ls_json(b"[]").unwrap().is_empty());
        assert!(parse_ls_json(b"{not json").is_err());
    }

    #[test]
    fn a_created_machine_after_a_failed_start_says_why() {
        let ls = br#"[{"name":"bot-bottle-a","state":"created","state_reason":null,
            "last_exit":{"cause":"exited","exit_code":1,"exited_at_unix_ms":1796188030829,"pid":7}},
          {"name":"bot-bottle-b","state":"stopped","state_reason":"stopped by \u001b[2Jop",
            "last_exit":{"cause":"exited","exit_code":0}},
          {"name":"bot-bottle-c","state":"created"},
          {"name":"bot-bottle-d","state":"failed","last_exit":"a future shape","state_reason":{"k":1}}]"#;
        let all = bottle_machines(parse_ls_json(ls).unwrap(), "bot-bottle-", true);
        let refusals: Vec<String> = all.iter().map(|b| b.refusal().unwrap()).collect();
        assert_eq!(
            refusals,
            [
                "machine is created (last start failed: VMM exited with code 1), only running machines are frozen",
                "machine is stopped (stopped by \\x1b[2Jop), only running machines are frozen",
                "machine is created, only running machines are frozen",
                "machine is failed ({\"k\":1}), only running machines are frozen",
            ]
        );
        let e = ListEntry::from_machine(&all[0], SystemTime::now());
        assert_eq!(e.last_exit.as_ref().unwrap().exit_code, Some(1));
        assert_eq!(all[3].machine.last_exit, None);
    }

    #[test]
    fn keeps_running_bottles_unless_all() {
        let ms = parse_ls_json(LS.as_bytes()).unwrap();
        let running: Vec<_> = bottle_machines(ms.clone(), "bot-bottle-", false)
            .into_iter()
            .map(|b| b.machine.name)
            .collect();
        assert_eq!(running, ["bot-bottle-../../x", "bot-bottle-web"]);
        let all = bottle_machines(ms, "bot-bottle-", true);
        assert_eq!(all.len(), 3);
        let hostile = all.iter().find(|b| b.machine.name.contains("..")).unwrap();
        assert!(hostile
            .refusal()
            .unwrap()
            .starts_with("unsafe machine name"));
        let stopped = all
            .iter()
            .find(|b| b.machine.name == "bot-bottle-old")
            .unwrap();
        assert!(stopped.refusal().unwrap().contains("stopped"));
    }

    #[test]
    fn a_name_listed_twice_is_ambiguous_and_not_freezable() {
        let ls = r#"[{"name":"bot-bottle-web","state":"running"},
                     {"name":"bot-bottle-web","state":"stopped"},
                     {"name":"bot-bottle-ok","state":"running"}]"#;
        let ms = parse_ls_json(ls.as_bytes()).unwrap();
        let err = find_unique(&ms, "bot-bottle-web").unwrap_err();
        assert!(err.contains("2 machines named bot-bottle-web"), "{err}");
        assert!(find_unique(&ms, "bot-bottle-ok").unwrap().is_some());
        assert!(find_unique(&ms, "bot-bottle-none").unwrap().is_none());
        let all = bottle_machines(ms, "bot-bottle-", true);
        let web: Vec<_> = all
            .iter()
            .filter(|b| b.machine.name == "bot-bottle-web")
            .collect();
        assert_eq!(web.len(), 2);
        for b in web {
            assert!(b.refusal().unwrap().contains("ambiguous"));
        }
        let ok = all.iter().find(|b| b.machine.name == "bot-bottle-ok");
        assert_eq!(ok.unwrap().refusal(), None);
    }
}
