//! The command line: smolvm's subset (`machine`, `pack`) plus the sim's own `sim` admin.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::store::{parse_switch, MachineState};
use crate::units::parse_bytes;

const ABOUT: &str =
    "smolvm-sim: a TEST DOUBLE standing in for the smolvm CLI (not smolvm; it runs no VMs)";

const LONG_ABOUT: &str = "\
smolvm-sim is a TEST DOUBLE standing in for the smolvm CLI. It is not smolvm and runs no VMs.

It speaks the part of smolvm's CLI that bottle-freeze uses (machine ls/exec/cp, pack create,
and the HTTP API of `serve start`):
each machine is a record plus a real directory under $SMOLVM_SIM_HOME, `machine exec -- tar`
runs the host's GNU tar over that directory, and `pack create` really pulls from a registry.
Faults (output cap, dying agent, hostile stderr, truncated archives, …) are injected with the
sim-only `smolvm-sim sim …` commands. State lives in $SMOLVM_SIM_HOME (required).";

/// `--version`: names itself a double, and the smolvm it answers like (the texts of the
/// flags bottle-freeze uses are checked against that binary in tests/real_smolvm.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (a test double for smolvm 1.32.2)"
);

/// The `--error-format` help, word for word as smolvm 1.32.2 prints it.
const ERROR_FORMAT_HELP: &str = "How a failure is reported on stderr: `text`, or `json` for \
    `{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"…\"}}` with a stable code";

#[derive(Parser, Debug)]
#[command(name = "smolvm-sim", version = VERSION, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Manage machines (ls, exec, cp) — simulated
    #[command(subcommand, visible_alias = "vm")]
    Machine(MachineCmd),

    /// Package images into .smolmachine artifacts — pulls for real, packs a stand-in
    #[command(subcommand)]
    Pack(PackCmd),

    /// Sim-only administration: create machines, inject faults, change settings
    #[command(subcommand)]
    Sim(SimCmd),

    /// Serve smolvm's HTTP API over the sim's machines (loopback or unix socket only)
    #[command(subcommand)]
    Serve(ServeCmd),
}

#[derive(Subcommand, Debug)]
pub enum ServeCmd {
    /// Start the HTTP API server: health, machine list and status, exec, exec/stream, files
    Start(ServeStartArgs),
}

#[derive(Args, Debug)]
pub struct ServeStartArgs {
    /// Address and port or Unix socket path to listen on (loopback only; port 0 picks one
    /// and the sim prints it)
    #[arg(
        short = 'l',
        long,
        value_name = "ADDR:PORT|PATH",
        default_value = "unix:///tmp/smolvm.sock"
    )]
    pub listen: String,

    /// Accepted for smolvm's command line; the sim binds no rollout port
    #[arg(long, value_name = "PORT")]
    pub guest_rollout_port: Option<u16>,
}

#[derive(Subcommand, Debug)]
pub enum MachineCmd {
    /// Run a command directly in the VM (here: in the machine's root directory)
    Exec(ExecArgs),

    /// List all machines
    #[command(visible_alias = "list")]
    Ls(LsArgs),

    /// Copy files between host and machine
    Cp(CpArgs),

    /// Start a machine
    Start(StartArgs),

    /// Stop a running machine
    Stop(NameArg),
}

/// Execute a command directly in the VM's rootfs.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Command and arguments to execute
    #[arg(trailing_var_arg = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    /// Target machine (default: "default")
    #[arg(long, value_name = "NAME", env = "SMOLVM_MACHINE_NAME")]
    pub name: Option<String>,

    /// Set working directory in the VM (accepted, ignored: commands run at /)
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// Set environment variable (accepted, ignored)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Kill command after duration (e.g., "30s", "5m")
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Show detailed configuration (mounts, ports, PID)
    #[arg(short, long)]
    pub verbose: bool,

    /// Output in JSON format
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Source path (local file or machine:path)
    #[arg(value_name = "SRC")]
    pub src: String,

    /// Destination path (local file or machine:path)
    #[arg(value_name = "DST")]
    pub dst: String,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Machine to start (default: "default")
    #[arg(short = 'n', long, value_name = "NAME", env = "SMOLVM_MACHINE_NAME")]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// Machine name (default: "default")
    #[arg(short = 'n', long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PackCmd {
    /// Package an OCI image into PATH and PATH.smolmachine
    Create(PackCreateArgs),
}

