//! The freeze pipeline end to end through the headless CLI, against smolvm-sim, the real
//! Docker daemon and a real registry spawned by the freeze itself.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{json_events, World};
use serde_json::Value;

/// `bottle-freeze freeze SLUG --json EXTRA…` in `w`.
fn freeze(w: &World, slug: &str, extra: &[&str]) -> Output {
    let mut args = vec!["freeze", slug, "--json"];
    args.extend_from_slice(extra);
    w.run(&args)
}

fn event<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn the_id(events: &[Value]) -> String {
    event(events, "started")[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn docker_out(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn remove_image(image: &str) {
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", image])
        .output();
}

fn ready() -> Option<PathBuf> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::docker())?;
    common::registry_bin()?;
    common::busybox()
}

#[test]
fn freezes_a_varied_tree_through_the_pipe() {
    let Some(busybox) = ready() else { return };
    let w = World::new();
    let root = common::varied_root(&busybox);
    w.sim
        .create("bot-bottle-e2e-varied", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);

    let out = freeze(&w, "e2e-varied", &["--builder", "docker"]);
    assert!(
        out.status.success(),
        "freeze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    let transports: Vec<_> = event(&events, "transport-chosen")
        .iter()
        .map(|e| e["transport"].clone())
        .collect();
    assert_eq!(transports, ["pipe"]);
    let progress = event(&events, "progress");
    assert!(progress
        .iter()
        .any(|p| p["stage"] == "exec-tar" && p["progress"]["entries"].as_u64().unwrap_or(0) > 10));

    // The image, its config, and its content read back by running it.
    let image = "bot-bottle-committed-e2e-varied:latest";
    assert_eq!(
        docker_out(&[
            "image",
            "inspect",
            image,
            "--format",
            "{{.Config.User}}|{{.Config.WorkingDir}}"
        ]),
        "node|/home/node"
    );
    let script = "cd /home/node && cat 'with space ünïcødé.txt' link-to-notes && readlink link-to-notes && \
        stat -c '%a %u %n' run.sh 'with space ünïcødé.txt' /srv/big.bin && stat -c '%i' /etc/group /srv/group-hardlink && \
        ./run.sh && test -d /var/empty && md5sum /srv/big.bin && pwd && id -u";
    let got = docker_out(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/busybox",
        image,
        "sh",
        "-c",
        script,
    ]);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(
        &lines[..3],
        ["spaced out", "deep notes", "project/src/deep/er/notes.txt"]
    );
    assert_eq!(lines[3], "755 1000 run.sh");
    assert_eq!(lines[4], "644 1000 with space ünïcødé.txt");
    assert_eq!(lines[5], "644 0 /srv/big.bin");
    assert_eq!(lines[6], lines[7], "hard link keeps one inode");
    assert_eq!(lines[8], "ran");
    let host_md5 = std::process::Command::new("md5sum")
        .arg(root.path().join("srv/big.bin"))
        .output()
        .unwrap();
    assert_eq!(
        lines[9].split_whitespace().next(),
        String::from_utf8_lossy(&host_md5.stdout)
            .split_whitespace()
            .next()
    );
    assert_eq!(&lines[10..], ["/home/node", "1000"]);

    // The artifact: the sim pulled from the registry while the freeze ran, verified each
    // digest, and the manifest it pulled names this image's config (= the image id).
    let done = event(&events, "done");
    let sidecar = PathBuf::from(done[0]["artifact"]["sidecar"].as_str().unwrap());
    assert_eq!(
        sidecar,
        w.state
            .path()
            .join("e2e-varied/committed-smolmachine.smolmachine")
    );
    assert!(std::fs::metadata(&sidecar).unwrap().len() > 20 << 20);
    let image_id = docker_out(&["image", "inspect", image, "--format", "{{.Id}}"]);
    let mut found_config = false;
    for entry in tar::Archive::new(std::fs::File::open(&sidecar).unwrap())
        .entries()
        .unwrap()
    {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if name.contains("manifest") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut entry, &mut s).unwrap();
            found_config |= s.contains(&image_id);
        }
    }
    assert!(found_config, "the packed manifest names config {image_id}");
    let hint = done[0]["artifact"]["hint"].as_str().unwrap();
    assert_eq!(
        hint,
        format!(
            "to export for migration: cp {} e2e-varied.smolmachine",
            sidecar.display()
        )
    );
    let tag = done[0]["artifact"]["tag"].as_str().unwrap();
    assert_eq!(
        tag,
        format!(
            "bot-bottle-committed:{}",
            &image_id["sha256:".len().."sha256:".len() + 16]
        )
    );

    // The history record is complete.
    let shown = w.record(&the_id(&events));
    let rec = &shown["record"];
    assert_eq!(rec["outcome"], "succeeded");
    assert_eq!(rec["transport"], "pipe");
    assert!(rec["bytes"].as_u64().unwrap() > 20 << 20);
    assert!(rec["ended_at_ms"].as_u64().unwrap() >= rec["started_at_ms"].as_u64().unwrap());
    for s in rec["stages"].as_array().unwrap() {
        assert_eq!(s["status"], "done", "{s}");
        assert!(s["duration_ms"].is_u64());
    }
    assert_eq!(rec["artifact"]["sidecar"], done[0]["artifact"]["sidecar"]);
    assert!(shown["logs"]["pack"]
        .as_str()
        .unwrap()
        .contains("bot-bottle-committed"));
    assert!(rec["commands"].as_array().unwrap().len() >= 4);

    w.assert_clean(root.path());
    remove_image(image);
}

