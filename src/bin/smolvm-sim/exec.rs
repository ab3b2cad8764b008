//! `machine exec`: find (and start) the machine, run the command in its root, relay output.

use std::io;
use std::os::fd::AsFd;

use crate::cli::ExecArgs;
use crate::error::Failure;
use crate::forward::{self, Faults, Options, EXEC_OUTPUT_CAP};
use crate::guest_cmd;
use crate::store::{Home, MachineRecord, MachineState};
use crate::tar;

pub fn run(home: &Home, args: ExecArgs, stream: bool) -> Result<i32, Failure> {
    // smolvm's exec with stdout redirected to a regular file exits 1 and prints nothing.
    if stdout_is_regular_file() {
        return Ok(1);
    }
    let cfg = home.config()?;
    let name = args.name.unwrap_or_else(|| "default".to_string());
    let mut rec = home
        .load(&name)?
        .ok_or_else(|| Failure::vm_not_found(&name))?;
    ensure_running(home, &mut rec)?;

    let mut argv = args.command;
    if argv.first().is_some_and(|a| a == "--") {
        argv.remove(0);
    }
    let Some(arg0) = argv.first() else {
        return Err(Failure::smolvm("no command specified"));
    };
    let prog = guest_cmd::program(arg0).to_string();
    let is_tar = prog == "tar";
    let b = &rec.sim;
    if is_tar {
        if let Some(code) = b.exit_silent {
            return Ok(code);
        }
    }
    let source = if is_tar {
        tar::source(&rec, &argv[1..])
    } else {
        guest_cmd::source(&rec, &prog, &argv[1..])
    }
    .map_err(|e| Failure::agent(op_name(stream), e))?;
    // Faults shape the archive stream; `df`, `rm` and friends behave normally.
    let faults = if is_tar {
        Faults {
            flood: b.stderr_flood.unwrap_or(0),
            hostile: b.stderr_hostile,
            die_after: b.die_after,
            hang_after: b.hang_after,
            throttle: b.throttle,
            exit_after_stream: b.exit_after_stream,
        }
    } else if prog == "df" {
        // `SMOLVM_SIM_DF_FLOOD=BYTES`: a `df` answer that floods stderr (a non-streamed
        // query whose output must stay bounded on our side).
        Faults {
            flood: std::env::var("SMOLVM_SIM_DF_FLOOD")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            ..Faults::default()
        }
    } else {
        Faults::default()
    };
    let opts = Options {
        stream,
        cap: cfg.exec_cap.then_some(EXEC_OUTPUT_CAP),
        timeout: args.timeout,
        op: op_name(stream),
        faults,
    };
    Ok(forward::run(source, &opts))
}

/// smolvm's operation names in agent errors (src/agent/client.rs).
fn op_name(stream: bool) -> &'static str {
    if stream {
        "streaming exec"
    } else {
        "vm exec"
    }
}

/// Exec and cp need a running machine; smolvm 1.32 no longer starts one for them and
/// answers in these words (smolvm 1.9 started it first).
pub fn ensure_running(_home: &Home, rec: &mut MachineRecord) -> Result<(), Failure> {
    match rec.state {
        MachineState::Running => Ok(()),
        MachineState::Stopped | MachineState::Created | MachineState::Failed => {
            Err(Failure::agent(
                "connect",
                format!(
                "machine '{0}' is not running. Start it with 'smolvm machine start --name {0}'; \
                 if a start is already in progress, retry once it finishes.",
                rec.name
            ),
            ))
        }
        MachineState::Unreachable => Err(Failure::agent(
            "connect",
            format!(
                "machine '{}' is unreachable (VM process alive, agent not responding)",
                rec.name
            ),
        )),
        MachineState::Frozen => Err(Failure::agent(
            "connect",
            format!("machine '{}' is frozen", rec.name),
        )),
    }
}

fn stdout_is_regular_file() -> bool {
    io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .map(|m| m.file_type().is_file())
        .unwrap_or(false)
}
