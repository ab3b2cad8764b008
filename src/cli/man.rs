//! `bottle-freeze man`: one page with every command and its options, and the sections a
//! man page owes its reader (EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES). It names no
//! other page: the subcommands are described here, not in pages of their own.

use roff::{bold, italic, roman, Inline, Roff};

use crate::args::EXIT_STATUS;

/// Every environment variable bottle-freeze reads, and what for. A test checks the
/// sources for variables missing here.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "BOTTLE_FREEZE_SMOLVM",
        "the smolvm binary (--smolvm); default: smolvm on PATH",
    ),
    (
        "BOTTLE_FREEZE_PREFIX",
        "the machine name prefix (--prefix); default: bot-bottle-",
    ),
    ("BOTTLE_FREEZE_STATE_DIR", "the state folder (--state-dir)"),
    (
        "BOTTLE_FREEZE_TMPDIR",
        "where private temp folders are made (--tmp-dir)",
    ),
    ("BOTTLE_FREEZE_CONFIG", "the configuration file (--config)"),
    (
        "BOTTLE_FREEZE_QUERY_TIMEOUT",
        "seconds a short smolvm query may take (--query-timeout)",
    ),
    (
        "BOTTLE_FREEZE_PRUNE_KEEP",
        "the newest records of each machine that prune keeps (prune --keep); default: 3",
    ),
    (
        "BOTTLE_FREEZE_REFRESH",
        "seconds between the dashboard's machine list refreshes (--refresh)",
    ),
    (
        "BOTTLE_FREEZE_THEME",
        "the dashboard's colours: dark, light or mono (--theme)",
    ),
    (
        "BOTTLE_FREEZE_TRANSPORT",
        "how the archive leaves the VM: auto, pipe or guest-file (--transport)",
    ),
    (
        "BOTTLE_FREEZE_BUILDER",
        "who builds the image: native or docker (--builder)",
    ),
    (
        "BOTTLE_FREEZE_PUSH_TO",
        "also publish the image to this HOST[:PORT]/REPO[:TAG] (--push-to)",
    ),
    (
        "BOTTLE_FREEZE_PUSH_VIA",
        "with --builder docker: how the image reaches the registry, stream or daemon (--push-via)",
    ),
    (
        "BOTTLE_FREEZE_STALL_AFTER",
        "seconds without bytes before a stream is shown as stalled ([freeze] stall_after); default: 10",
    ),
    (
        "BOTTLE_FREEZE_STALL_TIMEOUT",
        "seconds without bytes before exec-tar fails (--stall-timeout); default: never",
    ),
    (
        "BOTTLE_FREEZE_HOSTS",
        "comma-separated smolvm hosts: local, unix:///…/smolvm.sock or http://127.0.0.1:PORT, each optionally LABEL= (--host)",
    ),
    (
        "BOTTLE_FREEZE_REGISTRY",
        "an existing registry HOST:PORT instead of a throw-away one (--registry)",
    ),
    (
        "BOTTLE_FREEZE_REGISTRY_BIN",
        "the registry binary to spawn (--registry-bin)",
    ),
    (
        "BOTTLE_FREEZE_REGISTRY_PORT",
        "the port to try first for the spawned registry (--registry-port)",
    ),
    (
        "BOTTLE_FREEZE_LOG_FILE",
        "one log file instead of the daily ones in the state folder",
    ),
    (
        "DOCKER_HOST",
        "the Docker daemon (--docker-host); default: unix:///var/run/docker.sock",
    ),
    (
        "RUST_LOG",
        "the log level or filter, when --log-level is not given",
    ),
    (
        "NO_COLOR",
        "set and not empty: the mono theme, unless --theme says otherwise",
    ),
    (
        "SMOLVM_FILE_TRANSFER_MAX_BYTES",
        "passed to smolvm's machine cp; raised past its 4 GiB default when unset",
    ),
    (
        "SMOLVM_MAX_IMAGE_BYTES",
        "passed to smolvm's pack create; raised for an archive past 8 GiB when unset",
    ),
    (
        "DOCKER_CONFIG",
        "the folder of the Docker config file whose credentials --push-to uses (default ~/.docker)",
    ),
    (
        "XDG_CONFIG_HOME",
        "where the configuration file is looked for",
    ),
    ("XDG_STATE_HOME", "where the state folder is by default"),
    (
        "TMPDIR",
        "the default temp folder, also of the demo's fleet",
    ),
    (
        "PATH",
        "where smolvm and the registry binary are looked for",
    ),
    (
        crate::cli::complete::ENV_VAR,
        "set by the completion scripts when they ask for completions",
    ),
];

const FILES: &[(&str, &str)] = &[
    ("$XDG_CONFIG_HOME/bottle-freeze/config.toml", "the configuration file (~/.config/bottle-freeze/config.toml); `bottle-freeze config --default` prints a commented one"),
    ("$XDG_STATE_HOME/bot-bottle/", "the state folder (~/.local/state/bot-bottle/): artifacts in <slug>/committed-smolmachine.smolmachine"),
    ("<state>/history/<id>/", "one freeze or export: record.json and each stage's <stage>.log"),
    ("<state>/logs/bottle-freeze.YYYY-MM-DD.log", "the log, rotated daily, the last 7 kept"),
    ("$TMPDIR/bot-bottle-vm-commit.*/", "a run's private temp folder (the archive); removed when the run ends"),
];

