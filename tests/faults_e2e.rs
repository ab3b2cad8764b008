//! Faults, cancellation and hostile input through the headless CLI (issue: nothing hangs,
//! nothing leaks, nothing is lost), against smolvm-sim, the real Docker daemon and a real
//! registry.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{json_events, processes_mentioning, Watched, World};
use nix::sys::signal::Signal;
use serde_json::Value;
use tempfile::TempDir;

fn ready() -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::docker()).is_some()
        && common::registry_bin().is_some()
        && common::busybox().is_some()
}

fn failure(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    events
        .iter()
        .find(|e| e["event"] == "failed")
        .expect("a failed event")["failure"]
        .clone()
}

fn remove_image(image: &str) {
    let _ = Command::new("docker").args(["rmi", "-f", image]).output();
}

// Row 1: a silent non-zero exec; the partial archive is removed.
#[test]
fn silent_exec_failure_names_stage_status_and_no_stderr() {
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-f1", "running", Some(root.path()));
    w.sim
        .ok(&["sim", "set", "bot-bottle-f1", "--exit-silent", "7"]);
    let out_file = w.tmp.path().join("../f1-export.tar");
    let out = w.run(&["export", "f1", "--json", "-o", out_file.to_str().unwrap()]);
    let f = failure(&out);
    assert_eq!(
        (f["stage"].as_str(), f["exit_status"].as_i64()),
        (Some("exec-tar"), Some(7))
    );
    assert_eq!(f["stderr_tail"], "<no stderr>");
    assert!(!out_file.exists(), "partial archive left");
    w.assert_clean(root.path());
}

// Row 2: 100 MiB of stderr while 1 GiB of stdout streams; memory stays bounded.
#[test]
fn stderr_flood_during_a_gib_stream_keeps_memory_bounded() {
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-f2", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    w.sim.ok(&[
        "sim",
        "set",
        "bot-bottle-f2",
        "--synthetic-size",
        "1G",
        "--stderr-flood",
        "100M",
    ]);
    let out_file = std::path::absolute(w.tmp.path().join("../f2-export.tar")).unwrap();
    let mut run =
        Watched::spawn(w.cmd(&["export", "f2", "--json", "-o", out_file.to_str().unwrap()]));
    let pid = run.child.id();
    let mut peak = 0;
    while run.child.try_wait().unwrap().is_none() {
        peak = peak.max(common::peak_rss_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, err) = run.finish(5);
    assert!(status.success(), "{err}");
    assert!(peak > 0 && peak < 64 * 1024, "peak RSS {peak} KiB");
    let exported = &run.events("exported")[0];
    assert!(exported["bytes"].as_u64().unwrap() >= 1 << 30);
    let id = exported["id"].as_str().unwrap().to_string();
    let log = std::fs::read(
        w.state
            .path()
            .join("history")
            .join(&id)
            .join("exec-tar.log"),
    )
    .unwrap();
    assert!(log.len() < 3 << 20, "log is {} bytes", log.len());
    let text = String::from_utf8_lossy(&log);
    let dropped: u64 = text
        .lines()
        .find(|l| l.contains("bytes dropped"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.parse().ok()))
        .expect("a dropped-bytes marker");
    assert!(dropped > 90 << 20, "dropped {dropped}");
    std::fs::remove_file(&out_file).unwrap();
    w.assert_clean(root.path());
}

