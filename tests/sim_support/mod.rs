//! Shared helpers for the smolvm-sim integration tests (`tests/sim_*.rs`).
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CAP: usize = 11 * 1024 * 1024;
pub const CAP_ERROR: &str =
    "error: streaming output exceeded 11534336 byte cap; exec terminated (output truncated)";

/// A sim home in a temp dir; every command gets `SMOLVM_SIM_HOME` pointing there.
pub struct Sim {
    pub home: tempfile::TempDir,
}

impl Sim {
    pub fn new() -> Sim {
        Sim {
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_smolvm-sim"));
        c.env("SMOLVM_SIM_HOME", self.home.path())
            .env_remove("SMOLVM_SIM_EXEC_CAP")
            .env_remove("SMOLVM_SIM_STREAM_FLAG")
            .env_remove("SMOLVM_SIM_PACK_ARCHIVE")
            .env_remove("SMOLVM_FILE_TRANSFER_MAX_BYTES");
        c
    }

    /// Run to completion with piped stdout/stderr.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Run an admin command that must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn create(&self, name: &str, root: &Path) {
        self.ok(&["sim", "create", name, "--root", root.to_str().unwrap()]);
    }

    /// `machine exec --name NAME [--stream] -- ARGS…` with piped output.
    pub fn exec(&self, name: &str, stream: bool, args: &[&str]) -> Output {
        let mut v = vec!["machine", "exec", "--name", name];
        if stream {
            v.push("--stream");
        }
        v.push("--");
        v.extend_from_slice(args);
        self.run(&v)
    }

    /// The freeze's tar command, archive to stdout.
    pub fn exec_tar(&self, name: &str, stream: bool) -> Output {
        self.exec(name, stream, &TAR_TO_STDOUT)
    }

    pub fn ls_json(&self) -> serde_json::Value {
        let out = self.ok(&["machine", "ls", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn machine(&self, name: &str) -> serde_json::Value {
        self.ls_json()
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no machine {name:?} in ls"))
    }
}

pub const TAR_TO_STDOUT: [&str; 8] = [
    "tar",
    "--create",
    "--exclude=./proc",
    "--exclude=./sys",
    "--exclude=./dev",
    "--exclude=./run",
    "--file=-",
    "--directory=/",
];

/// `TAR_TO_STDOUT` plus the `.` operand.
pub fn tar_args() -> Vec<&'static str> {
    let mut v = TAR_TO_STDOUT.to_vec();
    v.push(".");
    v
}

/// Deterministic, incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A root with one `size`-byte file of noise at `data/blob.bin`.
pub fn root_with_noise(size: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("data")).unwrap();
    fs::write(dir.path().join("data/blob.bin"), noise(size, 7)).unwrap();
    dir
}

/// What one archive entry or filesystem object is, for comparing the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub kind: Kind,
    pub uid: u64,
    pub mode: u32,
}

/// Entries of a tar archive, paths normalised (no `./`), hard links resolved to content.
pub fn archive_entries(bytes: &[u8]) -> std::io::Result<BTreeMap<String, Info>> {
    let mut out: BTreeMap<String, Info> = BTreeMap::new();
    let mut ar = tar::Archive::new(bytes);
    for e in ar.entries()? {
        let mut e = e?;
        let path = norm(&e.path()?.to_string_lossy());
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(e.link_name()?.unwrap().into_owned()),
            tar::EntryType::Link => {
                let target = norm(&e.link_name()?.unwrap().to_string_lossy());
                out.get(&target).unwrap().kind.clone()
            }
            _ => {
                let mut v = Vec::new();
                e.read_to_end(&mut v)?;
                Kind::File(v)
            }
        };
        out.insert(
            path,
            Info {
                kind,
                uid: h.uid()?,
                mode: h.mode()? & 0o7777,
            },
        );
    }
    Ok(out)
}

fn norm(p: &str) -> String {
    let p = p.trim_start_matches("./").trim_end_matches('/');
    if p.is_empty() || p == "." {
        ".".to_string()
    } else {
        p.to_string()
    }
}

/// The same view of a directory tree on disk.
pub fn tree_entries(root: &Path) -> BTreeMap<String, Info> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Info>) {
    let meta = fs::symlink_metadata(dir).unwrap();
    let rel = dir
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .to_string();
    let key = if rel.is_empty() { ".".to_string() } else { rel };
    out.insert(
        key,
        Info {
            kind: Kind::Dir,
            uid: u64::from(meta.uid()),
            mode: meta.mode() & 0o7777,
        },
    );
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
        if m.is_dir() {
            walk(root, &p, out);
            continue;
        }
        let kind = if m.file_type().is_symlink() {
            Kind::Symlink(fs::read_link(&p).unwrap())
        } else {
            Kind::File(fs::read(&p).unwrap())
        };
        out.insert(
            rel,
            Info {
                kind,
                uid: u64::from(m.uid()),
                mode: m.mode() & 0o7777,
            },
        );
    }
}

/// Read a child's stdout and stderr concurrently, noting when each chunk arrived.
pub struct Timed {
    pub out: Vec<u8>,
    pub err: Vec<u8>,
    pub out_times: Vec<Instant>,
    pub err_times: Vec<Instant>,
    pub status: std::process::ExitStatus,
    pub started: Instant,
}

pub fn run_timed(mut cmd: Command) -> Timed {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let so = child.stdout.take().unwrap();
    let se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || read_timed(so));
    let t_err = std::thread::spawn(move || read_timed(se));
    let (out, out_times) = t_out.join().unwrap();
    let (err, err_times) = t_err.join().unwrap();
    let status = child.wait().unwrap();
    Timed {
        out,
        err,
        out_times,
        err_times,
        status,
        started,
    }
}

fn read_timed(mut r: impl Read) -> (Vec<u8>, Vec<Instant>) {
    let mut all = Vec::new();
    let mut times = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                all.extend_from_slice(&buf[..n]);
                times.push(Instant::now());
            }
        }
    }
    (all, times)
}

/// Direct children of `pid` (Linux).
pub fn children(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// True once `pid` is gone or a zombie.
pub fn dead(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
    }
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Wait for a spawned child's first child process (the guest command) to appear.
pub fn wait_for_grandchild(child: &Child) -> u32 {
    let mut found = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            // Only once it has exec'd: before that it may not have asked for its
            // parent-death signal yet.
            found = children(child.id()).first().copied().filter(|pid| {
                let exe = |p: u32| fs::read_link(format!("/proc/{p}/exe")).ok();
                exe(*pid).is_some() && exe(*pid) != exe(child.id())
            });
            found.is_some()
        }),
        "sim spawned no child"
    );
    found.unwrap()
}

/// Write `data` into a new file at `path`, creating parent dirs.
pub fn put(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
}
