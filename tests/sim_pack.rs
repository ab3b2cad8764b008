//! smolvm-sim: `pack create` against a real registry (Debian's docker-registry).

mod sim_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sim_support::{wait_until, Sim};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start a registry, or return None (test skipped) when the binary is missing and
/// BOTTLE_FREEZE_REQUIRE_DOCKER is not 1.
fn start_registry() -> Option<Registry> {
    if !Path::new(REGISTRY_BIN).exists() {
        if std::env::var("BOTTLE_FREEZE_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("{REGISTRY_BIN} is missing and BOTTLE_FREEZE_REQUIRE_DOCKER=1");
        }
        eprintln!("skipping: {REGISTRY_BIN} not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
    let child = Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let reg = Registry { child, dir, port };
    let url = format!("{}/v2/", reg.base());
    let up = wait_until(Duration::from_secs(15), || {
        ureq::get(&url)
            .call()
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    });
    assert!(
        up,
        "registry did not start: {}",
        std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
    );
    Some(reg)
}

fn sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn push_blob(reg: &Registry, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let resp = ureq::post(&format!("{}/v2/{repo}/blobs/uploads/", reg.base()))
        .send_empty()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let loc = resp
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{}{loc}", reg.base())
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let resp = ureq::put(&format!("{loc}{sep}digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .send(bytes)
        .unwrap();
    assert_eq!(resp.status(), 201);
    digest
}

fn push_manifest(reg: &Registry, repo: &str, tag: &str, media_type: &str, body: &[u8]) {
    let resp = ureq::put(&format!("{}/v2/{repo}/manifests/{tag}", reg.base()))
        .header("Content-Type", media_type)
        .send(body)
        .unwrap();
    assert_eq!(resp.status(), 201);
}

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

struct Image {
    manifest: Vec<u8>,
    manifest_digest: String,
    config: Vec<u8>,
    layers: Vec<(String, Vec<u8>)>,
}

/// Push a two-layer image to `repo:tag`, the way `docker push` lays it out.
fn push_image(reg: &Registry, repo: &str, tag: &str) -> Image {
    let layers: Vec<Vec<u8>> = vec![
        layer(&[("etc/hostname", b"bottle\n")]),
        layer(&[("home/node/app.js", &sim_support::noise(40_000, 5))]),
    ];
    let mut pushed = Vec::new();
    for l in &layers {
        pushed.push((push_blob(reg, repo, l), l.clone()));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "node", "WorkingDir": "/home/node"},
        "rootfs": {"type": "layers", "diff_ids": pushed.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>()},
    }))
    .unwrap();
    let config_digest = push_blob(reg, repo, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": config_digest},
        "layers": pushed.iter().map(|(d, b)| serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar", "size": b.len(), "digest": d
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    push_manifest(reg, repo, tag, MANIFEST_V2, &manifest);
    Image {
        manifest_digest: sha256(&manifest),
        manifest,
        config,
        layers: pushed,
    }
}

fn sidecar_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
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

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn assert_packed(out_dir: &Path, img: &Image, stdout: &[u8]) {
    let text = String::from_utf8_lossy(stdout);
    assert!(text.contains("Image: "), "{text}");
    assert!(text.contains("(2 layers, "), "{text}");
    assert!(text.contains("Packed: "), "{text}");
    assert_eq!(
        dir_names(out_dir),
        ["committed-smolmachine", "committed-smolmachine.smolmachine"]
    );
    let stub = out_dir.join("committed-smolmachine");
    let mode = std::fs::metadata(&stub).unwrap().permissions().mode();
    assert_ne!(mode & 0o111, 0, "stub must be executable");
    let script = std::fs::read_to_string(&stub).unwrap();
    assert!(script.starts_with("#!/bin/sh\n") && script.contains("smolvm-sim launcher"));
    let entries = sidecar_entries(&out_dir.join("committed-smolmachine.smolmachine"));
    assert_eq!(entries["manifest.json"], img.manifest);
    assert_eq!(entries["config.json"], img.config);
    for (digest, bytes) in &img.layers {
        let name = format!("layers/{}", digest.trim_start_matches("sha256:"));
        assert_eq!(&entries[&name], bytes, "{name}");
    }
    let meta: serde_json::Value = serde_json::from_slice(&entries["smolmachine.json"]).unwrap();
    assert_eq!(meta["manifest_digest"], img.manifest_digest);
}

#[test]
fn pack_pulls_a_real_image_by_tag_digest_and_list() {
    let Some(reg) = start_registry() else { return };
    let img = push_image(&reg, "bot-bottle-committed", "0123456789abcdef");
    let sim = Sim::new();

    let refs = [
        format!(
            "127.0.0.1:{}/bot-bottle-committed:0123456789abcdef",
            reg.port
        ),
        format!(
            "127.0.0.1:{}/bot-bottle-committed@{}",
            reg.port, img.manifest_digest
        ),
    ];
    for image in &refs {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("committed-smolmachine");
        let out = sim.run(&[
            "pack",
            "create",
            "--image",
            image,
            "-o",
            out_path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_packed(dir.path(), &img, &out.stdout);
    }

    // A manifest list resolves to its linux/amd64 entry.
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_LIST,
        "manifests": [
            {"mediaType": MANIFEST_V2, "size": img.manifest.len(), "digest": img.manifest_digest,
             "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    }))
    .unwrap();
    push_manifest(&reg, "bot-bottle-committed", "multi", MANIFEST_LIST, &list);
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("committed-smolmachine");
    let image = format!("127.0.0.1:{}/bot-bottle-committed:multi", reg.port);
    let out = sim.run(&[
        "pack",
        "create",
        "--image",
        &image,
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_packed(dir.path(), &img, &out.stdout);
}

#[test]
fn corrupted_blob_fails_naming_the_digest_and_leaves_nothing() {
    let Some(reg) = start_registry() else { return };
    let img = push_image(&reg, "bot-bottle-committed", "bad");
    let (digest, _) = &img.layers[1];
    let blob = reg.blob_file(digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[600] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();

    let sim = Sim::new();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("committed-smolmachine");
    let image = format!("127.0.0.1:{}/bot-bottle-committed:bad", reg.port);
    let out = sim.run(&[
        "pack",
        "create",
        "--image",
        &image,
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(digest.as_str()), "{err}");
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&image), "{err}");
    assert!(
        dir_names(dir.path()).is_empty(),
        "left behind: {:?}",
        dir_names(dir.path())
    );
}

#[test]
fn pull_failures_name_the_reference() {
    let Some(reg) = start_registry() else { return };
    let sim = Sim::new();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("p");
    let missing = format!("127.0.0.1:{}/bot-bottle-committed:nope", reg.port);
    let refused = format!("127.0.0.1:{}/x:y", free_port());
    for image in [&missing, &refused] {
        let out = sim.run(&[
            "pack",
            "create",
            "--image",
            image,
            "-o",
            out_path.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(&format!(
                "Error: agent operation failed: pull image: failed to pull {image}"
            )),
            "{err}"
        );
        assert!(dir_names(dir.path()).is_empty());
    }
    let out = sim.run(&[
        "pack",
        "create",
        "--image",
        &missing,
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}

#[test]
fn non_loopback_registries_are_refused() {
    let sim = Sim::new();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("p");
    let out = sim.run(&[
        "pack",
        "create",
        "--image",
        "registry.example.com/a:b",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not on loopback"));
}

#[test]
fn pack_fail_is_home_wide() {
    let sim = Sim::new();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("p");
    sim.ok(&["sim", "config", "--pack-fail", "registry on fire"]);
    let out = sim.run(&[
        "pack",
        "create",
        "--image",
        "127.0.0.1:1/a:b",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "registry on fire\n");
    assert!(out.stdout.is_empty());
    assert!(dir_names(dir.path()).is_empty());

    sim.ok(&["sim", "config", "--pack-fail", ""]);
    let out = sim.run(&[
        "pack",
        "create",
        "--image",
        "127.0.0.1:1/a:b",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("registry on fire"));

    sim.ok(&["sim", "create", "m"]);
    sim.ok(&["sim", "set", "m", "--pack-fail", "from set"]);
    let out = sim.run(&[
        "pack",
        "create",
        "--image",
        "127.0.0.1:1/a:b",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "from set\n");
}