const EXAMPLES: &[(&str, &str)] = &[
    (
        "bottle-freeze demo",
        "the dashboard on a throw-away simulated fleet",
    ),
    ("bottle-freeze", "the dashboard on the machines smolvm runs"),
    (
        "bottle-freeze list --all",
        "every bot-bottle machine, in any state",
    ),
    (
        "bottle-freeze freeze web",
        "freeze bot-bottle-web; prints the .smolmachine path",
    ),
    (
        "bottle-freeze export web -o - | tar -t",
        "list what the root of bot-bottle-web holds",
    ),
    (
        "bottle-freeze history show <id>",
        "a record with each stage's full output",
    ),
    (
        "bottle-freeze freeze --resume <id>",
        "retry a failed freeze from the stage that failed",
    ),
];

fn section(roff: &mut Roff, name: &str) {
    roff.control("SH", [name]);
}

fn item(roff: &mut Roff, term: Vec<Inline>, text: &str) {
    roff.control("TP", []);
    roff.text(term);
    roff.text([roman(text)]);
}

/// The options and arguments of `cmd` that its help shows.
fn options(roff: &mut Roff, cmd: &clap::Command) {
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let mut term = Vec::new();
        if let Some(s) = arg.get_short() {
            term.push(bold(format!("-{s}")));
            if arg.get_long().is_some() {
                term.push(roman(", "));
            }
        }
        if let Some(l) = arg.get_long() {
            term.push(bold(format!("--{l}")));
        }
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values())
            || (arg.get_long().is_none() && arg.get_short().is_none());
        if takes_value {
            let name = arg
                .get_value_names()
                .and_then(|n| n.first())
                .map(|n| n.to_string())
                .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
            if !term.is_empty() {
                term.push(roman(" "));
            }
            term.push(italic(name));
        }
        let mut text = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !values.is_empty() && arg.get_action().takes_values() {
            text.push_str(&format!(" [values: {}]", values.join(", ")));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() {
            text.push_str(&format!(" [default: {}]", defaults.join(", ")));
        }
        if let Some(env) = arg.get_env() {
            text.push_str(&format!(" [env: {}]", env.to_string_lossy()));
        }
        item(roff, term, &text);
    }
}

/// The page, from the command line's definition.
pub fn page() -> String {
    let mut cmd = crate::args::command();
    // Built, so that every argument knows how many values it takes.
    cmd.build();
    let mut roff = Roff::new();
    let version = cmd.get_version().unwrap_or_default().to_string();
    roff.control(
        "TH",
        [
            "BOTTLE-FREEZE",
            "1",
            "",
            &format!("bottle-freeze {version}"),
            "User Commands",
        ],
    );
    section(&mut roff, "NAME");
    roff.text([roman(format!(
        "bottle-freeze - {}",
        cmd.get_about().map(|a| a.to_string()).unwrap_or_default()
    ))]);
    section(&mut roff, "SYNOPSIS");
    roff.text([
        bold("bottle-freeze"),
        roman(" ["),
        italic("OPTIONS"),
        roman("] ["),
        italic("COMMAND"),
        roman("]"),
    ]);
    section(&mut roff, "DESCRIPTION");
    for para in cmd
        .get_long_about()
        .map(|a| a.to_string())
        .unwrap_or_default()
        .split("\n\n")
    {
        roff.control("PP", []);
        roff.text([roman(para.replace('\n', " "))]);
    }
    section(&mut roff, "OPTIONS");
    options(&mut roff, &cmd);
    section(&mut roff, "COMMANDS");
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        commands(&mut roff, sub, "bottle-freeze");
    }
    section(&mut roff, "EXIT STATUS");
    for (code, meaning) in EXIT_STATUS {
        item(&mut roff, vec![bold(code.to_string())], meaning);
    }
    section(&mut roff, "ENVIRONMENT");
    for (name, meaning) in ENVIRONMENT {
        item(&mut roff, vec![bold(*name)], meaning);
    }
    section(&mut roff, "FILES");
    for (path, meaning) in FILES {
        item(&mut roff, vec![italic(*path)], meaning);
    }
    section(&mut roff, "EXAMPLES");
    for (line, meaning) in EXAMPLES {
        item(&mut roff, vec![bold(*line)], meaning);
    }
    roff.render()
}

/// One command (and its own subcommands) with its usage, description and options.
fn commands(roff: &mut Roff, sub: &clap::Command, parent: &str) {
    let full = format!("{parent} {}", sub.get_name());
    roff.control("SS", [full.as_str()]);
    let usage = sub.clone().bin_name(&full).render_usage().to_string();
    let usage = usage.trim_start_matches("Usage:").trim();
    roff.text([bold(usage)]);
    if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
        roff.control("PP", []);
        roff.text([roman(about.to_string().replace('\n', " "))]);
    }
    options(roff, sub);
    for s in sub
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        commands(roff, s, &full);
    }
}
