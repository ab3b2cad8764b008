//! The one entry: reads the configuration once and hands over to exactly one front end,
//! the dashboard (no subcommand), `demo` (the dashboard on a simulated fleet) or the
//! headless CLI (every other subcommand). `main.rs` only parses the arguments.

use std::process::ExitCode;

use crate::args::{Cli, Command};
use crate::config::Settings;

// A closed stderr must not panic here either (see `cli/out.rs`).
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::cli::out::write_err(format_args!($($arg)*))
    };
}

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

/// Answers a shell's completion request and exits, when this run is one (before the
/// command line is parsed: the words being completed need not parse).
pub fn complete_if_asked() {
    crate::cli::complete::respond_if_asked();
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::freeze::push::PushVia;
    use crate::freeze::{FreezeConfig, RegistryChoice};

    /// The settings for `args`, with `file` as the configuration file and one variable
    /// in the environment.
    fn settings(args: &[&str], file: &Path) -> Settings {
        let m = crate::args::command().try_get_matches_from(args).unwrap();
        let env = |v: &str| (v == "BOTTLE_FREEZE_REGISTRY").then(|| "127.0.0.1:5999".to_string());
        Settings::resolve(Some(&m), &env, Some(file))
    }

    /// The freeze configuration the front end of `args` runs with, built the way the
    /// entry builds it.
    fn used(args: &[&str], file: &Path, fleet: &crate::demo::Fleet) -> FreezeConfig {
        use clap::FromArgMatches as _;
        let m = crate::args::command().try_get_matches_from(args).unwrap();
        let cli = Cli::from_arg_matches(&m).unwrap();
        let mut s = settings(args, file);
        match FrontEnd::of(cli.command.as_ref()) {
            // `cli::run` starts from exactly this.
            FrontEnd::Headless => s.freeze_config(),
            FrontEnd::Dashboard => dashboard_config(&s).freeze,
            FrontEnd::Demo => {
                crate::demo::point_at(fleet, &mut s);
                crate::ui::UiConfig::from_settings(&s).freeze
            }
        }
    }

    #[test]
    fn file_env_and_flag_reach_every_front_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "[freeze]\nuser = \"file-user\"\npush_via = \"daemon\"\nbuilder = \"docker\"\npush_to = \"127.0.0.1:5999/team/bottle\"\n",
        )
        .unwrap();
        let fleet = crate::demo::Fleet {
            dir: tempfile::tempdir().unwrap(),
            sim: "/fleet/smolvm-sim".into(),
        };
        let runs: [(&[&str], FrontEnd); 4] = [
            (
                &["bottle-freeze", "--query-timeout", "42"],
                FrontEnd::Dashboard,
            ),
            (
                &["bottle-freeze", "demo", "--query-timeout", "42"],
                FrontEnd::Demo,
            ),
            (
                &["bottle-freeze", "freeze", "web", "--query-timeout", "42"],
                FrontEnd::Headless,
            ),
            (
                &[
                    "bottle-freeze",
                    "export",
                    "web",
                    "-o",
                    "x.tar",
                    "--query-timeout",
                    "42",
                ],
                FrontEnd::Headless,
            ),
        ];
        for (args, front) in runs {
            let cfg = used(args, &file, &fleet);
            let what = format!("{front:?} {args:?}");
            // The file.
            assert_eq!(cfg.user, "file-user", "{what}");
            assert_eq!(cfg.push_via, PushVia::Daemon, "{what}");
            assert_eq!(cfg.builder, crate::freeze::Builder::Docker, "{what}");
            assert_eq!(
                cfg.push_to.as_deref(),
                Some("127.0.0.1:5999/team/bottle"),
                "{what}"
            );
            // The environment.
            assert!(
                matches!(&cfg.registry, RegistryChoice::Existing { addr } if addr == "127.0.0.1:5999"),
                "{what}: {:?}",
                cfg.registry
            );
            // The flag.
            assert_eq!(
                cfg.smolvm.query_timeout(),
                Duration::from_secs(42),
                "{what}"
            );
            if front == FrontEnd::Demo {
                assert_eq!(cfg.smolvm.program(), Path::new("/fleet/smolvm-sim"));
                assert_eq!(cfg.state_dir, fleet.state_dir());
            }
        }
        // A flag beats the file for the option that once reached only one front end.
        let cfg = used(
            &["bottle-freeze", "freeze", "web", "--push-via", "stream"],
            &file,
            &fleet,
        );
        assert_eq!(cfg.push_via, PushVia::Stream);
        let cfg = used(
            &["bottle-freeze", "freeze", "web", "--builder", "native"],
            &file,
            &fleet,
        );
        assert_eq!(cfg.builder, crate::freeze::Builder::Native);
    }
}
