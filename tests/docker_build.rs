//! The Dockerfile build (`--builder docker`) with a real Docker daemon (issue 12): an
//! interrupted build leaves no image behind (item 13), and an image that does not hold the
//! root fails the freeze (the "Also" paragraph). smolvm-sim for the VM.

mod common;

use common::{Watched, World};
use nix::sys::signal::Signal;
use std::process::Command;

fn ready() -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::docker()).is_some()
        && common::registry_bin().is_some()
        && common::busybox().is_some()
}

/// The ids of the images (intermediate ones too) labelled as run `id`'s.
fn labelled_images(id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["images", "--all", "--quiet", "--no-trunc", "--filter"])
        .arg(format!("label=bottle-freeze.run={id}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn labelled_containers(id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "--all", "--quiet", "--filter"])
        .arg(format!("label=bottle-freeze.run={id}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether `v` is an output line of the build stage containing `text`.
fn build_says(v: &serde_json::Value, text: &str) -> bool {
    v["event"] == "output"
        && v["stage"] == "build"
        && v["lines"]
            .as_array()
            .is_some_and(|ls| ls.iter().any(|l| l.as_str().unwrap_or("").contains(text)))
}

/// A Dockerfile freeze of a root of about `size`, watched; returns it and its run id once
/// the daemon has reported the step that copies the archive in (so the build's first
/// image, its label's, is committed, and that step is in flight or done).
fn freeze_until_the_build_copies(w: &World, slug: &str, size: &str) -> (Watched, String) {
    let root = common::small_root();
    let machine = format!("bot-bottle-{slug}");
    w.sim.create(&machine, "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    w.sim
        .ok(&["sim", "set", &machine, "--synthetic-size", size]);
    let mut run = Watched::spawn(w.cmd(&["freeze", slug, "--json", "--builder", "docker"]));
    let started = run.wait_for(120, |v| {
        v["event"] == "stage-started" && v["stage"] == "build"
    });
    let id = started["id"].as_str().unwrap().to_string();
    run.wait_for(180, |v| build_says(v, "ADD rootfs.tar /"));
    // Every image of the build carries the run's label: the step right after FROM.
    let label = format!("LABEL bottle-freeze.run=\"{id}\"");
    run.wait_for(5, |v| build_says(v, &label));
    std::mem::forget(root);
    (run, id)
}

/// The number in a note `removed N image(s) of ...`.
fn removed_images(notes: &[String]) -> usize {
    notes
        .iter()
        .find_map(|n| {
            n.strip_prefix("removed ")?
                .split_once(" image(s)")?
                .0
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

// Item 13: Ctrl-C while the daemon builds. The daemon ends the step it is in after its
// client went, and commits that step's image: the cancel waits for it, then removes every
// image of the run.
#[test]
fn sigint_mid_build_leaves_no_image_of_the_run() {
    if !ready() {
        return;
    }
    let w = World::new();
    let (mut run, id) = freeze_until_the_build_copies(&w, "db-int", "200M");
    run.signal(Signal::SIGINT);
    let (status, err) = run.finish(300);
    assert_eq!(status.code(), Some(130), "{err}");
    assert_eq!(run.events("cancelled")[0]["stage"], "build");
    let notes: Vec<String> = run
        .events("note")
        .iter()
        .map(|n| n["message"].as_str().unwrap().to_string())
        .collect();
    // The label's image and the archive's, at least.
    assert!(removed_images(&notes) >= 2, "{notes:#?}");
    let left = labelled_images(&id);
    assert!(left.is_empty(), "images of the run left: {left:?}");
    let left = labelled_containers(&id);
    assert!(
        left.is_empty(),
        "containers of the run left: {left:?}; {notes:#?}"
    );
    let tagged = Command::new("docker")
        .args(["image", "inspect", "bot-bottle-committed-db-int:latest"])
        .output()
        .unwrap();
    assert!(!tagged.status.success(), "the image was tagged");
    assert!(std::fs::read_dir(w.tmp.path()).unwrap().next().is_none());
}

// Item 13: SIGKILL while the daemon builds; the next start waits for the step the daemon
// was in (the record says which) and removes every image of the build.
#[test]
fn sigkill_mid_build_then_recovery_leaves_no_image_of_the_run() {
    if !ready() {
        return;
    }
    let w = World::new();
    let (mut run, id) = freeze_until_the_build_copies(&w, "db-kill", "200M");
    run.signal(Signal::SIGKILL);
    run.finish(10);
    let rec = w.record_raw(&id);
    assert_eq!(rec["outcome"], "running");
    assert!(
        rec["build_steps"]["in_flight"].is_string()
            || !rec["build_steps"]["committed"]
                .as_array()
                .unwrap()
                .is_empty(),
        "the record does not say where the build was: {rec}"
    );
    let out = w.run(&["history"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("freeze {id}")) && err.contains("of its unfinished build"),
        "{err}"
    );
    let left = labelled_images(&id);
    assert!(left.is_empty(), "images of the run left: {left:?}");
    let left = labelled_containers(&id);
    assert!(left.is_empty(), "containers of the run left: {left:?}");
    assert_eq!(w.record_raw(&id)["outcome"], "interrupted");
    assert!(std::fs::read_dir(w.tmp.path()).unwrap().next().is_none());
}

/// Makes the first header of the tar at `path` carry an mtime that is not a number, with
/// a checksum that matches: a reader as strict as Go's (Docker's) cannot read it.
fn corrupt_first_mtime(path: &std::path::Path) {
    use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut h = [0u8; 512];
    f.read_exact(&mut h).unwrap();
    h[136..148].copy_from_slice(b"zzzzzzzzzzz\0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&h).unwrap();
}

// Issue 12, "Also": an image that does not hold the root fails the freeze. The archive a
// failed build kept gets a corrupt first header; Docker's ADD then copies rootfs.tar as a
// plain file and the build succeeds, but the layer's entry count gives it away. Nothing
// of that build stays in Docker.
#[test]
fn an_image_whose_layer_is_not_the_root_fails_the_build() {
    if !ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-db-hdr", "running", Some(root.path()));
    // A first build that fails (WORKDIR on a file) keeps the archive for a resume.
    let out = w.run(&[
        "freeze",
        "db-hdr",
        "--json",
        "--builder",
        "docker",
        "--workdir",
        "/etc/passwd",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = common::json_events(&out.stdout)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = w.record(&first)["record"]["kept"]["archive"]
        .as_str()
        .expect("the archive is kept")
        .to_string();
    corrupt_first_mtime(std::path::Path::new(&kept));

    let out = w.run(&["freeze", "--resume", &first, "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the freeze succeeded: {err}");
    let events = common::json_events(&out.stdout);
    let failed = events
        .iter()
        .find(|e| e["event"] == "failed")
        .expect("a failed event");
    assert_eq!(failed["failure"]["stage"], "build", "{failed}");
    let msg = failed["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("does not hold the root"), "{msg}");
    let second = events[0]["id"].as_str().unwrap();
    let left = labelled_images(second);
    assert!(left.is_empty(), "images of the build left: {left:?}");
    let tagged = Command::new("docker")
        .args(["image", "inspect", "bot-bottle-committed-db-hdr:latest"])
        .output()
        .unwrap();
    assert!(
        !tagged.status.success(),
        "the image without the root is tagged"
    );
    // The resume kept the archive in its turn.
    let out = w.run(&["discard", second]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.assert_clean(root.path());
}
