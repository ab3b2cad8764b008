//! `bottle-freeze list` against smolvm-sim: which machines, in which shape, and errors.

mod common;

use assert_cmd::Command;
use common::Sim;
use serde_json::Value;

fn list(sim: &Sim, args: &[&str]) -> std::process::Output {
    let state = tempfile::tempdir().unwrap();
    let mut c = Command::new(common::freeze_bin());
    c.env("SMOLVM_SIM_HOME", sim.home())
        .env("BOTTLE_FREEZE_SMOLVM", common::sim_bin())
        .env("BOTTLE_FREEZE_STATE_DIR", state.path())
        .arg("list")
        .args(args);
    c.output().unwrap()
}

fn names(out: &std::process::Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

fn fleet() -> Sim {
    let sim = Sim::new();
    sim.create("bot-bottle-alpha", "running", None);
    sim.create("bot-bottle-beta", "running", None);
    sim.create("bot-bottle-gamma", "stopped", None);
    sim.create("bot-bottle-delta", "created", None);
    sim.create("other-vm", "running", None);
    sim.create("bot-bottlex", "running", None);
    sim
}

#[test]
fn json_lists_exactly_the_running_bottles() {
    let sim = fleet();
    assert_eq!(
        names(&list(&sim, &["--json"])),
        ["bot-bottle-alpha", "bot-bottle-beta"]
    );
    assert_eq!(
        names(&list(&sim, &["--json", "--all"])),
        [
            "bot-bottle-alpha",
            "bot-bottle-beta",
            "bot-bottle-delta",
            "bot-bottle-gamma"
        ]
    );
}

#[test]
fn json_fields_are_stable() {
    let sim = fleet();
    let out = list(&sim, &["--json", "--all"]);
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = v[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = [
        "name",
        "slug",
        "state",
        "cpus",
        "memory_mib",
        "image",
        "created_at",
        "age_seconds",
        "freezable",
        "refusal",
        "state_reason",
        "last_exit",
    ];
    expected.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, expected);
    let alpha = &v[0];
    assert_eq!(alpha["slug"], "alpha");
    assert_eq!(alpha["state"], "running");
    assert_eq!(alpha["freezable"], true);
    assert!(alpha["age_seconds"].as_u64().unwrap() < 600);
    let gamma = v.iter().find(|m| m["slug"] == "gamma").unwrap();
    assert_eq!(gamma["freezable"], false);
    assert!(gamma["refusal"].as_str().unwrap().contains("stopped"));
    assert!(gamma["last_exit"].is_null() && gamma["state_reason"].is_null());
}

/// A machine whose start failed (smolvm 1.32: still `created`, with `last_exit`) says why.
#[test]
fn a_failed_start_is_explained() {
    let sim = fleet();
    sim.ok(&["sim", "set", "bot-bottle-delta", "--last-exit-code", "1"]);
    sim.ok(&[
        "sim",
        "set",
        "bot-bottle-gamma",
        "--state-reason",
        "stopped by the operator",
    ]);
    let out = list(&sim, &["--json", "--all"]);
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let delta = v.iter().find(|m| m["slug"] == "delta").unwrap();
    assert_eq!(delta["last_exit"]["exit_code"], 1);
    assert_eq!(delta["last_exit"]["cause"], "exited");
    assert_eq!(
        delta["refusal"],
        "machine is created (last start failed: VMM exited with code 1), only running machines are frozen"
    );
    let gamma = v.iter().find(|m| m["slug"] == "gamma").unwrap();
    assert_eq!(gamma["state_reason"], "stopped by the operator");
    assert_eq!(
        gamma["refusal"],
        "machine is stopped (stopped by the operator), only running machines are frozen"
    );
}

#[test]
fn table_shows_slug_state_and_resources() {
    let sim = fleet();
    let out = list(&sim, &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    for col in ["SLUG", "STATE", "CPUS", "MEMORY", "IMAGE", "AGE"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(text
        .lines()
        .any(|l| l.starts_with("alpha") && l.contains("running")));
    assert!(!text.contains("gamma") && !text.contains("other-vm"));
}

#[test]
fn hostile_names_are_listed_escaped_and_refused() {
    let sim = Sim::new();
    sim.create("bot-bottle-../../x", "running", None);
    sim.create("bot-bottle-evil\u{1b}]0;pwned\u{7}", "running", None);
    let out = list(&sim, &["--json"]);
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.len(), 2);
    for m in &v {
        assert_eq!(m["freezable"], false);
        assert!(m["slug"].is_null());
        assert!(m["refusal"]
            .as_str()
            .unwrap()
            .starts_with("unsafe machine name"));
    }
    let table = list(&sim, &[]);
    assert!(!table.stdout.contains(&0x1b), "raw ESC reached the table");
    assert!(String::from_utf8_lossy(&table.stdout).contains("\\x1b]0;pwned\\x07"));
}

#[test]
fn missing_smolvm_is_one_line_and_exit_2() {
    let out = Command::new(common::freeze_bin())
        .args(["list", "--smolvm", "/nonexistent/smolvm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("/nonexistent/smolvm") && err.contains("BOTTLE_FREEZE_SMOLVM"),
        "{err}"
    );
}

/// A smolvm with `--error-format` (1.32) is asked for `--error-format json` and its failure is shown with its code;
/// an older one (no such flag) is never passed it and is read as text.
#[test]
fn json_errors_when_smolvm_has_them_text_otherwise() {
    let sim = fleet();
    sim.ok(&["sim", "config", "--ls-fail", "agent unreachable"]);
    let out = list(&sim, &[]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.trim_end()
            .ends_with("exited with status 1: Error: agent unreachable [SMOLVM_ERROR]"),
        "{err}"
    );
    sim.ok(&["sim", "config", "--error-format-flag", "off"]);
    let out = list(&sim, &[]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.trim_end()
            .ends_with("exited with status 1: Error: agent unreachable"),
        "{err}"
    );
    // And an old smolvm that works lists as before.
    sim.ok(&["sim", "config", "--ls-fail", ""]);
    assert_eq!(
        names(&list(&sim, &["--json"])),
        ["bot-bottle-alpha", "bot-bottle-beta"]
    );
}

#[test]
fn smolvm_failure_and_malformed_json_are_reported() {
    let sim = fleet();
    sim.ok(&["sim", "config", "--ls-fail", "agent unreachable"]);
    let out = list(&sim, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("machine ls --json") && err.contains("agent unreachable"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("smolvm");
    std::fs::write(&fake, "#!/bin/sh\necho '[{\"name\": oops'\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new(common::freeze_bin())
        .args(["list", "--smolvm"])
        .arg(&fake)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("malformed JSON") && err.contains("oops"),
        "{err}"
    );
}
