//! smolvm-sim: a test double for the smolvm CLI (see `smolvm-sim --help`).
//!
//! It speaks the subset of smolvm that bottle-freeze uses — `machine ls/exec/cp`,
//! `pack create` and the HTTP API of `serve start` — over machines that are records plus real directories under
//! `$SMOLVM_SIM_HOME`, and injects the faults the project's tests need (`sim …`).

mod admin;
mod cli;
mod cp;
mod error;
mod exec;
mod faults;
mod forward;
mod guest_cmd;
mod guestpath;
mod ls;
mod pack;
mod serve;
mod serve_api;
mod spawn;
mod store;
mod synthetic;
mod tar;
mod units;

use std::sync::atomic::Ordering;

use cli::{Commands, MachineCmd, PackCmd, ServeCmd};
use error::Failure;
use store::Home;

/// On SIGTERM/SIGINT/SIGHUP take the child down too, then die as the signal would.
extern "C" fn on_signal(sig: libc::c_int) {
    let pid = forward::CHILD_PID.load(Ordering::SeqCst);
    // SAFETY: kill and _exit are async-signal-safe.
    unsafe {
        if pid > 0 {
            libc::kill(pid, libc::SIGKILL);
        }
        libc::_exit(128 + sig);
    }
}

fn install_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only calls async-signal-safe functions.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

fn main() {
    install_signal_handlers();
    // The stream flag shapes the command line itself, so settings load before parsing;
    // without a home (e.g. for --help) smolvm's current defaults apply.
    let cfg = Home::from_env()
        .and_then(|h| h.config())
        .or_else(|_| store::Config::default().with_env_overrides())
        .unwrap_or_default();
    let (cli, extras) = cli::parse(cli::Flags {
        stream: cfg.stream_flag,
        error_format: cfg.error_format_flag,
        pack_archive: cfg.pack_archive,
    });
    let (stream, json) = (extras.stream, extras.json_errors);
    let code = match run(cli, stream) {
        Ok(code) => code,
        Err(e) => {
            match (json, e.json()) {
                (true, Some(line)) => eprintln!("{line}"),
                _ => eprintln!("{e}"),
            }
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: cli::Cli, stream: bool) -> Result<i32, Failure> {
    let home = Home::from_env()?;
    match cli.command {
        Commands::Machine(MachineCmd::Ls(args)) => ls::run(&home, &args),
        Commands::Machine(MachineCmd::Exec(args)) => exec::run(&home, args, stream),
        Commands::Machine(MachineCmd::Cp(args)) => cp::run(&home, args),
        Commands::Machine(MachineCmd::Start(arg)) => start_stop(&home, arg.name, true),
        Commands::Machine(MachineCmd::Stop(arg)) => start_stop(&home, arg.name, false),
        Commands::Pack(PackCmd::Create(args)) => pack::run(&home, args),
        Commands::Sim(cmd) => admin::run(&home, cmd),
        Commands::Serve(ServeCmd::Start(args)) => {
            let listen = serve::parse_listen(&args.listen).map_err(Failure::smolvm)?;
            serve::run(home, listen)
        }
    }
}

/// `machine start` / `machine stop`, printing what smolvm prints.
fn start_stop(home: &Home, name: Option<String>, start: bool) -> Result<i32, Failure> {
    let name = name.unwrap_or_else(|| "default".to_string());
    let mut rec = home
        .load(&name)?
        .ok_or_else(|| Failure::vm_not_found(&name))?;
    let running = rec.state == store::MachineState::Running;
    if start {
        if running {
            println!(
                "Machine '{name}' already running (PID: {})",
                rec.pid.unwrap_or(0)
            );
            return Ok(0);
        }
        println!("Starting machine '{name}'...");
        if matches!(
            rec.state,
            store::MachineState::Unreachable | store::MachineState::Frozen
        ) {
            exec::ensure_running(home, &mut rec)?;
        }
        rec.start();
        home.save(&rec)?;
        println!("Machine '{name}' running (PID: {})", rec.pid.unwrap_or(0));
    } else {
        if !running {
            println!("Machine '{name}' is not running (state: {})", rec.state);
            return Ok(0);
        }
        println!("Stopping machine '{name}'...");
        rec.state = store::MachineState::Stopped;
        rec.pid = None;
        home.save(&rec)?;
        println!("Stopped machine: {name}");
    }
    Ok(0)
}
