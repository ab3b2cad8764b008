//! Push by streaming: the image as `docker save` writes it goes straight into the
//! registry's blob API — no tarball on disk and no gzip. The daemon's own push compresses
//! every layer on one core, which costs more than the whole rest of a freeze; the layers
//! here stay uncompressed (the registry is loopback, throw-away, and read once by pack).

use std::collections::HashMap;
use std::io::Read;

use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::freeze::events::LayerProgress;

/// Docker's schema-2 manifest, and the uncompressed layer type it allows.
pub const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG_TYPE: &str = "application/vnd.docker.container.image.v1+json";
const LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// manifest.json of `docker save` is small; anything larger is not Docker's.
const MAX_SMALL_FILE: u64 = 16 << 20;

#[derive(Debug, Clone)]
struct Blob {
    digest: String,
    size: u64,
}

/// Counts and hashes what passes, and reports the running total.
struct Hashing<'a, R> {
    inner: R,
    stop: &'a AtomicBool,
    hash: Sha256,
    size: u64,
    progress: &'a mut dyn FnMut(u64),
    base: u64,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // A cancelled freeze stops its upload at the next chunk rather than at the end.
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        (self.progress)(self.base + self.size);
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The registry's blob and manifest API for one repository, over plain HTTP.
struct Registry {
    agent: ureq::Agent,
    base: String,
    repo: String,
}

impl Registry {
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    fn start_upload(&self) -> Result<String, String> {
        let url = format!("{}/v2/{}/blobs/uploads/", self.base, self.repo);
        let resp = self
            .agent
            .post(&url)
            .send_empty()
            .map_err(|e| format!("POST {url}: {e}"))?;
        resp.headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| self.absolute(l))
            .ok_or_else(|| format!("POST {url}: the registry gave no upload location"))
    }

    /// Streams `reader` as one blob (PATCH, chunked), then commits it under its digest.
    fn upload(
        &self,
        reader: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
        base: u64,
        stop: &AtomicBool,
    ) -> Result<Blob, String> {
        let location = self.start_upload()?;
        let mut hashing = Hashing {
            inner: reader,
            stop,
            hash: Sha256::new(),
            size: 0,
            progress,
            base,
        };
        let resp = self
            .agent
            .patch(&location)
            .content_type("application/octet-stream")
            .send(ureq::SendBody::from_reader(&mut hashing))
            .map_err(|e| format!("uploading a blob: {e}"))?;
        let next = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| self.absolute(l))
            .unwrap_or(location);
        let digest = format!("sha256:{}", hex(&hashing.hash.finalize()));
        let sep = if next.contains('?') { '&' } else { '?' };
        let commit = format!("{next}{sep}digest={digest}");
        self.agent
            .put(&commit)
            .send_empty()
            .map_err(|e| format!("committing blob {digest}: {e}"))?;
        Ok(Blob {
            digest,
            size: hashing.size,
        })
    }

    fn put_manifest(&self, tag: &str, manifest: &[u8]) -> Result<(), String> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.repo);
        self.agent
            .put(&url)
            .content_type(MANIFEST_V2)
            .send(manifest)
            .map_err(|e| format!("PUT {url}: {e}"))?;
        Ok(())
    }
}

/// Reads a `docker save` archive from `reader` and pushes its image to
/// `http://<registry>/v2/<repo>` under `tag`. Returns the bytes uploaded and each layer's
/// bytes. Blocking: run it
/// on a thread of its own. `progress` gets the bytes uploaded so far and each layer's
/// bytes (the layers met so far, in the archive's order).
pub fn push_saved_image(
    reader: impl Read,
    registry: &str,
    repo: &str,
    tag: &str,
    progress: &mut dyn FnMut(u64, &[LayerProgress]),
    stop: &AtomicBool,
) -> Result<(u64, Vec<LayerProgress>), String> {
    let reg = Registry {
        agent: ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(3600)))
            .build()
            .into(),
        base: format!("http://{registry}"),
        repo: repo.to_string(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut blobs: HashMap<String, Blob> = HashMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    let mut manifest: Option<Vec<u8>> = None;
    let mut total = 0u64;
    let mut moved: Vec<LayerProgress> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("reading docker save: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading docker save: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("reading docker save: {e}"))?
            .to_string_lossy()
            .into_owned();
        let kind = entry.header().entry_type();
        if path.ends_with("/layer.tar") && kind.is_symlink() {
            // Docker links a layer saved twice to its first copy.
            if let Ok(Some(target)) = entry.link_name() {
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let target = target.to_string_lossy();
                let resolved = normalize(&format!("{dir}/{target}"));
                links.push((path, resolved));
            }
        } else if path.ends_with("/layer.tar")
            || (path.ends_with(".json") && !path.contains('/') && path != "manifest.json")
        {
            let is_layer = path.ends_with("/layer.tar");
            if is_layer {
                // docker save names a layer's folder by a hash of it: its first 12 digits
                // tell layers apart (the guest cannot choose them, but escape anyway).
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let name: String = dir.chars().take(12).collect();
                moved.push(LayerProgress {
                    layer: crate::sanitize::escape_str(&name),
                    bytes: 0,
                    total: Some(entry.size()),
                });
            }
            let base = total;
            let mut each = |n: u64| {
                if is_layer {
                    if let Some(l) = moved.last_mut() {
                        l.bytes = n - base;
                    }
                }
                progress(n, &moved);
            };
            let blob = reg.upload(&mut entry, &mut each, total, stop)?;
            total += blob.size;
            blobs.insert(path, blob);
        } else if path == "manifest.json" {
            if entry.size() > MAX_SMALL_FILE {
                return Err("docker save's manifest.json is implausibly large".into());
            }
            let mut m = Vec::new();
            entry
                .read_to_end(&mut m)
                .map_err(|e| format!("reading docker save: {e}"))?;
            manifest = Some(m);
        }
    }
    for (path, target) in links {
        if let Some(b) = blobs.get(&target).cloned() {
            blobs.insert(path, b);
        }
    }
    let manifest = manifest.ok_or("docker save wrote no manifest.json")?;
    let saved: serde_json::Value = serde_json::from_slice(&manifest)
        .map_err(|e| format!("docker save's manifest.json: {e}"))?;
    let image = &saved[0];
    let find = |p: &str| {
        blobs
            .get(p)
            .cloned()
            .ok_or_else(|| format!("docker save names {p}, which it did not write"))
    };
    let config = find(image["Config"].as_str().unwrap_or_default())?;
    let mut layers = Vec::new();
    for l in image["Layers"].as_array().into_iter().flatten() {
        let b = find(l.as_str().unwrap_or_default())?;
        layers
            .push(serde_json::json!({"mediaType": LAYER_TAR, "size": b.size, "digest": b.digest}));
    }
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": CONFIG_TYPE, "size": config.size, "digest": config.digest},
        "layers": layers,
    });
    let body = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
    reg.put_manifest(tag, &body)?;
    Ok((total, moved))
}

/// `a/./b/../c` -> `a/c`, for link targets inside the archive.
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

#[cfg(test)]
mod tests {
    #[test]
    fn normalizes_link_targets() {
        assert_eq!(super::normalize("abc/../def/layer.tar"), "def/layer.tar");
        assert_eq!(super::normalize("./x/./y"), "x/y");
    }
}
