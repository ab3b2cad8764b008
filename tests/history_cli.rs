//! `bottle-freeze history` flags and `history show` keys (issue 14, item 10) against real
//! records: runs of `export` and `freeze` through smolvm-sim that succeed, fail and are
//! cancelled, then filtered and looked up the way an operator would.

mod common;

use std::process::Output;

use common::World;
use serde_json::Value;

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ids(out: &Output) -> Vec<String> {
    let v: Value = serde_json::from_str(&stdout(out)).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn started_id(out: &Output) -> String {
    common::json_events(&out.stdout)
        .iter()
        .find(|e| e["event"] == "started")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .expect("a started event")
}

#[test]
fn history_filters_and_show_keys_work_on_real_records() {
    let w = World::new();
    let (a, b) = (common::small_root(), common::small_root());
    w.sim.create("bot-bottle-h-ok", "running", Some(a.path()));
    w.sim.create("bot-bottle-h-bad", "running", Some(b.path()));
    w.sim
        .ok(&["sim", "set", "bot-bottle-h-bad", "--exit-silent", "7"]);
    let out_file = w.tmp.path().join("../h-ok.tar");
    let out_file = out_file.to_str().unwrap();
    let ok1 = started_id(&w.run(&["export", "h-ok", "--json", "-o", out_file]));
    let bad = started_id(&w.run(&["export", "h-bad", "--json", "-o", out_file]));
    let ok2 = started_id(&w.run(&["export", "h-ok", "--json", "-o", out_file]));
    let _ = std::fs::remove_file(out_file);

    // Every record, newest first.
    let all = ids(&w.run(&["history", "--json"]));
    assert_eq!(all, [ok2.clone(), bad.clone(), ok1.clone()]);
    // By machine (slug or full name), outcome, age and count.
    assert_eq!(
        ids(&w.run(&["history", "--json", "--machine", "h-ok"])),
        [ok2.clone(), ok1.clone()]
    );
    assert_eq!(
        ids(&w.run(&["history", "--json", "--machine", "bot-bottle-h-bad"])),
        vec![bad.clone()]
    );
    assert_eq!(
        ids(&w.run(&["history", "--json", "--failed"])),
        vec![bad.clone()]
    );
    assert_eq!(
        ids(&w.run(&["history", "--json", "--succeeded"])),
        [ok2.clone(), ok1.clone()]
    );
    assert_eq!(
        ids(&w.run(&["history", "--json", "--succeeded", "--limit", "1"])),
        vec![ok2.clone()]
    );
    assert_eq!(
        ids(&w.run(&["history", "--json", "--since", "1h"])).len(),
        3
    );
    let bad_age = w.run(&["history", "--since", "soon"]);
    assert_eq!(bad_age.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_age.stderr).contains("45m"));

    // The table: ids whole, exports marked and kept apart, relative times.
    let text = stdout(&w.run(&["history"]));
    assert!(text.contains(&ok1) && text.contains(&bad), "{text}");
    assert!(text.lines().nth(1).unwrap().contains(" export "), "{text}");
    assert!(text.contains("s ago"), "{text}");
    let none = stdout(&w.run(&["history", "--machine", "nobody"]));
    assert!(none.contains("no records match"), "{none}");

    // `show`: last, a unique prefix, a slug; the same record shape as the list.
    let list: Value = serde_json::from_str(&stdout(&w.run(&["history", "--json"]))).unwrap();
    let last: Value =
        serde_json::from_str(&stdout(&w.run(&["history", "show", "last", "--json"]))).unwrap();
    assert_eq!(last["record"], list[0]);
    let by_slug: Value =
        serde_json::from_str(&stdout(&w.run(&["history", "show", "h-bad", "--json"]))).unwrap();
    assert_eq!(by_slug["record"]["id"], bad.as_str());
    assert_eq!(by_slug["record"], list[1]);
    let prefix = &ok1[..ok1.len() - 2];
    let shown = stdout(&w.run(&["history", "show", prefix]));
    assert!(shown.contains(&format!("freeze {ok1}")), "{shown}");
    assert!(shown.contains("kind      export"), "{shown}");
    // An ambiguous prefix names the candidates; an unknown key exits 2.
    let amb = w.run(&["history", "show", "2"]);
    assert_eq!(amb.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&amb.stderr).contains("matches 3 records"));
    let unknown = w.run(&["history", "show", "nothing-like-it"]);
    assert_eq!(unknown.status.code(), Some(2));
}

/// `prune` (issue 14, item 9): lists what goes, removes nothing with `--dry-run`, then
/// removes exactly that: the oldest records of a machine past `--keep`, never another
/// machine's newest.
#[test]
fn prune_lists_then_removes_only_the_old_records() {
    let w = World::new();
    let (a, b) = (common::small_root(), common::small_root());
    w.sim.create("bot-bottle-p-a", "running", Some(a.path()));
    w.sim.create("bot-bottle-p-b", "running", Some(b.path()));
    let out_file = w.tmp.path().join("../p.tar");
    let out_file = out_file.to_str().unwrap();
    let a_ids: Vec<String> = (0..4)
        .map(|_| started_id(&w.run(&["export", "p-a", "--json", "-o", out_file])))
        .collect();
    let b_id = started_id(&w.run(&["export", "p-b", "--json", "-o", out_file]));
    let _ = std::fs::remove_file(out_file);

    // The number kept comes from `prune_keep` (here its variable) unless --keep says.
    let dry = stdout(
        &w.cmd(&["prune", "--dry-run"])
            .env("BOTTLE_FREEZE_PRUNE_KEEP", "2")
            .output()
            .unwrap(),
    );
    for old in &a_ids[..2] {
        assert!(
            dry.contains(&format!("would remove  record   {old}")),
            "{dry}"
        );
    }
    for kept in a_ids[2..].iter().chain([&b_id]) {
        assert!(!dry.contains(kept.as_str()), "{dry}");
    }
    assert_eq!(
        ids(&w.run(&["history", "--json"])).len(),
        5,
        "a dry run removed"
    );

    let done = stdout(&w.run(&["prune", "--keep", "2"]));
    assert!(done.contains("pruned: 2 removed, 0 left"), "{done}");
    let mut left = ids(&w.run(&["history", "--json"]));
    left.sort();
    // Issue 14, item 4: an export never builds, pushes or packs: its log headers say so.
    let show = stdout(&w.run(&["history", "show", &b_id]));
    for stage in ["build", "push", "pack"] {
        assert!(
            show.contains(&format!("── {stage}: skipped (never ran) ──")),
            "{show}"
        );
    }
    let mut want = vec![a_ids[2].clone(), a_ids[3].clone(), b_id];
    want.sort();
    assert_eq!(left, want);
    // Nothing more to do; an age limit keeps young records.
    assert!(stdout(&w.run(&["prune", "--keep", "2"])).contains("nothing to prune"));
    let young = stdout(&w.run(&["prune", "--keep", "0", "--older-than", "1d", "--dry-run"]));
    assert!(young.contains("nothing to prune"), "{young}");
}
