//! The command line's manners, as documented in one place (README "Exit status", the man
//! page's EXIT STATUS, `--help`): exit codes per class, what goes to stdout and what to
//! stderr, `export -o -`, and `list`'s memory column. Runs the real binary against
//! smolvm-sim; none of it needs Docker.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::World;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The record ids in the history, oldest first.
fn records(w: &World) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(w.state.path().join("history"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn exit_codes_follow_the_documented_classes() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-good", "running", Some(root.path()));
    w.sim.create("bot-bottle-off", "stopped", Some(root.path()));
    w.sim.create("bot-bottle-bad", "running", Some(root.path()));
    w.sim
        .ok(&["sim", "set", "bot-bottle-bad", "--exit-after-stream", "2"]);

    // 0: success.
    let out = w.run(&["list"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));

    // 2: bad input, refused before any run: no record is written for it.
    let tar = w.tmp.path().join("x.tar");
    let tar_s = tar.to_string_lossy().into_owned();
    let cases: [(&[&str], &str); 7] = [
        (&["freeze", "nosuch"], "no machine named bot-bottle-nosuch"),
        (&["export", "nosuch", "-o", &tar_s], "no machine named"),
        (&["freeze", "off"], "bot-bottle-off is stopped"),
        (&["export", "off", "-o", &tar_s], "only a running machine"),
        (&["freeze", "--resume", "nope"], "nope"),
        (&["history", "show", "nope"], "nope"),
        (&["discard", "nope"], "nope"),
    ];
    for (args, says) in cases {
        let out = w.run(args);
        let err = text(&out.stderr);
        assert_eq!(code(&out), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("pre-flight") && !err.contains("exec-tar failed"),
            "{args:?} was run, not refused: {err}"
        );
        assert!(records(&w).is_empty(), "{args:?} left a record");
    }
    assert!(!tar.exists());
    // A bad option is bad input too (clap's own refusal).
    assert_eq!(
        code(&w.run(&["freeze", "good", "--transport", "x"])),
        Some(2)
    );

    // 1: the run failed; stderr names the stage, the record and how to read it.
    let out = w.run(&["export", "bad", "-o", &tar_s]);
    let err = text(&out.stderr);
    assert_eq!(code(&out), Some(1), "{err}");
    let ids = records(&w);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = &ids[0];
    assert!(err.contains("exec-tar failed"), "{err}");
    assert!(
        err.contains(&format!("bottle-freeze history show {id}")),
        "no hint to the record: {err}"
    );
    // Resuming it is refused (an export keeps nothing): bad input again, no new record.
    let out = w.run(&["freeze", "--resume", id]);
    assert_eq!(code(&out), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("kept nothing"));
    assert_eq!(records(&w).len(), 1);

    // 130: interrupted.
    w.sim
        .ok(&["sim", "set", "bot-bottle-good", "--throttle", "4K"]);
    let child = w
        .cmd(&["export", "good", "-o", &tar_s, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Past the start: the run is streaming.
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), Some(130), "{}", text(&out.stderr));
    w.assert_clean(root.path());
}

#[test]
fn export_dash_writes_the_archive_to_stdout() {
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-out", "running", Some(root.path()));
    let bin = common::freeze_bin();
    let tmp = w.tmp.path().to_string_lossy().into_owned();
    // Into a pipe: tar reads it as it would any archive.
    let mut sh = Command::new("sh");
    sh.env("SMOLVM_SIM_HOME", w.sim.home())
        .env("BOTTLE_FREEZE_SMOLVM", common::sim_bin())
        .env("BOTTLE_FREEZE_STATE_DIR", w.state.path())
        .args([
            "-c",
            &format!("'{bin}' export out -o - --tmp-dir '{tmp}' | tar -t"),
        ]);
    let out = sh.output().unwrap();
    let listed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(listed.lines().any(|l| l == "./etc/passwd"), "{listed}");
    // No path line, no file named `-`.
    assert!(!listed.contains("/dev/stdout"), "{listed}");
    assert!(!std::path::Path::new("-").exists());
    assert!(
        text(&out.stderr).contains("exported"),
        "{}",
        text(&out.stderr)
    );

    // Into a regular file (`-o - > x.tar`).
    let file = w.state.path().join("x.tar");
    let out = w
        .cmd(&["export", "out", "-o", "-"])
        .stdout(std::fs::File::create(&file).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = Command::new("tar").arg("-tf").arg(&file).output().unwrap();
    assert!(text(&listed.stdout).lines().any(|l| l == "./etc/passwd"));

    // With --json the events go to stderr, the archive to stdout.
    let out = w.run(&["export", "out", "-o", "-", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.len() >= 1024 && out.stdout.len().is_multiple_of(512));
    let events = common::json_events(&out.stderr);
    assert!(
        events.iter().any(|e| e["event"] == "exported"),
        "{events:?}"
    );
    w.assert_clean(root.path());
}

#[test]
fn list_keeps_stdout_for_the_table_and_shows_memory_as_the_dashboard_does() {
    let w = World::new();
    w.sim
        .ok(&["sim", "create", "bot-bottle-big", "--memory-mib", "8192"]);
    w.sim.create("bot-bottle-../../x", "running", None);
    let out = w.run(&["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let big = table.lines().find(|l| l.starts_with("big")).unwrap();
    assert!(big.contains("8.0 GiB"), "{table}");
    assert!(!table.contains("note:"), "a note in the table: {table}");
    let err = text(&out.stderr);
    assert!(
        err.contains("note: bot-bottle-../../x cannot be frozen"),
        "{err}"
    );
    // JSON keeps the number in MiB.
    let out = w.run(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let big = v
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "bot-bottle-big")
        .unwrap();
    assert_eq!(big["memory_mib"], 8192);
}

#[test]
fn each_commands_help_shows_its_own_options_and_the_globals_once() {
    let help = |args: &[&str]| {
        let out = Command::new(common::freeze_bin())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        text(&out.stdout)
    };
    let top = help(&["--help"]);
    assert!(
        top.contains("Global options:") && top.contains("--smolvm"),
        "{top}"
    );
    assert!(top.contains("Exit status:"), "{top}");
    for sub in ["freeze", "export", "list", "history", "discard"] {
        let h = help(&[sub, "--help"]);
        assert!(
            !h.contains("--smolvm <") && !h.contains("--query-timeout <"),
            "{sub}: {h}"
        );
        assert!(h.contains("see `bottle-freeze --help`"), "{sub}: {h}");
        assert!(
            h.contains("Exit status:") && h.contains("130"),
            "{sub}: {h}"
        );
    }
    let freeze = help(&["freeze", "--help"]);
    assert!(freeze.contains("--transport") && freeze.contains("--resume"));
    // Still accepted after the subcommand.
    let out = Command::new(common::freeze_bin())
        .args(["list", "--smolvm", "/nonexistent/smolvm"])
        .output()
        .unwrap();
    assert!(text(&out.stderr).contains("/nonexistent/smolvm"));
}

/// Docker, the registry binary: what a whole freeze needs (after `common::missing`).
fn freeze_parts() -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::docker()).is_some() && common::registry_bin().is_some()
}

#[test]
fn command_events_hold_real_argv_and_say_what_flows_in_or_out_apart() {
    if !freeze_parts() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    let slug = format!("cmd-ev-{}", std::process::id());
    w.sim
        .create(&format!("bot-bottle-{slug}"), "running", Some(root.path()));
    let image = format!("bot-bottle-committed-{slug}:latest");
    // The one-pass build, then Docker's build with the registry push.
    for (builder, least) in [("native", 2), ("docker", 4)] {
        let out = w.run(&["freeze", &slug, "--json", "--builder", builder]);
        let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
        assert!(out.status.success(), "{builder}: {}", text(&out.stderr));
        let events = common::json_events(&out.stdout);
        let commands: Vec<&serde_json::Value> =
            events.iter().filter(|e| e["event"] == "command").collect();
        assert!(commands.len() >= least, "{builder}: {commands:?}");
        for c in &commands {
            let argv: Vec<&str> = c["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            assert!(
                !argv.iter().any(|a| a.starts_with('<') || *a == "|"),
                "{builder}: not a real argv: {c}"
            );
            // Whatever bottle-freeze feeds or takes is said beside the argv.
            let fed = argv[..2] == ["docker", "build"] || argv[..2] == ["docker", "save"];
            assert_eq!(c["io"].is_string(), fed, "{builder}: {c}");
            if builder == "docker" && argv[..2] == ["docker", "build"] {
                assert_eq!(argv.last(), Some(&"-"), "the context on stdin: {c}");
            }
        }
        if builder == "docker" {
            assert!(
                commands.iter().any(|c| c["io"].is_string()),
                "the build context and the pushed stream are described: {commands:?}"
            );
        }
    }
    w.assert_clean(root.path());
}
