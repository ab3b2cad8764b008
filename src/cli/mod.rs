//! The headless front end: list, export, freeze, history, discard, config, completions,
//! man. It is handed the resolved [`Settings`] by the entry (`src/entry.rs`) and knows
//! nothing of the dashboard.

// First: its macros replace std's printing ones in the modules below (see out.rs).
#[macro_use]
pub mod out;

pub mod complete;
mod doctor;
mod history;
mod list;
pub mod man;
mod progress;
pub mod run;

use std::process::ExitCode;

use crate::args::{Command, GlobalOpts};
use crate::config::Settings;

/// Writes the completion script for `shell` (it calls this binary back for live values).
fn completions(shell: crate::args::CompletionShell) -> ExitCode {
    match complete::script(shell) {
        Ok(script) => {
            print!("{script}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bottle-freeze: cannot write the completion script: {e}");
            ExitCode::from(2)
        }
    }
}

/// Writes the man page (quietly stopping when stdout's reader is gone).
fn man() -> ExitCode {
    out::write_out_bytes(man::page().as_bytes());
    ExitCode::SUCCESS
}

/// The commands answered before the configuration is read, if `command` is one.
pub fn without_settings(command: Option<&Command>) -> Option<ExitCode> {
    match command {
        Some(Command::Completions { shell }) => Some(completions(*shell)),
        Some(Command::Man) => Some(man()),
        Some(Command::Config { default: true }) => {
            print!("{}", Settings::render_default_file());
            Some(ExitCode::SUCCESS)
        }
        _ => None,
    }
}

/// Runs one headless command with the resolved settings. `global` is what clap parsed
/// (only `--verbose` is read from it: every other option is in `settings`).
pub async fn run(command: Command, global: &GlobalOpts, settings: &Settings) -> ExitCode {
    let cfg = settings.freeze_config();
    let show = run::Show {
        verbose: global.verbose,
        bell: settings.bell,
        stall_after: settings.stall_after,
    };
    match command {
        Command::List(args) => list::run(&cfg, &args, settings).await,
        Command::Freeze(args) => run::freeze(cfg, show, &args, settings).await,
        Command::Export(args) => run::export(cfg, show, &args).await,
        Command::History(args) => {
            run::recover(&cfg).await;
            history::run(&cfg.state_dir, &args)
        }
        Command::Discard { id } => run::discard(&cfg, &id).await,
        Command::Prune(args) => {
            run::recover(&cfg).await;
            run::prune(&cfg, &args, settings.prune_keep).await
        }
        Command::Doctor(args) => doctor::run(&cfg, &args, settings.registry_bin.as_deref()).await,
        Command::Config { .. } => {
            print!("{}", settings.render_effective());
            ExitCode::SUCCESS
        }
        // Answered before the configuration is read, or by another front end.
        Command::Completions { .. } | Command::Man | Command::Demo => ExitCode::SUCCESS,
    }
}
