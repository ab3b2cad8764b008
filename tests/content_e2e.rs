//! Issue 14 item 11, end to end: a machine frozen twice through smolvm-sim with its root
//! changed in between (a folder grown, one added, one removed, one with a hostile name),
//! then `history show` asked what changed, as text and as JSON.

mod common;

use std::path::Path;
use std::process::Output;

use common::World;
use serde_json::Value;

/// No Docker daemon and no registry: the native build packs the archive, so this test
/// needs only smolvm-sim.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

fn freeze(w: &World, slug: &str) -> String {
    let mut c = w.cmd(&[
        "freeze",
        slug,
        "--json",
        "--registry-bin",
        "/nonexistent/registry",
    ]);
    c.env("DOCKER_HOST", NO_DOCKER);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "freeze failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    common::json_events(&out.stdout)
        .iter()
        .find(|e| e["event"] == "started")
        .and_then(|e| e["id"].as_str())
        .expect("a started event")
        .to_string()
}

fn file(root: &Path, path: &str, kib: usize) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, vec![b'x'; kib * 1024]).unwrap();
}

fn stdout(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn history_show_says_what_grew_appeared_and_went_since_the_last_freeze() {
    let w = World::new();
    let root = common::small_root();
    let r = root.path();
    file(r, "home/node/cache/a.bin", 100);
    file(r, "var/old/data.bin", 50);
    file(r, "var/keep/k.bin", 10);
    w.sim.create("bot-bottle-diff", "running", Some(r));
    let first = freeze(&w, "diff");

    // A freeze has no "previous" to compare with yet; its largest folders are listed.
    let shown = stdout(w.run(&["history", "show", &first]));
    assert!(shown.contains("largest directories"), "{shown}");
    assert!(!shown.contains("changes since"), "{shown}");
    let line = shown
        .lines()
        .find(|l| l.ends_with(" /home/node/cache"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains("100.0 KiB"), "{line}");

    file(r, "home/node/cache/b.bin", 300);
    file(r, "opt/tool/bin/t", 200);
    std::fs::remove_dir_all(r.join("var/old")).unwrap();
    file(r, "srv/\x1b]0;pwned\x07/evil", 1);
    let second = freeze(&w, "diff");

    let shown = stdout(w.run(&["history", "show", &second]));
    assert!(shown.contains(&format!("changes since {first}")), "{shown}");
    let changes = &shown[shown.find("changes since").unwrap()..shown.find("stages:").unwrap()];
    let change = |kind: &str, path: &str| {
        changes
            .lines()
            .find(|l| l.trim_start().starts_with(kind) && l.contains(&format!(" {path}")))
            .unwrap_or_else(|| panic!("no '{kind} {path}' in:\n{shown}"))
            .to_string()
    };
    let grew = change("grew", "/home/node/cache");
    assert!(grew.contains("+300.0 KiB"), "{grew}");
    assert!(grew.contains("(100.0 KiB → 400.0 KiB)"), "{grew}");
    assert!(change("appeared", "/opt").contains("+200.0 KiB"));
    assert!(change("went", "/var/old").contains("-50.0 KiB"));
    // /var shrank by exactly what /var/old took with it: said once, by /var/old.
    assert!(!changes.lines().any(|l| l.ends_with(" /var")), "{changes}");
    // The guest's hostile folder name reaches the terminal escaped.
    assert!(
        !shown.contains('\x1b') && !shown.contains('\x07'),
        "{shown}"
    );
    assert!(change("appeared", "/srv").contains("+1.0 KiB"));
    assert!(shown.contains("/srv/\\x1b]0;pwned\\x07"), "{shown}");

    // The same as JSON: the record's summary and the changes, largest first.
    let doc: Value =
        serde_json::from_str(&stdout(w.run(&["history", "show", &second, "--json"]))).unwrap();
    assert_eq!(doc["changes"]["since"], first.as_str());
    let dirs = doc["changes"]["dirs"].as_array().unwrap();
    let got: Vec<(&str, &str, i64)> = dirs
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["after"].as_i64().unwrap() - c["before"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/home/node/cache", "grew", 300 << 10),
            ("/opt", "appeared", 200 << 10),
            ("/var/old", "went", -(50 << 10)),
            ("/srv", "appeared", 1 << 10),
        ]
    );
    let content = &doc["record"]["content"];
    assert_eq!(content["dirs"][0]["path"], "/home");
    assert!(content["entries"].as_u64().unwrap() > 10);
    w.assert_clean(r);
}

/// The guest-file transport (past smolvm's exec output cap) scans the downloaded archive:
/// its record has the same summary as the pipe's.
#[test]
fn the_guest_file_transport_records_the_same_summary() {
    let w = World::new();
    let root = common::small_root();
    let r = root.path();
    file(r, "home/node/cache/a.bin", 64);
    w.sim.create("bot-bottle-gf", "running", Some(r));
    let out_file = w.tmp.path().join("../gf.tar");
    let out_file = out_file.to_str().unwrap();
    let mut summaries = Vec::new();
    for transport in ["pipe", "guest-file"] {
        let out = w.run(&[
            "export",
            "gf",
            "--json",
            "-o",
            out_file,
            "--transport",
            transport,
        ]);
        assert!(
            out.status.success(),
            "{transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = common::json_events(&out.stdout)
            .iter()
            .find(|e| e["event"] == "started")
            .and_then(|e| e["id"].as_str())
            .unwrap()
            .to_string();
        let rec = &w.record(&id)["record"];
        assert_eq!(rec["transport"], transport, "{rec}");
        summaries.push(rec["content"].clone());
    }
    let _ = std::fs::remove_file(out_file);
    assert_eq!(summaries[0], summaries[1]);
    let cache = summaries[0]["dirs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == "/home/node/cache")
        .cloned()
        .unwrap();
    assert_eq!(cache["bytes"], 64 << 10);
    w.assert_clean(r);
}
