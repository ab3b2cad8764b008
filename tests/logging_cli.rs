//! The log file and `--verbose` through the real binary: each command run is written to
//! `<state>/logs/`, at the level `--log-level` or `RUST_LOG` asks for, and `--verbose`
//! shows the commands on the terminal.

mod common;

use std::path::Path;

use common::Sim;

fn log_text(state: &Path) -> String {
    let dir = state.join("logs");
    let mut text = String::new();
    for e in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with("bottle-freeze.") && name.ends_with(".log"),
            "{name}"
        );
        text.push_str(&std::fs::read_to_string(e.path()).unwrap());
    }
    text
}

fn export(sim: &Sim, state: &Path, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let out_dir = tempfile::tempdir().unwrap();
    let mut c = sim.freeze_cmd(state);
    c.env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .args(["export", "small", "-o"])
        .arg(out_dir.path().join("root.tar"))
        .args(extra);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A sim with one small running machine, its root, and a state folder.
fn world() -> (Sim, tempfile::TempDir, tempfile::TempDir) {
    let sim = Sim::new();
    let root = common::small_root();
    sim.create("bot-bottle-small", "running", Some(root.path()));
    (sim, root, tempfile::tempdir().unwrap())
}

#[test]
fn verbose_shows_the_commands_and_the_log_file_has_them() {
    let (sim, _root, state) = world();
    let out = export(&sim, state.path(), &["--verbose"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exec-tar: $ ")
            && stderr.contains("machine exec --name bot-bottle-small --stream -- tar --create"),
        "{stderr}"
    );
    // The sim has smolvm 1.32's --error-format: the command shown is the one run.
    assert!(
        stderr.contains("--error-format json machine exec --name bot-bottle-small"),
        "{stderr}"
    );
    let log = log_text(state.path());
    assert!(log.contains("running"), "{log}");
    assert!(log.contains("bot-bottle-small"), "{log}");
    // Without --verbose the commands are not shown.
    let state2 = tempfile::tempdir().unwrap();
    let out = export(&sim, state2.path(), &[], &[]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("$ "));
}

#[test]
fn log_level_comes_from_the_flag_or_rust_log() {
    let (sim, _root, state) = world();
    export(&sim, state.path(), &["--log-level", "warn"], &[]);
    let log = log_text(state.path());
    assert!(!log.contains("INFO"), "{log}");
    let state2 = tempfile::tempdir().unwrap();
    export(&sim, state2.path(), &[], &[("RUST_LOG", "debug")]);
    assert!(log_text(state2.path()).contains("INFO"));
    // The flag wins over RUST_LOG.
    let state3 = tempfile::tempdir().unwrap();
    export(
        &sim,
        state3.path(),
        &["--log-level", "error"],
        &[("RUST_LOG", "debug")],
    );
    assert!(!log_text(state3.path()).contains("INFO"));
}
