//! The command line, as clap parses it. Kept in the library so that completions and
//! the man page can be generated from the same definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The exit status of every command, by class (also in the man page and the README).
pub const EXIT_STATUS: &[(u8, &str)] = &[
    (0, "success"),
    (
        1,
        "a freeze or export failed (the record names the stage; `history show <id>`)",
    ),
    (
        2,
        "bad input: an unknown, unsafe or stopped machine, one another freeze holds, an \
         unknown record id, a refused resume, a bad option; or smolvm could not be asked \
         (`list`)",
    ),
    (
        130,
        "interrupted (Ctrl-C, SIGTERM, SIGHUP), after cleaning up",
    ),
];

/// [`EXIT_STATUS`] as help text.
fn exit_status_help() -> String {
    let mut s = String::from("Exit status:");
    for (code, meaning) in EXIT_STATUS {
        s.push_str(&format!("\n  {code:>3}  {meaning}"));
    }
    s
}

/// The command line's definition, with the global options listed once: in the top
/// level's help under their own heading, and hidden from every subcommand's help (they
/// are still accepted there), whose help points to `bottle-freeze --help`.
pub fn command() -> clap::Command {
    use clap::CommandFactory as _;
    let cmd = Cli::command().after_help(exit_status_help());
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.clone().hide(true))
        .collect();
    cmd.mut_subcommands(|sub| with_hidden(sub, &globals))
}

/// `sub` and its subcommands with `globals` as hidden copies. clap copies a global
/// option into a subcommand only when the subcommand has none of that id, and reads it
/// the same way at any level, so these copies take the place of clap's visible ones.
fn with_hidden(sub: clap::Command, globals: &[clap::Arg]) -> clap::Command {
    let sub = globals.iter().fold(sub, |s, a| s.arg(a.clone()));
    let sub = sub.after_help(format!(
        "Global options (--smolvm, --state-dir, --config, …): see `bottle-freeze --help`.\n\n{}",
        exit_status_help()
    ));
    sub.mut_subcommands(|s| with_hidden(s, globals))
}

