//! Freezing a machine on another host through smolvm's API (a smolvm-sim API server):
//! exec-tar over the API (guest file + download), build, push and pack here, the artifact
//! under `<state>/<host>/<slug>/`; a stopped machine refused and left stopped; a cancel
//! mid-download leaving nothing on either side.

mod common;
mod serve_support;

use std::path::PathBuf;
use std::time::Duration;

use bottle_freeze::freeze::remote::{RemoteExecTar, RemoteHost};
use bottle_freeze::freeze::report::Reporter;
use bottle_freeze::history::{History, Kind, Record};
use bottle_freeze::names::Slug;
use common::{json_events, World};
use serde_json::Value;

fn ready() -> Option<PathBuf> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::docker())?;
    common::registry_bin()?;
    common::busybox()
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

fn sim_state(sim: &common::Sim, name: &str) -> String {
    let out = sim.ok(&["machine", "ls", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap()["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn scratch_left(root: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn freezes_a_machine_on_a_remote_host() {
    let Some(busybox) = ready() else { return };
    let w = World::new();
    let far = common::Sim::new();
    let root = common::varied_root(&busybox);
    far.create("bot-bottle-fleet-far", "running", Some(root.path()));
    let server = serve_support::sim_tcp(far.home());

    let out = w.run(&[
        "freeze",
        "far-host/fleet-far",
        "--json",
        "--host",
        &server.spec("far-host"),
    ]);
    assert!(
        out.status.success(),
        "freeze failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let events = json_events(&out.stdout);
    let transports: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "transport-chosen")
        .map(|e| &e["transport"])
        .collect();
    assert_eq!(transports, ["guest-file"]);

    // The artifact under <state>/<host>/<slug>/, none under <state>/<slug>/.
    let dir = w.state.path().join("far-host").join("fleet-far");
    assert!(
        dir.join("committed-smolmachine.smolmachine").is_file(),
        "{:?}",
        std::fs::read_dir(w.state.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>()
    );
    assert!(!w.state.path().join("fleet-far").exists());

    // The image: its config, and the guest's files read back by running it.
    let image = "bot-bottle-committed-fleet-far:latest";
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
        "cd /home/node && cat 'with space ünïcødé.txt' && stat -c '%a %u' run.sh && md5sum /srv/big.bin",
    ]);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "spaced out");
    assert_eq!(lines[1], "755 1000");
    let host_md5 = std::process::Command::new("md5sum")
        .arg(root.path().join("srv/big.bin"))
        .output()
        .unwrap();
    let host_md5 = String::from_utf8_lossy(&host_md5.stdout);
    assert_eq!(
        lines[2].split_whitespace().next(),
        host_md5.split_whitespace().next()
    );
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", image])
        .output();

    // History records the host; the guest keeps no scratch archive; still running.
    let id = events.iter().find(|e| e["event"] == "started").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(w.record_raw(&id)["host"], "far-host");
    assert!(scratch_left(root.path()).is_empty());
    assert_eq!(sim_state(&far, "bot-bottle-fleet-far"), "running");
    w.assert_clean(root.path());
}

#[test]
fn a_stopped_remote_machine_is_refused_and_not_started() {
    let w = World::new();
    let far = common::Sim::new();
    far.create("bot-bottle-sleepy", "stopped", None);
    let server = serve_support::sim_tcp(far.home());
    let out = w.run(&[
        "freeze",
        "sleepy",
        "--json",
        "--host",
        &server.spec("far-host"),
    ]);
    assert!(!out.status.success());
    let events = json_events(&out.stdout);
    let failed = events.iter().find(|e| e["event"] == "failed").unwrap();
    let msg = failed["failure"]["message"].as_str().unwrap();
    assert!(
        msg.contains("stopped") && msg.contains("never starts"),
        "{msg}"
    );
    assert_eq!(sim_state(&far, "bot-bottle-sleepy"), "stopped");
}

/// The exec-tar stage itself against a machine that stops between the check and the
/// exec: smolvm's 409 for `autoStart: false` is a refusal, and nothing starts it.
#[tokio::test]
async fn exec_tar_over_the_api_turns_409_into_a_refusal() {
    let far = common::Sim::new();
    far.create("bot-bottle-gone", "created", None);
    let server = serve_support::sim_tcp(far.home());
    let state = tempfile::tempdir().unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut rep = Reporter::new(
        Record::new("t-1", Kind::Freeze, "bot-bottle-gone", "gone"),
        History::new(state.path()),
        tx,
    );
    let host = RemoteHost {
        label: Slug::parse("far").unwrap(),
        client: server.client(),
    };
    let mut scratch = None;
    let mut stage = RemoteExecTar {
        client: &host.client,
        host: "far",
        machine: "bot-bottle-gone",
        exclude: &[],
        guest_scratch_dir: "/tmp",
        guest_scratch: &mut scratch,
        image: None,
    };
    let out = state.path().join("rootfs.tar");
    let err = stage.run(&mut rep, &out).await.unwrap_err();
    let msg = format!("{err:?}");
    assert!(msg.contains("409") && msg.contains("not running"), "{msg}");
    assert!(scratch.is_none(), "no scratch archive was started");
    assert!(!out.exists());
    assert_eq!(sim_state(&far, "bot-bottle-gone"), "created");
    // And the host-level check refuses it up front, in words.
    let why = host.check_machine("bot-bottle-gone").await.unwrap_err();
    assert!(why.contains("stopped"), "{why}");
}

#[test]
fn a_cancel_mid_download_leaves_nothing_on_either_side() {
    let Some(_busybox) = ready() else { return };
    let w = World::new();
    let far = common::Sim::new();
    let root = common::small_root();
    // 8 MiB of incompressible bytes, downloaded at 1 MiB/s.
    let mut big = vec![0u8; 8 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(root.path().join("home/node/big.bin"), &big).unwrap();
    far.create("bot-bottle-slow", "running", Some(root.path()));
    far.ok(&["sim", "set", "bot-bottle-slow", "--throttle", "1M"]);
    let server = serve_support::sim_tcp(far.home());

    let mut cmd = w.cmd(&[
        "freeze",
        "far-host/slow",
        "--json",
        "--host",
        &server.spec("far-host"),
    ]);
    cmd.stdin(std::process::Stdio::null());
    let mut run = common::Watched::spawn(cmd);
    run.wait_for(60, |e| {
        e["event"] == "progress"
            && e["stage"] == "exec-tar"
            && e["progress"]["bytes"].as_u64().unwrap_or(0) > 0
    });
    run.signal(nix::sys::signal::Signal::SIGINT);
    let (status, err) = run.finish(30);
    assert!(!status.success(), "{err}");
    assert!(
        !run.events("cancelled").is_empty() || err.contains("cancel"),
        "{err}"
    );
    // Nothing here: no temp folder, no artifact; nothing there: no scratch archive, no
    // exec still running for us.
    w.assert_clean(root.path());
    assert!(!w
        .state
        .path()
        .join("far-host")
        .join("slow")
        .join("committed-smolmachine.smolmachine")
        .exists());
    // The guest's tar and its exec name the scratch archive, which carries the run's id.
    let id = run.events("started")[0]["id"].as_str().unwrap().to_string();
    let scratch_name = format!("bottle-freeze-{id}.tar");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let execs = common::processes_running(&scratch_name);
        let left = scratch_left(root.path());
        if execs.is_empty() && left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left on the host: {left:?}, {execs:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sim_state(&far, "bot-bottle-slow"), "running");
}

#[test]
fn a_failed_remote_freeze_resumes_per_host_without_the_host() {
    let Some(busybox) = ready() else { return };
    let w = World::new();
    let far = common::Sim::new();
    let root = common::varied_root(&busybox);
    far.create("bot-bottle-fleet-again", "running", Some(root.path()));
    let server = serve_support::sim_tcp(far.home());
    // pack runs here, with the local smolvm: make it fail once.
    w.sim
        .ok(&["sim", "config", "--pack-fail", "no room for the pack VM"]);
    let out = w.run(&[
        "freeze",
        "far-host/fleet-again",
        "--json",
        "--host",
        &server.spec("far-host"),
    ]);
    assert!(!out.status.success());
    let events = json_events(&out.stdout);
    let id = events.iter().find(|e| e["event"] == "started").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(w.record_raw(&id)["host"], "far-host");
    w.sim.ok(&["sim", "config", "--pack-fail", ""]);
    // The resume needs no connection to the host (it starts after exec-tar), only its
    // label, and puts the artifact in the host's folder.
    drop(server);
    let out = w.run(&["freeze", "--resume", &id, "--json"]);
    assert!(
        out.status.success(),
        "resume failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let events = json_events(&out.stdout);
    let new_id = events.iter().find(|e| e["event"] == "started").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(w.record_raw(&new_id)["host"], "far-host");
    assert!(w
        .state
        .path()
        .join("far-host/fleet-again/committed-smolmachine.smolmachine")
        .is_file());
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", "bot-bottle-committed-fleet-again:latest"])
        .output();
}

/// `--push-to` with a machine on another host: the image exec-tar read through the API
/// also goes to the shared registry the operator names, so any host can make a machine
/// from it; the artifact still lands under `<state>/<host>/<slug>/`.
#[test]
fn a_remote_freeze_pushes_to_the_shared_registry() {
    let Some(busybox) = ready() else { return };
    let Some(bin) = common::registry_bin() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reg_dir = tempfile::tempdir().unwrap();
    let reg = rt
        .block_on(bottle_freeze::registry::SpawnedRegistry::start(
            &bin,
            reg_dir.path(),
            None,
        ))
        .unwrap();
    let w = World::new();
    let far = common::Sim::new();
    let root = common::varied_root(&busybox);
    far.create("bot-bottle-fleet-pub", "running", Some(root.path()));
    let server = serve_support::sim_tcp(far.home());
    let target = format!("{}/team/fleet-pub:v1", reg.addr());
    let out = w.run(&[
        "freeze",
        "far/fleet-pub",
        "--json",
        "--host",
        &server.spec("far"),
        "--push-to",
        &target,
    ]);
    assert!(
        out.status.success(),
        "freeze failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let events = json_events(&out.stdout);
    let id = events.iter().find(|e| e["event"] == "started").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rec = w.record_raw(&id);
    assert_eq!(rec["host"], "far");
    assert!(w
        .state
        .path()
        .join("far/fleet-pub/committed-smolmachine.smolmachine")
        .is_file());
    // The shared registry holds the image: its manifest's config is the record's image id.
    let manifest = ureq::get(&format!(
        "http://{}/v2/team/fleet-pub/manifests/v1",
        reg.addr()
    ))
    .header(
        "Accept",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
    .call()
    .unwrap()
    .into_body()
    .read_to_string()
    .unwrap();
    let m: Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m["config"]["digest"], rec["image_id"], "{manifest}\n{rec}");
    assert_eq!(m["layers"].as_array().unwrap().len(), 1, "{manifest}");
    // Pulled back from the registry, it holds the guest's files.
    let _ = std::process::Command::new("docker")
        .args([
            "rmi",
            "-f",
            &target,
            "bot-bottle-committed-fleet-pub:latest",
        ])
        .output();
    docker_out(&["pull", &target]);
    let got = docker_out(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/busybox",
        &target,
        "cat",
        "/home/node/with space ünïcødé.txt",
    ]);
    assert_eq!(got, "spaced out");
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &target])
        .output();
    rt.block_on(reg.stop());
    assert!(scratch_left(root.path()).is_empty());
    assert_eq!(sim_state(&far, "bot-bottle-fleet-pub"), "running");
    w.assert_clean(root.path());
}

/// Another process's recovery (any command's start, the dashboard's history reads) leaves a
/// live freeze of another host's machine alone: its lock is under `<state>/<host>/`.
#[test]
fn recovery_leaves_a_live_remote_freeze_alone() {
    let Some(_busybox) = ready() else { return };
    let w = World::new();
    let far = common::Sim::new();
    let root = common::small_root();
    let big: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(root.path().join("home/node/big.bin"), &big).unwrap();
    far.create("bot-bottle-busy", "running", Some(root.path()));
    far.ok(&["sim", "set", "bot-bottle-busy", "--throttle", "1M"]);
    let server = serve_support::sim_tcp(far.home());
    let mut cmd = w.cmd(&[
        "freeze",
        "far-host/busy",
        "--json",
        "--host",
        &server.spec("far-host"),
    ]);
    cmd.stdin(std::process::Stdio::null());
    let mut run = common::Watched::spawn(cmd);
    run.wait_for(60, |e| {
        e["event"] == "progress"
            && e["stage"] == "exec-tar"
            && e["progress"]["bytes"].as_u64().unwrap_or(0) > 0
    });
    let id = run.events("started")[0]["id"].as_str().unwrap().to_string();
    // `history` recovers abandoned runs first.
    let out = w.run(&["history"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains(&id), "recovery touched the live run: {err}");
    assert_eq!(w.record_raw(&id)["outcome"], "running");
    assert!(
        !w.state.path().join("busy").exists(),
        "no lock folder outside the host's"
    );
    let (status, err) = run.finish(120);
    assert!(status.success(), "{err}");
    assert_eq!(w.record_raw(&id)["outcome"], "succeeded");
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", "bot-bottle-committed-busy:latest"])
        .output();
}
