//! The headless front end: list, export, freeze, history, discard, config, completions,
//! man. It is handed the resolved [`Settings`] by the entry (`src/entry.rs`) and knows
//! nothing of the dashboard.

// First: its macros replace std's printing ones in the modules below (see out.rs).
#[macro_use]
pub mod out;

mod doctor;
mod history;
mod list;
mod progress;
pub mod run;

use std::process::ExitCode;

use crate::args::{Cli, Command, GlobalOpts};
use crate::config::Settings;

/// Writes a completion script generated from the clap definitions.
fn completions(shell: crate::args::CompletionShell) -> ExitCode {
    use crate::args::CompletionShell as S;
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let name = "bottle-freeze";
    let script = match shell {
        S::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, name, &mut out);
            // clap_complete spells the subcommands' case labels of a hyphenated binary
            // differently from the names it assigns (`bottle__subcmd__freeze__…` against
            // `bottle__freeze__…`), so no subcommand's options would complete.
            String::from_utf8_lossy(&out).replace("bottle__subcmd__freeze__", "bottle__freeze__")
        }
        S::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, name, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
        S::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, name, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    print!("{script}");
    ExitCode::SUCCESS
}

/// Writes the man page generated from the clap definitions.
fn man() -> ExitCode {
    use clap::CommandFactory as _;
    let page = clap_mangen::Man::new(Cli::command());
    let mut page_bytes = Vec::new();
    match page.render(&mut page_bytes) {
        Ok(()) => {
            out::write_out_bytes(&page_bytes);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bottle-freeze: cannot write the man page: {e}");
            ExitCode::from(2)
        }
    }
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
        Command::Doctor(args) => doctor::run(&cfg, &args, settings.registry_bin.as_deref()).await,
        Command::Config { .. } => {
            print!("{}", settings.render_effective());
            ExitCode::SUCCESS
        }
        // Answered before the configuration is read, or by another front end.
        Command::Completions { .. } | Command::Man | Command::Demo => ExitCode::SUCCESS,
    }
}
