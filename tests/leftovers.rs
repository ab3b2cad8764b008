//! Nothing left behind (issue 12, items 12–13): pack's staging folder and a Dockerfile
//! build's images are removed on every way out — SIGINT, SIGTERM, and recovery after
//! SIGKILL. Real binary, real Docker daemon, smolvm-sim.

mod common;

use std::path::{Path, PathBuf};

use common::{Watched, World};
use nix::sys::signal::Signal;

const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

fn staging_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(".pack-")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Freezes `slug` natively with a pack that hangs; `sig` once pack has started.
fn interrupt_pack(w: &World, slug: &str, sig: Signal) -> String {
    w.sim.ok(&["sim", "config", "--pack-delay-secs", "60"]);
    let mut c = w.cmd(&["freeze", slug, "--json"]);
    c.env("DOCKER_HOST", NO_DOCKER);
    let mut run = Watched::spawn(c);
    let started = run.wait_for(60, |v| v["event"] == "started");
    run.wait_for(60, |v| {
        v["event"] == "stage-started" && v["stage"] == "pack"
    });
    // The staging folder exists while pack runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while staging_under(&w.state.path().join(slug)).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no staging folder");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run.signal(sig);
    let _ = run.finish(30);
    w.sim.ok(&["sim", "config", "--pack-delay-secs", "0"]);
    started["id"].as_str().unwrap().to_string()
}

// Item 12: SIGINT or SIGTERM during pack removes its staging folder.
#[test]
fn a_cancelled_pack_leaves_no_staging_folder() {
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let w = World::new();
        let root = common::small_root();
        w.sim
            .create("bot-bottle-lo12", "running", Some(root.path()));
        interrupt_pack(&w, "lo12", sig);
        let left = staging_under(&w.state.path().join("lo12"));
        assert!(left.is_empty(), "{sig}: staging left: {left:?}");
    }
}

// Item 12: after SIGKILL during pack, recovery removes the staging folder; a stale one
// of an unknown run is removed by the next freeze of the machine.
#[test]
fn a_killed_packs_staging_is_removed_by_recovery_and_by_the_next_freeze() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-lo12k", "running", Some(root.path()));
    let id = interrupt_pack(&w, "lo12k", Signal::SIGKILL);
    let dir = w.state.path().join("lo12k");
    assert!(!staging_under(&dir).is_empty(), "SIGKILL cleaned up?");
    let out = w.run(&["history"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(".pack-"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = staging_under(&dir);
    assert!(left.is_empty(), "recovery left {left:?}");
    assert_eq!(w.record(&id)["record"]["outcome"], "interrupted");

    // A staging folder no record names (a run killed before it recorded it).
    std::fs::create_dir_all(dir.join(".pack-20261201T000000Z-lo12k-dead")).unwrap();
    std::fs::write(dir.join(".pack-20261201T000000Z-lo12k-dead/partial"), b"x").unwrap();
    let mut c = w.cmd(&["freeze", "lo12k", "--json"]);
    c.env("DOCKER_HOST", NO_DOCKER);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = staging_under(&dir);
    assert!(left.is_empty(), "the next freeze left {left:?}");
}
