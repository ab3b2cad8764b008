//! Shared test support: the real parts (Docker daemon, registry binary, busybox, tmux)
//! and a smolvm-sim home. Under `BOTTLE_FREEZE_REQUIRE_DOCKER=1` (set by CI) a missing
//! part fails the test; elsewhere the test is skipped with a one-line reason.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub fn required() -> bool {
    std::env::var("BOTTLE_FREEZE_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

/// Call when a real part is missing: fails under CI, otherwise prints why and returns.
pub fn missing(what: &str) {
    if required() {
        panic!("{what} is missing but BOTTLE_FREEZE_REQUIRE_DOCKER=1");
    }
    eprintln!("skipping: {what} is missing");
}

/// A connected Docker client, or None (after [`missing`]).
pub async fn docker() -> Option<bollard::Docker> {
    match bottle_freeze::docker::connect().await {
        Ok(d) => Some(d),
        Err(e) => {
            missing(&format!("the Docker daemon ({e})"));
            None
        }
    }
}

pub fn registry_bin() -> Option<PathBuf> {
    match bottle_freeze::registry::find_binary(None) {
        Ok(p) => Some(p),
        Err(e) => {
            missing(&format!("a registry binary ({e})"));
            None
        }
    }
}

pub fn busybox() -> Option<PathBuf> {
    let p = PathBuf::from("/bin/busybox");
    if p.exists() {
        Some(p)
    } else {
        missing("/bin/busybox (Debian's busybox-static)");
        None
    }
}

pub fn sim_bin() -> &'static str {
    env!("CARGO_BIN_EXE_smolvm-sim")
}

pub fn freeze_bin() -> &'static str {
    env!("CARGO_BIN_EXE_bottle-freeze")
}

/// A smolvm-sim home with its own machines.
pub struct Sim {
    pub home: TempDir,
}

impl Sim {
    pub fn new() -> Sim {
        Sim {
            home: tempfile::Builder::new()
                .prefix("sim-home.")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A command for the sim with this home.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(sim_bin());
        c.env("SMOLVM_SIM_HOME", self.home());
        c
    }

    /// Runs the sim with `args`, panicking with its stderr on failure.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "smolvm-sim {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn create(&self, name: &str, state: &str, root: Option<&Path>) {
        let mut args = vec!["sim", "create", name, "--state", state];
        let root_s;
        if let Some(r) = root {
            root_s = r.to_string_lossy().into_owned();
            args.extend(["--root", &root_s]);
        }
        self.ok(&args);
    }

    /// A `bottle-freeze` command pointed at this sim.
    pub fn freeze_cmd(&self, state_dir: &Path) -> Command {
        let mut c = Command::new(freeze_bin());
        c.env("SMOLVM_SIM_HOME", self.home())
            .env("BOTTLE_FREEZE_SMOLVM", sim_bin())
            .env("BOTTLE_FREEZE_STATE_DIR", state_dir);
        c
    }
}

