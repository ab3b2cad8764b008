//! `pack create`: a real pull from a loopback registry (plain HTTP), every blob checked
//! against its digest, then a launcher stub at PATH and the pulled image in PATH.smolmachine.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cli::PackCreateArgs;
use crate::error::Failure;
use crate::store::{now_secs, Home};
use crate::units::hex;

const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.index.v1+json";

const MANIFEST_LIMIT: u64 = 16 << 20;

#[derive(Debug, PartialEq)]
pub struct ImageRef {
    pub registry: String,
    pub repo: String,
    /// A tag, or `sha256:…` when pinned by digest.
    pub reference: String,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        let (registry, rest) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' names no registry (expected HOST:PORT/NAME:TAG)"))?;
        if !is_loopback(registry) {
            return Err(format!(
                "registry '{registry}' is not on loopback; smolvm-sim pulls only from \
                 localhost / 127.0.0.0/8 over plain HTTP"
            ));
        }
        let (repo, reference) = if let Some((repo, digest)) = rest.split_once('@') {
            (repo, digest.to_string())
        } else {
            match rest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, tag.to_string()),
                _ => (rest, "latest".to_string()),
            }
        };
        if repo.is_empty() || reference.is_empty() {
            return Err(format!("invalid image reference '{s}'"));
        }
        Ok(ImageRef {
            registry: registry.to_string(),
            repo: repo.to_string(),
            reference,
        })
    }

    fn url(&self, kind: &str, reference: &str) -> String {
        format!(
            "http://{}/v2/{}/{kind}/{reference}",
            self.registry, self.repo
        )
    }
}

fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next() == Some("::1");
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<Ipv4Addr>()
            .is_ok_and(|ip| ip.octets()[0] == 127)
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    /// Present on manifest lists / indexes.
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

struct Pulled {
    manifest_bytes: Vec<u8>,
    manifest_digest: String,
    config: (String, PathBuf),
    layers: Vec<(String, PathBuf, u64)>,
}

pub fn run(home: &Home, args: PackCreateArgs) -> Result<i32, Failure> {
    let cfg = home.config()?;
    if let Some(msg) = cfg.pack_fail {
        eprintln!("{msg}");
        return Ok(1);
    }
    if cfg.pack_delay_secs > 0 {
        std::thread::sleep(std::time::Duration::from_secs(cfg.pack_delay_secs));
    }
    let image = args.image.as_str();
    let source = Source::of(image, cfg.pack_archive)?;

    let out = &args.output;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Staged beside the outputs: a failure removes it whole, success is two renames.
    let staging = tempfile::Builder::new()
        .prefix(".smolvm-sim-pack-")
        .tempdir_in(&parent)
        .map_err(|e| {
            Failure::agent(
                "create temp directory",
                format!("{}: {e}", parent.display()),
            )
        })?;

    let pulled = match &source {
        Source::Registry(r) => {
            let pull_err = |reason: String| {
                Failure::agent("pull image", format!("failed to pull {image}: {reason}"))
            };
            println!("Pulling image {image}...");
            let pulled = pull(r, staging.path()).map_err(pull_err)?;
            println!("Pulling image {image}... done.");
            pulled
        }
        Source::Archive(path) => {
            println!("Reading image archive {}...", path.display());
            let file = File::open(path).map_err(|e| archive_err(image, e.to_string()))?;
            read_archive(file, staging.path()).map_err(|e| archive_err(image, e))?
        }
        Source::Stdin => {
            println!("Reading image archive from stdin...");
            read_archive(io::stdin().lock(), staging.path()).map_err(|e| archive_err(image, e))?
        }
        Source::Dir(path) => {
            println!("Packing rootfs directory {}...", path.display());
            pack_dir(path, staging.path())
                .map_err(|e| Failure::agent("read rootfs directory", format!("{image}: {e}")))?
        }
    };
    let total: u64 = pulled.layers.iter().map(|(_, _, n)| n).sum();
    println!(
        "Image: {image} ({} layers, {total} bytes)",
        pulled.layers.len()
    );

    println!("Assembling packed binary...");
    let sidecar_tmp = staging.path().join("sidecar");
    write_sidecar(&sidecar_tmp, image, &pulled).map_err(|e| Failure::agent("pack binary", e))?;
    let stub_tmp = staging.path().join("stub");
    write_stub(&stub_tmp, image).map_err(|e| Failure::agent("pack binary", e))?;

    let mut sidecar = out.clone().into_os_string();
    sidecar.push(".smolmachine");
    let sidecar = PathBuf::from(sidecar);
    fs::rename(&sidecar_tmp, &sidecar)
        .map_err(|e| Failure::agent("pack binary", format!("{}: {e}", sidecar.display())))?;
    if let Err(e) = fs::rename(&stub_tmp, out) {
        let _ = fs::remove_file(&sidecar);
        return Err(Failure::agent(
            "pack binary",
            format!("{}: {e}", out.display()),
        ));
    }
    let stub_kb = file_len(out) / 1024;
    let side_kb = file_len(&sidecar) / 1024;
    println!(
        "Packed: {} (stub: {stub_kb}KB, total: {}KB)",
        out.display(),
        stub_kb + side_kb
    );
    println!("Assets: {} ({side_kb}KB compressed)", sidecar.display());
    println!("\nRun with: {}", out.display());
    println!("Note: Keep the .smolmachine file alongside the binary");
    println!("Options: --help for usage");
    Ok(0)
}

