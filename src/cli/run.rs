//! `bottle-freeze freeze` and `bottle-freeze export`: run the core, show its events.

use std::future::Future;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::args::{ExportArgs, FreezeArgs};
use crate::cli::progress::StageBars;
use crate::freeze::remote::RemoteHost;
use crate::freeze::{
    run_export, run_freeze_on, run_resume, EventTx, FreezeConfig, FreezeEvent, RunOutcome, Stage,
};
use crate::history::History;
use crate::hosts;
use crate::names::{slug_from_arg, Slug};
use crate::sanitize::escape_str;

/// Exit code of a freeze or export that failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of bad input: an unknown or unsafe machine, one that cannot be frozen now,
/// an unknown record id, a resume that is refused, a bad option.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code of a cancelled run, as shells report SIGINT.
pub const EXIT_CANCELLED: u8 = 130;

/// Says why the command cannot run and exits with [`EXIT_BAD_INPUT`].
fn bad_input(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("bottle-freeze: {message}");
    ExitCode::from(EXIT_BAD_INPUT)
}

/// How a headless run is shown.
#[derive(Debug, Clone, Copy)]
pub struct Show {
    /// Also each stage's output lines (`--verbose`).
    pub verbose: bool,
    /// The terminal bell when a freeze ends (`[ui] bell`).
    pub bell: bool,
    /// Seconds without bytes before the progress line says the stream stalled.
    pub stall_after: u64,
}

/// Cancels on Ctrl-C, SIGTERM or SIGHUP, so that every path out cleans up.
fn cancel_on_signals(cancel: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        cancel.cancel();
    });
}

async fn drive<F>(
    stages: &[Stage],
    json: bool,
    show: Show,
    events_to_stderr: bool,
    start: impl FnOnce(EventTx, CancellationToken) -> F,
) -> (RunOutcome, Option<String>)
where
    F: Future<Output = RunOutcome> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone());
    let mut task = tokio::spawn(start(tx, cancel));
    let mut bars =
        (!json).then(|| StageBars::new(stages, show.verbose).stall_after(show.stall_after));
    let mut id = None;
    let mut show = |ev: FreezeEvent| {
        if id.is_none() {
            id = Some(ev.id().to_string());
        }
        if json {
            if let Ok(line) = serde_json::to_string(&ev) {
                // stdout, unless it carries the archive (`export -o -`).
                if events_to_stderr {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
        } else if let Some(b) = bars.as_mut() {
            b.handle(&ev);
        }
    };
    // The run is over when its task returns, even if a straggling thread (an upload that
    // is noticing its cancellation) still holds a sender; what is queued is still shown.
    let joined = loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => show(ev),
                None => break (&mut task).await,
            },
            joined = &mut task => break joined,
        }
    };
    while let Ok(ev) = rx.try_recv() {
        show(ev);
    }
    if let Some(b) = &bars {
        b.clear();
    }
    let outcome = joined.unwrap_or_else(|e| {
        RunOutcome::Failed(crate::freeze::Failure {
            stage: Stage::ExecTar,
            message: format!("the freeze task ended abnormally: {e}"),
            exit_status: None,
            stderr_tail: "<no stderr>".into(),
        })
    });
    (outcome, id)
}

/// The terminal bell when a freeze ends, for an operator who looked away; only on a
/// terminal, never into JSON or a pipe.
fn ring(show: Show, json: bool) {
    use std::io::{IsTerminal as _, Write as _};
    if show.bell && !json && std::io::stderr().is_terminal() {
        let mut err = std::io::stderr();
        let _ = err.write_all(b"\x07");
        let _ = err.flush();
    }
}

/// Where to read more about a failed run: its record, when one was written (a refusal
/// before the run started has none).
fn record_hint(state_dir: &Path, id: Option<&str>) -> Option<String> {
    let id = id?;
    crate::history::History::new(state_dir).load(id).ok()?;
    Some(format!(
        "record {id}: every stage's output with `bottle-freeze history show {id}`"
    ))
}

