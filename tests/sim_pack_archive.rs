//! smolvm-sim: `pack create --image` as smolvm 1.32 has it (a `docker save` archive, `-`
//! for stdin, or a rootfs directory) and as 1.9 had it (registry references only).

mod sim_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;

use bottle_freeze::freeze::image_archive::{self, ImageSpec};
use sha2::{Digest, Sha256};
use sim_support::Sim;

fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// An archive written by bottle-freeze's own writer around `layer`.
fn archive(dir: &Path, layer: &[u8]) -> (std::path::PathBuf, String) {
    let path = dir.join("image.tar");
    let mut f = std::fs::File::create(&path).unwrap();
    image_archive::begin(&mut f).unwrap();
    f.write_all(layer).unwrap();
    let digest: [u8; 32] = Sha256::digest(layer).into();
    let spec = ImageSpec {
        repo_tag: "bot-bottle-committed-t:latest".into(),
        user: "node".into(),
        workdir: "/home/node".into(),
        machine: "bot-bottle-t".into(),
    };
    let done = image_archive::finish(&mut f, &path, layer.len() as u64, digest, &spec).unwrap();
    (path, done.diff_id)
}

fn sidecar(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        out.insert(name, v);
    }
    out
}

fn assert_layer_packed(out: &Path, diff_id: &str, layer: &[u8]) {
    let entries = sidecar(&out.with_extension("smolmachine"));
    let name = format!("layers/{}", diff_id.trim_start_matches("sha256:"));
    assert_eq!(entries.get(&name).map(Vec::as_slice), Some(layer), "{name}");
    let config: serde_json::Value = serde_json::from_slice(&entries["config.json"]).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], diff_id);
}

#[test]
fn packs_an_archive_from_a_path() {
    let sim = Sim::new();
    let dir = tempfile::tempdir().unwrap();
    let l = layer(&[("etc/hostname", b"bottle\n"), ("x y \u{e9}", b"1")]);
    let (path, diff_id) = archive(dir.path(), &l);
    let out = dir.path().join("packed");
    let o = sim.ok(&[
        "pack",
        "create",
        "--image",
        path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Reading image archive"), "{text}");
    assert!(text.contains("(1 layers, "), "{text}");
    assert_layer_packed(&out, &diff_id, &l);
    let entries = sidecar(&out.with_extension("smolmachine"));
    let config: serde_json::Value = serde_json::from_slice(&entries["config.json"]).unwrap();
    assert_eq!(config["config"]["User"], "node");
    assert_eq!(config["config"]["WorkingDir"], "/home/node");
}

#[test]
fn packs_an_archive_from_stdin() {
    let sim = Sim::new();
    let dir = tempfile::tempdir().unwrap();
    let l = layer(&[("a", b"stdin")]);
    let (path, diff_id) = archive(dir.path(), &l);
    let out = dir.path().join("packed");
    let o = sim
        .cmd()
        .args([
            "pack",
            "create",
            "--image",
            "-",
            "-o",
            out.to_str().unwrap(),
        ])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_layer_packed(&out, &diff_id, &l);
}

#[test]
fn packs_a_rootfs_directory() {
    let sim = Sim::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "dir\n").unwrap();
    let out = dir.path().join("packed");
    sim.ok(&[
        "pack",
        "create",
        "--image",
        root.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let entries = sidecar(&out.with_extension("smolmachine"));
    let layer_name = entries.keys().find(|k| k.starts_with("layers/")).unwrap();
    let mut ar = tar::Archive::new(&entries[layer_name][..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("etc/hostname")),
        "{names:?}"
    );
}

/// Rewrites the archive's layer bytes in place (same length), so its digest no longer
/// matches the config's diff_id.
fn corrupt_layer(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    // The layer's data starts after its header; flip a byte of the first file's content.
    let at = 512 + 512;
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_rejected_and_leaves_nothing() {
    let sim = Sim::new();
    let dir = tempfile::tempdir().unwrap();
    let (path, diff_id) = archive(dir.path(), &layer(&[("a", b"original")]));
    corrupt_layer(&path);
    let out = dir.path().join("packed");
    let o = sim.run(&[
        "pack",
        "create",
        "--image",
        path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("read image archive") && err.contains(&format!("diff_ids[0] says {diff_id}")),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(left, ["image.tar"]);
}

#[test]
fn archives_without_a_manifest_or_not_tar_are_rejected_clearly() {
    let sim = Sim::new();
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("bare.tar");
    std::fs::write(&bare, layer(&[("a", b"1")])).unwrap();
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, vec![0x42u8; 3000]).unwrap();
    let missing = dir.path().join("missing.tar");
    for (p, want) in [
        (&bare, "manifest.json is not in the archive"),
        (&junk, "not a tar archive"),
        (&missing, "no such file or directory"),
    ] {
        let o = sim.run(&[
            "pack",
            "create",
            "--image",
            p.to_str().unwrap(),
            "-o",
            dir.path().join("out").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{p:?}: {err}");
    }
}

#[test]
fn smolvm_1_9_takes_only_registry_references() {
    let sim = Sim::new();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = archive(dir.path(), &layer(&[("a", b"1")]));
    let help_has_archive = |sim: &Sim| {
        let o = sim.ok(&["pack", "create", "--help"]);
        String::from_utf8_lossy(&o.stdout).contains("`docker save` archive")
    };
    assert!(help_has_archive(&sim), "1.32 is the default");
    sim.ok(&["sim", "config", "--pack-archive", "off"]);
    assert!(!help_has_archive(&sim));
    let o = sim.run(&[
        "pack",
        "create",
        "--image",
        path.to_str().unwrap(),
        "-o",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("failed to pull"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The environment overrides the stored setting, both ways.
    let o = sim
        .cmd()
        .env("SMOLVM_SIM_PACK_ARCHIVE", "on")
        .args(["pack", "create", "--help"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("`docker save` archive"));
}