#[derive(Args, Debug)]
pub struct PackCreateArgs {
    /// Image to pack (e.g. 127.0.0.1:5000/app:tag or …@sha256:…)
    #[arg(long, short = 'I', value_name = "IMAGE")]
    pub image: String,

    /// Output file path for the packed binary
    #[arg(short = 'o', long, value_name = "PATH")]
    pub output: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum SimCmd {
    /// Create a machine (a record plus a root directory)
    Create(SimCreateArgs),
    /// Change a machine's state or inject faults
    Set(SimSetArgs),
    /// Clear all injected faults of a machine
    Clear(SimNameArg),
    /// Show or change home-wide settings ($SMOLVM_SIM_HOME/sim.json)
    Config(SimConfigArgs),
    /// Remove a machine's record (and the root, if the sim made it)
    Rm(SimNameArg),
}

#[derive(Args, Debug)]
pub struct SimNameArg {
    /// Machine name, stored as given
    pub name: String,
}

#[derive(Args, Debug)]
pub struct SimCreateArgs {
    /// Machine name, stored as given (any string)
    pub name: String,
    /// Initial state
    #[arg(long, value_enum, default_value_t = MachineState::Running)]
    pub state: MachineState,
    /// Register an existing directory as the machine's root, in place (no copy)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    pub cpus: u8,
    #[arg(long = "memory-mib", default_value_t = 8192)]
    pub memory_mib: u32,
    /// Image reference shown by `machine ls`
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Label (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SimSetArgs {
    pub name: String,
    #[arg(long, value_enum)]
    pub state: Option<MachineState>,
    /// Exec of tar prints nothing and exits CODE
    #[arg(long, value_name = "CODE")]
    pub exit_silent: Option<u8>,
    /// Stream the archive, then print tar-like warnings and exit CODE
    #[arg(long, value_name = "CODE")]
    pub exit_after_stream: Option<u8>,
    /// Write BYTES of stderr lines interleaved with stdout
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub stderr_flood: Option<u64>,
    /// Write stderr lines with escape sequences, control chars, invalid UTF-8, a long line
    #[arg(long)]
    pub stderr_hostile: bool,
    /// After BYTES of stdout the agent connection dies (exit 255)
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub die_after: Option<u64>,
    /// The archive stops half-way, without its end blocks (exit 0)
    #[arg(long)]
    pub truncate: bool,
    /// The archive's first tar header is corrupt (its checksum no longer matches)
    #[arg(long)]
    pub corrupt_header: bool,
    /// After BYTES of stdout, stop writing and hang until killed
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub hang_after: Option<u64>,
    /// Limit stdout to BYTES per second
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = parse_bytes)]
    pub throttle: Option<u64>,
    /// tar produces a generated valid archive of about BYTES instead of reading the root
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub synthetic_size: Option<u64>,
    /// Make `pack create` fail with MSG (home-wide, same as `sim config --pack-fail`)
    #[arg(long, value_name = "MSG")]
    pub pack_fail: Option<String>,
    /// `df` reports N KiB available
    #[arg(long, value_name = "N")]
    pub df_avail_kb: Option<u64>,
    /// Record that the VM process last exited with CODE (`last_exit` in `machine ls`),
    /// as a failed start leaves it
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    pub last_exit_code: Option<i32>,
    /// Set the machine's `state_reason` ('' clears)
    #[arg(long, value_name = "TEXT")]
    pub state_reason: Option<String>,
}

#[derive(Args, Debug)]
pub struct SimConfigArgs {
    /// The 11 MiB exec output cap (smolvm ≥ 2026-07); env SMOLVM_SIM_EXEC_CAP overrides
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    pub exec_cap: Option<bool>,
    /// Whether `machine exec` knows --stream; env SMOLVM_SIM_STREAM_FLAG overrides
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    pub stream_flag: Option<bool>,
    /// Whether the CLI knows --error-format (1.32.2 does; off models an older smolvm); env
    /// SMOLVM_SIM_ERROR_FORMAT_FLAG overrides
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    pub error_format_flag: Option<bool>,
    /// `machine ls` sleeps N seconds before answering (0 clears)
    #[arg(long, value_name = "N")]
    pub ls_hang_secs: Option<u64>,
    /// `machine ls` prints MSG to stderr and exits 1 ('' clears)
    #[arg(long, value_name = "MSG")]
    pub ls_fail: Option<String>,
    /// `pack create` prints MSG to stderr and exits 1 ('' clears)
    #[arg(long, value_name = "MSG")]
    pub pack_fail: Option<String>,
    /// `pack create` sleeps N seconds before pulling (0 clears)
    #[arg(long, value_name = "N")]
    pub pack_delay_secs: Option<u64>,
    /// `pack create --image` takes archives and directories too (smolvm 1.32; off: 1.9,
    /// registry references only); env SMOLVM_SIM_PACK_ARCHIVE overrides
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    pub pack_archive: Option<bool>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration '{s}': {e}"))
}

/// `pack create --image`'s help as smolvm 1.32 prints it (archives and directories too).
const PACK_IMAGE_HELP_1_32: &str = "Container image to pack: a registry reference (alpine:latest, python:3.11-slim), a `docker save` archive (./myapp.tar, or `-` to read one from stdin), or an unpacked rootfs directory (./rootfs/)";

/// Which flags of later smolvm versions this sim knows; off models an older smolvm, whose
/// rejection of the flag (`unexpected argument`, exit 2) is then clap's own.
#[derive(Debug, Clone, Copy)]
pub struct Flags {
    /// `machine exec --stream`.
    pub stream: bool,
    /// The global `--error-format text|json`.
    pub error_format: bool,
    /// `pack create --image` takes archives (smolvm 1.32), and its help says so.
    pub pack_archive: bool,
}

/// What was asked beyond the derived [`Cli`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    pub stream: bool,
    pub json_errors: bool,
}