/// What `--image` names.
enum Source {
    Registry(ImageRef),
    /// A `docker save` archive on disk.
    Archive(PathBuf),
    /// A `docker save` archive on stdin (`-`).
    Stdin,
    /// An unpacked rootfs directory.
    Dir(PathBuf),
}

impl Source {
    /// smolvm 1.32 reads `-`, an existing file or directory, or a path-looking argument
    /// as local; a bare name is always a registry reference. smolvm 1.9 knows only
    /// references.
    fn of(image: &str, local_ok: bool) -> Result<Source, Failure> {
        let registry = || {
            ImageRef::parse(image)
                .map(Source::Registry)
                .map_err(|reason| {
                    Failure::agent("pull image", format!("failed to pull {image}: {reason}"))
                })
        };
        if !local_ok {
            return registry();
        }
        if image == "-" {
            return Ok(Source::Stdin);
        }
        let path = Path::new(image);
        match fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(Source::Dir(path.to_path_buf())),
            Ok(_) => Ok(Source::Archive(path.to_path_buf())),
            Err(_)
                if image.starts_with('/')
                    || image.starts_with("./")
                    || image.starts_with("../")
                    || image.ends_with(".tar") =>
            {
                Err(archive_err(image, "no such file or directory".to_string()))
            }
            Err(_) => registry(),
        }
    }
}

fn archive_err(image: &str, reason: String) -> Failure {
    Failure::smolvm(format!(
        "read image archive: {image} is not a usable `docker save` archive: {reason}"
    ))
}

/// The most bytes of JSON (manifest, config) read from an archive.
const JSON_LIMIT: u64 = 16 << 20;

/// A file staged out of an archive.
struct Staged {
    path: PathBuf,
    digest: String,
    size: u64,
}

