//! Resume and discard keep to their own run (issue 12, items 6–9): what a failed freeze kept
//! is used, removed or left by its recorded id and path, and belongs to that run until it
//! succeeds or is discarded. Real binary, real Docker daemon and registry, smolvm-sim.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{json_events, Watched, World};
use serde_json::Value;

const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

fn docker_ready() -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ok = rt.block_on(common::docker()).is_some() && common::registry_bin().is_some();
    if !ok {
        common::missing("a Docker daemon and a registry binary");
    }
    ok
}

fn first_id(out: &Output) -> String {
    json_events(&out.stdout)[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn image_exists(id: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", id])
        .output()
        .unwrap()
        .status
        .success()
}

fn image_of(tag: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn rmi(what: &str) {
    let _ = Command::new("docker").args(["rmi", "-f", what]).output();
}

/// A `--builder docker` freeze of `slug` whose pack fails: the image is kept.
fn failed_at_pack(w: &World, slug: &str) -> (String, String) {
    w.sim
        .ok(&["sim", "config", "--pack-fail", "no room for the pack VM"]);
    let out = w.run(&["freeze", slug, "--json", "--builder", "docker"]);
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    let id = first_id(&out);
    let kept = w.record(&id)["record"]["kept"].clone();
    assert_eq!(kept["from"], "push", "{kept}");
    let image_id = kept["image_id"].as_str().unwrap().to_string();
    w.sim.ok(&["sim", "config", "--pack-fail", ""]);
    (id, image_id)
}

// Item 6: a later freeze moved `:latest`; discarding the earlier one removes the earlier
// image by its id and leaves the later one.
#[test]
fn discard_removes_its_own_image_by_id_not_the_latest_tag() {
    if !docker_ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-rd6", "running", Some(root.path()));
    let (first, old_image) = failed_at_pack(&w, "rd6");

    // The root changes, so the second build is another image; it succeeds.
    std::fs::write(root.path().join("etc/second"), b"a later state\n").unwrap();
    let out = w.run(&["freeze", "rd6", "--json", "--builder", "docker"]);
    assert!(out.status.success(), "{}", err(&out));
    let second = first_id(&out);
    let new_image = w.record(&second)["record"]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_image, old_image);
    let latest = "bot-bottle-committed-rd6:latest";
    assert_eq!(image_of(latest).as_deref(), Some(new_image.as_str()));

    let out = w.run(&["discard", &first]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(
        image_of(latest).as_deref(),
        Some(new_image.as_str()),
        "discard removed the later freeze's image"
    );
    assert!(
        !image_exists(&old_image),
        "the discarded image is still there"
    );
    assert!(w.record(&first)["record"]["kept"].is_null());
    rmi(latest);
}

// Item 6: an image another record uses is left, and said so.
#[test]
fn discard_leaves_an_image_a_later_record_uses() {
    if !docker_ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-rd6b", "running", Some(root.path()));
    let (first, image) = failed_at_pack(&w, "rd6b");
    // Same root: the build cache may give the same image; when it does, it is the later
    // record's too.
    let out = w.run(&["freeze", "rd6b", "--json", "--builder", "docker"]);
    assert!(out.status.success(), "{}", err(&out));
    let second = first_id(&out);
    let later = w.record(&second)["record"]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = w.run(&["discard", &first]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(image_exists(&later), "the later freeze's image was removed");
    if later == image {
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("freeze {second} uses it")),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    rmi("bot-bottle-committed-rd6b:latest");
}

// Item 7: a resume pushes exactly the image its record kept, even after `:latest` moved.
#[test]
fn resume_uses_the_kept_image_not_the_latest_tag() {
    if !docker_ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-rd7", "running", Some(root.path()));
    let (first, old_image) = failed_at_pack(&w, "rd7");
    std::fs::write(root.path().join("etc/second"), b"a later state\n").unwrap();
    let (_second, new_image) = failed_at_pack(&w, "rd7");
    assert_ne!(old_image, new_image);

    let out = w.run(&["freeze", "--resume", &first, "--json"]);
    assert!(out.status.success(), "{}", err(&out));
    let rec = &w.record(&first_id(&out))["record"];
    assert_eq!(rec["image_id"], old_image.as_str(), "{rec}");
    rmi(&old_image);
    rmi(&new_image);
    rmi("bot-bottle-committed-rd7:latest");
}

// Item 7: a kept image that is gone is a refusal (exit 2) naming it.
#[test]
fn resume_refuses_when_the_kept_image_is_gone() {
    if !docker_ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-rd7b", "running", Some(root.path()));
    let (first, image) = failed_at_pack(&w, "rd7b");
    rmi(&image);
    let out = w.run(&["freeze", "--resume", &first, "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("cannot resume"), "{}", err(&out));
    assert!(err(&out).contains(&image), "{}", err(&out));
}

/// A native freeze of `slug` whose pack fails, without Docker: the archive is kept.
fn native_failed_at_pack(w: &World, slug: &str) -> (String, PathBuf) {
    w.sim
        .ok(&["sim", "config", "--pack-fail", "no room for the pack VM"]);
    let mut c = w.cmd(&["freeze", slug, "--json"]);
    c.env("DOCKER_HOST", NO_DOCKER);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    let id = first_id(&out);
    let kept = w.record(&id)["record"]["kept"].clone();
    let archive = PathBuf::from(kept["archive"].as_str().unwrap());
    assert!(archive.is_file());
    w.sim.ok(&["sim", "config", "--pack-fail", ""]);
    (id, archive)
}

fn resume_native(w: &World, id: &str) -> Output {
    let mut c = w.cmd(&["freeze", "--resume", id, "--json"]);
    c.env("DOCKER_HOST", NO_DOCKER);
    c.output().unwrap()
}

fn edit_record(w: &World, id: &str, f: impl FnOnce(&mut Value)) {
    let path = w.state.path().join("history").join(id).join("record.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

// Item 7: a kept archive is used only if it holds the kept image; else a refusal (exit 2).
#[test]
fn resume_refuses_an_archive_that_is_not_the_kept_one() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-rd7c", "running", Some(root.path()));
    let (id, archive) = native_failed_at_pack(&w, "rd7c");
    edit_record(&w, &id, |v| {
        v["kept"]["image_id"] = Value::from(format!("sha256:{}", "0".repeat(64)));
    });
    let out = resume_native(&w, &id);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("cannot resume"), "{}", err(&out));
    assert!(err(&out).contains("not the kept"), "{}", err(&out));
    assert!(archive.is_file(), "a refused resume removed the archive");

    std::fs::remove_file(&archive).unwrap();
    let out = resume_native(&w, &id);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("is gone"), "{}", err(&out));
}

/// Resumes `id` with a pack that hangs, stops it with `sig` once pack started.
fn interrupt_resume(w: &World, id: &str, sig: nix::sys::signal::Signal) {
    w.sim.ok(&["sim", "config", "--pack-delay-secs", "60"]);
    let mut c = w.cmd(&["freeze", "--resume", id, "--json"]);
    c.env("DOCKER_HOST", NO_DOCKER);
    let mut run = Watched::spawn(c);
    run.wait_for(60, |v| {
        v["event"] == "stage-started" && v["stage"] == "pack"
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    run.signal(sig);
    let _ = run.finish(30);
    w.sim.ok(&["sim", "config", "--pack-delay-secs", "0"]);
}

// Item 8: SIGKILL or SIGINT during `--resume` leaves the earlier run's archive (recovery
// included), and a second resume still works.
#[test]
fn an_interrupted_resume_keeps_the_earlier_runs_archive() {
    use nix::sys::signal::Signal;
    for sig in [Signal::SIGKILL, Signal::SIGINT] {
        let w = World::new();
        let root = common::small_root();
        w.sim.create("bot-bottle-rd8", "running", Some(root.path()));
        let (id, archive) = native_failed_at_pack(&w, "rd8");
        interrupt_resume(&w, &id, sig);
        // Recovery runs first on every command that may clean up.
        let out = w.run(&["history"]);
        assert!(out.status.success(), "{sig}: {}", err(&out));
        assert!(archive.is_file(), "{sig}: the kept archive was removed");
        assert!(
            !w.record(&id)["record"]["kept"].is_null(),
            "{sig}: the earlier record no longer keeps it"
        );
        let out = resume_native(&w, &id);
        assert!(out.status.success(), "{sig}: {}", err(&out));
        assert!(!archive.exists(), "{sig}: a successful resume removes it");
        assert!(w.record(&id)["record"]["kept"].is_null());
        w.assert_clean(root.path());
    }
}

fn kept_of(w: &World, id: &str) -> Value {
    w.record_raw(id)["kept"].clone()
}

// Item 9: discard says what it did not do: with Docker unreachable, or a container using
// the image, it exits non-zero, says no "removed", and the record keeps its `kept`.
#[test]
fn discard_reports_what_it_could_not_remove() {
    if !docker_ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-rd9", "running", Some(root.path()));
    let (id, image) = failed_at_pack(&w, "rd9");
    let kept = kept_of(&w, &id);

    let mut c = w.cmd(&["discard", &id]);
    c.env("DOCKER_HOST", NO_DOCKER);
    let out = c.output().unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", err(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("removed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(kept_of(&w, &id), kept, "kept changed without Docker");
    assert!(image_exists(&image));

    let container = Command::new("docker")
        .args(["create", &image, "/bin/true"])
        .output()
        .unwrap();
    assert!(container.status.success(), "{}", err(&container));
    let container = String::from_utf8_lossy(&container.stdout)
        .trim()
        .to_string();
    let out = w.run(&["discard", &id]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &err(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(!said.contains("removed image"), "{said}");
    assert!(image_exists(&image), "{said}");
    assert_eq!(kept_of(&w, &id)["image_id"], kept["image_id"], "{said}");

    let _ = Command::new("docker").args(["rm", &container]).output();
    let out = w.run(&["discard", &id]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed image"));
    assert!(!image_exists(&image));
    assert!(kept_of(&w, &id).is_null());
}