// Row 3: the VM dies mid-stream: an error within 2 s, with the agent's message.
#[test]
fn vm_death_mid_stream_is_reported_within_two_seconds() {
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-f3", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    w.sim.ok(&[
        "sim",
        "set",
        "bot-bottle-f3",
        "--synthetic-size",
        "64M",
        "--throttle",
        "4M",
        "--die-after",
        "6M",
    ]);
    let out_file = std::path::absolute(w.tmp.path().join("../f3.tar")).unwrap();
    let mut run =
        Watched::spawn(w.cmd(&["export", "f3", "--json", "-o", out_file.to_str().unwrap()]));
    let failed = run.wait_for(30, |v| v["event"] == "failed");
    let failed_at = run.seen.last().unwrap().0;
    let last_progress = run
        .seen
        .iter()
        .rev()
        .find(|(_, v)| v["event"] == "progress")
        .map(|(t, _)| *t)
        .expect("progress before the death");
    assert!(
        failed_at - last_progress < Duration::from_secs(2),
        "{:?}",
        failed_at - last_progress
    );
    let f = &failed["failure"];
    assert_eq!(f["exit_status"], 255);
    assert!(
        f["stderr_tail"]
            .as_str()
            .unwrap()
            .contains("connection to VM lost"),
        "{f}"
    );
    run.finish(5);
    assert!(!out_file.exists());
    w.assert_clean(root.path());
}

// Row 4: an archive that stops early, with exit status 0.
#[test]
fn truncated_archive_with_exit_zero_fails() {
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-f4", "running", Some(root.path()));
    w.sim.ok(&["sim", "set", "bot-bottle-f4", "--truncate"]);
    let f = failure(&w.run(&["freeze", "f4", "--json"]));
    assert_eq!(f["stage"], "exec-tar");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("incomplete archive"),
        "{f}"
    );
    w.assert_clean(root.path());
}

/// Starts a freeze, waits for `stage` to start, sends `sig`, and checks the way out.
fn cancel_during(
    slug: &str,
    stage: &str,
    sig: Signal,
    setup: impl Fn(&World, &str),
    extra: &[&str],
) {
    let w = World::new();
    let root = common::small_root();
    let machine = format!("bot-bottle-{slug}");
    w.sim.create(&machine, "running", Some(root.path()));
    setup(&w, &machine);
    // The Dockerfile build, whose build and push stages run long enough to be cancelled.
    let mut args = vec!["freeze", slug, "--json", "--builder", "docker"];
    args.extend_from_slice(extra);
    let mut run = Watched::spawn(w.cmd(&args));
    run.wait_for(120, |v| {
        v["event"] == "stage-started" && v["stage"] == stage
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    run.signal(sig);
    let (status, err) = run.finish(10);
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "took {:?} to stop",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{err}");
    let cancelled = run.events("cancelled");
    assert_eq!(cancelled.len(), 1, "{err}");
    assert_eq!(cancelled[0]["stage"], stage);
    let id = run.events("started")[0]["id"].as_str().unwrap().to_string();
    let rec = w.record(&id);
    assert_eq!(rec["record"]["outcome"], "cancelled");
    w.assert_clean(root.path());
    remove_image(&format!("bot-bottle-committed-{slug}:latest"));
}

// Row 5, per stage, by SIGTERM and Ctrl-C (SIGINT).
#[test]
fn cancel_during_exec_tar_by_sigint() {
    cancel_during(
        "c-exec",
        "exec-tar",
        Signal::SIGINT,
        |w, m| {
            w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
            w.sim.ok(&[
                "sim",
                "set",
                m,
                "--synthetic-size",
                "512M",
                "--throttle",
                "2M",
            ]);
        },
        &[],
    );
}

#[test]
fn cancel_during_guest_file_exec_tar_removes_the_scratch() {
    cancel_during(
        "c-guest",
        "exec-tar",
        Signal::SIGTERM,
        |w, m| {
            w.sim.ok(&[
                "sim",
                "set",
                m,
                "--synthetic-size",
                "512M",
                "--hang-after",
                "4M",
            ]);
        },
        &["--transport", "guest-file"],
    );
}

#[test]
fn cancel_during_build_by_sigterm() {
    if !ready() {
        return;
    }
    cancel_during(
        "c-build",
        "build",
        Signal::SIGTERM,
        |w, m| {
            w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
            w.sim.ok(&["sim", "set", m, "--synthetic-size", "400M"]);
        },
        &[],
    );
}

#[test]
fn cancel_during_push_by_sigterm() {
    if !ready() {
        return;
    }
    cancel_during(
        "c-push",
        "push",
        Signal::SIGTERM,
        |w, m| {
            w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
            w.sim.ok(&["sim", "set", m, "--synthetic-size", "300M"]);
        },
        &[],
    );
}

#[test]
fn cancel_during_pack_by_sigterm() {
    if !ready() {
        return;
    }
    cancel_during(
        "c-pack",
        "pack",
        Signal::SIGTERM,
        |w, _| {
            w.sim.ok(&["sim", "config", "--pack-delay-secs", "30"]);
        },
        &[],
    );
}

// Row 6: pre-flight fails before exec-tar starts, naming what is missing and how.
#[test]
fn preflight_names_what_is_missing() {
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-f6", "running", Some(root.path()));
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
            vec![],
            "start dockerd, or set DOCKER_HOST",
        ),
        (
            vec![],
            vec!["--registry-bin", "/nonexistent/registry"],
            "install Debian's docker-registry",
        ),
        (
            vec![],
            vec!["--smolvm", "/nonexistent/smolvm"],
            "point --smolvm",
        ),
    ];
    for (env, args, hint) in cases {
        let mut c = w.cmd(&["freeze", "f6", "--json", "--builder", "docker"]);
        c.args(&args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let events = json_events(&out.stdout);
        assert!(
            !events.iter().any(|e| e["event"] == "stage-started"),
            "a stage started: {events:?}"
        );
        let f = failure(&out);
        let msg = f["message"].as_str().unwrap();
        assert!(msg.starts_with("pre-flight") && msg.contains(hint), "{msg}");
    }
    w.assert_clean(root.path());
}

// Row 7: the registry's preferred port is taken: another is chosen.
#[test]
fn taken_registry_port_is_replaced() {
    if !ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-f7", "running", Some(root.path()));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = w.run(&[
        "freeze",
        "f7",
        "--json",
        "--builder",
        "docker",
        "--registry-port",
        &port,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    assert!(events.iter().any(|e| e["event"] == "note"
        && e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("port {port} was taken"))));
    w.assert_clean(root.path());
    remove_image("bot-bottle-committed-f7:latest");
}