/// Copies `reader` to `path`, hashing it.
fn stage(reader: &mut dyn Read, path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::create(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((format!("sha256:{}", hex(&hasher.finalize())), size))
}

#[derive(Debug, Deserialize)]
struct SavedImage {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// Reads a `docker save` archive (classic `<id>/layer.tar` or OCI `blobs/sha256/<hex>`
/// paths, as `manifest.json` names them), checking every layer against the config's
/// `diff_ids`.
fn read_archive(reader: impl Read, staging: &Path) -> Result<Pulled, String> {
    let mut ar = tar::Archive::new(reader);
    let mut files: std::collections::HashMap<String, Staged> = Default::default();
    let mut links: Vec<(String, String)> = Vec::new();
    let entries = ar
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| format!("not a tar archive: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| format!("entry {}: {e}", i + 1))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            if let Ok(Some(target)) = entry.link_name() {
                let dir = name
                    .rsplit_once('/')
                    .map(|(d, _)| d.to_string())
                    .unwrap_or_default();
                links.push((
                    name,
                    normalize(&format!("{dir}/{}", target.to_string_lossy())),
                ));
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        // Staged under a made-up name: entry names are the archive's, never our paths.
        let path = staging.join(format!("entry-{i}"));
        let (digest, size) =
            stage(&mut entry, &path).map_err(|e| format!("reading {name}: {e}"))?;
        files.insert(name, Staged { path, digest, size });
    }
    for (name, target) in links {
        if let Some(t) = files.get(&target) {
            let copy = Staged {
                path: t.path.clone(),
                digest: t.digest.clone(),
                size: t.size,
            };
            files.insert(name, copy);
        }
    }
    let small = |name: &str, what: &str| -> Result<Vec<u8>, String> {
        let f = files
            .get(name)
            .ok_or_else(|| format!("{what} {name} is not in the archive"))?;
        if f.size > JSON_LIMIT {
            return Err(format!(
                "{what} {name} is implausibly large ({} bytes)",
                f.size
            ));
        }
        fs::read(&f.path).map_err(|e| format!("{what} {name}: {e}"))
    };
    let manifest_bytes = small("manifest.json", "the manifest")?;
    let saved: Vec<SavedImage> = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| format!("manifest.json is not a docker save manifest: {e}"))?;
    let image = match saved.as_slice() {
        [one] => one,
        [] => return Err("manifest.json names no image".into()),
        more => {
            return Err(format!(
                "manifest.json names {} images; pack takes one",
                more.len()
            ))
        }
    };
    let config_bytes = small(&image.config, "the config")?;
    let config: serde_json::Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| format!("the config {} is not JSON: {e}", image.config))?;
    let config_file = &files[&image.config];
    if let Some(hex) = image.config.strip_prefix("blobs/sha256/") {
        if config_file.digest != format!("sha256:{hex}") {
            return Err(format!(
                "the config {} has digest {}",
                image.config, config_file.digest
            ));
        }
    }
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    if diff_ids.len() != image.layers.len() {
        return Err(format!(
            "manifest.json lists {} layers but the config's rootfs.diff_ids has {}",
            image.layers.len(),
            diff_ids.len()
        ));
    }
    let count = image.layers.len();
    let mut layers = Vec::new();
    for (i, (name, want)) in image.layers.iter().zip(&diff_ids).enumerate() {
        let layer = files
            .get(name)
            .ok_or_else(|| format!("layer {} ({name}) is not in the archive", i + 1))?;
        if layer.digest != *want {
            return Err(format!(
                "layer {} ({name}) has digest {} but the config's diff_ids[{i}] says {want}",
                i + 1,
                layer.digest
            ));
        }
        println!(
            "  Layer {}/{count}: {}... {} bytes",
            i + 1,
            layer.digest.get(..19).unwrap_or(&layer.digest),
            layer.size
        );
        layers.push((layer.digest.clone(), layer.path.clone(), layer.size));
    }
    Ok(Pulled {
        manifest_digest: format!("sha256:{}", hex(&Sha256::digest(&manifest_bytes))),
        manifest_bytes,
        config: (config_file.digest.clone(), config_file.path.clone()),
        layers,
    })
}