/// A root with the shapes a real workspace has: static busybox, /etc/passwd with `node`,
/// nested folders, a name with spaces and non-ASCII, a symlink, a hard link, an empty
/// folder, a 20 MiB file, files owned by uid 1000, an executable, and /tmp for scratch.
pub fn varied_root(busybox: &Path) -> TempDir {
    use std::os::unix::fs::{chown, symlink, PermissionsExt};
    let root = tempfile::Builder::new().prefix("root.").tempdir().unwrap();
    let r = root.path();
    for d in [
        "bin",
        "etc",
        "tmp",
        "home/node/project/src/deep/er",
        "var/empty",
        "srv",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(busybox, r.join("bin/busybox")).unwrap();
    symlink("busybox", r.join("bin/sh")).unwrap();
    std::fs::write(
        r.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\nnode:x:1000:\n").unwrap();
    std::fs::write(
        r.join("home/node/project/src/deep/er/notes.txt"),
        "deep notes\n",
    )
    .unwrap();
    std::fs::write(r.join("home/node/with space ünïcødé.txt"), "spaced out\n").unwrap();
    symlink(
        "project/src/deep/er/notes.txt",
        r.join("home/node/link-to-notes"),
    )
    .unwrap();
    std::fs::hard_link(r.join("etc/group"), r.join("srv/group-hardlink")).unwrap();
    let script = r.join("home/node/run.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // 20 MiB of incompressible-ish data, so a capped exec cannot carry it.
    let mut big = Vec::with_capacity(20 << 20);
    let mut x: u64 = 0x9E3779B97F4A7C15;
    while big.len() < 20 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(r.join("srv/big.bin"), &big).unwrap();
    for p in [
        "home/node",
        "home/node/project",
        "home/node/project/src",
        "home/node/with space ünïcødé.txt",
        "home/node/run.sh",
    ] {
        chown(r.join(p), Some(1000), Some(1000)).unwrap();
    }
    root
}

/// A small root (well under smolvm's exec cap) with /etc/passwd and /tmp.
pub fn small_root() -> TempDir {
    let root = tempfile::Builder::new().prefix("root.").tempdir().unwrap();
    let r = root.path();
    for d in ["etc", "tmp", "home/node"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(
        r.join("etc/passwd"),
        "node:x:1000:1000::/home/node:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(r.join("home/node/hello.txt"), "hello\n").unwrap();
    root
}

/// Processes whose command line or environment mentions `needle` (e.g. a test's private
/// temp folder, or a sim home).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    processes_matching(needle, true)
}

/// Processes whose command line mentions `needle`.
pub fn processes_running(needle: &str) -> Vec<String> {
    processes_matching(needle, false)
}

fn processes_matching(needle: &str, with_env: bool) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            // The environment counts too: smolvm-sim finds its home through it.
            let env = if with_env {
                std::fs::read(e.path().join("environ")).unwrap_or_default()
            } else {
                Vec::new()
            };
            if cmd.contains(needle) || String::from_utf8_lossy(&env).contains(needle) {
                found.push(format!("{name}: {cmd}"));
            }
        }
    }
    found
}

/// Every event line of a `--json` run, parsed.
pub fn json_events(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A `--json` run watched line by line as it happens, each event with the time it arrived.
pub struct Watched {
    pub child: std::process::Child,
    rx: std::sync::mpsc::Receiver<(std::time::Instant, serde_json::Value)>,
    pub seen: Vec<(std::time::Instant, serde_json::Value)>,
}

impl Watched {
    pub fn spawn(mut cmd: Command) -> Watched {
        use std::io::BufRead;
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str(&line) {
                    if tx.send((std::time::Instant::now(), v)).is_err() {
                        break;
                    }
                }
            }
        });
        Watched {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits (at most `secs`) for an event matching `pred`; panics with what was seen.
    pub fn wait_for(
        &mut self,
        secs: u64,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        if let Some((_, v)) = self.seen.iter().find(|(_, v)| pred(v)) {
            return v.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((t, v)) => {
                    let hit = pred(&v);
                    self.seen.push((t, v.clone()));
                    if hit {
                        return v;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let kinds: Vec<String> = self
                        .seen
                        .iter()
                        .map(|(_, v)| v["event"].to_string())
                        .collect();
                    let failure = self
                        .seen
                        .iter()
                        .find(|(_, v)| v["event"] == "failed")
                        .map(|(_, v)| v["failure"].to_string());
                    panic!(
                        "no matching event within {secs} s; saw {kinds:?}; failure: {failure:?}"
                    );
                }
            }
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for the process to end (at most `secs`), draining the rest of its events.
    pub fn finish(&mut self, secs: u64) -> (std::process::ExitStatus, String) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the process did not end within {secs} s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        while let Ok(item) = self.rx.recv_timeout(std::time::Duration::from_millis(500)) {
            self.seen.push(item);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status, err)
    }

    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        self.seen
            .iter()
            .filter(|(_, v)| v["event"] == kind)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Peak resident memory (VmHWM, KiB) of a live process, or None once it is gone.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

/// One isolated world for end-to-end runs of the real binary: a sim home, a state folder
/// and a temp folder of its own.
pub struct World {
    pub sim: Sim,
    pub state: TempDir,
    pub tmp: TempDir,
}

impl World {
    pub fn new() -> World {
        World {
            sim: Sim::new(),
            state: tempfile::Builder::new().prefix("state.").tempdir().unwrap(),
            tmp: tempfile::Builder::new().prefix("tmp.").tempdir().unwrap(),
        }
    }

    /// `bottle-freeze ARGS… --tmp-dir <tmp>` against this world's sim and state.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.sim.freeze_cmd(self.state.path());
        c.args(args).arg("--tmp-dir").arg(self.tmp.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Nothing of ours is left: no temp folder, no process using one (the registry's
    /// config lives there) or this sim home, no scratch archive in the guest's /tmp.
    pub fn assert_clean(&self, root: &Path) {
        let left: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "temp folders left: {left:?}");
        let procs = processes_mentioning(&self.tmp.path().to_string_lossy());
        assert!(procs.is_empty(), "processes left: {procs:?}");
        let procs = processes_mentioning(&self.sim.home().to_string_lossy());
        assert!(procs.is_empty(), "smolvm-sim processes left: {procs:?}");
        let scratch: Vec<_> = std::fs::read_dir(root.join("tmp"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(scratch.is_empty(), "guest scratch left: {scratch:?}");
    }

    /// `history show <id> --json`: the record and its logs.
    pub fn record(&self, id: &str) -> serde_json::Value {
        let out = self
            .sim
            .freeze_cmd(self.state.path())
            .args(["history", "show", id, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The record as it is on disk, without the recovery a command would run first.
    pub fn record_raw(&self, id: &str) -> serde_json::Value {
        let path = self
            .state
            .path()
            .join("history")
            .join(id)
            .join("record.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
}
