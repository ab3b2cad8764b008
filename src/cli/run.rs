//! `bottle-freeze freeze` and `bottle-freeze export`: run the core, show its events.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::args::{ExportArgs, FreezeArgs};
use crate::cli::progress::StageBars;
use crate::freeze::remote::RemoteHost;
use crate::freeze::{
    run_export, run_freeze_on, run_resume, EventTx, FreezeConfig, FreezeEvent, RunOutcome, Stage,
};
use crate::hosts;
use crate::names::{slug_from_arg, Slug};

/// Exit code of a cancelled run, as shells report SIGINT.
const EXIT_CANCELLED: u8 = 130;

/// How a headless run is shown.
#[derive(Debug, Clone, Copy)]
pub struct Show {
    /// Also each stage's output lines (`--verbose`).
    pub verbose: bool,
    /// The terminal bell when a freeze ends (`[ui] bell`).
    pub bell: bool,
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
    verbose: bool,
    start: impl FnOnce(EventTx, CancellationToken) -> F,
) -> RunOutcome
where
    F: Future<Output = RunOutcome> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone());
    let mut task = tokio::spawn(start(tx, cancel));
    let mut bars = (!json).then(|| StageBars::new(stages, verbose));
    let mut show = |ev: FreezeEvent| {
        if json {
            if let Ok(line) = serde_json::to_string(&ev) {
                println!("{line}");
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
    joined.unwrap_or_else(|e| {
        RunOutcome::Failed(crate::freeze::Failure {
            stage: Stage::ExecTar,
            message: format!("the freeze task ended abnormally: {e}"),
            exit_status: None,
            stderr_tail: "<no stderr>".into(),
        })
    })
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

fn report(outcome: &RunOutcome, json: bool) -> ExitCode {
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
                println!("{}", path.display());
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
            }
            ExitCode::from(1)
        }
        RunOutcome::Refused(why) => {
            // Said even with --json: no event describes a run that never started.
            eprintln!("bottle-freeze: cannot resume: {why}");
            ExitCode::from(2)
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

pub async fn freeze(
    cfg: FreezeConfig,
    show: Show,
    args: &FreezeArgs,
    settings: &crate::config::Settings,
) -> ExitCode {
    if let Err(e) = cfg.validate() {
        eprintln!("bottle-freeze: {e}");
        return ExitCode::from(2);
    }
    recover(&cfg).await;
    if let Some(id) = args.resume.clone() {
        let outcome = drive(&Stage::ALL, args.json, show.verbose, move |tx, cancel| {
            run_resume(cfg, id, tx, cancel)
        })
        .await;
        return report(&outcome, args.json);
    }
    let arg = args.machine.clone().unwrap_or_default();
    let (host, slug) = match pick_host(&cfg, settings, &arg).await {
        Ok(s) => s,
        Err(why) => {
            eprintln!(
                "bottle-freeze: cannot freeze {:?}: {why}",
                crate::sanitize::escape_str(&arg)
            );
            return ExitCode::from(2);
        }
    };
    let outcome = drive(&Stage::ALL, args.json, show.verbose, move |tx, cancel| {
        run_freeze_on(cfg, host, slug, tx, cancel)
    })
    .await;
    ring(show, args.json);
    report(&outcome, args.json)
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
        Err(e) => {
            eprintln!("bottle-freeze: {e}");
            ExitCode::from(2)
        }
    }
}

pub async fn export(cfg: FreezeConfig, show: Show, args: &ExportArgs) -> ExitCode {
    let slug = match slug_from_arg(&args.machine, &cfg.prefix) {
        Ok(s) => s,
        Err(why) => {
            eprintln!(
                "bottle-freeze: cannot export {:?}: {why}",
                crate::sanitize::escape_str(&args.machine)
            );
            return ExitCode::from(2);
        }
    };
    recover(&cfg).await;
    let output: PathBuf = args.output.clone();
    let outcome = drive(
        &[Stage::ExecTar],
        args.json,
        show.verbose,
        move |tx, cancel| run_export(cfg, slug, output, tx, cancel),
    )
    .await;
    report(&outcome, args.json)
}
