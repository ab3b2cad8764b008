//! Shell completion, live: the scripts `completions bash|zsh|fish` prints call this
//! binary back (with [`ENV_VAR`] set) for each completion, which then offers what exists
//! now: the running machines' slugs for `freeze` and `export`, the record ids for
//! `history show`, and the ids of freezes that kept work for `--resume` and `discard`.
//! Built on clap_complete's environment-activated completion (`CompleteEnv`).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

use crate::args::CompletionShell;
use crate::config::Settings;

/// The variable that tells this binary a shell asks for completions.
pub const ENV_VAR: &str = "BOTTLE_FREEZE_COMPLETE";

/// How long a completion may wait for smolvm: a shell waits for it.
const QUERY_LIMIT: Duration = Duration::from_secs(3);

/// The command line's definition with the live value completers attached.
pub fn command() -> clap::Command {
    let machine = || ArgValueCompleter::new(machines);
    crate::args::command()
        .mut_subcommand("freeze", |s| {
            s.mut_arg("machine", |a| a.add(machine()))
                .mut_arg("resume", |a| a.add(ArgValueCompleter::new(kept_records)))
        })
        .mut_subcommand("export", |s| s.mut_arg("machine", |a| a.add(machine())))
        .mut_subcommand("discard", |s| {
            s.mut_arg("id", |a| a.add(ArgValueCompleter::new(kept_records)))
        })
        .mut_subcommand("history", |s| {
            s.mut_subcommand("show", |s| {
                s.mut_arg("id", |a| a.add(ArgValueCompleter::new(all_records)))
            })
        })
}

/// Answers a completion request and exits, when this run is one.
pub fn respond_if_asked() {
    clap_complete::CompleteEnv::with_factory(command)
        .var(ENV_VAR)
        .complete();
}

/// The script that registers completion for `shell`: it calls `bottle-freeze` (as found
/// on `PATH`) back for every completion.
pub fn script(shell: CompletionShell) -> Result<String, std::io::Error> {
    let completer: &dyn EnvCompleter = match shell {
        CompletionShell::Bash => &Bash,
        CompletionShell::Zsh => &Zsh,
        CompletionShell::Fish => &Fish,
    };
    let mut out = Vec::new();
    let name = "bottle-freeze";
    completer.write_registration(ENV_VAR, name, name, name, &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The settings a completion runs with: the environment and the configuration file
/// (the words on the command line are not seen by a value completer).
fn settings() -> Settings {
    let path = std::env::var_os("BOTTLE_FREEZE_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(crate::config::default_path);
    let env = |name: &str| std::env::var(name).ok();
    Settings::resolve(None, &env, path.as_deref())
}

fn matching(
    current: &OsStr,
    values: impl IntoIterator<Item = (String, String)>,
) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    values
        .into_iter()
        .filter(|(v, _)| v.starts_with(current.as_ref()))
        .map(|(v, help)| CompletionCandidate::new(v).help(Some(help.into())))
        .collect()
}

/// The slugs of the machines that can be frozen now.
fn machines(current: &OsStr) -> Vec<CompletionCandidate> {
    let s = settings();
    let smolvm = crate::smolvm::Smolvm::new(&s.smolvm)
        .with_query_timeout(QUERY_LIMIT.min(Duration::from_secs(s.query_timeout)));
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let found = rt.block_on(crate::machines::discover(&smolvm, &s.prefix, false));
    let Ok(found) = found else {
        return Vec::new();
    };
    matching(
        current,
        found.into_iter().filter_map(|m| {
            let slug = m.slug.as_ref().ok()?.to_string();
            m.refusal().is_none().then(|| {
                let help = [
                    m.machine.image.clone(),
                    m.machine.cpus.map(|c| format!("{c} cpus")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
                (slug, help)
            })
        }),
    )
}

/// Record ids, newest first, with their machine and outcome; only those that kept work
/// for a resume when `kept_only`.
fn records(current: &OsStr, kept_only: bool) -> Vec<CompletionCandidate> {
    let s = settings();
    let Ok(records) = crate::history::History::new(&s.state_dir).list() else {
        return Vec::new();
    };
    matching(
        current,
        records
            .into_iter()
            .filter(|r| !kept_only || r.kept.is_some())
            .map(|r| {
                let help = format!(
                    "{} {}",
                    crate::sanitize::escape_str(&r.machine),
                    r.outcome_text()
                );
                (r.id, help)
            }),
    )
}

fn all_records(current: &OsStr) -> Vec<CompletionCandidate> {
    records(current, false)
}

fn kept_records(current: &OsStr) -> Vec<CompletionCandidate> {
    records(current, true)
}