/// An unpacked rootfs directory as a one-layer image.
fn pack_dir(dir: &Path, staging: &Path) -> Result<Pulled, String> {
    let layer = staging.join("layer.tar");
    {
        let mut b = tar::Builder::new(File::create(&layer).map_err(|e| e.to_string())?);
        b.follow_symlinks(false);
        b.append_dir_all(".", dir).map_err(|e| e.to_string())?;
        b.into_inner()
            .and_then(|mut f| f.flush())
            .map_err(|e| e.to_string())?;
    }
    let (digest, size) = stage(
        &mut File::open(&layer).map_err(|e| e.to_string())?,
        &staging.join("layer-copy"),
    )
    .map_err(|e| e.to_string())?;
    let _ = fs::remove_file(staging.join("layer-copy"));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest]},
    }))
    .map_err(|e| e.to_string())?;
    let config_path = staging.join("config.json");
    fs::write(&config_path, &config).map_err(|e| e.to_string())?;
    let manifest_bytes = b"[]".to_vec();
    Ok(Pulled {
        manifest_digest: format!("sha256:{}", hex(&Sha256::digest(&manifest_bytes))),
        manifest_bytes,
        config: (
            format!("sha256:{}", hex(&Sha256::digest(&config))),
            config_path,
        ),
        layers: vec![(digest, layer, size)],
    })
}

/// `a/./b/../c` -> `a/c`, for link targets inside an archive.
fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out.join("/")
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .new_agent()
}

fn pull(r: &ImageRef, staging: &Path) -> Result<Pulled, String> {
    let agent = agent();
    let (mut bytes, mut digest) = fetch_manifest(&agent, r, &r.reference)?;
    let mut manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    if !manifest.manifests.is_empty() {
        // A manifest list / index: linux/amd64, else the first entry.
        let chosen = manifest
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
            })
            .or_else(|| manifest.manifests.first())
            .map(|d| d.digest.clone())
            .ok_or_else(|| "empty manifest list".to_string())?;
        (bytes, digest) = fetch_manifest(&agent, r, &chosen)?;
        manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format!("manifest {chosen} is not valid JSON: {e}"))?;
    }
    if manifest.media_type.contains("schema1") {
        return Err("schema1 manifests are not supported".into());
    }
    let config = manifest
        .config
        .ok_or_else(|| "manifest has no config".to_string())?;
    let config_path = fetch_blob(&agent, r, &config, staging)?;
    let count = manifest.layers.len();
    let mut layers = Vec::new();
    for (i, layer) in manifest.layers.iter().enumerate() {
        let path = fetch_blob(&agent, r, layer, staging)?;
        let n = file_len(&path);
        println!(
            "  Layer {}/{count}: {}... {n} bytes",
            i + 1,
            layer.digest.get(..19).unwrap_or(&layer.digest)
        );
        layers.push((layer.digest.clone(), path, n));
    }
    Ok(Pulled {
        manifest_bytes: bytes,
        manifest_digest: digest,
        config: (config.digest, config_path),
        layers,
    })
}

fn fetch_manifest(
    agent: &ureq::Agent,
    r: &ImageRef,
    reference: &str,
) -> Result<(Vec<u8>, String), String> {
    let resp = agent
        .get(&r.url("manifests", reference))
        .header("Accept", ACCEPT)
        .call()
        .map_err(|e| format!("GET manifest {reference}: {e}"))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!("GET manifest {reference}: HTTP {status}"));
    }
    let bytes = resp
        .into_body()
        .into_with_config()
        .limit(MANIFEST_LIMIT)
        .read_to_vec()
        .map_err(|e| format!("read manifest {reference}: {e}"))?;
    let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
    if reference.starts_with("sha256:") && reference != digest {
        return Err(format!(
            "manifest {reference} digest mismatch (got {digest})"
        ));
    }
    Ok((bytes, digest))
}