/// A small tmpfs, unmounted on drop.
struct SmallFs(TempDir);

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            common::missing("permission to mount a tmpfs (run as root)");
            return None;
        }
        Some(SmallFs(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

// Row 8: the temp folder's disk fills.
#[test]
fn full_temp_disk_is_named_with_the_space_needed() {
    let Some(busybox) = common::busybox() else {
        return;
    };
    let Some(fs) = SmallFs::mount("8m") else {
        return;
    };
    let w = World::new();
    let root = common::varied_root(&busybox);
    w.sim.create("bot-bottle-f8", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    let mut c = w.sim.freeze_cmd(w.state.path());
    c.args(["freeze", "f8", "--json", "--tmp-dir"])
        .arg(fs.0.path());
    let out = c.output().unwrap();
    let events = json_events(&out.stdout);
    assert!(events.iter().any(|e| e["event"] == "note"
        && e["message"]
            .as_str()
            .unwrap()
            .starts_with("warning: the root holds about")));
    let f = failure(&out);
    let msg = f["message"].as_str().unwrap();
    assert_eq!(f["stage"], "exec-tar");
    assert!(msg.contains(&fs.0.path().display().to_string()), "{msg}");
    assert!(
        msg.contains("No space left") && msg.contains("needs about"),
        "{msg}"
    );
    let left: Vec<_> = std::fs::read_dir(fs.0.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "partial files left: {left:?}");
    w.assert_clean(root.path());
}

// Row 9: a failed build, push or pack keeps what it made; --resume retries without streaming.
#[test]
fn resume_after_build_and_push_failures_does_not_stream_again() {
    if !ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-f9", "running", Some(root.path()));

    let out = w.run(&[
        "freeze",
        "f9",
        "--json",
        "--builder",
        "docker",
        "--workdir",
        "/etc/passwd",
    ]);
    assert_eq!(failure(&out)["stage"], "build");
    let events = json_events(&out.stdout);
    let first = events[0]["id"].as_str().unwrap().to_string();
    assert!(events
        .iter()
        .any(|e| e["event"] == "note" && e["message"].as_str().unwrap().contains("--resume")));
    let kept = &w.record(&first)["record"]["kept"];
    assert_eq!(kept["from"], "build");
    assert!(Path::new(kept["archive"].as_str().unwrap()).exists());

    // Resume into a push failure: the image is kept now, the archive is gone.
    let out = w.run(&[
        "freeze",
        "--resume",
        &first,
        "--json",
        "--registry-bin",
        "/bin/false",
    ]);
    assert_eq!(failure(&out)["stage"], "push");
    let second = json_events(&out.stdout)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rec = &w.record(&second)["record"];
    assert_eq!(rec["resumed_from"], first.as_str());
    assert_eq!(rec["kept"]["from"], "push");
    assert!(rec["commands"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| !c.to_string().contains("machine\",\"exec")));
    assert!(
        w.record(&first)["record"]["kept"].is_null(),
        "ownership moved to the resume"
    );
    assert!(!Path::new(kept["archive"].as_str().unwrap()).exists());

    // Resume again: success, without exec-tar.
    let out = w.run(&["freeze", "--resume", &second, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    assert!(!events
        .iter()
        .any(|e| e["event"] == "stage-started" && e["stage"] == "exec-tar"));
    assert!(!events
        .iter()
        .any(|e| e["event"] == "stage-started" && e["stage"] == "build"));
    assert!(events.iter().any(|e| e["event"] == "done"));
    w.assert_clean(root.path());
    remove_image("bot-bottle-committed-f9:latest");
}

// Row 10: escape sequences, control characters, invalid UTF-8 and long lines, in stderr
// and in file names, reach no terminal raw: not the CLI's output, not `history show`.
#[test]
fn hostile_stderr_and_file_names_are_escaped_everywhere() {
    let w = World::new();
    let root = common::small_root();
    std::fs::write(root.path().join("home/node/evil\x1b]0;pwned\x07name"), "x").unwrap();
    w.sim.create("bot-bottle-f10", "running", Some(root.path()));
    w.sim.ok(&[
        "sim",
        "set",
        "bot-bottle-f10",
        "--stderr-hostile",
        "--exit-after-stream",
        "2",
    ]);
    let out_file = std::path::absolute(w.tmp.path().join("../f10.tar")).unwrap();
    for json in [false, true] {
        let mut args = vec![
            "export",
            "f10",
            "--verbose",
            "-o",
            out_file.to_str().unwrap(),
        ];
        if json {
            args.push("--json");
        }
        let out = w.run(&args);
        assert_eq!(out.status.code(), Some(1));
        for stream in [&out.stdout, &out.stderr] {
            assert!(
                !stream.contains(&0x1b),
                "raw ESC in output: {}",
                String::from_utf8_lossy(stream)
            );
            assert!(!stream.contains(&0x07), "raw BEL in output");
        }
        let text = if json {
            // JSON escapes the backslash again; read the lines as the events carry them.
            json_events(&out.stdout)
                .iter()
                .flat_map(|e| e["lines"].as_array().cloned().unwrap_or_default())
                .map(|l| l.as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        assert!(
            text.contains("\\x1b]0;pwned\\x07"),
            "the escaped sequence is not shown (json: {json})"
        );
        assert!(
            text.contains("\\x1b[2J"),
            "the escaped screen clear is not shown (json: {json})"
        );
    }
    let history = w
        .sim
        .freeze_cmd(w.state.path())
        .args(["history"])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&history.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let shown = w
        .sim
        .freeze_cmd(w.state.path())
        .args(["history", "show", &id])
        .output()
        .unwrap();
    assert!(!shown.stdout.contains(&0x1b));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("\\x1b"));
    w.assert_clean(root.path());
}

// Row 11: hostile machine names are refused for freezing; no path is built from them.
#[test]
fn hostile_names_are_refused_before_any_path() {
    let w = World::new();
    for name in [
        "bot-bottle-../../x",
        "/",
        "bot-bottle-a b",
        &format!("bot-bottle-{}", "a".repeat(300)),
    ] {
        let out = w.run(&["freeze", name, "--json"]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cannot freeze") && err.contains("slug"),
            "{err}"
        );
    }
    let out = w.run(&["freeze", "bot-bottle-a\u{1b}b", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.contains(&0x1b));
    // The log folder is made at every start, whatever the name; nothing else is.
    let made: Vec<_> = std::fs::read_dir(w.state.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "logs")
        .collect();
    assert!(made.is_empty(), "paths were made: {made:?}");
    for e in std::fs::read_dir(w.state.path().join("logs"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with("bottle-freeze.") && name.ends_with(".log"),
            "{name}"
        );
    }
}

// Row 12: two machines at once both succeed; a second freeze of the same one is refused.
#[test]
fn concurrent_freezes_of_two_machines_and_one_refused() {
    if !ready() {
        return;
    }
    let w = World::new();
    let (ra, rb) = (common::small_root(), common::small_root());
    w.sim.create("bot-bottle-f12a", "running", Some(ra.path()));
    w.sim.create("bot-bottle-f12b", "running", Some(rb.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    w.sim.ok(&[
        "sim",
        "set",
        "bot-bottle-f12a",
        "--synthetic-size",
        "6M",
        "--throttle",
        "3M",
    ]);
    let mut a = Watched::spawn(w.cmd(&["freeze", "f12a", "--json"]));
    a.wait_for(30, |v| v["event"] == "stage-started");
    let b = w.cmd(&["freeze", "f12b", "--json"]).spawn().unwrap();
    let again = w.run(&["freeze", "f12a", "--json"]);
    // Refused before any work: bad input (status 2), with the failed event for a dashboard.
    assert_eq!(again.status.code(), Some(2));
    let f = json_events(&again.stdout)
        .into_iter()
        .find(|e| e["event"] == "failed")
        .expect("a failed event")["failure"]
        .clone();
    assert!(
        f["message"].as_str().unwrap().contains("already running"),
        "{f}"
    );
    let b = b.wait_with_output().unwrap();
    assert!(b.status.success());
    let (status, err) = a.finish(120);
    assert!(status.success(), "{err}");
    assert!(w
        .state
        .path()
        .join("f12a/committed-smolmachine.smolmachine")
        .exists());
    assert!(w
        .state
        .path()
        .join("f12b/committed-smolmachine.smolmachine")
        .exists());
    remove_image("bot-bottle-committed-f12a:latest");
    remove_image("bot-bottle-committed-f12b:latest");
}

// Row 13: SIGKILL mid-freeze; the next start finds and cleans what was left.
#[test]
fn sigkill_mid_freeze_is_cleaned_on_next_start() {
    if !ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-f13", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--pack-delay-secs", "30"]);
    let mut run = Watched::spawn(w.cmd(&["freeze", "f13", "--json"]));
    let started = run.wait_for(60, |v| {
        v["event"] == "stage-started" && v["stage"] == "pack"
    });
    let id = started["id"].as_str().unwrap().to_string();
    run.signal(Signal::SIGKILL);
    run.finish(5);
    // What a killed run leaves: its record still says running, its temp folder is there.
    let rec = w.record_raw(&id);
    assert_eq!(rec["outcome"], "running");
    w.sim.ok(&["sim", "config", "--pack-delay-secs", "0"]);

    let out = w
        .sim
        .freeze_cmd(w.state.path())
        .args(["history"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("freeze {id}")) && err.contains("interrupted"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("interrupted"));
    let rec = w.record_raw(&id);
    assert_eq!(rec["outcome"], "interrupted");
    assert!(rec["temp_dir"].is_null());
    w.assert_clean(root.path());
    remove_image("bot-bottle-committed-f13:latest");
}

// Row 13, guest side: killed during a guest-file exec-tar, the scratch archive is removed.
#[test]
fn sigkill_during_guest_file_removes_the_scratch_later() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-f13g", "running", Some(root.path()));
    w.sim.ok(&[
        "sim",
        "set",
        "bot-bottle-f13g",
        "--synthetic-size",
        "64M",
        "--hang-after",
        "2M",
    ]);
    let out_s = std::path::absolute(w.tmp.path().join("../f13g.tar"))
        .unwrap()
        .display()
        .to_string();
    let mut run = Watched::spawn(w.cmd(&[
        "export",
        "f13g",
        "--json",
        "--transport",
        "guest-file",
        "-o",
        out_s.as_str(),
    ]));
    run.wait_for(30, |v| {
        v["event"] == "note" && v["message"].as_str().unwrap().contains("inside the guest")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        std::fs::read_dir(root.path().join("tmp")).unwrap().count() > 0,
        "the scratch exists"
    );
    run.signal(Signal::SIGKILL);
    run.finish(5);
    let out = w
        .sim
        .freeze_cmd(w.state.path())
        .args(["history"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("in the guest"));
    w.assert_clean(root.path());
}

// Row 14: smolvm machine ls hangs: the call is timed out.
#[test]
fn hanging_machine_ls_is_timed_out() {
    let w = World::new();
    w.sim.create("bot-bottle-f14", "running", None);
    w.sim.ok(&["sim", "config", "--ls-hang-secs", "60"]);
    let started = Instant::now();
    let out = w
        .sim
        .freeze_cmd(w.state.path())
        .args(["list", "--query-timeout", "1"])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not answer within 1 s"));
    assert!(
        processes_mentioning(&w.sim.home().to_string_lossy()).is_empty(),
        "the hung ls was killed"
    );
}

// Row 15: tar's exit status 1 is success with warnings, listed in the record.
#[test]
fn tar_exit_one_is_success_with_warnings() {
    if !ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-f15", "running", Some(root.path()));
    w.sim
        .ok(&["sim", "set", "bot-bottle-f15", "--exit-after-stream", "1"]);
    let out = w.run(&["freeze", "f15", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    let id = events[0]["id"].as_str().unwrap().to_string();
    let rec = &w.record(&id)["record"];
    assert_eq!(rec["outcome"], "succeeded-with-warnings");
    assert_eq!(rec["stages"][0]["status"], "warning");
    let warnings = rec["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|x| x
            .as_str()
            .unwrap()
            .contains("file changed as we read it: ./")),
        "{warnings:?}"
    );
    w.assert_clean(root.path());
    remove_image("bot-bottle-committed-f15:latest");
}

// An export's output is replaced only when the archive is whole, and a device given as the
// output (/dev/null) is written to, never removed, whatever happens.
#[test]
fn export_never_unlinks_a_device_and_leaves_no_partial_file() {
    use std::os::unix::fs::FileTypeExt;
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-fnull", "running", Some(root.path()));
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("root.tar");
    for transport in ["pipe", "guest-file"] {
        std::fs::write(&out, b"an older export").unwrap();
        w.sim
            .ok(&["sim", "set", "bot-bottle-fnull", "--exit-silent", "2"]);
        for target in [Path::new("/dev/null"), out.as_path()] {
            let o = w.run(&[
                "export",
                "fnull",
                "--transport",
                transport,
                "-o",
                target.to_str().unwrap(),
            ]);
            assert_eq!(o.status.code(), Some(1));
        }
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"an older export",
            "a failed export kept the old file"
        );
        w.sim.ok(&["sim", "clear", "bot-bottle-fnull"]);
        for target in [Path::new("/dev/null"), out.as_path()] {
            let o = w.run(&[
                "export",
                "fnull",
                "--transport",
                transport,
                "-o",
                target.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        assert!(
            std::fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device(),
            "/dev/null was replaced"
        );
        let names: Vec<_> = std::fs::read_dir(out_dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["root.tar"], "partial files left");
        assert!(std::fs::read(&out).unwrap().len() > 1024);
    }
    w.assert_clean(root.path());
}
