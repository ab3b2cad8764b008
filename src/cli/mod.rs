//! The headless front end: list, export, freeze, history.

// First: its macros replace std's printing ones in the modules below (see out.rs).
#[macro_use]
pub mod out;

mod history;
mod list;
mod progress;
pub mod run;

use std::process::ExitCode;

use crate::args::{Cli, Command};
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

/// The dashboard's configuration; problems with the config file stay on screen (what
/// was printed before the dashboard opened is hidden behind it).
fn dashboard_config(settings: &Settings) -> crate::ui::UiConfig {
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

/// The configuration file in use: `--config`, else the XDG default.
fn config_path(cli: &Cli) -> Option<std::path::PathBuf> {
    cli.global
        .config
        .clone()
        .or_else(crate::config::default_path)
}

/// Puts the resolved settings where the commands read them, so that a value from the
/// file reaches them as a flag would.
fn apply(cli: &mut Cli, s: &Settings) {
    let g = &mut cli.global;
    g.smolvm = s.smolvm.clone();
    g.prefix = s.prefix.clone();
    g.state_dir = Some(s.state_dir.clone());
    g.tmp_dir = Some(s.tmp_dir.clone());
    g.query_timeout = s.query_timeout;
    g.refresh = s.refresh;
    g.bell = s.bell;
    let exec = |e: &mut crate::args::ExecTarOpts| {
        e.transport = s.transport;
        e.guest_scratch_dir = s.guest_scratch_dir.clone();
    };
    match &mut cli.command {
        Some(Command::Freeze(f)) => {
            exec(&mut f.exec_tar);
            f.user = s.user.clone();
            f.workdir = s.workdir.clone();
            f.registry = s.registry.clone();
            f.registry_bin = s.registry_bin.clone();
            f.registry_port = s.registry_port;
            f.push_host = s.push_host.clone();
            f.pull_host = s.pull_host.clone();
        }
        Some(Command::Export(e)) => exec(&mut e.exec_tar),
        _ => {}
    }
}

/// Runs one CLI command and returns the process exit code. `matches` are what clap
/// parsed `cli` from (they tell flags from defaults).
pub fn run(mut cli: Cli, matches: &clap::ArgMatches) -> ExitCode {
    match cli.command {
        Some(Command::Completions { shell }) => return completions(shell),
        Some(Command::Man) => return man(),
        _ => {}
    }
    if let Some(Command::Config { default: true }) = cli.command {
        print!("{}", Settings::render_default_file());
        return ExitCode::SUCCESS;
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
    // The demo's fleet lives until this function returns; it points smolvm, the state
    // and the temp folders at itself, whatever the configuration says.
    let mut fleet = None;
    if let Some(Command::Demo) = cli.command {
        match crate::demo::create() {
            Ok(f) => {
                // No other thread runs yet: smolvm-sim children read their home from here.
                std::env::set_var("SMOLVM_SIM_HOME", f.home());
                settings.smolvm = f.sim.clone();
                settings.state_dir = f.state_dir();
                settings.tmp_dir = f.tmp_dir();
                settings.prefix = crate::names::DEFAULT_PREFIX.to_string();
                fleet = Some(f);
            }
            Err(e) => {
                eprintln!("bottle-freeze: demo: {e}");
                return ExitCode::from(2);
            }
        }
    }
    apply(&mut cli, &settings);
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
        match cli.command {
            Some(Command::List(args)) => list::run(&cli.global, &args).await,
            Some(Command::Freeze(args)) => run::freeze(&cli.global, &args).await,
            Some(Command::Export(args)) => run::export(&cli.global, &args).await,
            Some(Command::History(args)) => {
                let cfg = settings.freeze_config();
                run::recover(&cfg).await;
                history::run(&cli.global, &args)
            }
            Some(Command::Discard { id }) => run::discard(&cli.global, &id).await,
            Some(Command::Config { .. }) => {
                print!("{}", settings.render_effective());
                ExitCode::SUCCESS
            }
            Some(Command::Demo) => {
                let docker = crate::docker::connect()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                let registry = crate::registry::find_binary(settings.registry_bin.as_deref())
                    .map_err(|e| e.to_string());
                let mut ui = crate::ui::UiConfig::from_settings(&settings);
                ui.notice = Some(crate::demo::parts_line(docker, registry));
                let result = crate::ui::run(ui).await;
                crate::demo::remove_images().await;
                drop(fleet);
                match result {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("bottle-freeze: {e:#}");
                        ExitCode::from(2)
                    }
                }
            }
            // Answered before the configuration is read.
            Some(Command::Completions { .. } | Command::Man) => ExitCode::SUCCESS,
            None => match crate::ui::run(dashboard_config(&settings)).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bottle-freeze: {e:#}");
                    ExitCode::from(2)
                }
            },
        }
    });
    // A blocking task still finishing (an upload noticing its cancellation) must not hold
    // the exit: everything that needed cleaning was awaited before this point.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}
