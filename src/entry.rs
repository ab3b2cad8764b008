//! The one entry: reads the configuration once and hands over to exactly one front end,
//! the dashboard (no subcommand), `demo` (the dashboard on a simulated fleet) or the
//! headless CLI (every other subcommand). `main.rs` only parses the arguments.

use std::process::ExitCode;

use crate::args::{Cli, Command};
use crate::config::Settings;

/// The front end a command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontEnd {
    Dashboard,
    Demo,
    Headless,
}

impl FrontEnd {
    pub fn of(command: Option<&Command>) -> FrontEnd {
        match command {
            None => FrontEnd::Dashboard,
            Some(Command::Demo) => FrontEnd::Demo,
            Some(_) => FrontEnd::Headless,
        }
    }
}

/// The configuration file in use: `--config`, else the XDG default.
fn config_path(cli: &Cli) -> Option<std::path::PathBuf> {
    cli.global
        .config
        .clone()
        .or_else(crate::config::default_path)
}

/// The dashboard's configuration; problems with the config file stay on screen (what
/// was printed before the dashboard opened is hidden behind it).
pub fn dashboard_config(settings: &Settings) -> crate::ui::UiConfig {
    let mut ui = crate::ui::UiConfig::from_settings(settings);
    if let Some(first) = settings.warnings.first() {
        let more = settings.warnings.len() - 1;
        let more = if more > 0 {
            format!(" (+{more} more)")
        } else {
            String::new()
        };
        ui.notice = Some(format!(
            "{first}{more} · `bottle-freeze config` shows the effective configuration"
        ));
    }
    ui
}

/// Runs the command line `cli` and returns the process exit code. `matches` are what
/// clap parsed `cli` from (they tell flags from defaults).
pub fn run(cli: Cli, matches: &clap::ArgMatches) -> ExitCode {
    if let Some(code) = crate::cli::without_settings(cli.command.as_ref()) {
        return code;
    }
    let path = config_path(&cli);
    let env = |name: &str| std::env::var(name).ok();
    let mut settings = Settings::resolve(Some(matches), &env, path.as_deref());
    for w in &settings.warnings {
        eprintln!("bottle-freeze: {w}");
    }
    if let Some(host) = &settings.docker_host {
        // bollard reads DOCKER_HOST; no other thread runs yet, so setting it is safe.
        std::env::set_var("DOCKER_HOST", host);
    }
    let front = FrontEnd::of(cli.command.as_ref());
    // The demo's fleet lives until this function returns.
    let mut fleet = None;
    if front == FrontEnd::Demo {
        match crate::demo::create() {
            Ok(f) => {
                // No other thread runs yet: smolvm-sim children read their home from here.
                std::env::set_var("SMOLVM_SIM_HOME", f.home());
                crate::demo::point_at(&f, &mut settings);
                fleet = Some(f);
            }
            Err(e) => {
                eprintln!("bottle-freeze: demo: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // The file log for every command that does work (never the screen).
    let _log = if matches!(cli.command, Some(Command::Config { .. })) {
        None
    } else {
        let single = std::env::var_os("BOTTLE_FREEZE_LOG_FILE")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from);
        let (guard, warning) =
            crate::logging::init(&settings.state_dir, &settings.log_level, single.as_deref());
        if let Some(w) = warning {
            eprintln!("bottle-freeze: {w}");
        }
        tracing::info!(command = ?std::env::args().collect::<Vec<_>>(), "bottle-freeze starting");
        guard
    };
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
    let code = rt.block_on(async move {
        match (front, cli.command) {
            (FrontEnd::Dashboard, _) => {
                let result = crate::ui::run(dashboard_config(&settings)).await;
                exit_code(result)
            }
            (FrontEnd::Demo, _) => {
                let result = crate::demo::run(&settings).await;
                drop(fleet);
                exit_code(result)
            }
            (FrontEnd::Headless, Some(command)) => {
                crate::cli::run(command, &cli.global, &settings).await
            }
            (FrontEnd::Headless, None) => ExitCode::SUCCESS,
        }
    });
    // A blocking task still finishing (an upload noticing its cancellation) must not hold
    // the exit: everything that needed cleaning was awaited before this point.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

fn exit_code(result: color_eyre::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bottle-freeze: {e:#}");
            ExitCode::from(2)
        }
    }
}
