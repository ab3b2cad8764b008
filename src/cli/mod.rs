//! The headless front end: list, export, freeze, history.

mod history;
mod list;
mod progress;
pub mod run;

use std::process::ExitCode;

use crate::args::{Cli, Command};

/// Runs one CLI command and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bottle-freeze: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        match cli.command {
            Some(Command::List(args)) => list::run(&cli.global, &args).await,
            Some(Command::Freeze(args)) => run::freeze(&cli.global, &args).await,
            Some(Command::Export(args)) => run::export(&cli.global, &args).await,
            Some(Command::History(args)) => {
                let cfg = run::config(&cli.global, &crate::args::ExecTarOpts::default(), None);
                run::recover(&cfg).await;
                history::run(&cli.global, &args)
            }
            Some(Command::Discard { id }) => run::discard(&cli.global, &id).await,
            None => match crate::ui::run(crate::ui::UiConfig::from_global(&cli.global)).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bottle-freeze: {e:#}");
                    ExitCode::from(2)
                }
            },
        }
    })
}
