//! The one-pass freeze (issue 11), end to end with the real binary: the native build writes
//! a `docker save` archive during exec-tar; a 1.32-style smolvm packs it directly, a
//! 1.9-style one pulls it from the ephemeral registry; Docker, when there is one, loads it
//! beside pack.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{json_events, World};
use serde_json::Value;

/// No daemon anywhere: a socket path that does not exist.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

fn event<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn the_id(events: &[Value]) -> String {
    event(events, "started")[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn freeze(w: &World, slug: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = vec!["freeze", slug, "--json"];
    args.extend_from_slice(extra);
    let mut c = w.cmd(&args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn succeeded(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "freeze failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    json_events(&out.stdout)
}

fn sidecar_of(events: &[Value]) -> PathBuf {
    PathBuf::from(
        event(events, "done")[0]["artifact"]["sidecar"]
            .as_str()
            .unwrap(),
    )
}

fn tar_entries(data: impl Read) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in tar::Archive::new(data).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        out.insert(name, v);
    }
    out
}

/// What the sim packed: the config, and the one layer as (digest, bytes).
fn packed(sidecar: &Path) -> (Value, String, Vec<u8>) {
    let entries = tar_entries(std::fs::File::open(sidecar).unwrap());
    let config: Value = serde_json::from_slice(&entries["config.json"]).unwrap();
    let layers: Vec<_> = entries
        .iter()
        .filter(|(k, _)| k.starts_with("layers/"))
        .collect();
    assert_eq!(layers.len(), 1, "one layer: {:?}", entries.keys());
    let (name, bytes) = layers[0];
    (
        config,
        format!("sha256:{}", name.trim_start_matches("layers/")),
        bytes.clone(),
    )
}

/// The guest's files as the layer holds them: the names, links, modes and owners of
/// `common::varied_root`.
fn assert_layer_holds_the_guest(layer: &[u8], root: &Path) {
    let mut seen = BTreeMap::new();
    for e in tar::Archive::new(layer).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let h = e.header();
        let meta = (
            h.mode().unwrap() & 0o7777,
            h.uid().unwrap(),
            h.entry_type(),
            e.link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().to_string()),
        );
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        seen.insert(name.trim_start_matches("./").to_string(), (meta, data));
    }
    let spaced = &seen["home/node/with space ünïcødé.txt"];
    assert_eq!(spaced.1, b"spaced out\n");
    assert_eq!((spaced.0 .0, spaced.0 .1), (0o644, 1000));
    let run = &seen["home/node/run.sh"];
    assert_eq!((run.0 .0, run.0 .1), (0o755, 1000));
    let link = &seen["home/node/link-to-notes"];
    assert!(link.0 .2.is_symlink());
    assert_eq!(link.0 .3.as_deref(), Some("project/src/deep/er/notes.txt"));
    assert_eq!(seen["bin/sh"].0 .3.as_deref(), Some("busybox"));
    assert_eq!(
        seen["srv/big.bin"].1,
        std::fs::read(root.join("srv/big.bin")).unwrap()
    );
    assert!(seen.contains_key("var/empty/"), "{:?}", seen.keys());
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn docker_out(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn remove_image(image: &str) {
    let _ = Command::new("docker").args(["rmi", "-f", image]).output();
}

/// What each stage said it does, in order (exec-tar says nothing: its transport is shown).
fn does(events: &[Value]) -> Vec<(&str, &str)> {
    event(events, "stage-started")
        .iter()
        .filter_map(|e| Some((e["stage"].as_str()?, e["does"].as_str()?)))
        .collect()
}

/// The cached probe answers: (exec --stream, pack takes an archive).
fn probes(w: &World) -> (bool, bool) {
    let cache: Value =
        serde_json::from_slice(&std::fs::read(w.state.path().join("smolvm-probes.json")).unwrap())
            .unwrap();
    let all = cache.as_object().unwrap();
    assert_eq!(all.len(), 1, "{cache}");
    let (key, caps) = all.iter().next().unwrap();
    assert!(key.contains("smolvm-sim"), "{key}");
    (
        caps["exec_stream"].as_bool().unwrap(),
        caps["pack_archive"].as_bool().unwrap(),
    )
}

fn busybox() -> Option<PathBuf> {
    common::busybox()
}

/// The push stage's last progress event names each layer, whole at the end, and the
/// layer named by its digest's first 12 hex digits when it is known.
fn assert_push_layers_whole(events: &[Value], digest: Option<&str>) {
    let last = events
        .iter()
        .rev()
        .find(|e| e["event"] == "progress" && e["stage"] == "push")
        .expect("a push progress event");
    let layers = last["progress"]["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{last}");
    let l = &layers[0];
    assert!(l["bytes"].as_u64().unwrap() > 0, "{last}");
    assert_eq!(l["bytes"], l["total"], "{last}");
    if let Some(d) = digest {
        assert_eq!(l["layer"], &d["sha256:".len()..][..12], "{last}");
    }
}

/// smolvm 1.32 (archives) and no Docker daemon: the freeze needs only smolvm.
#[test]
fn smolvm_1_32_without_docker_packs_the_archive() {
    let Some(busybox) = busybox() else { return };
    let w = World::new();
    let root = common::varied_root(&busybox);
    w.sim
        .create("bot-bottle-op-nodocker", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    let out = freeze(
        &w,
        "op-nodocker",
        &["--registry-bin", "/nonexistent/registry"],
        &[("DOCKER_HOST", NO_DOCKER)],
    );
    let events = succeeded(&out);
    let (config, digest, layer) = packed(&sidecar_of(&events));
    assert_eq!(config["config"]["User"], "node");
    assert_eq!(config["config"]["WorkingDir"], "/home/node");
    assert_eq!(config["rootfs"]["diff_ids"][0], digest.as_str());
    assert_eq!(sha256(&layer), digest);
    assert_layer_holds_the_guest(&layer, root.path());

    assert_eq!(
        does(&events),
        [
            ("build", "native archive"),
            ("push", "nothing: no Docker daemon"),
            ("pack", "from the archive")
        ]
    );
    // pack read the archive itself: no registry, no pull.
    let id = the_id(&events);
    let rec = &w.record(&id)["record"];
    let commands = rec["commands"].to_string();
    assert!(commands.contains("image.tar"), "{commands}");
    assert!(!commands.contains("serve"), "no registry: {commands}");
    assert_eq!(rec["layer_digest"], digest.as_str());
    assert!(
        rec["docker"].as_str().unwrap().starts_with("not loaded"),
        "{rec}"
    );
    assert!(rec["entries"].as_u64().unwrap() > 10);
    assert!(event(&events, "note")
        .iter()
        .any(|n| n["message"].as_str().unwrap().contains("no Docker daemon")));
    // history show prints the layer digest and the entry count.
    let shown = w
        .sim
        .freeze_cmd(w.state.path())
        .args(["history", "show", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains(&format!("layer     {digest}")), "{text}");
    assert!(text.contains("entries"), "{text}");
    assert!(text.contains("native archive"), "{text}");
    // The --help probes' answers are cached for the next run, keyed by the binary.
    assert_eq!(probes(&w), (true, true));
    w.assert_clean(root.path());
}

/// smolvm 1.9 (registry references only) and no Docker daemon: the archive's blobs go to
/// the ephemeral registry and pack pulls them.
#[test]
fn smolvm_1_9_without_docker_goes_through_the_registry() {
    let Some(busybox) = busybox() else { return };
    if common::registry_bin().is_none() {
        return;
    }
    let w = World::new();
    let root = common::varied_root(&busybox);
    w.sim
        .create("bot-bottle-op-old", "running", Some(root.path()));
    w.sim.ok(&[
        "sim",
        "config",
        "--exec-cap",
        "off",
        "--pack-archive",
        "off",
    ]);
    let out = freeze(&w, "op-old", &[], &[("DOCKER_HOST", NO_DOCKER)]);
    let events = succeeded(&out);
    // Pushed by streaming: each layer's bytes (docker save names layers by its own hash).
    assert_push_layers_whole(&events, None);
    let (config, digest, layer) = packed(&sidecar_of(&events));
    assert_eq!(config["config"]["User"], "node");
    assert_eq!(sha256(&layer), digest);
    assert_layer_holds_the_guest(&layer, root.path());
    let rec = &w.record(&the_id(&events))["record"];
    let commands = rec["commands"].to_string();
    assert!(commands.contains("serve"), "a registry ran: {commands}");
    assert!(commands.contains("127.0.0.1:"), "pack pulled: {commands}");
    assert_eq!(probes(&w), (true, false));
    assert_eq!(
        does(&events),
        [
            ("build", "native archive"),
            ("push", "registry"),
            ("pack", "from the registry")
        ]
    );
    // The push tag is the image id's first 16 hex digits, as before.
    let tag = event(&events, "done")[0]["artifact"]["tag"]
        .as_str()
        .unwrap();
    let image_id = rec["image_id"].as_str().unwrap();
    assert_eq!(tag, format!("bot-bottle-committed:{}", &image_id[7..23]));
    w.assert_clean(root.path());
}

/// With Docker: the image is loaded beside pack, with the layer's digest, and runs.
#[test]
fn with_docker_the_image_is_loaded_with_the_same_layer() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    if rt.block_on(common::docker()).is_none() {
        return;
    }
    let Some(busybox) = busybox() else { return };
    let w = World::new();
    let root = common::varied_root(&busybox);
    w.sim
        .create("bot-bottle-op-docker", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    let image = "bot-bottle-committed-op-docker:latest";
    remove_image(image);
    let events = succeeded(&freeze(&w, "op-docker", &[], &[]));
    assert_eq!(does(&events)[1], ("push", "docker load"));
    let (_, digest, _) = packed(&sidecar_of(&events));
    assert_push_layers_whole(&events, Some(&digest));
    let rec = &w.record(&the_id(&events))["record"];
    assert_eq!(rec["layer_digest"], digest.as_str());
    assert!(
        rec["docker"].as_str().unwrap().starts_with("loaded as"),
        "{rec}"
    );
    assert_eq!(
        docker_out(&[
            "image",
            "inspect",
            image,
            "--format",
            "{{json .RootFS.Layers}}"
        ]),
        format!("[\"{digest}\"]")
    );
    assert_eq!(
        docker_out(&["image", "inspect", image, "--format", "{{.Id}}"]),
        rec["image_id"].as_str().unwrap()
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
        "cat 'with space ünïcødé.txt' link-to-notes && stat -c '%a %u' run.sh && pwd && id -u",
    ]);
    assert_eq!(got, "spaced out\ndeep notes\n755 1000\n/home/node\n1000");
    // push and pack overlapped: pack started before push finished.
    let order: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["event"] == "stage-started" || e["event"] == "stage-finished")
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["stage"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let pos = |ev: &str, st: &str| {
        order
            .iter()
            .position(|(e, s)| e == ev && s == st)
            .unwrap_or_else(|| panic!("{ev} {st} in {order:?}"))
    };
    assert!(
        pos("stage-started", "pack") < pos("stage-finished", "push"),
        "{order:?}"
    );
    w.assert_clean(root.path());
    remove_image(image);
}

/// The guest-file transport (smolvm's exec output cap) makes the same archive.
#[test]
fn the_guest_file_transport_wraps_the_download() {
    let Some(busybox) = busybox() else { return };
    let w = World::new();
    let root = common::varied_root(&busybox);
    w.sim
        .create("bot-bottle-op-capped", "running", Some(root.path()));
    let events = succeeded(&freeze(
        &w,
        "op-capped",
        &["--transport", "guest-file"],
        &[("DOCKER_HOST", NO_DOCKER)],
    ));
    let (config, digest, layer) = packed(&sidecar_of(&events));
    assert_eq!(config["config"]["WorkingDir"], "/home/node");
    assert_eq!(sha256(&layer), digest);
    assert_layer_holds_the_guest(&layer, root.path());
    w.assert_clean(root.path());
}

/// A corrupt first header fails exec-tar by name, whoever builds, on both transports.
#[test]
fn a_corrupt_first_header_fails_exec_tar_on_both_builders() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-op-corrupt", "running", Some(root.path()));
    w.sim
        .ok(&["sim", "set", "bot-bottle-op-corrupt", "--corrupt-header"]);
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    for (builder, transport) in [
        ("native", "pipe"),
        ("docker", "pipe"),
        ("native", "guest-file"),
    ] {
        let out = freeze(
            &w,
            "op-corrupt",
            &["--builder", builder, "--transport", transport],
            &[("DOCKER_HOST", NO_DOCKER)],
        );
        assert_eq!(out.status.code(), Some(1), "{builder}/{transport}");
        let events = json_events(&out.stdout);
        let f = &event(&events, "failed")[0]["failure"];
        // The Dockerfile build checks its daemon first; the native build streams.
        if builder == "docker" {
            assert_eq!(f["stage"], "build", "{f}");
            continue;
        }
        assert_eq!(f["stage"], "exec-tar", "{builder}/{transport}: {f}");
        let msg = f["message"].as_str().unwrap();
        assert!(
            msg.contains("corrupt tar header at byte 0")
                && msg.contains("entry 1 (name field \"./\")")
                && msg.contains("checksum"),
            "{builder}/{transport}: {msg}"
        );
        w.assert_clean(root.path());
    }
}

/// With Docker, the Dockerfile build meets the same corrupt header in exec-tar.
#[test]
fn a_corrupt_first_header_fails_the_docker_builder_in_exec_tar() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    if rt.block_on(common::docker()).is_none() || common::registry_bin().is_none() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-op-corrupt2", "running", Some(root.path()));
    w.sim
        .ok(&["sim", "set", "bot-bottle-op-corrupt2", "--corrupt-header"]);
    let out = freeze(&w, "op-corrupt2", &["--builder", "docker"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let events = json_events(&out.stdout);
    let f = &event(&events, "failed")[0]["failure"];
    assert_eq!(f["stage"], "exec-tar", "{f}");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("corrupt tar header at byte 0") && msg.contains("entry 1"),
        "{msg}"
    );
    w.assert_clean(root.path());
}

/// A freeze whose pack fails keeps the archive; a resume packs it without streaming again.
#[test]
fn a_failed_pack_keeps_the_archive_and_resume_packs_it() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-op-resume", "running", Some(root.path()));
    w.sim
        .ok(&["sim", "config", "--pack-fail", "no room for the pack VM"]);
    let out = freeze(&w, "op-resume", &[], &[("DOCKER_HOST", NO_DOCKER)]);
    assert_eq!(out.status.code(), Some(1));
    let events = json_events(&out.stdout);
    assert_eq!(event(&events, "failed")[0]["failure"]["stage"], "pack");
    let first = the_id(&events);
    let kept = w.record(&first)["record"]["kept"].clone();
    assert_eq!(kept["from"], "push");
    assert!(Path::new(kept["archive"].as_str().unwrap()).exists());

    w.sim.ok(&["sim", "config", "--pack-fail", ""]);
    let mut c = w.cmd(&["freeze", "--resume", &first, "--json"]);
    c.env("DOCKER_HOST", NO_DOCKER);
    let events = succeeded(&c.output().unwrap());
    let rec = &w.record(&the_id(&events))["record"];
    assert!(!rec["commands"].to_string().contains("\"exec\""), "{rec}");
    assert!(!Path::new(kept["archive"].as_str().unwrap()).exists());
    w.assert_clean(root.path());
}

/// `--push-to` publishes the loaded image to a registry the operator names.
#[test]
fn push_to_publishes_the_image() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    if rt.block_on(common::docker()).is_none() {
        return;
    }
    let Some(bin) = common::registry_bin() else {
        return;
    };
    let reg_dir = tempfile::tempdir().unwrap();
    let reg = rt
        .block_on(bottle_freeze::registry::SpawnedRegistry::start(
            &bin,
            reg_dir.path(),
            None,
        ))
        .unwrap();
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-op-publish", "running", Some(root.path()));
    let target = format!("{}/team/bottle:v1", reg.addr());
    let events = succeeded(&freeze(&w, "op-publish", &["--push-to", &target], &[]));
    let rec = &w.record(&the_id(&events))["record"];
    let digest = rec["layer_digest"].as_str().unwrap().to_string();
    // The registry holds the manifest, whose config is the image id.
    let manifest = ureq::get(&format!(
        "http://{}/v2/team/bottle/manifests/v1",
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
    assert_eq!(m["config"]["digest"], rec["image_id"]);
    assert_eq!(
        m["layers"].as_array().unwrap().len(),
        1,
        "{manifest} / {digest}"
    );
    rt.block_on(reg.stop());
    remove_image("bot-bottle-committed-op-publish:latest");
    remove_image(&target);
    w.assert_clean(root.path());
}

/// SIGTERM while smolvm packs the archive: the pack is killed, everything is removed.
#[test]
fn cancel_during_native_pack_cleans_up() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-op-cancel", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--pack-delay-secs", "30"]);
    let mut c = w.cmd(&["freeze", "op-cancel", "--json"]);
    c.env("DOCKER_HOST", NO_DOCKER);
    let mut run = common::Watched::spawn(c);
    run.wait_for(120, |v| {
        v["event"] == "stage-started" && v["stage"] == "pack"
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sent = std::time::Instant::now();
    run.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, err) = run.finish(10);
    assert!(sent.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(status.code(), Some(130), "{err}");
    let cancelled = run.events("cancelled");
    assert_eq!(cancelled[0]["stage"], "pack", "{err}");
    let id = run.events("started")[0]["id"].as_str().unwrap().to_string();
    let rec = &w.record(&id)["record"];
    assert_eq!(rec["outcome"], "cancelled");
    assert!(rec["kept"].is_null());
    w.assert_clean(root.path());
}

/// `--push-to` needs the daemon: without one the freeze stops in pre-flight, before streaming.
#[test]
fn push_to_without_docker_fails_in_preflight() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-op-nopub", "running", Some(root.path()));
    let out = freeze(
        &w,
        "op-nopub",
        &["--push-to", "127.0.0.1:1/team/bottle"],
        &[("DOCKER_HOST", NO_DOCKER)],
    );
    assert_eq!(out.status.code(), Some(1));
    let events = json_events(&out.stdout);
    assert!(event(&events, "stage-started").is_empty(), "{events:?}");
    let f = &event(&events, "failed")[0]["failure"];
    assert_eq!(f["stage"], "push");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.starts_with("pre-flight") && msg.contains("publishes through the Docker daemon"),
        "{msg}"
    );
    w.assert_clean(root.path());
}

