//! Issue 14 in a real terminal: what the panes say during a freeze is true. A stream that
//! stops decays and says `stalled`, exec-tar shows its progress against the guest's `df`
//! estimate, a cancelled run keeps its bytes in the record, and freezes run by another
//! process show live (and dead ones are recovered, not shown as running).

mod common;
mod tmux_support;

use std::path::Path;
use std::time::Duration;

use common::Sim;
use tmux_support::{pick, Tmux};

fn docker_ready() -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::docker()).is_some() && common::registry_bin().is_some()
}

/// The newest record in `state`, as JSON.
fn newest_record(state: &Path) -> serde_json::Value {
    let mut dirs: Vec<_> = std::fs::read_dir(state.join("history"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let path = dirs.last().unwrap().join("record.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

// Items 1, 2 and 5.
#[test]
fn a_stream_that_stops_says_stalled_shows_the_estimate_and_keeps_its_bytes() {
    if !docker_ready() {
        return;
    }
    let Some(t) = Tmux::start(120, 36) else {
        return;
    };
    let sim = Sim::new();
    let root = common::small_root();
    sim.create("bot-bottle-stuck", "running", Some(root.path()));
    sim.ok(&["sim", "config", "--exec-cap", "off"]);
    sim.ok(&[
        "sim",
        "set",
        "bot-bottle-stuck",
        "--synthetic-size",
        "64M",
        "--throttle",
        "64K",
        "--hang-after",
        "200K",
    ]);
    let state = tempfile::tempdir().unwrap();
    t.dashboard(&sim, state.path(), "BOTTLE_FREEZE_STALL_AFTER=3");
    t.wait(20, "the machine list", |s| s.contains("stuck"));
    pick(&t, "stuck");
    t.keys(&["f"]);
    t.wait(10, "the confirmation", |s| {
        s.contains("Freeze bot-bottle-stuck?")
    });
    t.keys(&["y"]);
    // Item 2: against the df estimate, marked as one.
    let s = t.wait(20, "progress against the estimate", |s| {
        s.contains("% of ~")
    });
    assert!(!s.contains("stalled"), "{s}");
    // Item 1: no bytes for 3 s: the row and the pane say so; the rate fell to 0.
    let s = t.wait(20, "the stall", |s| {
        s.matches("stalled · no bytes for").count() >= 1 && s.contains("no bytes for")
    });
    assert!(s.contains("stalled"), "{s}");
    let later = t.wait(10, "the stall time to grow", |now| {
        now.contains("no bytes for 6s") || now.contains("no bytes for 7s")
    });
    assert!(
        later.contains("0 B/s") || later.contains("stalled"),
        "{later}"
    );
    // Item 5: cancel; the record keeps what streamed.
    t.keys(&["c"]);
    t.wait(10, "the cancel question", |s| {
        s.to_lowercase().contains("cancel")
    });
    t.keys(&["y"]);
    t.wait(20, "cancelled", |s| s.contains("cancelled"));
    let rec = newest_record(state.path());
    assert_eq!(rec["outcome"], "cancelled", "{rec}");
    assert!(rec["bytes"].as_u64().unwrap() > 0, "{rec}");
    assert_eq!(rec["stages"][1]["status"], "skipped", "{rec}");
    // The pane shows the skipped stages too.
    t.wait(5, "skipped stages", |s| s.contains("skipped"));
    t.quit();
}

// Item 6.
#[test]
fn a_cli_freeze_shows_live_and_a_killed_one_is_recovered_not_running() {
    if !docker_ready() {
        return;
    }
    let Some(t) = Tmux::start(120, 36) else {
        return;
    };
    let sim = Sim::new();
    let root = common::small_root();
    sim.create("bot-bottle-away", "running", Some(root.path()));
    sim.ok(&["sim", "config", "--exec-cap", "off"]);
    sim.ok(&[
        "sim",
        "set",
        "bot-bottle-away",
        "--synthetic-size",
        "1G",
        "--throttle",
        "2M",
    ]);
    let state = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // The dashboard opens and reads its (empty) history first; the CLI freeze starts after,
    // so the dashboard must notice a freeze begun since its first read.
    t.dashboard(&sim, state.path(), "");
    t.wait(20, "the machine list and the history", |s| {
        s.contains("away") && s.contains("never frozen")
    });
    let mut cli = sim
        .freeze_cmd(state.path())
        .args(["freeze", "away", "--json", "--tmp-dir"])
        .arg(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(state.path().join("cli.err")).unwrap())
        .spawn()
        .unwrap();
    let pid = cli.id();
    std::thread::sleep(Duration::from_secs(2));
    if let Some(st) = cli.try_wait().unwrap() {
        panic!(
            "the CLI freeze ended early ({st}): {}",
            std::fs::read_to_string(state.path().join("cli.err")).unwrap_or_default()
        );
    }
    t.wait(40, "the CLI's freeze, live", |s| {
        s.contains(&format!("▶ exec-tar by pid {pid}"))
    });
    // The bytes move, read from the record the CLI saves every second.
    std::thread::sleep(Duration::from_secs(3));
    t.wait(10, "MiB from the record", |s| {
        s.lines()
            .any(|l| l.contains(&format!("by pid {pid}")) && l.contains("MiB"))
    });
    // Killed: the dashboard recovers it on its next read and never shows it running.
    let killed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = cli.wait();
    let s = t.wait(20, "the dead freeze to be recovered", |s| {
        s.contains("interrupted")
    });
    assert!(!s.contains(&format!("by pid {pid}")), "{s}");
    let rec = newest_record(state.path());
    assert_eq!(rec["outcome"], "interrupted");
    // Item 21: its duration ends at its last event, not when the recovery ran.
    let ended = rec["ended_at_ms"].as_u64().unwrap();
    assert!(ended <= killed_ms, "{ended} > {killed_ms}");
    assert!(ended >= rec["started_at_ms"].as_u64().unwrap());
    t.quit();
    // The killed run's leftovers were removed by the recovery.
    let _ = std::fs::remove_dir_all(tmp.path());
}

/// A world with two machines and one export record each, for the layout tests.
fn two_machines_with_records(sim: &Sim, state: &Path) -> Vec<tempfile::TempDir> {
    let (a, b) = (common::small_root(), common::small_root());
    sim.ok(&[
        "sim",
        "create",
        "bot-bottle-alpha",
        "--state",
        "running",
        "--root",
        a.path().to_str().unwrap(),
        "--image",
        "registry.example.com/a-team/a-rather-long-image-name:1.2.3",
    ]);
    sim.create("bot-bottle-beta", "running", Some(b.path()));
    for slug in ["alpha", "beta"] {
        let out_file = state.join(format!("{slug}.tar"));
        let out = sim
            .freeze_cmd(state)
            .args(["export", slug, "-o", out_file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(out_file).unwrap();
    }
    vec![a, b]
}

/// The record ids in `state`, newest last.
fn record_ids(state: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(state.join("history"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}

// Item 12, at 80×24 and 200×50.
#[test]
fn widths_follow_the_terminal_at_80x24_and_200x50() {
    for (w, h) in [(200u16, 50u16), (80, 24)] {
        let Some(t) = Tmux::start(w, h) else {
            return;
        };
        let sim = Sim::new();
        let state = tempfile::tempdir().unwrap();
        let _roots = two_machines_with_records(&sim, state.path());
        t.dashboard(&sim, state.path(), "");
        let s = t.wait(20, "the machine list", |s| {
            s.contains("alpha") && s.contains("beta")
        });
        let header = s.lines().find(|l| l.contains("SLUG")).unwrap().to_string();
        let slug_at = header.find("SLUG").unwrap();
        let state_at = header.find("STATE").unwrap();
        // SLUG is as wide as the slugs need, not half the screen.
        assert!(state_at - slug_at <= 24, "{w}x{h}: {header}");
        if w == 200 {
            // A long IMAGE is cut with an ellipsis, never silently.
            let row = s.lines().find(|l| l.contains("alpha")).unwrap();
            assert!(
                row.contains("registry.example.com") && row.contains('…'),
                "{row}"
            );
        }
        t.keys(&["h"]);
        let s = t.wait(10, "the history", |s| s.contains("2 records"));
        let ids = record_ids(state.path());
        // MACHINE readable at 80×24; record ids never cut where they are shown.
        assert!(s.contains("alpha") && s.contains("beta"), "{s}");
        assert!(!s.contains("bot-bottl "), "{s}");
        for id in &ids {
            assert!(s.contains(id.as_str()), "{w}x{h}: id {id} cut:\n{s}");
        }
        t.keys(&["Escape"]);
        t.quit();
    }
}

// Item 8: filter and search in the history; Enter on a machine opens its last record.
#[test]
fn history_filters_and_enter_opens_a_machines_last_record() {
    let Some(t) = Tmux::start(160, 40) else {
        return;
    };
    let sim = Sim::new();
    let state = tempfile::tempdir().unwrap();
    let _roots = two_machines_with_records(&sim, state.path());
    t.dashboard(&sim, state.path(), "");
    t.wait(20, "the machine list", |s| {
        s.contains("alpha") && s.contains("beta")
    });
    t.keys(&["h"]);
    t.wait(10, "the history", |s| s.contains("2 records"));
    t.keys(&["/"]);
    t.text("beta");
    t.keys(&["Enter"]);
    let s = t.wait(10, "the filtered list", |s| s.contains("1 of 2 records"));
    assert!(
        !s.lines().any(|l| l.contains("alpha") && l.contains("ago")),
        "{s}"
    );
    t.keys(&["/", "Escape"]);
    t.wait(10, "all again", |s| s.contains("2 records"));
    t.keys(&["o"]);
    t.wait(10, "only failed runs", |s| s.contains("0 of 2 records"));
    t.keys(&["o", "o", "o", "Escape"]);
    // Enter on a machine opens its last record.
    pick(&t, "alpha");
    t.keys(&["Enter"]);
    let alpha = record_ids(state.path())
        .into_iter()
        .find(|id| id.contains("-alpha-"))
        .unwrap();
    t.wait(10, "alpha's record", |s| {
        s.contains(&alpha) && s.contains("exec-tar")
    });
    t.keys(&["Escape", "Escape"]);
    t.quit();
}

// Items 14, 15 and 20.
#[test]
fn dialog_keys_stay_a_hiding_filter_selects_nothing_and_quitting_leaves_nothing() {
    let Some(t) = Tmux::start(80, 24) else {
        return;
    };
    let sim = Sim::new();
    let root = common::small_root();
    sim.create("bot-bottle-gamma", "running", Some(root.path()));
    let base = tempfile::tempdir().unwrap();
    // A state folder deep enough that the artifact path passes 64 columns.
    let state = base
        .path()
        .join("a-state-folder-with-a-rather-long-name/and-another-level-below-it");
    std::fs::create_dir_all(&state).unwrap();
    t.run(&["send-keys", "-t", "e2e", "clear; echo BEFORE", "Enter"]);
    t.dashboard(&sim, &state, "");
    t.wait(20, "the machine list", |s| s.contains("gamma"));
    t.keys(&["f"]);
    let s = t.wait(10, "the confirmation", |s| {
        s.contains("Freeze bot-bottle-gamma?")
    });
    assert!(s.contains("committed-smolmachine"), "{s}");
    assert!(
        s.contains("y/Enter") && s.contains("n/Esc"),
        "the key line:\n{s}"
    );
    t.keys(&["n"]);
    // Item 15: a filter that hides every machine leaves nothing selected.
    t.keys(&["/"]);
    t.text("zzz");
    t.keys(&["Enter"]);
    let s = t.wait(10, "the empty list", |s| s.contains("0 of 1"));
    assert!(!s.contains("bot-bottle-gamma · running"), "{s}");
    t.keys(&["f"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !t.screen().contains("Freeze bot-bottle-gamma?"),
        "{}",
        t.screen()
    );
    t.keys(&["/", "Escape"]);
    // Item 20: the terminal grows, then quit: nothing of the dashboard is left.
    t.run(&["resize-window", "-t", "e2e", "-x", "120", "-y", "34"]);
    std::thread::sleep(Duration::from_millis(500));
    t.quit();
    let s = t.screen();
    assert!(s.contains("BEFORE"), "{s}");
    assert!(
        !s.contains('┌') && !s.contains('│') && !s.contains("machines"),
        "left on screen:\n{s}"
    );
}