#[test]
fn capped_smolvm_falls_back_to_the_guest_file() {
    let Some(busybox) = ready() else { return };
    let w = World::new();
    let root = common::varied_root(&busybox);
    w.sim
        .create("bot-bottle-e2e-capped", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "on"]);

    let out = freeze(&w, "e2e-capped", &[]);
    assert!(
        out.status.success(),
        "freeze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    let transports: Vec<_> = event(&events, "transport-chosen")
        .iter()
        .map(|e| e["transport"].clone())
        .collect();
    assert_eq!(transports, ["pipe", "guest-file"]);
    let notes: Vec<String> = event(&events, "note")
        .iter()
        .map(|n| n["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("exec output cap") && n.contains("guest-file")),
        "{notes:?}"
    );
    let rec = w.record(&the_id(&events));
    assert_eq!(rec["record"]["transport"], "guest-file");
    assert!(rec["record"]["bytes"].as_u64().unwrap() > 20 << 20);
    w.assert_clean(root.path());

    // Forcing the pipe on a capped smolvm fails cleanly and says what to do.
    let out = freeze(&w, "e2e-capped", &["--transport", "pipe"]);
    assert_eq!(out.status.code(), Some(1));
    let events = json_events(&out.stdout);
    let failure = &event(&events, "failed")[0]["failure"];
    assert_eq!(failure["stage"], "exec-tar");
    assert!(failure["message"].as_str().unwrap().contains("guest-file"));
    w.assert_clean(root.path());
    remove_image("bot-bottle-committed-e2e-capped:latest");
}

#[test]
fn old_smolvm_without_stream_still_freezes() {
    let Some(_) = ready() else { return };
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-e2e-old", "running", Some(root.path()));
    w.sim
        .ok(&["sim", "config", "--exec-cap", "off", "--stream-flag", "off"]);
    let out = freeze(&w, "e2e-old", &[]);
    assert!(
        out.status.success(),
        "freeze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    assert!(event(&events, "note")
        .iter()
        .any(|n| n["message"].as_str().unwrap().contains("no --stream")));
    let rec = w.record(&the_id(&events));
    let exec_cmd = rec["record"]["commands"][0].as_array().unwrap();
    assert!(!exec_cmd.iter().any(|a| a == "--stream"), "{exec_cmd:?}");
    w.assert_clean(root.path());
    remove_image("bot-bottle-committed-e2e-old:latest");
}

#[test]
fn a_50_mib_stderr_flood_does_not_deadlock() {
    let Some(_) = ready() else { return };
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-e2e-flood", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    w.sim.ok(&[
        "sim",
        "set",
        "bot-bottle-e2e-flood",
        "--stderr-flood",
        "50M",
    ]);
    let out = freeze(&w, "e2e-flood", &[]);
    assert!(
        out.status.success(),
        "freeze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    // The front end got coalesced batches, not millions of events.
    assert!(events.len() < 20_000, "{} events", events.len());
    let dropped: u64 = event(&events, "output")
        .iter()
        .map(|o| o["dropped"].as_u64().unwrap())
        .sum();
    assert!(dropped > 0);
    // The log on disk is bounded and says how much it dropped.
    let log = std::fs::read(
        w.state
            .path()
            .join("history")
            .join(the_id(&events))
            .join("exec-tar.log"),
    )
    .unwrap();
    assert!(log.len() < 4 << 20, "log is {} bytes", log.len());
    assert!(String::from_utf8_lossy(&log).contains("bytes dropped"));
    w.assert_clean(root.path());
    remove_image("bot-bottle-committed-e2e-flood:latest");
}

fn failure_of(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    event(&events, "failed")[0]["failure"].clone()
}

