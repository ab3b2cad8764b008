//! A stream that stops (issue 14, items 1, 4, 5): `--stall-timeout` fails exec-tar with
//! the reason, the record keeps the bytes and entries streamed before the stall, and the
//! stages that never ran are skipped. Against smolvm-sim, through the headless CLI.

mod common;

use std::time::{Duration, Instant};

use common::World;

#[test]
fn a_stalled_stream_fails_after_the_stall_timeout_and_keeps_its_bytes() {
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-st", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    w.sim.ok(&[
        "sim",
        "set",
        "bot-bottle-st",
        "--synthetic-size",
        "64M",
        "--hang-after",
        "1M",
    ]);
    let started = Instant::now();
    let out = w.run(&["freeze", "st", "--json", "--stall-timeout", "2"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = common::json_events(&out.stdout);
    let failed = events
        .iter()
        .find(|e| e["event"] == "failed")
        .expect("a failed event");
    let f = &failed["failure"];
    assert_eq!(f["stage"], "exec-tar", "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("stalled: no bytes for"),
        "{f}"
    );
    let id = events[0]["id"].as_str().unwrap().to_string();
    let rec = &w.record(&id)["record"];
    assert_eq!(rec["outcome"], "failed");
    // The bytes seen before the stall are kept, not `0 B in 0 entries`.
    assert!(rec["bytes"].as_u64().unwrap() > 0, "{rec}");
    assert!(rec["entries"].as_u64().unwrap() > 0, "{rec}");
    assert!(rec["stages"][0]["bytes"].as_u64().unwrap() > 0, "{rec}");
    for s in 1..4 {
        assert_eq!(rec["stages"][s]["status"], "skipped", "{rec}");
    }
    w.assert_clean(root.path());
}

#[test]
fn without_a_stall_timeout_a_slow_stream_is_not_failed() {
    // Control: the same fault never fails by itself before it is cancelled; the option
    // is what ends it.
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-sn", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    w.sim.ok(&[
        "sim",
        "set",
        "bot-bottle-sn",
        "--synthetic-size",
        "64M",
        "--hang-after",
        "1M",
    ]);
    let out_file = w.tmp.path().join("../sn.tar");
    let mut run = common::Watched::spawn(w.cmd(&[
        "export",
        "sn",
        "--json",
        "-o",
        out_file.to_str().unwrap(),
    ]));
    run.wait_for(30, |v| v["event"] == "progress");
    std::thread::sleep(Duration::from_secs(4));
    assert!(run.events("failed").is_empty());
    run.signal(nix::sys::signal::Signal::SIGINT);
    let (status, err) = run.finish(10);
    assert_eq!(status.code(), Some(130), "{err}");
    // A cancelled run keeps its bytes too.
    let id = run.events("started")[0]["id"].as_str().unwrap().to_string();
    let rec = &w.record(&id)["record"];
    assert_eq!(rec["outcome"], "cancelled");
    assert!(rec["bytes"].as_u64().unwrap() > 0, "{rec}");
    w.assert_clean(root.path());
}