/// What `outcome` prints (the path on stdout, the rest on stderr) and its exit code.
/// `print_path`: whether the result's path goes to stdout (not when stdout is the
/// archive).
fn report(
    outcome: &RunOutcome,
    json: bool,
    print_path: bool,
    hint: impl FnOnce() -> Option<String>,
) -> ExitCode {
    match outcome {
        RunOutcome::Frozen(a) => {
            if !json {
                println!("{}", a.sidecar.display());
                eprintln!("frozen: image {} pushed as {}", a.image, a.tag);
                eprintln!("{}", a.hint);
            }
            ExitCode::SUCCESS
        }
        RunOutcome::Exported {
            path,
            bytes,
            entries,
        } => {
            if !json {
                if print_path {
                    println!("{}", path.display());
                }
                eprintln!(
                    "exported {} in {entries} entries",
                    crate::format::bytes(*bytes)
                );
            }
            ExitCode::SUCCESS
        }
        RunOutcome::Failed(f) => {
            if !json {
                eprintln!("bottle-freeze: {f}");
                if let Some(h) = hint() {
                    eprintln!("{h}");
                }
            }
            ExitCode::from(EXIT_FAILED)
        }
        RunOutcome::Refused(why) => {
            // Said even with --json: no event describes a run that never started.
            eprintln!("bottle-freeze: {why}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        RunOutcome::Cancelled => {
            if !json {
                eprintln!(
                    "bottle-freeze: cancelled; temp files, registry and guest scratch removed"
                );
            }
            ExitCode::from(EXIT_CANCELLED)
        }
    }
}

/// Which host a freeze argument means. Without hosts and without `HOST/` nothing changes
/// (None: the local smolvm); else every host is listed and [`hosts::choose_host`] decides.
async fn pick_host(
    cfg: &FreezeConfig,
    settings: &crate::config::Settings,
    arg: &str,
) -> Result<(Option<RemoteHost>, Slug), String> {
    if settings.hosts.is_empty() && !arg.contains('/') {
        return slug_from_arg(arg, &cfg.prefix).map(|s| (None, s));
    }
    let target = hosts::split_target(arg)?;
    let slug = slug_from_arg(&target.slug, &cfg.prefix)?;
    let machine = format!("{}{}", cfg.prefix, slug);
    let mut known =
        hosts::parse_all(&settings.hosts, settings.insecure_remote).map_err(|e| e.to_string())?;
    if known.is_empty() {
        known.push(hosts::Host::local());
    }
    let timeout = cfg.smolvm.query_timeout();
    let listings = hosts::list_hosts(&known, &cfg.smolvm, timeout).await;
    let chosen = hosts::choose_host(&target, &machine, &listings)?;
    let remote = hosts::client(&chosen.host, timeout).map(|client| RemoteHost {
        label: chosen.host.label.clone(),
        client,
    });
    Ok((remote, slug))
}

/// Refuses, before any run (so before any record), a machine smolvm says it does not
/// have or that is not running. When smolvm cannot be asked, the run's own pre-flight
/// says so, as a failed freeze.
async fn check_machine(cfg: &FreezeConfig, verb: &str, slug: &Slug) -> Result<(), ExitCode> {
    let name = format!("{}{}", cfg.prefix, slug);
    let Ok(machines) = crate::machines::list(&cfg.smolvm).await else {
        return Ok(());
    };
    let found = match crate::machines::find_unique(&machines, &name) {
        Ok(found) => found,
        Err(e) => return Err(bad_input(format!("cannot {verb} {slug}: {e}"))),
    };
    match found {
        None => Err(bad_input(format!(
            "cannot {verb} {slug}: smolvm has no machine named {} (`bottle-freeze list --all` lists them)",
            escape_str(&name)
        ))),
        Some(m) if !m.is_running() => Err(bad_input(format!(
            "cannot {verb} {slug}: {} is {}{}; only a running machine can be {}",
            escape_str(&name),
            m.state
                .as_deref()
                .map(escape_str)
                .unwrap_or_else(|| "in an unknown state".into()),
            m.why_not_running()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default(),
            if verb == "freeze" { "frozen" } else { "exported" }
        ))),
        Some(_) => Ok(()),
    }
}

/// Refuses, before any run, a resume of a record that does not exist or kept nothing.
fn check_resume(cfg: &FreezeConfig, id: &str) -> Result<(), ExitCode> {
    let record = History::new(&cfg.state_dir)
        .load(id)
        .map_err(|e| bad_input(format!("cannot resume: {e}")))?;
    if record.kept.is_none() {
        return Err(bad_input(format!(
            "cannot resume {}: it kept nothing to resume from (only a freeze that failed at build, push or pack keeps its work)",
            escape_str(id)
        )));
    }
    Ok(())
}

/// The slug `arg` names, or the refusal.
fn slug_of(cfg: &FreezeConfig, verb: &str, arg: &str) -> Result<Slug, ExitCode> {
    slug_from_arg(arg, &cfg.prefix)
        .map_err(|why| bad_input(format!("cannot {verb} {:?}: {why}", escape_str(arg))))
}

pub async fn freeze(
    cfg: FreezeConfig,
    show: Show,
    args: &FreezeArgs,
    settings: &crate::config::Settings,
) -> ExitCode {
    if let Err(e) = cfg.validate() {
        return bad_input(e);
    }
    recover(&cfg).await;
    let state_dir = cfg.state_dir.clone();
    if let Some(id) = args.resume.clone() {
        if let Err(code) = check_resume(&cfg, &id) {
            return code;
        }
        let (outcome, run_id) = drive(&Stage::ALL, args.json, show, false, move |tx, cancel| {
            run_resume(cfg, id, tx, cancel)
        })
        .await;
        ring(show, args.json);
        return report(&outcome, args.json, true, || {
            record_hint(&state_dir, run_id.as_deref())
        });
    }
    let arg = args.machine.clone().unwrap_or_default();
    let (host, slug) = match pick_host(&cfg, settings, &arg).await {
        Ok(s) => s,
        Err(why) => return bad_input(format!("cannot freeze {:?}: {why}", escape_str(&arg))),
    };
    // A remote host refuses a machine that is not running itself (409, never started).
    if host.is_none() {
        if let Err(code) = check_machine(&cfg, "freeze", &slug).await {
            return code;
        }
    }
    let (outcome, run_id) = drive(&Stage::ALL, args.json, show, false, move |tx, cancel| {
        run_freeze_on(cfg, host, slug, tx, cancel)
    })
    .await;
    ring(show, args.json);
    report(&outcome, args.json, true, || {
        record_hint(&state_dir, run_id.as_deref())
    })
}

/// Cleans what runs killed earlier left behind, and says so.
pub async fn recover(cfg: &FreezeConfig) {
    for line in crate::recover::recover_interrupted(&cfg.state_dir, &cfg.smolvm).await {
        eprintln!("bottle-freeze: {line}");
    }
}

pub async fn discard(cfg: &FreezeConfig, id: &str) -> ExitCode {
    match crate::freeze::discard(cfg, id).await {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => bad_input(e),
    }
}

/// `prune`: plans with the core, prints the plan, applies it unless `--dry-run`. Exit
/// status 1 when something could not be removed.
pub async fn prune(cfg: &FreezeConfig, args: &crate::args::PruneArgs, keep: usize) -> ExitCode {
    let policy = crate::freeze::PrunePolicy {
        keep: args.keep.unwrap_or(keep),
        older_than_ms: args.older_than,
    };
    let plan = match crate::freeze::plan_prune(&cfg.state_dir, policy, crate::history::now_ms()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bottle-freeze: cannot prune: {e}");
            return ExitCode::from(2);
        }
    };
    if plan.is_empty() {
        println!("nothing to prune");
        return ExitCode::SUCCESS;
    }
    let lead = if args.dry_run {
        "would remove  "
    } else {
        "removing  "
    };
    for line in plan.lines() {
        println!("{lead}{line}");
    }
    if args.dry_run {
        return ExitCode::SUCCESS;
    }
    let report = crate::freeze::apply_prune(&cfg.state_dir, &plan).await;
    for line in &report.failed {
        eprintln!("bottle-freeze: {line}");
    }
    println!(
        "pruned: {} removed, {} left",
        report.removed.len(),
        report.failed.len()
    );
    if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `-o -`: the archive goes to stdout.
fn is_stdout(output: &Path) -> bool {
    output.as_os_str() == "-"
}

pub async fn export(cfg: FreezeConfig, show: Show, args: &ExportArgs) -> ExitCode {
    let slug = match slug_of(&cfg, "export", &args.machine) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let to_stdout = is_stdout(&args.output);
    if to_stdout && std::io::stdout().is_terminal() {
        return bad_input(
            "refusing to write an archive to a terminal: redirect stdout (`-o - | tar -t`) or name a file",
        );
    }
    recover(&cfg).await;
    if let Err(code) = check_machine(&cfg, "export", &slug).await {
        return code;
    }
    let state_dir = cfg.state_dir.clone();
    // stdout that is a pipe or a device is written by the run itself (it copies the
    // finished archive into it); one that is a regular file (`-o - > x.tar`) gets the
    // archive from a private folder of ours, since the run renames its work into place
    // beside the output.
    let staged = if to_stdout && stdout_is_regular_file() {
        match tempfile::Builder::new()
            .prefix("bottle-freeze-export.")
            .tempdir_in(&cfg.tmp_dir)
        {
            Ok(d) => Some(d),
            Err(e) => {
                return bad_input(format!(
                    "cannot make a temp folder in {}: {e}",
                    cfg.tmp_dir.display()
                ))
            }
        }
    } else {
        None
    };
    let output: PathBuf = match (&staged, to_stdout) {
        (Some(d), _) => d.path().join("rootfs.tar"),
        (None, true) => PathBuf::from("/dev/stdout"),
        (None, false) => args.output.clone(),
    };
    let (outcome, run_id) = drive(
        &[Stage::ExecTar],
        args.json,
        show,
        to_stdout,
        move |tx, cancel| run_export(cfg, slug, output, tx, cancel),
    )
    .await;
    if let (Some(d), RunOutcome::Exported { .. }) = (&staged, &outcome) {
        if let Err(e) = copy_to_stdout(&d.path().join("rootfs.tar")) {
            eprintln!("bottle-freeze: cannot write the archive to stdout: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    }
    report(&outcome, args.json, !to_stdout, || {
        record_hint(&state_dir, run_id.as_deref())
    })
}

fn stdout_is_regular_file() -> bool {
    std::fs::metadata("/dev/stdout").is_ok_and(|m| m.is_file())
}

fn copy_to_stdout(path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut from = std::fs::File::open(path)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut from, &mut out)?;
    out.flush()
}