/// `discard` drops the archive a failed native freeze kept.
#[test]
fn discard_drops_a_kept_archive() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-op-discard", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--pack-fail", "no room"]);
    let out = freeze(&w, "op-discard", &[], &[("DOCKER_HOST", NO_DOCKER)]);
    let id = the_id(&json_events(&out.stdout));
    let kept = w.record(&id)["record"]["kept"]["archive"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&kept).exists());
    let d = w
        .sim
        .freeze_cmd(w.state.path())
        .args(["discard", &id])
        .output()
        .unwrap();
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    assert!(!Path::new(&kept).exists());
    assert!(w.record(&id)["record"]["kept"].is_null());
    w.assert_clean(root.path());
}

/// A guest file an OCI unpacker would take for a whiteout is named in the record's warnings.
#[test]
fn whiteout_names_in_the_guest_are_warnings() {
    let w = World::new();
    let root = common::small_root();
    std::fs::write(root.path().join("etc/.wh.hidden"), "x").unwrap();
    w.sim
        .create("bot-bottle-op-wh", "running", Some(root.path()));
    let events = succeeded(&freeze(&w, "op-wh", &[], &[("DOCKER_HOST", NO_DOCKER)]));
    let rec = &w.record(&the_id(&events))["record"];
    assert_eq!(rec["outcome"], "succeeded-with-warnings");
    let warnings = rec["warnings"].to_string();
    assert!(
        warnings.contains("1 guest entries named .wh.*") && warnings.contains("etc/.wh.hidden"),
        "{warnings}"
    );
    w.assert_clean(root.path());
}
