//! The headless front end: list, export, freeze, history.

mod list;

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
            Some(other) => {
                eprintln!("bottle-freeze: {other:?} is not available yet");
                ExitCode::from(2)
            }
            None => {
                eprintln!("bottle-freeze: the dashboard is not available yet; see --help");
                ExitCode::from(2)
            }
        }
    })
}