#[derive(Debug, Parser)]
#[command(
    name = "bottle-freeze",
    version,
    about = "Freeze running bot-bottle smolvm VMs into portable .smolmachine artifacts",
    long_about = "Freeze running bot-bottle smolvm VMs into portable .smolmachine artifacts.\n\n\
        Without a subcommand, opens the dashboard. The freeze streams the VM's root filesystem \
        out as a tar (exec-tar), builds a container image from it (build), pushes it to a \
        throw-away loopback registry (push) and has smolvm pack it (pack). The VM keeps running."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// The smolvm binary.
    #[arg(
        long,
        global = true,
        env = "BOTTLE_FREEZE_SMOLVM",
        default_value = "smolvm"
    )]
    pub smolvm: PathBuf,
    /// Machine name prefix of bot-bottle sandboxes.
    #[arg(long, global = true, env = "BOTTLE_FREEZE_PREFIX", default_value = crate::names::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Where freeze records and artifacts live [default: $XDG_STATE_HOME/bot-bottle].
    #[arg(long, global = true, env = "BOTTLE_FREEZE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where private temp folders are made [default: the system temp dir].
    #[arg(long, global = true, env = "BOTTLE_FREEZE_TMPDIR")]
    pub tmp_dir: Option<PathBuf>,
    /// Headless commands: also show each stage's output lines as they come.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// Seconds a short smolvm query (machine ls, df) may take before it is abandoned.
    #[arg(
        long,
        global = true,
        env = "BOTTLE_FREEZE_QUERY_TIMEOUT",
        default_value_t = 15
    )]
    pub query_timeout: u64,
    /// The configuration file [default: $XDG_CONFIG_HOME/bottle-freeze/config.toml].
    #[arg(long, global = true, env = "BOTTLE_FREEZE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The Docker daemon (as DOCKER_HOST: unix:///path or tcp://host:port).
    #[arg(long, global = true, env = "DOCKER_HOST", value_name = "URL")]
    pub docker_host: Option<String>,
    /// Level (or RUST_LOG-style filter) of the log file in the state folder.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Dashboard colours: dark, light or mono (NO_COLOR: mono).
    #[arg(long, global = true, value_enum)]
    pub theme: Option<crate::vocab::theme::ThemeName>,
    /// Dashboard: seconds between machine list refreshes.
    #[arg(
        long,
        global = true,
        env = "BOTTLE_FREEZE_REFRESH",
        default_value_t = 3.0
    )]
    pub refresh: f64,
    /// A smolvm host to look at (repeatable): `local`, `unix:///path/smolvm.sock` or
    /// `http://127.0.0.1:PORT` (smolvm serve), optionally `LABEL=` first. Overrides the
    /// file's `hosts`. The dashboard then lists every host's machines (a HOST column with
    /// more than one, `@LABEL` in the filter), `doctor` checks each.
    #[arg(long = "host", global = true, value_name = "[LABEL=]HOST")]
    pub host: Vec<String>,
    /// Allow `http://` hosts that are not loopback. smolvm's API has no authentication:
    /// prefer an SSH forward to a unix socket or a loopback port.
    #[arg(long, global = true)]
    pub insecure_remote: bool,
    /// Fail exec-tar when the stream moves no bytes for this many seconds [default: never].
    #[arg(long, global = true, value_name = "SECS")]
    pub stall_timeout: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the bot-bottle machines smolvm knows (running ones unless --all).
    List(ListArgs),
    /// Stream a running machine's root filesystem into a tar file (the exec-tar stage alone).
    Export(ExportArgs),
    /// Freeze a running machine: exec-tar, build, push, pack.
    Freeze(FreezeArgs),
    /// Past freezes and their logs.
    History(HistoryArgs),
    /// Try it: a throw-away fleet of simulated machines (smolvm-sim) in the dashboard,
    /// with the real Docker daemon and registry when they are there; removed on quit.
    Demo,
    /// Print a shell completion script (e.g. `bottle-freeze completions bash > ~/.local/share/bash-completion/completions/bottle-freeze`).
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the man page (roff) on stdout (`bottle-freeze man | man -l -`).
    Man,
    /// Print the effective configuration and where each value came from.
    Config {
        /// Print a commented default configuration file instead.
        #[arg(long)]
        default: bool,
    },
    /// Check this host: smolvm and its version and capabilities, Docker, a registry
    /// binary, the state dir's free space, /dev/kvm; and every configured smolvm host
    /// (`--host`, `hosts`): reachable, its version, its machines. Exit status 1 when
    /// something is missing.
    Doctor(DoctorArgs),
    /// Drop what a failed freeze kept for --resume (its archive or image).
    Discard {
        /// The freeze id (as `history` lists it).
        id: String,
    },
    /// Remove old records with what they kept, and the images and artifacts no record that
    /// stays uses. Keeps the newest records of each machine, its last good freeze and
    /// every running one. Lists what it removes (all of it with --dry-run, which removes
    /// nothing).
    Prune(PruneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// The newest records of each machine that stay (default: `prune_keep`, 3).
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Only records started longer ago than this go (e.g. 7d, 12h).
    #[arg(long, value_name = "AGE", value_parser = crate::history::parse_age)]
    pub older_than: Option<u64>,
    /// List what would go; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON (`{"checks":[{"name","ok","detail","fix"}],"versions":{…}}`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (an array of objects with stable field names).
    #[arg(long)]
    pub json: bool,
    /// Also list machines that are not running.
    #[arg(long)]
    pub all: bool,
    /// List every configured host (`local` alone when none is), with a HOST column.
    #[arg(long)]
    pub all_hosts: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TransportArg {
    /// Pipe first; fall back to the guest file when smolvm's exec output cap stops it.
    Auto,
    /// `machine exec --stream` with tar writing to stdout.
    Pipe,
    /// tar writes a scratch file inside the guest, then `machine cp` downloads it.
    GuestFile,
}

#[derive(Debug, Args)]
pub struct ExecTarOpts {
    /// How the archive leaves the VM.
    #[arg(
        long,
        value_enum,
        env = "BOTTLE_FREEZE_TRANSPORT",
        default_value = "auto"
    )]
    pub transport: TransportArg,
    /// Folder inside the guest for the guest-file transport's scratch archive.
    #[arg(long, default_value = "/tmp")]
    pub guest_scratch_dir: String,
    /// Leave PATH out of the archive (repeatable): an absolute path in the guest, with all
    /// below it, or a name matched anywhere (`.env`); passed to the guest's tar.
    #[arg(long, value_name = "PATH")]
    pub exclude: Vec<String>,
    /// Refuse, instead of warning, when the root holds files named like credentials
    /// (SSH keys, .aws/credentials, .npmrc, .env…).
    #[arg(long)]
    pub fail_on_secrets: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuilderArg {
    /// Write the image as a `docker save` archive while exec-tar streams (no Docker needed).
    Native,
    /// Have the Docker daemon build it from rootfs.tar and a Dockerfile.
    Docker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PushViaArg {
    Stream,
    Daemon,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Machine slug or full name (bot-bottle-<slug>).
    pub machine: String,
    /// The tar file to write; `-`: the archive goes to stdout (and `--json`'s events to
    /// stderr).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub exec_tar: ExecTarOpts,
    /// Print events as JSON lines instead of progress bars.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FreezeArgs {
    /// Machine slug or full name (bot-bottle-<slug>).
    #[arg(required_unless_present = "resume")]
    pub machine: Option<String>,
    #[command(flatten)]
    pub exec_tar: ExecTarOpts,
    /// USER of the image's Dockerfile.
    #[arg(long, default_value = "node")]
    pub user: String,
    /// WORKDIR of the image's Dockerfile.
    #[arg(long, default_value = "/home/node")]
    pub workdir: String,
    /// Use this registry (HOST:PORT) instead of spawning a throw-away one.
    #[arg(long, env = "BOTTLE_FREEZE_REGISTRY")]
    pub registry: Option<String>,
    /// Registry binary to spawn [default: registry or docker-registry on PATH].
    #[arg(long, env = "BOTTLE_FREEZE_REGISTRY_BIN")]
    pub registry_bin: Option<PathBuf>,
    /// Port to try first for the spawned registry (another is chosen when it is taken).
    #[arg(long, env = "BOTTLE_FREEZE_REGISTRY_PORT")]
    pub registry_port: Option<u16>,
    /// How the image reaches the registry: `stream` (docker save straight into the registry,
    /// uncompressed) or `daemon` (the daemon's own push, which gzips every layer).
    #[arg(
        long,
        value_enum,
        env = "BOTTLE_FREEZE_PUSH_VIA",
        default_value = "stream"
    )]
    pub push_via: PushViaArg,
    /// Who builds the image: `native` (an archive written in the exec-tar pass; smolvm packs
    /// it directly, Docker only loads it when there is a daemon) or `docker` (a Dockerfile
    /// build by the daemon, then a push to the throw-away registry).
    #[arg(
        long,
        value_enum,
        env = "BOTTLE_FREEZE_BUILDER",
        default_value = "native"
    )]
    pub builder: BuilderArg,
    /// Also publish the image to this registry repository (HOST[:PORT]/REPO[:TAG]) through
    /// the Docker daemon, with the credentials of the Docker config file.
    #[arg(long, value_name = "REPO", env = "BOTTLE_FREEZE_PUSH_TO")]
    pub push_to: Option<String>,
    /// Retry a failed freeze (by history id) from the stage that failed, with what it kept.
    #[arg(long, value_name = "ID", conflicts_with = "machine")]
    pub resume: Option<String>,
    /// Host the Docker daemon pushes to (the registry's port is kept).
    #[arg(long, default_value = "127.0.0.1")]
    pub push_host: String,
    /// Host smolvm pulls from (the registry's port is kept).
    #[arg(long, default_value = "127.0.0.1")]
    pub pull_host: String,
    /// Print events as JSON lines instead of progress bars.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print JSON (the same record shape as `history show --json`).
    #[arg(long)]
    pub json: bool,
    /// Only this machine's records (its slug or full machine name).
    #[arg(long, value_name = "SLUG")]
    pub machine: Option<String>,
    /// Only failed (and interrupted) runs.
    #[arg(long)]
    pub failed: bool,
    /// Only runs that succeeded (with or without warnings).
    #[arg(long)]
    pub succeeded: bool,
    /// Only cancelled runs.
    #[arg(long)]
    pub cancelled: bool,
    /// Only runs started within this long (e.g. 45m, 2h, 3d).
    #[arg(long, value_name = "AGE", value_parser = crate::history::parse_age)]
    pub since: Option<u64>,
    /// At most this many records (newest first).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// One record with each stage's full log, its largest directories and what changed
    /// since the machine's previous successful freeze.
    Show {
        /// `last`, a freeze id or a unique prefix of one, or a machine's slug (its latest
        /// record).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
