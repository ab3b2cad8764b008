//! `bottle-freeze list` over several smolvm hosts: two smolvm-sim API servers (a loopback
//! port and a unix socket), the local smolvm (the sim's CLI), and two real `smolvm serve`
//! processes with machines made by `machine create`.

mod common;
mod serve_support;

use std::process::Output;

use serde_json::Value;

fn entries(out: &Output) -> Vec<Value> {
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .as_array()
        .unwrap()
        .clone()
}

fn host_and_name(es: &[Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = es
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap_or("?").to_string(),
                e["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Two sim homes, each behind an API server: `a` on a port, `b` on a unix socket.
struct TwoHosts {
    world: common::World,
    /// Kept for its home, which server `sa` serves.
    _a: common::Sim,
    b: common::Sim,
    sa: serve_support::Server,
    sb: serve_support::Server,
    _dir: tempfile::TempDir,
}

fn two_hosts() -> TwoHosts {
    let world = common::World::new();
    world.sim.create("bot-bottle-here", "running", None);
    let a = common::Sim::new();
    a.create("bot-bottle-one", "running", None);
    a.create("bot-bottle-two", "created", None);
    let b = common::Sim::new();
    b.create("bot-bottle-three", "running", None);
    b.create("not-a-bottle", "running", None);
    let dir = tempfile::tempdir().unwrap();
    let sa = serve_support::sim_tcp(a.home());
    let sb = serve_support::sim_unix(b.home(), &dir.path().join("b.sock"));
    TwoHosts {
        world,
        _a: a,
        b,
        sa,
        sb,
        _dir: dir,
    }
}

#[test]
fn lists_every_host_with_its_label() {
    let t = two_hosts();
    let out = t.world.run(&[
        "list",
        "--json",
        "--all",
        "--host",
        "local",
        "--host",
        &t.sa.spec("alpha"),
        "--host",
        &t.sb.spec("beta"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let es = entries(&out);
    assert_eq!(
        host_and_name(&es),
        vec![
            ("alpha".into(), "bot-bottle-one".into()),
            ("alpha".into(), "bot-bottle-two".into()),
            ("beta".into(), "bot-bottle-three".into()),
            ("local".into(), "bot-bottle-here".into()),
        ]
    );
    // The API's `stopped` for what the CLI calls `created`; not frozen, and says why.
    let two = es.iter().find(|e| e["name"] == "bot-bottle-two").unwrap();
    assert_eq!(two["state"], "stopped");
    assert_eq!(two["freezable"], false);

    // The table has a HOST column.
    let out = t.world.run(&[
        "list",
        "--host",
        &t.sa.spec("alpha"),
        "--host",
        &t.sb.spec("beta"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("HOST"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("beta") && l.contains("three")),
        "{text}"
    );
    assert!(
        !text.contains("bot-bottle-two"),
        "running only without --all: {text}"
    );
}

#[test]
fn without_hosts_nothing_changes() {
    let t = two_hosts();
    let out = t.world.run(&["list", "--json"]);
    assert!(out.status.success());
    let es = entries(&out);
    assert_eq!(es.len(), 1);
    assert!(es[0].get("host").is_none(), "{:?}", es[0]);
    let text = String::from_utf8_lossy(&t.world.run(&["list"]).stdout).into_owned();
    assert!(text.starts_with("SLUG"), "{text}");
    // --all-hosts with none configured: the local host, labelled.
    let es = entries(&t.world.run(&["list", "--json", "--all-hosts"]));
    assert_eq!(
        host_and_name(&es),
        vec![("local".into(), "bot-bottle-here".into())]
    );
}

#[test]
fn hosts_from_the_config_file() {
    let t = two_hosts();
    let cfg = t.world.tmp.path().join("../fleet-config.toml");
    let cfg = cfg.with_file_name(format!("fleet-config-{}.toml", std::process::id()));
    std::fs::write(
        &cfg,
        format!(
            "hosts = [\"{}\", \"{}\"]\n",
            t.sa.spec("alpha"),
            t.sb.spec("beta")
        ),
    )
    .unwrap();
    let out = t
        .world
        .cmd(&["list", "--json"])
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    std::fs::remove_file(&cfg).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hosts: Vec<String> = host_and_name(&entries(&out))
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    assert_eq!(hosts, ["alpha", "beta"]);
}

#[test]
fn an_unreachable_host_is_named_and_the_others_still_listed() {
    let mut t = two_hosts();
    t.sb.stop();
    let out = t.world.run(&[
        "list",
        "--json",
        "--host",
        &t.sa.spec("alpha"),
        "--host",
        &t.sb.spec("beta"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host beta") && err.contains("unreachable"),
        "{err}"
    );
    assert_eq!(
        host_and_name(&entries(&out)),
        vec![("alpha".into(), "bot-bottle-one".into())]
    );
    drop(t.b);
}

#[test]
fn a_slow_host_times_out_on_its_own() {
    let t = two_hosts();
    t.b.ok(&["sim", "config", "--ls-hang-secs", "30"]);
    let started = std::time::Instant::now();
    let out = t.world.run(&[
        "list",
        "--json",
        "--query-timeout",
        "2",
        "--host",
        &t.sa.spec("alpha"),
        "--host",
        &t.sb.spec("beta"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host beta") && err.contains("within 2"),
        "{err}"
    );
    assert_eq!(
        host_and_name(&entries(&out)),
        vec![("alpha".into(), "bot-bottle-one".into())]
    );
    // Bounded by the timeout, not by the slow host's 30 s.
    assert!(started.elapsed().as_secs() < 25, "{:?}", started.elapsed());
}

#[test]
fn plain_http_beyond_loopback_needs_insecure_remote() {
    let t = two_hosts();
    let out = t
        .world
        .run(&["list", "--host", "far=http://192.0.2.7:7070"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no authentication"), "{err}");
    assert!(err.contains("--insecure-remote"), "{err}");
    assert!(err.contains("ssh"), "{err}");
    // With the flag the host is tried (and here, unreachable: TEST-NET-1 has no route).
    let out = t.world.run(&[
        "list",
        "--insecure-remote",
        "--query-timeout",
        "1",
        "--host",
        "far=http://192.0.2.7:7070",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host far") && err.contains("unreachable"),
        "{err}"
    );
    assert!(!err.contains("no authentication"), "{err}");
}

#[test]
fn two_real_smolvm_servers() {
    let Some(bin) = serve_support::real_bin() else {
        return;
    };
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    serve_support::real_create(&bin, sa.path(), "bot-bottle-red");
    serve_support::real_create(&bin, sa.path(), "bot-bottle-green");
    serve_support::real_create(&bin, sb.path(), "bot-bottle-blue");
    let dir = tempfile::tempdir().unwrap();
    let ra = serve_support::real_tcp(&bin, sa.path());
    let mut rb = serve_support::real_unix(&bin, sb.path(), &dir.path().join("b.sock"));
    let world = common::World::new();
    let args = |extra: &[&str]| {
        let mut v = vec![
            "list".to_string(),
            "--json".into(),
            "--all".into(),
            "--host".into(),
            ra.spec("red-host"),
            "--host".into(),
            rb.spec("blue-host"),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let a = args(&[]);
    let out = world.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let es = entries(&out);
    assert_eq!(
        host_and_name(&es),
        vec![
            ("blue-host".into(), "bot-bottle-blue".into()),
            ("red-host".into(), "bot-bottle-green".into()),
            ("red-host".into(), "bot-bottle-red".into()),
        ]
    );
    for e in &es {
        assert_eq!(e["state"], "stopped", "{e}");
        assert_eq!(e["cpus"], 4, "{e}");
        assert_eq!(e["memory_mib"], 8192, "{e}");
        assert!(e["created_at"].as_i64().unwrap() > 1_600_000_000, "{e}");
    }
    // One server stops: its host is named, the other still listed.
    rb.stop();
    let out = world.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("host blue-host"), "{err}");
    assert_eq!(entries(&out).len(), 2);
}

#[test]
fn doctor_checks_every_host() {
    let mut t = two_hosts();
    let (alpha, beta) = (t.sa.spec("alpha"), t.sb.spec("beta"));
    let args = |json: bool| {
        let mut v = vec![
            "doctor".to_string(),
            "--host".into(),
            "local".into(),
            "--host".into(),
            alpha.clone(),
            "--host".into(),
            beta.clone(),
        ];
        if json {
            v.push("--json".into());
        }
        v
    };
    let world = &t.world;
    let run = |v: Vec<String>| world.run(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let out = run(args(true));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = report["hosts"].as_array().unwrap();
    let labels: Vec<&str> = hosts.iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert_eq!(labels, ["local", "alpha", "beta"]);
    for h in hosts {
        assert_eq!(h["ok"], true, "{h}");
    }
    assert!(hosts[1]["version"].as_str().unwrap().starts_with("1.32.2"));
    assert!(hosts[1]["detail"]
        .as_str()
        .unwrap()
        .starts_with("2 bot-bottle machines, 1 running"));
    assert!(hosts[2]["detail"]
        .as_str()
        .unwrap()
        .starts_with("1 bot-bottle machines, 1 running"));
    // One server stops: doctor names it, says what to do, and fails.
    t.sb.stop();
    let out = run(args(true));
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let beta = &report["hosts"][2];
    assert_eq!(beta["ok"], false, "{beta}");
    assert!(beta["detail"].as_str().unwrap().starts_with("unreachable:"));
    assert!(beta["fix"].as_str().unwrap().contains("smolvm serve start"));
    assert_eq!(report["hosts"][1]["ok"], true);
    let text = run(args(false));
    let s = String::from_utf8_lossy(&text.stdout);
    let line = s.lines().find(|l| l.starts_with("host beta")).unwrap();
    assert!(line.contains("unreachable") && line.contains("✗"), "{s}");
    assert!(
        s.lines()
            .any(|l| l.starts_with("host alpha") && l.ends_with('✓')),
        "{s}"
    );
    // Without hosts, no host lines (the report stays as it was).
    let out = world.run(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.get("hosts").is_none(), "{report}");
}