/// The clap command with the flags this smolvm "knows".
pub fn command(flags: Flags) -> clap::Command {
    let mut cmd = Cli::command();
    if flags.pack_archive {
        cmd = cmd.mut_subcommand("pack", |p| {
            p.mut_subcommand("create", |c| {
                c.mut_arg("image", |a| a.help(PACK_IMAGE_HELP_1_32))
            })
        });
    }
    if flags.error_format {
        cmd = cmd.arg(
            Arg::new("error_format")
                .long("error-format")
                .global(true)
                .value_name("ERROR_FORMAT")
                .value_parser(["text", "json"])
                .default_value("text")
                .help(ERROR_FORMAT_HELP),
        );
    }
    if !flags.stream {
        return cmd;
    }
    cmd.mut_subcommand("machine", |m| {
        m.mut_subcommand("exec", |e| {
            e.arg(
                Arg::new("stream")
                    .long("stream")
                    .action(ArgAction::SetTrue)
                    .help("Stream output in real-time (prints as it arrives)"),
            )
        })
    })
}

/// Parse argv; clap prints help/usage errors and exits itself, as smolvm's does.
pub fn parse(flags: Flags) -> (Cli, Extras) {
    let matches = command(flags).get_matches();
    let extras = Extras {
        stream: stream_requested(&matches),
        json_errors: json_requested(&matches),
    };
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => (cli, extras),
        Err(e) => e.exit(),
    }
}

fn stream_requested(matches: &ArgMatches) -> bool {
    matches
        .subcommand_matches("machine")
        .and_then(|m| m.subcommand_matches("exec"))
        .and_then(|e| e.try_get_one::<bool>("stream").ok().flatten().copied())
        .unwrap_or(false)
}

/// `--error-format json`, given before or after the subcommand (it is global).
fn json_requested(matches: &ArgMatches) -> bool {
    let mut m = Some(matches);
    let mut json = false;
    while let Some(cur) = m {
        if let Ok(Some(v)) = cur.try_get_one::<String>("error_format") {
            json = v == "json";
        }
        m = cur.subcommand().map(|(_, sub)| sub);
    }
    json
}
