//! A tmux server of our own for the dashboard tests of issue 14 (the same shape as the
//! one in `tmux_dashboard.rs`): send-keys in, capture-pane out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{self, Sim};

pub struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    pub fn start(width: u16, height: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            common::missing("tmux");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let t = Tmux {
            socket: dir.path().join("sock"),
            _dir: dir,
        };
        let (w, h) = (width.to_string(), height.to_string());
        let ok = t
            .cmd(&["new-session", "-d", "-s", "e2e", "-x", &w, "-y", &h, "sh"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux starts");
        Some(t)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.run(&["send-keys", "-t", "e2e", k]);
            std::thread::sleep(Duration::from_millis(120));
        }
    }

    pub fn text(&self, text: &str) {
        self.run(&["send-keys", "-t", "e2e", "-l", text]);
    }

    pub fn type_line(&self, line: &str) {
        self.text(line);
        self.run(&["send-keys", "-t", "e2e", "Enter"]);
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "e2e"])
    }

    /// Waits for the screen to satisfy `pred`; panics with the last screen.
    pub fn wait(&self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("waited {secs} s for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the dashboard against `sim` and `state` with `extra` environment.
    pub fn dashboard(&self, sim: &Sim, state: &Path, extra: &str) {
        let xdg = state.join("xdg");
        let line = format!(
            "env XDG_CONFIG_HOME='{}' SMOLVM_SIM_HOME='{}' BOTTLE_FREEZE_SMOLVM='{}' BOTTLE_FREEZE_STATE_DIR='{}' BOTTLE_FREEZE_REFRESH=1 {extra} '{}'; echo EXITED:$?",
            xdg.display(),
            sim.home().display(),
            common::sim_bin(),
            state.display(),
            common::freeze_bin()
        );
        self.type_line(&line);
    }

    /// Quits the dashboard (q, and y if it asks) and waits for the shell.
    pub fn quit(&self) {
        self.keys(&["q"]);
        std::thread::sleep(Duration::from_millis(300));
        if !self.screen().contains("EXITED:") {
            self.keys(&["y"]);
        }
        self.wait(40, "the dashboard to exit", |s| s.contains("EXITED:"));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
    }
}

/// Shows only the machine whose slug is `slug`.
pub fn pick(t: &Tmux, slug: &str) {
    t.keys(&["/"]);
    t.text(slug);
    t.keys(&["Enter"]);
}
