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
    let mut cli = sim
        .freeze_cmd(state.path())
        .args(["freeze", "away", "--json", "--tmp-dir"])
        .arg(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(state.path().join("cli.err")).unwrap())
        .spawn()
        .unwrap();
    let pid = cli.id();
    t.dashboard(&sim, state.path(), "");
    t.wait(20, "the machine list", |s| s.contains("away"));
    std::thread::sleep(Duration::from_secs(2));
    if let Some(st) = cli.try_wait().unwrap() {
        panic!(
            "the CLI freeze ended early ({st}): {}",
            std::fs::read_to_string(state.path().join("cli.err")).unwrap_or_default()
        );
    }
    let s = t.wait(20, "the CLI's freeze, live", |s| {
        s.contains(&format!("by pid {pid}"))
    });
    assert!(s.contains("▶ exec-tar"), "{s}");
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
