//! Issue 14 in a real terminal: acting on records from the history (item 9: resume,
//! discard, prune, each asking first and listing what it uses or removes), the log-text
//! search (item 8), the freeze dialog's pre-checks (item 14) and the desktop notification
//! (item 24). The real binary under tmux, smolvm-sim, and for resume and discard the real
//! Docker daemon and registry.

mod common;
mod tmux_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Sim;
use serde_json::Value;
use tmux_support::{pick, Tmux};

fn docker_ready() -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::docker()).is_some() && common::registry_bin().is_some()
}

fn record(state: &Path, id: &str) -> Value {
    let path = state.join("history").join(id).join("record.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The record ids in `state`, oldest first by their start (ms; an id's stamp is only to
/// the second).
fn record_ids(state: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(state.join("history"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("record.json").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort_by_key(|id| record(state, id)["started_at_ms"].as_u64());
    ids
}

/// Waits for `pred` on the state folder, at most `secs`; panics saying `what`.
fn wait_for(secs: u64, what: &str, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !pred() {
        assert!(Instant::now() < deadline, "waited {secs} s for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn image_exists(id: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", id])
        .output()
        .unwrap()
        .status
        .success()
}

/// A `--builder docker` CLI freeze of `slug` whose pack fails: it keeps its image.
/// Returns the record id and the kept image's id.
fn failed_at_pack(sim: &Sim, state: &Path, slug: &str) -> (String, String) {
    sim.ok(&[
        "sim",
        "set",
        &format!("bot-bottle-{slug}"),
        "--pack-fail",
        "no room for the pack VM",
    ]);
    let out = sim
        .freeze_cmd(state)
        .args(["freeze", slug, "--json", "--builder", "docker"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = common::json_events(&out.stdout)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = record(state, &id)["kept"].clone();
    assert_eq!(kept["from"], "push", "{kept}");
    sim.ok(&["sim", "config", "--pack-fail", ""]);
    (id, kept["image_id"].as_str().unwrap().to_string())
}

/// Opens the history and selects the row of record `id` (by filtering on it).
fn select_record(t: &Tmux, id: &str) {
    t.keys(&["h"]);
    t.wait(20, "the history", |s| s.contains("record"));
    t.keys(&["/"]);
    t.text(id);
    t.keys(&["Enter"]);
    t.wait(20, "the record's row", |s| {
        s.lines().any(|l| l.contains(id) && l.contains("ago"))
    });
}

// Item 9: discard from the dashboard asks, lists the kept image, removes it by its id and
// updates the record.
#[test]
fn discard_from_the_history_removes_the_kept_image_and_updates_the_record() {
    if !docker_ready() {
        return;
    }
    let Some(t) = Tmux::start(140, 40) else {
        return;
    };
    let sim = Sim::new();
    let root = common::small_root();
    sim.create("bot-bottle-tua-disc", "running", Some(root.path()));
    let state = tempfile::tempdir().unwrap();
    let (id, image) = failed_at_pack(&sim, state.path(), "tua-disc");
    assert!(image_exists(&image));
    t.dashboard(&sim, state.path(), "");
    t.wait(20, "the machine list", |s| s.contains("tua-disc"));
    select_record(&t, &id);
    t.keys(&["D"]);
    let s = t.wait(10, "the discard dialog", |s| s.contains("Discard what"));
    assert!(s.contains(&image[..19]), "the image is not listed:\n{s}");
    assert!(s.contains("y/Enter") && s.contains("n/Esc"), "{s}");
    // Backing out removes nothing.
    t.keys(&["n"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(image_exists(&image));
    t.keys(&["D"]);
    t.wait(10, "the discard dialog", |s| s.contains("Discard what"));
    t.keys(&["y"]);
    wait_for(60, "the record to drop what it kept", || {
        record(state.path(), &id)["kept"].is_null()
    });
    // The dashboard reads the history again after a discard: then the record no longer
    // offers one. Until that read lands, D still asks (and is backed out of).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        t.keys(&["D"]);
        std::thread::sleep(Duration::from_millis(300));
        let s = t.screen();
        if s.contains("kept nothing to discard") {
            break;
        }
        if s.contains("Discard what") {
            t.keys(&["n"]);
        }
        assert!(
            Instant::now() < deadline,
            "the record still offers a discard:\n{s}"
        );
    }
    assert!(!image_exists(&image), "the kept image is still there");
    t.quit();
}

// Item 9: resume from the record view runs the freeze again from what it kept, and the
// new record succeeds.
#[test]
fn resume_from_the_record_view_finishes_the_freeze() {
    if !docker_ready() {
        return;
    }
    let Some(t) = Tmux::start(140, 40) else {
        return;
    };
    let sim = Sim::new();
    let root = common::small_root();
    sim.create("bot-bottle-tua-res", "running", Some(root.path()));
    let state = tempfile::tempdir().unwrap();
    let (id, _image) = failed_at_pack(&sim, state.path(), "tua-res");
    sim.ok(&["sim", "set", "bot-bottle-tua-res", "--pack-fail", ""]);
    t.dashboard(&sim, state.path(), "");
    t.wait(20, "the machine list", |s| s.contains("tua-res"));
    select_record(&t, &id);
    t.keys(&["Enter"]);
    t.wait(20, "the record", |s| s.contains("pack log"));
    t.keys(&["R"]);
    let s = t.wait(10, "the resume dialog", |s| s.contains("Resume the freeze"));
    assert!(s.contains("starts at push") && s.contains("image"), "{s}");
    t.keys(&["y"]);
    wait_for(120, "a resumed record that succeeded", || {
        record_ids(state.path()).iter().any(|r| {
            let v = record(state.path(), r);
            v["resumed_from"] == id.as_str() && v["outcome"] == "succeeded"
        })
    });
    assert!(record(state.path(), &id)["kept"].is_null());
    t.quit();
    let _ = Command::new("docker")
        .args(["rmi", "-f", "bot-bottle-committed-tua-res:latest"])
        .output();
}

/// `n` exports of `slug` through the CLI; their record ids, oldest first.
fn exports(sim: &Sim, state: &Path, slug: &str, n: usize) {
    let out_file = state.join(format!("{slug}.tar"));
    for _ in 0..n {
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
    }
    let _ = std::fs::remove_file(out_file);
}

// Item 9: `f` on a record of a machine that is not the selected one opens the freeze dialog
// for the record's machine (not the selection), and confirming freezes that machine.
#[test]
fn refreeze_from_a_record_freezes_the_records_machine() {
    if !docker_ready() {
        return;
    }
    let Some(t) = Tmux::start(140, 40) else {
        return;
    };
    let sim = Sim::new();
    let (a, b) = (common::small_root(), common::small_root());
    sim.create("bot-bottle-tua-aaa", "running", Some(a.path()));
    sim.create("bot-bottle-tua-zzz", "running", Some(b.path()));
    let state = tempfile::tempdir().unwrap();
    exports(&sim, state.path(), "tua-zzz", 1);
    let ids = record_ids(state.path());
    assert_eq!(ids.len(), 1);
    t.dashboard(&sim, state.path(), "");
    // The list is sorted by name: the first machine, not the record's, is selected.
    t.wait(20, "the machine list", |s| {
        s.lines().any(|l| l.contains('›') && l.contains("tua-aaa"))
    });
    select_record(&t, &ids[0]);
    t.keys(&["f"]);
    let s = t.wait(20, "the freeze dialog", |s| {
        s.contains("Freeze bot-bottle-")
    });
    assert!(s.contains("Freeze bot-bottle-tua-zzz?"), "{s}");
    t.keys(&["y"]);
    wait_for(120, "a freeze of tua-zzz that succeeded", || {
        record_ids(state.path()).iter().any(|r| {
            let v = record(state.path(), r);
            v["kind"] == "freeze"
                && v["machine"] == "bot-bottle-tua-zzz"
                && v["outcome"] == "succeeded"
        })
    });
    // Nothing froze the selected machine.
    assert!(record_ids(state.path())
        .iter()
        .all(|r| record(state.path(), r)["machine"] != "bot-bottle-tua-aaa"));
    t.quit();
    let _ = Command::new("docker")
        .args(["rmi", "-f", "bot-bottle-committed-tua-zzz:latest"])
        .output();
}

// Item 9: prune asks, lists exactly the records past the newest three, removes them.
#[test]
fn prune_from_the_history_asks_lists_and_removes_only_old_records() {
    let Some(t) = Tmux::start(140, 40) else {
        return;
    };
    let sim = Sim::new();
    let (a, b) = (common::small_root(), common::small_root());
    sim.create("bot-bottle-tua-old", "running", Some(a.path()));
    sim.create("bot-bottle-tua-one", "running", Some(b.path()));
    let state = tempfile::tempdir().unwrap();
    exports(&sim, state.path(), "tua-old", 5);
    exports(&sim, state.path(), "tua-one", 1);
    let ids = record_ids(state.path());
    assert_eq!(ids.len(), 6);
    let old: Vec<&String> = ids.iter().filter(|i| i.contains("-tua-old-")).collect();
    t.dashboard(&sim, state.path(), "");
    t.wait(20, "the machine list", |s| s.contains("tua-old"));
    t.keys(&["h"]);
    t.wait(20, "the history", |s| s.contains("6 records"));
    t.keys(&["P"]);
    let s = t.wait(20, "the prune plan", |s| s.contains("2 record(s)"));
    // The dialog's lines are `record   <id>  <machine>  <outcome>`; the list behind it
    // shows every id.
    for id in &old[..2] {
        assert!(
            s.contains(&format!("record   {id}")),
            "{id} not listed:\n{s}"
        );
    }
    for id in old[2..]
        .iter()
        .copied()
        .chain(ids.iter().filter(|i| i.contains("-tua-one-")))
    {
        assert!(!s.contains(&format!("record   {id}")), "{id} listed:\n{s}");
    }
    assert!(s.contains("y/Enter") && s.contains("n/Esc"), "{s}");
    t.keys(&["y"]);
    t.wait(20, "the pruned history", |s| s.contains("4 records"));
    let left = record_ids(state.path());
    assert_eq!(left.len(), 4);
    assert!(old[..2].iter().all(|id| !left.contains(id)), "{left:?}");
    t.keys(&["Escape"]);
    t.quit();
}

// Item 8: a word only in a record's log finds it once the filter is kept (Enter).
#[test]
fn history_search_finds_a_record_by_its_log_text() {
    let Some(t) = Tmux::start(140, 40) else {
        return;
    };
    let sim = Sim::new();
    let (a, b) = (common::small_root(), common::small_root());
    sim.create("bot-bottle-tua-warn", "running", Some(a.path()));
    sim.create("bot-bottle-tua-calm", "running", Some(b.path()));
    // tar's warning (`./var/log/app.log: file changed as we read it`) goes to the log.
    sim.ok(&[
        "sim",
        "set",
        "bot-bottle-tua-warn",
        "--exit-after-stream",
        "1",
    ]);
    let state = tempfile::tempdir().unwrap();
    exports(&sim, state.path(), "tua-warn", 1);
    exports(&sim, state.path(), "tua-calm", 1);
    t.dashboard(&sim, state.path(), "");
    t.wait(20, "the machine list", |s| s.contains("tua-calm"));
    t.keys(&["h"]);
    t.wait(20, "the history", |s| s.contains("2 records"));
    t.keys(&["/"]);
    t.text("app.log");
    // As typed, only the fields are searched: no record names app.log.
    t.wait(10, "no field match", |s| s.contains("0 of 2 records"));
    t.keys(&["Enter"]);
    let s = t.wait(20, "the log search's hit", |s| s.contains("1 of 2 records"));
    let warn = record_ids(state.path())
        .into_iter()
        .find(|i| i.contains("-tua-warn-"))
        .unwrap();
    assert!(s.contains(&warn), "{s}");
    assert!(
        !s.lines()
            .any(|l| l.contains("tua-calm") && l.contains("ago")),
        "{s}"
    );
    t.keys(&["Enter"]);
    t.wait(20, "the record with the line", |s| {
        s.contains("file changed as we read it")
    });
    t.keys(&["Escape", "Escape"]);
    t.quit();
}

// Item 14: the freeze dialog pre-checks the parts the configured path needs, in the
// background: here the Docker build with no Docker daemon, said before confirming.
#[test]
fn the_freeze_dialog_says_a_missing_docker_before_confirming() {
    let Some(t) = Tmux::start(120, 40) else {
        return;
    };
    let sim = Sim::new();
    let root = common::small_root();
    sim.create("bot-bottle-tua-pre", "running", Some(root.path()));
    let state = tempfile::tempdir().unwrap();
    t.dashboard(
        &sim,
        state.path(),
        "DOCKER_HOST=unix:///nonexistent/docker.sock BOTTLE_FREEZE_BUILDER=docker",
    );
    t.wait(20, "the machine list", |s| s.contains("tua-pre"));
    pick(&t, "tua-pre");
    t.keys(&["f"]);
    let s = t.wait(30, "the pre-checks", |s| {
        s.contains("✗ the Docker build needs the daemon") && s.contains("room enough")
    });
    assert!(
        s.contains("✓ no other process is freezing this machine"),
        "{s}"
    );
    assert!(s.contains("y/Enter") && s.contains("n/Esc"), "{s}");
    t.keys(&["n"]);
    t.quit();
}

// Item 24: with `notify = true`, a freeze that ends writes OSC 9 and OSC 777 to the
// terminal beside the bell; tmux's pipe-pane hands us the bytes the dashboard wrote.
#[test]
fn a_freeze_that_ends_sends_a_desktop_notification() {
    let Some(t) = Tmux::start(120, 40) else {
        return;
    };
    let sim = Sim::new();
    let root = common::small_root();
    sim.create("bot-bottle-tua-note", "running", Some(root.path()));
    // The freeze fails at once in exec-tar: no Docker needed for it to end.
    sim.ok(&["sim", "set", "bot-bottle-tua-note", "--exit-silent", "2"]);
    let state = tempfile::tempdir().unwrap();
    let conf = state.path().join("xdg/bottle-freeze");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("config.toml"),
        "[ui]\nnotify = true\nbell = true\n",
    )
    .unwrap();
    let raw = state.path().join("pane.raw");
    t.run(&[
        "pipe-pane",
        "-t",
        "e2e",
        "-O",
        &format!("cat >> '{}'", raw.display()),
    ]);
    t.dashboard(&sim, state.path(), "");
    t.wait(20, "the machine list", |s| s.contains("tua-note"));
    pick(&t, "tua-note");
    t.keys(&["f"]);
    t.wait(10, "the dialog", |s| {
        s.contains("Freeze bot-bottle-tua-note?")
    });
    t.keys(&["y"]);
    let read = || String::from_utf8_lossy(&std::fs::read(&raw).unwrap_or_default()).into_owned();
    wait_for(60, "the notification's bytes", || {
        read().contains("\x1b]9;")
    });
    let bytes = read();
    let osc9 = bytes.find("\x1b]9;").unwrap();
    let end = bytes[osc9..].find('\x07').unwrap() + osc9;
    let text = &bytes[osc9 + 4..end];
    assert!(text.contains("bot-bottle-tua-note"), "{text:?}");
    assert!(
        bytes.contains(&format!("\x1b]777;notify;bottle-freeze;{text}\x07")),
        "no OSC 777 beside OSC 9"
    );
    t.quit();
}
