//! The configuration file through the real binary: precedence (flag > environment >
//! file > default), `config` and `config --default`, and a bad file or an unknown key
//! reported while the tool still runs.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Sim;

/// A config home with `text` as `bottle-freeze/config.toml`.
fn config_home(text: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("bottle-freeze");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
    home
}

/// `bottle-freeze ARGS` with only the given environment (besides PATH and HOME).
fn run(xdg: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(common::freeze_bin());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", xdg)
        .env("XDG_CONFIG_HOME", xdg)
        .envs(env.iter().copied())
        .args(args);
    c.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let home = config_home(
        "prefix = \"file-\"\nquery_timeout = 7\nrefresh = 9.5\n\
         [freeze]\nuser = \"file-user\"\ntransport = \"pipe\"\n",
    );
    let out = run(
        home.path(),
        &[
            ("BOTTLE_FREEZE_QUERY_TIMEOUT", "8"),
            ("BOTTLE_FREEZE_PREFIX", "env-"),
        ],
        &["--prefix", "flag-", "config"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        line(&stdout, "prefix"),
        "prefix = \"flag-\"  # flag --prefix"
    );
    assert_eq!(
        line(&stdout, "query_timeout"),
        "query_timeout = 8  # env BOTTLE_FREEZE_QUERY_TIMEOUT"
    );
    assert_eq!(line(&stdout, "refresh"), "refresh = 9.5  # file");
    assert_eq!(line(&stdout, "user"), "user = \"file-user\"  # file");
    assert_eq!(line(&stdout, "transport"), "transport = \"pipe\"  # file");
    assert_eq!(
        line(&stdout, "workdir"),
        "workdir = \"/home/node\"  # default"
    );
    assert!(stdout.contains(&format!(
        "# file: {}",
        home.path().join("bottle-freeze/config.toml").display()
    )));
}

#[test]
fn the_file_reaches_the_commands() {
    // smolvm and the prefix come from the file alone: `list` finds the machines.
    let sim = Sim::new();
    sim.create("team-a", "running", None);
    sim.create("bot-bottle-b", "running", None);
    let state = tempfile::tempdir().unwrap();
    let home = config_home(&format!(
        "smolvm = {:?}\nprefix = \"team-\"\nstate_dir = {:?}\n",
        common::sim_bin(),
        state.path()
    ));
    let out = run(
        home.path(),
        &[("SMOLVM_SIM_HOME", sim.home().to_str().unwrap())],
        &["list", "--json"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = v.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["team-a"]);
}

#[test]
fn a_malformed_file_is_reported_with_line_and_column_and_the_tool_runs() {
    let home = config_home("prefix = \"x-\"\n[freeze]\nuser = = \"x\"\n");
    let path = home.path().join("bottle-freeze/config.toml");
    let out = run(home.path(), &[], &["config"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("bottle-freeze: config: {}:3:", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("the file is ignored and the defaults are used"),
        "{stderr}"
    );
    assert_eq!(
        line(&stdout, "prefix"),
        "prefix = \"bot-bottle-\"  # default"
    );
    // A value that does not fit its key costs that key alone.
    let home = config_home(
        "query_timeout = \"soon\"\nprefix = \"x-\"\n[ui]\ntheme = \"neon\"\n[keys.dashboard]\nfreeze = \"x\"\n",
    );
    let out = run(home.path(), &[], &["config"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success());
    assert!(
        stderr.contains("config.toml:1:17: `query_timeout`: invalid type"),
        "{stderr}"
    );
    assert!(
        stderr.contains("config.toml:4:9: `ui.theme`: unknown variant `neon`"),
        "{stderr}"
    );
    assert!(!stderr.contains("the file is ignored"), "{stderr}");
    assert_eq!(line(&stdout, "prefix"), "prefix = \"x-\"  # file");
    assert_eq!(
        line(&stdout, "query_timeout"),
        "query_timeout = 15  # default"
    );
    assert!(stdout.contains("freeze = [\"x\"]  # file"), "{stdout}");
}

#[test]
fn an_unknown_key_is_a_warning_and_the_rest_applies() {
    let home = config_home(
        "colour = \"blue\"\n[freeze]\nuserr = \"x\"\nuser = \"me\"\n[keys.dashboard]\nfly = \"y\"\n",
    );
    let out = run(home.path(), &[], &["config"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("unknown key `colour` (ignored)"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown key `freeze.userr`"), "{stderr}");
    assert!(
        stderr.contains("unknown key `keys.dashboard.fly`"),
        "{stderr}"
    );
    assert_eq!(line(&stdout, "user"), "user = \"me\"  # file");
}

#[test]
fn config_default_prints_a_commented_file_that_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &[], &["config", "--default"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("# transport = \"auto\""), "{stdout}");
    assert!(stdout.contains("# freeze = [\"f\"]"), "{stdout}");
    // Every line is a comment or a table header: used as is, it changes nothing.
    for l in stdout.lines() {
        assert!(
            l.is_empty() || l.starts_with('#') || l.starts_with('['),
            "{l}"
        );
    }
    let dir = home.path().join("bottle-freeze");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), &stdout).unwrap();
    let out = run(home.path(), &[], &["config"]);
    let (stdout, stderr) = text(&out);
    assert!(stderr.is_empty(), "{stderr}");
    assert!(!stdout.contains("# file\n") && !stdout.contains("  # file"));
}