/// Download a blob to `staging` while hashing it; a mismatch names the digest.
fn fetch_blob(
    agent: &ureq::Agent,
    r: &ImageRef,
    d: &Descriptor,
    staging: &Path,
) -> Result<PathBuf, String> {
    let want = d
        .digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("blob {}: unsupported digest algorithm", d.digest))?;
    if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("blob {}: malformed digest", d.digest));
    }
    let resp = agent
        .get(&r.url("blobs", &d.digest))
        .call()
        .map_err(|e| format!("GET blob {}: {e}", d.digest))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!("GET blob {}: HTTP {status}", d.digest));
    }
    let path = staging.join(want);
    let mut file = File::create(&path).map_err(|e| format!("stage blob {}: {e}", d.digest))?;
    let mut reader = resp.into_body().into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n_total: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read blob {}: {e}", d.digest)),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| format!("stage blob {}: {e}", d.digest))?;
        n_total += n as u64;
    }
    let got = hex(&hasher.finalize());
    if got != want {
        return Err(format!(
            "blob {} digest mismatch (got sha256:{got}, {n_total} bytes)",
            d.digest
        ));
    }
    if d.size != 0 && d.size != n_total {
        return Err(format!(
            "blob {} size mismatch (manifest says {}, got {n_total})",
            d.digest, d.size
        ));
    }
    Ok(path)
}

fn append(
    b: &mut tar::Builder<File>,
    name: &str,
    mut data: impl Read,
    size: u64,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(now_secs());
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, &mut data)
}

/// The sidecar: `smolmachine.json`, `manifest.json`, `config.json`, `layers/<hex>`.
fn write_sidecar(path: &Path, image: &str, p: &Pulled) -> io::Result<()> {
    let mut b = tar::Builder::new(File::create(path)?);
    let meta = serde_json::json!({
        "format": "smolvm-sim sidecar (test double, not a real .smolmachine)",
        "image": image,
        "manifest_digest": p.manifest_digest,
        "config_digest": p.config.0,
        "layers": p.layers.iter().map(|(d, _, n)| serde_json::json!({"digest": d, "size": n})).collect::<Vec<_>>(),
    });
    let meta = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
    append(&mut b, "smolmachine.json", &meta[..], meta.len() as u64)?;
    append(
        &mut b,
        "manifest.json",
        &p.manifest_bytes[..],
        p.manifest_bytes.len() as u64,
    )?;
    let cfg = File::open(&p.config.1)?;
    let len = cfg.metadata()?.len();
    append(&mut b, "config.json", cfg, len)?;
    for (digest, file, size) in &p.layers {
        let name = format!("layers/{}", digest.trim_start_matches("sha256:"));
        append(&mut b, &name, File::open(file)?, *size)?;
    }
    b.into_inner()?.sync_all()
}

fn write_stub(path: &Path, image: &str) -> io::Result<()> {
    let safe: String = image
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '\'' && *c != '\\')
        .collect();
    let script = format!(
        "#!/bin/sh\n\
         # smolvm-sim launcher stub for {safe}\n\
         # Written by smolvm-sim, a test double for smolvm: not a runnable packed VM.\n\
         echo 'smolvm-sim launcher stub for {safe}: smolvm-sim is a test double; this pack cannot run a VM' >&2\n\
         exit 1\n"
    );
    let mut f = File::create(path)?;
    f.write_all(script.as_bytes())?;
    f.set_permissions(fs::Permissions::from_mode(0o755))?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = ImageRef::parse("127.0.0.1:5000/bot-bottle-committed:0123abcd");
        assert_eq!(
            r,
            Ok(ImageRef {
                registry: "127.0.0.1:5000".into(),
                repo: "bot-bottle-committed".into(),
                reference: "0123abcd".into()
            })
        );
        let r = ImageRef::parse("localhost:1/a/b@sha256:00");
        assert_eq!(
            r.map(|r| (r.repo, r.reference)),
            Ok(("a/b".into(), "sha256:00".into()))
        );
        let r = ImageRef::parse("127.0.0.1:1/x");
        assert_eq!(r.map(|r| r.reference), Ok("latest".into()));
        assert!(ImageRef::parse("docker.io/library/alpine:3").is_err());
        assert!(ImageRef::parse("alpine").is_err());
    }
}
