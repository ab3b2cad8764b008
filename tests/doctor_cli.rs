//! `bottle-freeze doctor` on this host, with and without a Docker daemon.

mod common;

use common::Sim;

fn doctor(
    sim: &Sim,
    state: &std::path::Path,
    docker_host: Option<&str>,
    json: bool,
) -> std::process::Output {
    let mut c = sim.freeze_cmd(state);
    c.arg("doctor").env_remove("BOTTLE_FREEZE_CONFIG");
    if json {
        c.arg("--json");
    }
    if let Some(h) = docker_host {
        c.env("DOCKER_HOST", h);
    }
    c.output().unwrap()
}

fn checks(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn by_name<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

/// The exit status says whether everything is there, and agrees with the lines.
fn assert_status_matches(out: &std::process::Output, report: &serde_json::Value) {
    let all_ok = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["ok"] == true);
    assert_eq!(out.status.code(), Some(if all_ok { 0 } else { 1 }));
}

#[test]
fn without_docker_says_what_to_do() {
    let sim = Sim::new();
    let state = tempfile::tempdir().unwrap();
    let out = doctor(&sim, state.path(), Some("unix:///nonexistent"), true);
    let report = checks(&out);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "smolvm",
            "exec-stream",
            "exec-cap",
            "archive-pack",
            "error-format-json",
            "docker",
            "registry",
            "state-dir",
            "kvm"
        ]
    );
    let docker = by_name(&report, "docker");
    assert_eq!(docker["ok"], false);
    assert!(
        docker["detail"].as_str().unwrap().contains("nonexistent"),
        "{docker}"
    );
    assert!(docker["fix"].as_str().unwrap().starts_with("start dockerd"));
    assert!(report["versions"]["docker"].is_null());
    assert_eq!(out.status.code(), Some(1));

    let smolvm = by_name(&report, "smolvm");
    assert_eq!(smolvm["ok"], true);
    assert!(smolvm["detail"]
        .as_str()
        .unwrap()
        .contains("smolvm-sim 0.1.0 (a test double for smolvm 1.32.2)"));
    assert_eq!(by_name(&report, "exec-stream")["ok"], true);
    // The double runs no VM: the hypervisor is not asked for.
    let kvm = by_name(&report, "kvm");
    assert_eq!(kvm["ok"], true);
    assert_eq!(kvm["detail"], "not needed: smolvm-sim runs no VM");
    let state_line = by_name(&report, "state-dir")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        state_line.starts_with(&state.path().display().to_string()),
        "{state_line}"
    );

    // The text form: one line per check, each ending with ✓ or with what to do.
    let out = doctor(&sim, state.path(), Some("unix:///nonexistent"), false);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), names.len(), "{text}");
    for line in text.lines() {
        assert!(line.ends_with('✓') || line.contains(" ✗ "), "{line}");
    }
    let docker_line = text.lines().find(|l| l.starts_with("docker ")).unwrap();
    assert!(docker_line.contains("✗ start dockerd"), "{docker_line}");
}

#[tokio::test]
async fn with_docker_shows_its_version() {
    if common::docker().await.is_none() {
        return;
    }
    let sim = Sim::new();
    let state = tempfile::tempdir().unwrap();
    let out = doctor(&sim, state.path(), None, true);
    let report = checks(&out);
    let docker = by_name(&report, "docker");
    assert_eq!(docker["ok"], true, "{docker}");
    assert!(docker["fix"].is_null());
    let v = report["versions"]["docker"].as_str().unwrap();
    assert!(v.starts_with("Docker "), "{v}");
    assert_status_matches(&out, &report);
    if common::registry_bin().is_some() {
        assert_eq!(by_name(&report, "registry")["ok"], true);
        assert!(report["versions"]["registry"]
            .as_str()
            .unwrap()
            .starts_with("registry "));
    }
}

#[test]
fn a_missing_smolvm_is_named_with_the_fix() {
    let sim = Sim::new();
    let state = tempfile::tempdir().unwrap();
    let out = sim
        .freeze_cmd(state.path())
        .args(["doctor", "--json", "--smolvm", "/nonexistent/smolvm"])
        .env("DOCKER_HOST", "unix:///nonexistent")
        .output()
        .unwrap();
    let report = checks(&out);
    let s = by_name(&report, "smolvm");
    assert_eq!(s["ok"], false);
    assert!(s["fix"].as_str().unwrap().contains("BOTTLE_FREEZE_SMOLVM"));
    // The capability probes need a smolvm; the other parts are still examined.
    assert!(report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != "exec-stream"));
    assert!(report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "kvm"));
    assert_eq!(out.status.code(), Some(1));
}

/// An older smolvm (no `--stream`, no `--error-format`) is described as such.
#[test]
fn an_older_smolvm_is_described() {
    let sim = Sim::new();
    let state = tempfile::tempdir().unwrap();
    let out = sim
        .freeze_cmd(state.path())
        .args(["doctor", "--json"])
        .env("DOCKER_HOST", "unix:///nonexistent")
        .env("SMOLVM_SIM_STREAM_FLAG", "off")
        .env("SMOLVM_SIM_ERROR_FORMAT_FLAG", "off")
        .output()
        .unwrap();
    let report = checks(&out);
    let stream = by_name(&report, "exec-stream");
    assert_eq!(stream["ok"], false);
    assert!(stream["fix"]
        .as_str()
        .unwrap()
        .starts_with("upgrade smolvm"));
    let json = by_name(&report, "error-format-json");
    assert_eq!(json["ok"], true);
    assert!(json["detail"]
        .as_str()
        .unwrap()
        .starts_with("no --error-format json"));
}
