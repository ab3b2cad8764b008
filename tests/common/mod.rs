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