#[test]
fn failures_name_their_stage_and_leave_nothing_behind() {
    let Some(_) = ready() else { return };
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-e2e-fail", "running", Some(root.path()));

    // exec-tar: a silent non-zero exit.
    w.sim
        .ok(&["sim", "set", "bot-bottle-e2e-fail", "--exit-silent", "3"]);
    let f = failure_of(&freeze(&w, "e2e-fail", &["--builder", "docker"]));
    assert_eq!(f["stage"], "exec-tar");
    assert_eq!(f["exit_status"], 3);
    assert_eq!(f["stderr_tail"], "<no stderr>");
    w.assert_clean(root.path());
    w.sim.ok(&["sim", "clear", "bot-bottle-e2e-fail"]);

    // build: the daemon refuses a WORKDIR that is a file in the root. The archive is kept
    // for a resume until it is discarded.
    let out = freeze(
        &w,
        "e2e-fail",
        &["--builder", "docker", "--workdir", "/etc/passwd"],
    );
    let f = failure_of(&out);
    assert_eq!(f["stage"], "build");
    assert!(
        f["message"].as_str().unwrap().contains("not a directory"),
        "{f}"
    );
    assert!(f["stderr_tail"]
        .as_str()
        .unwrap()
        .contains("WORKDIR /etc/passwd"));
    let id = the_id(&json_events(&out.stdout));
    let discard = w
        .sim
        .freeze_cmd(w.state.path())
        .args(["discard", &id])
        .output()
        .unwrap();
    assert!(
        discard.status.success(),
        "{}",
        String::from_utf8_lossy(&discard.stderr)
    );
    w.assert_clean(root.path());

    // push: a registry that cannot start.
    let out = freeze(
        &w,
        "e2e-fail",
        &["--builder", "docker", "--registry-bin", "/bin/false"],
    );
    let f = failure_of(&out);
    assert_eq!(f["stage"], "push");
    // The image it kept for a resume is dropped (it would outlive the test).
    let kept_push = the_id(&json_events(&out.stdout));
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("did not become ready"),
        "{f}"
    );
    w.assert_clean(root.path());

    // pack: smolvm's pack fails.
    w.sim.ok(&[
        "sim",
        "config",
        "--pack-fail",
        "pack exploded: no space left",
    ]);
    let out = freeze(&w, "e2e-fail", &["--builder", "docker"]);
    let f = failure_of(&out);
    assert_eq!(f["stage"], "pack");
    for id in [kept_push, the_id(&json_events(&out.stdout))] {
        let discard = w
            .sim
            .freeze_cmd(w.state.path())
            .args(["discard", &id])
            .output()
            .unwrap();
        assert!(
            discard.status.success(),
            "{}",
            String::from_utf8_lossy(&discard.stderr)
        );
    }
    assert!(f["exit_status"].as_i64().unwrap() != 0);
    assert!(
        f["stderr_tail"].as_str().unwrap().contains("pack exploded"),
        "{f}"
    );
    w.assert_clean(root.path());
    assert!(!w
        .state
        .path()
        .join("e2e-fail/committed-smolmachine.smolmachine")
        .exists());

    // A machine whose start failed (smolvm 1.32 leaves it `created`) is refused with why:
    // bad input, exit 2, no events.
    w.sim
        .ok(&["sim", "set", "bot-bottle-e2e-fail", "--state", "created"]);
    w.sim
        .ok(&["sim", "set", "bot-bottle-e2e-fail", "--last-exit-code", "1"]);
    let out = freeze(&w, "e2e-fail", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is created (last start failed: VMM exited with code 1); only a running machine can be frozen"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // A stopped machine is refused before anything runs (smolvm 1.9's exec would start it):
    // bad input, exit 2, no events.
    w.sim
        .ok(&["sim", "set", "bot-bottle-e2e-fail", "--state", "stopped"]);
    let out = freeze(&w, "e2e-fail", &["--builder", "docker"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("only a running machine can be frozen"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let ls = w.sim.ok(&["machine", "ls", "--json"]);
    assert!(
        String::from_utf8_lossy(&ls.stdout).contains("\"stopped\""),
        "the VM was not started"
    );
    w.assert_clean(root.path());
    remove_image("bot-bottle-committed-e2e-fail:latest");
}

#[test]
fn export_is_byte_identical_to_exec_through_cat() {
    let Some(busybox) = ready() else { return };
    let w = World::new();
    let root = common::varied_root(&busybox);
    w.sim
        .create("bot-bottle-e2e-export", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    let ours = w.tmp.path().join("../ours-export.tar");
    let ours = std::path::absolute(&ours).unwrap();
    let out = w
        .sim
        .freeze_cmd(w.state.path())
        .args(["export", "e2e-export", "-o"])
        .arg(&ours)
        .arg("--tmp-dir")
        .arg(w.tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar_cmd = "tar --create --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./run --file=- --directory=/ .";
    let script = format!(
        "'{}' machine exec --name bot-bottle-e2e-export --stream -- {tar_cmd} | cat",
        common::sim_bin()
    );
    let theirs = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("SMOLVM_SIM_HOME", w.sim.home())
        .output()
        .unwrap();
    assert!(theirs.status.success());
    let ours_bytes = std::fs::read(&ours).unwrap();
    assert!(ours_bytes.len() > 20 << 20);
    assert!(
        ours_bytes == theirs.stdout,
        "export differs from exec | cat ({} vs {} bytes)",
        ours_bytes.len(),
        theirs.stdout.len()
    );
    std::fs::remove_file(&ours).unwrap();
    w.assert_clean(root.path());
}
