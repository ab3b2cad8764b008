//! `bottle-freeze freeze` and `bottle-freeze export`: run the core, show its events.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::args::{ExecTarOpts, ExportArgs, FreezeArgs, GlobalOpts, TransportArg};
use crate::cli::progress::StageBars;
use crate::freeze::{
    run_export, run_freeze, run_resume, EventTx, FreezeConfig, FreezeEvent, RegistryChoice,
    RunOutcome, Stage, TransportChoice,
};
use crate::names::slug_from_arg;
use crate::smolvm::Smolvm;

/// Exit code of a cancelled run, as shells report SIGINT.
const EXIT_CANCELLED: u8 = 130;

fn transport(t: TransportArg) -> TransportChoice {
    match t {
        TransportArg::Auto => TransportChoice::Auto,
        TransportArg::Pipe => TransportChoice::Pipe,
        TransportArg::GuestFile => TransportChoice::GuestFile,
    }
}

/// The core's configuration from the command line (user, workdir and registry default
/// as for a freeze when the command has no say in them).
pub fn config(
    global: &GlobalOpts,
    exec_tar: &ExecTarOpts,
    freeze: Option<&FreezeArgs>,
) -> FreezeConfig {
    FreezeConfig {
        smolvm: Smolvm::new(&global.smolvm)
            .with_query_timeout(std::time::Duration::from_secs(global.query_timeout)),
        prefix: global.prefix.clone(),
        state_dir: global
            .state_dir
            .clone()
            .unwrap_or_else(crate::history::default_state_dir),
        tmp_dir: global.tmp_dir.clone().unwrap_or_else(std::env::temp_dir),
        transport: transport(exec_tar.transport),
        guest_scratch_dir: exec_tar.guest_scratch_dir.clone(),
        exclude: exec_tar.exclude.clone(),
        fail_on_secrets: exec_tar.fail_on_secrets,
        user: freeze
            .map(|f| f.user.clone())
            .unwrap_or_else(|| "node".into()),
        workdir: freeze
            .map(|f| f.workdir.clone())
            .unwrap_or_else(|| "/home/node".into()),
        registry: match freeze.and_then(|f| f.registry.clone()) {
            Some(addr) => RegistryChoice::Existing { addr },
            None => RegistryChoice::Spawn {
                bin: freeze.and_then(|f| f.registry_bin.clone()),
            },
        },
        push_host: freeze
            .map(|f| f.push_host.clone())
            .unwrap_or_else(|| "127.0.0.1".into()),
        pull_host: freeze
            .map(|f| f.pull_host.clone())
            .unwrap_or_else(|| "127.0.0.1".into()),
        registry_port: freeze.and_then(|f| f.registry_port),
        push_via: match freeze.map(|f| f.push_via) {
            Some(crate::args::PushViaArg::Daemon) => crate::freeze::push::PushVia::Daemon,
            _ => crate::freeze::push::PushVia::Stream,
        },
    }
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
fn ring(global: &GlobalOpts, json: bool) {
    use std::io::{IsTerminal as _, Write as _};
    if global.bell && !json && std::io::stderr().is_terminal() {
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

pub async fn freeze(global: &GlobalOpts, args: &FreezeArgs) -> ExitCode {
    let cfg = config(global, &args.exec_tar, Some(args));
    if let Err(e) = cfg.validate() {
        eprintln!("bottle-freeze: {e}");
        return ExitCode::from(2);
    }
    recover(&cfg).await;
    if let Some(id) = args.resume.clone() {
        let outcome = drive(&Stage::ALL, args.json, global.verbose, move |tx, cancel| {
            run_resume(cfg, id, tx, cancel)
        })
        .await;
        return report(&outcome, args.json);
    }
    let arg = args.machine.clone().unwrap_or_default();
    let slug = match slug_from_arg(&arg, &global.prefix) {
        Ok(s) => s,
        Err(why) => {
            eprintln!(
                "bottle-freeze: cannot freeze {:?}: {why}",
                crate::sanitize::escape_str(&arg)
            );
            return ExitCode::from(2);
        }
    };
    let outcome = drive(&Stage::ALL, args.json, global.verbose, move |tx, cancel| {
        run_freeze(cfg, slug, tx, cancel)
    })
    .await;
    ring(global, args.json);
    report(&outcome, args.json)
}

/// Cleans what runs killed earlier left behind, and says so.
pub async fn recover(cfg: &FreezeConfig) {
    for line in crate::recover::recover_interrupted(&cfg.state_dir, &cfg.smolvm).await {
        eprintln!("bottle-freeze: {line}");
    }
}

pub async fn discard(global: &GlobalOpts, id: &str) -> ExitCode {
    let cfg = config(global, &ExecTarOpts::default(), None);
    match crate::freeze::discard(&cfg, id).await {
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

pub async fn export(global: &GlobalOpts, args: &ExportArgs) -> ExitCode {
    let slug = match slug_from_arg(&args.machine, &global.prefix) {
        Ok(s) => s,
        Err(why) => {
            eprintln!(
                "bottle-freeze: cannot export {:?}: {why}",
                crate::sanitize::escape_str(&args.machine)
            );
            return ExitCode::from(2);
        }
    };
    let cfg = config(global, &args.exec_tar, None);
    recover(&cfg).await;
    let output: PathBuf = args.output.clone();
    let outcome = drive(
        &[Stage::ExecTar],
        args.json,
        global.verbose,
        move |tx, cancel| run_export(cfg, slug, output, tx, cancel),
    )
    .await;
    report(&outcome, args.json)
}
