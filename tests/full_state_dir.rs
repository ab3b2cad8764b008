//! A state folder whose filesystem is full (issue 12, item 10): a real tmpfs, really
//! filled. The history says once that it cannot be written, leaves no temp files, never
//! leaves a record saying `running` when it could settle it, and promises `--resume` only
//! when the record holding that resume is on disk. smolvm-sim for the VM; no Docker (the
//! native build keeps its archive in the temp folder, on another filesystem).

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{json_events, Watched, World};
use tempfile::TempDir;

const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

/// A small tmpfs, unmounted on drop.
struct SmallFs(TempDir);

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::Builder::new()
            .prefix("full-state.")
            .tempdir()
            .unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            common::missing("permission to mount a tmpfs (run as root)");
            return None;
        }
        Some(SmallFs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes a file until the filesystem says it is full; returns it.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        // The last partial pages too.
        while f.write_all(&[0u8]).is_ok() {}
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Every file under `dir` whose name `pred` accepts.
fn files_named(dir: &Path, pred: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if pred(&e.file_name().to_string_lossy()) {
                out.push(e.path());
            }
        }
    }
    out
}

fn notes(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "note")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

fn freeze_cmd(w: &World, fs: &SmallFs, args: &[&str]) -> Command {
    let mut c = w.sim.freeze_cmd(fs.path());
    c.args(args)
        .arg("--tmp-dir")
        .arg(w.tmp.path())
        .env("DOCKER_HOST", NO_DOCKER);
    c
}

fn record_on_disk(fs: &SmallFs, id: &str) -> Option<serde_json::Value> {
    let path = fs.path().join("history").join(id).join("record.json");
    std::fs::read(path)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
}

// The state folder fills while pack runs: the run's outcome and what it kept still reach
// the record (the room set aside at its start), the resume it promises works, and no
// temp or reserve file is left.
#[test]
fn a_state_dir_filling_mid_freeze_still_records_the_outcome_and_the_resume() {
    let Some(fs) = SmallFs::mount("4m") else {
        return;
    };
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-full", "running", Some(root.path()));
    // Pack waits before writing the artifact: the filesystem is filled meanwhile, and pack
    // then fails on it for real.
    w.sim.ok(&["sim", "config", "--pack-delay-secs", "10"]);
    let mut run = Watched::spawn(freeze_cmd(&w, &fs, &["freeze", "full", "--json"]));
    let started = run.wait_for(60, |v| {
        v["event"] == "stage-started" && v["stage"] == "pack"
    });
    let id = started["id"].as_str().unwrap().to_string();
    let filler = fs.fill();
    let (status, err) = run.finish(60);
    assert_eq!(status.code(), Some(1), "{err}");
    let events: Vec<serde_json::Value> = run.seen.iter().map(|(_, v)| v.clone()).collect();
    let failed = &run.events("failed")[0]["failure"];
    assert_eq!(failed["stage"], "pack", "{failed}");

    let rec = record_on_disk(&fs, &id).expect("the record");
    assert_eq!(rec["outcome"], "failed", "the record was left: {rec}");
    let kept = rec["kept"]["archive"]
        .as_str()
        .expect("the archive is kept");
    assert!(Path::new(kept).is_file());
    let said = notes(&events);
    let unsaved = said
        .iter()
        .filter(|n| n.contains("history not saved"))
        .count();
    assert!(unsaved <= 1, "said {unsaved} times: {said:#?}");
    assert!(
        said.iter().any(|n| n.contains(&format!("--resume {id}"))),
        "{said:#?}"
    );
    let left = files_named(fs.path(), &|n| n.ends_with(".tmp") || n == ".reserve");
    assert!(left.is_empty(), "left: {left:?}");

    // The promise holds: with room again, the resume packs what was kept.
    std::fs::remove_file(filler).unwrap();
    w.sim.ok(&["sim", "config", "--pack-delay-secs", "0"]);
    let out = freeze_cmd(&w, &fs, &["freeze", "--resume", &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.assert_clean(root.path());
}

// The state folder is full before the freeze starts: no record can be written at all. The
// freeze says so once, promises no resume, and leaves nothing behind (the archive it
// could not record is removed: nothing could resume or discard it).
#[test]
fn a_full_state_dir_is_said_once_and_no_resume_is_promised() {
    let Some(fs) = SmallFs::mount("1m") else {
        return;
    };
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-fullb", "running", Some(root.path()));
    fs.fill();
    let out = freeze_cmd(&w, &fs, &["freeze", "fullb", "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let events = json_events(&out.stdout);
    let said = notes(&events);
    let unsaved = said
        .iter()
        .filter(|n| n.contains("history not saved"))
        .count();
    assert_eq!(unsaved, 1, "{said:#?}");
    assert!(
        !said.iter().any(|n| n.contains("--resume")) && !err.contains("--resume"),
        "a resume was promised: {said:#?} {err}"
    );
    let left = files_named(fs.path(), &|n| n.ends_with(".tmp") || n == ".reserve");
    assert!(left.is_empty(), "left: {left:?}");
    for rec in files_named(fs.path(), &|n| n == "record.json") {
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&rec).unwrap()).unwrap();
        assert_ne!(r["outcome"], "running", "{}", rec.display());
    }
    w.assert_clean(root.path());
}
