//! The real binary in a real terminal: the dashboard under tmux against smolvm-sim, the
//! real Docker daemon and a real registry, driven with send-keys and read with
//! capture-pane.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{processes_mentioning, processes_running, Sim};

/// A tmux server of our own (its own socket), with one pane running a shell.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(width: u16, height: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            common::missing("tmux");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let t = Tmux {
            socket: dir.path().join("sock"),
            _dir: dir,
        };
        let ok = t
            .cmd(&[
                "new-session",
                "-d",
                "-s",
                "e2e",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                "sh",
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux starts");
        t.run(&["set-option", "-g", "allow-rename", "on"]);
        t.run(&["select-pane", "-t", "e2e", "-T", "e2e-title"]);
        Some(t)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.run(&["send-keys", "-t", "e2e", k]);
            std::thread::sleep(Duration::from_millis(120));
        }
    }

    fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-t", "e2e", "-l", line]);
        self.run(&["send-keys", "-t", "e2e", "Enter"]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "e2e"])
    }

    fn format(&self, f: &str) -> String {
        self.run(&["display-message", "-p", "-t", "e2e", f])
            .trim()
            .to_string()
    }

    /// Waits for the screen to satisfy `pred`; panics with the last screen.
    fn wait(&self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
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
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
    }
}

/// Shows only the machine whose slug is `slug` (the filter keeps it selected).
fn pick(t: &Tmux, slug: &str) {
    t.keys(&["/"]);
    t.run(&["send-keys", "-t", "e2e", "-l", slug]);
    t.keys(&["Enter"]);
}

fn clear_filter(t: &Tmux) {
    t.keys(&["/", "Escape"]);
    std::thread::sleep(Duration::from_millis(300));
}

/// The "N.N MiB streamed" figure on screen, if any.
fn streamed(screen: &str) -> Option<f64> {
    let line = screen.lines().find(|l| l.contains("streamed"))?;
    let before = line.split("streamed").next()?.trim();
    let mut parts = before.split_whitespace().rev();
    let unit = parts.next()?;
    let n: f64 = parts.next()?.trim_start_matches('│').parse().ok()?;
    Some(match unit {
        "KiB" => n / 1024.0,
        "GiB" => n * 1024.0,
        "B" => n / 1048576.0,
        _ => n,
    })
}

#[test]
fn dashboard_freezes_fails_cancels_and_quits_cleanly_in_a_real_terminal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    if rt.block_on(common::docker()).is_none() || common::registry_bin().is_none() {
        return;
    }
    let Some(t) = Tmux::start(120, 36) else {
        return;
    };
    let sim = Sim::new();
    let good = common::small_root();
    let bad = common::small_root();
    let slow = common::small_root();
    sim.create("bot-bottle-good", "running", Some(good.path()));
    sim.create("bot-bottle-bad", "running", Some(bad.path()));
    sim.create("bot-bottle-slow", "running", Some(slow.path()));
    sim.ok(&["sim", "config", "--exec-cap", "off"]);
    sim.ok(&[
        "sim",
        "set",
        "bot-bottle-bad",
        "--stderr-hostile",
        "--exit-after-stream",
        "2",
    ]);
    sim.ok(&[
        "sim",
        "set",
        "bot-bottle-slow",
        "--synthetic-size",
        "1G",
        "--throttle",
        "3M",
    ]);
    let state = tempfile::tempdir().unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("tmux-tmp.")
        .tempdir()
        .unwrap();
    let line = format!(
        "env SMOLVM_SIM_HOME='{}' BOTTLE_FREEZE_SMOLVM='{}' BOTTLE_FREEZE_STATE_DIR='{}' BOTTLE_FREEZE_TMPDIR='{}' BOTTLE_FREEZE_REFRESH=1 '{}'; echo EXITED:$?",
        sim.home().display(),
        common::sim_bin(),
        state.path().display(),
        tmp.path().display(),
        common::freeze_bin()
    );
    t.type_line(&line);
    t.wait(20, "the machine list", |s| {
        s.contains("good") && s.contains("slow") && s.contains("bad")
    });
    assert_eq!(
        t.format("#{alternate_on}"),
        "1",
        "the dashboard uses the alternate screen"
    );

    // A slow freeze: the bytes counter moves; then cancel it with c.
    pick(&t, "slow");
    t.keys(&["f"]);
    t.wait(10, "the confirmation", |s| {
        s.contains("Freeze bot-bottle-slow?")
    });
    t.keys(&["y"]);
    let first = t.wait(30, "bytes streaming", |s| {
        streamed(s).is_some_and(|m| m > 0.0)
    });
    let first = streamed(&first).unwrap();
    t.wait(30, "the counter to move", |s| {
        streamed(s).is_some_and(|m| m > first)
    });
    t.keys(&["c"]);
    t.wait(10, "the cancel question", |s| {
        s.to_lowercase().contains("cancel")
    });
    t.keys(&["y"]);
    t.wait(20, "the freeze to be cancelled", |s| {
        s.contains("cancelled")
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while (!processes_running(&tmp.path().to_string_lossy()).is_empty()
        || std::fs::read_dir(tmp.path()).unwrap().count() > 0)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        processes_running(&tmp.path().to_string_lossy()).is_empty(),
        "processes left after cancel"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temp folder left after cancel"
    );
    assert!(
        processes_running("bot-bottle-slow").is_empty(),
        "smolvm exec left after cancel"
    );
    clear_filter(&t);

    // A freeze that succeeds: the pane reports the artifact, which exists on disk.
    pick(&t, "good");
    t.keys(&["f"]);
    t.wait(10, "the confirmation", |s| {
        s.contains("Freeze bot-bottle-good?")
    });
    t.keys(&["y"]);
    t.wait(120, "the artifact", |s| {
        s.contains("committed-smolmachine.smolmachine")
    });
    let sidecar = state.path().join("good/committed-smolmachine.smolmachine");
    assert!(std::fs::metadata(&sidecar).unwrap().len() > 0);
    clear_filter(&t);

    // A freeze whose exec fails with hostile stderr: shown escaped; the terminal untouched.
    let title = t.format("#{pane_title}");
    pick(&t, "bad");
    t.keys(&["f"]);
    t.wait(10, "the confirmation", |s| {
        s.contains("Freeze bot-bottle-bad?")
    });
    t.keys(&["y"]);
    t.wait(60, "the failure", |s| s.contains("exec-tar failed"));
    // The stderr pane follows the tail; the hostile lines came first, so scroll up to them.
    let mut s = t.screen();
    for _ in 0..10 {
        if s.contains("\\x1b]0;pwned\\x07") {
            break;
        }
        t.keys(&["PageUp"]);
        s = t.screen();
    }
    assert!(
        s.contains("\\x1b]0;pwned\\x07"),
        "the OSC sequence is shown as text:\n{s}"
    );
    assert!(
        s.contains("\\x1b[2J"),
        "the screen clear is shown as text:\n{s}"
    );
    assert!(
        s.contains("good") || s.contains("bad"),
        "the screen was not cleared:\n{s}"
    );
    assert_eq!(
        t.format("#{pane_title}"),
        title,
        "the VM changed the pane title"
    );
    clear_filter(&t);

    // The history view lists it, and the record shows its stderr.
    t.keys(&["h"]);
    let s = t.wait(10, "the history view", |s| {
        s.contains("failed") && s.contains("bot-bottle-bad")
    });
    assert!(s.contains("bot-bottle-good"), "{s}");
    t.keys(&["Enter"]);
    t.wait(10, "the record with its log", |s| {
        s.contains("pwned") && s.contains("exec-tar")
    });
    t.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(300));

    // Quit: the pane is back at the shell, out of the alternate screen.
    t.keys(&["q"]);
    let s = t.wait(15, "the shell again", |s| s.contains("EXITED:0"));
    assert_eq!(
        t.format("#{alternate_on}"),
        "0",
        "still in the alternate screen:\n{s}"
    );
    assert!(
        processes_mentioning(&state.path().to_string_lossy()).is_empty(),
        "a process outlived the dashboard"
    );
    let _ = Command::new("docker")
        .args(["rmi", "-f", "bot-bottle-committed-good:latest"])
        .output();
}

/// A `machine ls` that hangs leaves the dashboard responsive, shows the list as stale,
/// and the hung call is timed out (no smolvm process piles up); it recovers by itself.
#[test]
fn dashboard_stays_responsive_when_machine_ls_hangs() {
    let Some(t) = Tmux::start(120, 36) else {
        return;
    };
    let sim = Sim::new();
    sim.create("bot-bottle-one", "running", None);
    sim.create("bot-bottle-two", "running", None);
    let state = tempfile::tempdir().unwrap();
    let line = format!(
        "env SMOLVM_SIM_HOME='{}' BOTTLE_FREEZE_SMOLVM='{}' BOTTLE_FREEZE_STATE_DIR='{}' '{}' --refresh 1 --query-timeout 2; echo EXITED:$?",
        sim.home().display(),
        common::sim_bin(),
        state.path().display(),
        common::freeze_bin()
    );
    t.type_line(&line);
    t.wait(20, "the machine list", |s| {
        s.contains("one") && s.contains("two")
    });
    sim.ok(&["sim", "config", "--ls-hang-secs", "60"]);
    t.wait(20, "the list marked stale", |s| {
        s.contains("stale") && s.contains("one")
    });
    // Still answering keys while discovery hangs.
    let asked = Instant::now();
    t.keys(&["?"]);
    t.wait(5, "the help overlay", |s| s.to_lowercase().contains("keys"));
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "the dashboard was slow to answer"
    );
    t.keys(&["Escape"]);
    // Hung calls are abandoned and killed, not piled up.
    std::thread::sleep(Duration::from_secs(5));
    let hung: Vec<String> = processes_mentioning(&sim.home().to_string_lossy())
        .into_iter()
        .filter(|p| p.contains("machine ls"))
        .collect();
    assert!(hung.len() <= 1, "hung smolvm calls pile up: {hung:?}");
    sim.ok(&["sim", "config", "--ls-hang-secs", "0"]);
    t.wait(20, "the list fresh again", |s| {
        !s.contains("stale") && s.contains("one")
    });
    t.keys(&["q"]);
    t.wait(15, "the shell again", |s| s.contains("EXITED:0"));
    assert!(processes_mentioning(&sim.home().to_string_lossy()).is_empty());
}

/// Starts the dashboard in `t` against `sim` with the config home `xdg` and `extra`
/// environment; returns the state folder.
fn open_dashboard(t: &Tmux, sim: &Sim, xdg: &std::path::Path, extra: &str) -> tempfile::TempDir {
    let state = tempfile::tempdir().unwrap();
    let line = format!(
        "env XDG_CONFIG_HOME='{}' SMOLVM_SIM_HOME='{}' BOTTLE_FREEZE_SMOLVM='{}' BOTTLE_FREEZE_STATE_DIR='{}' {extra} '{}'; echo EXITED:$?",
        xdg.display(),
        sim.home().display(),
        common::sim_bin(),
        state.path().display(),
        common::freeze_bin()
    );
    t.type_line(&line);
    t.wait(20, "the machine list", |s| s.contains("alpha"));
    state
}

#[test]
fn keys_remapped_in_the_config_file_work_and_are_shown() {
    let Some(t) = Tmux::start(120, 36) else {
        return;
    };
    let sim = Sim::new();
    sim.create("bot-bottle-alpha", "running", None);
    let xdg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(xdg.path().join("bottle-freeze")).unwrap();
    std::fs::write(
        xdg.path().join("bottle-freeze/config.toml"),
        "colour = 1\n[keys.dashboard]\nfreeze = \"x\"\nhistory = \"z h\"\n",
    )
    .unwrap();
    let _state = open_dashboard(&t, &sim, xdg.path(), "");
    let s = t.screen();
    assert!(
        s.contains("unknown key `colour` (ignored)"),
        "the config problem stays on screen:\n{s}"
    );
    assert!(
        s.contains("x freeze"),
        "the status bar shows the bound key:\n{s}"
    );
    // The old key does nothing; the new one asks.
    t.keys(&["f"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!t.screen().contains("Freeze bot-bottle-alpha?"));
    t.keys(&["x"]);
    t.wait(10, "the confirmation", |s| {
        s.contains("Freeze bot-bottle-alpha?")
    });
    t.keys(&["n"]);
    t.wait(5, "the dialog to close", |s| {
        !s.contains("Freeze bot-bottle-alpha?")
    });
    // A two-key sequence opens the history.
    t.keys(&["z", "h"]);
    t.wait(10, "the history view", |s| s.contains("back"));
    t.keys(&["Escape"]);
    // The help lists the bound keys.
    t.keys(&["?"]);
    let s = t.wait(10, "the help", |s| {
        s.contains("freeze the selected machine")
    });
    let line = s
        .lines()
        .find(|l| l.contains("freeze the selected machine"))
        .unwrap();
    assert!(line.contains(" x "), "{line}");
    t.keys(&["Escape", "q"]);
    t.wait(15, "the shell again", |s| s.contains("EXITED:0"));
}

/// The title names smolvm's version and the other parts'; a missing part gets a line
/// under the list pointing at `doctor`.
#[test]
fn the_title_shows_versions_and_a_missing_docker() {
    let Some(t) = Tmux::start(140, 30) else {
        return;
    };
    let sim = Sim::new();
    sim.create("bot-bottle-alpha", "running", None);
    let xdg = tempfile::tempdir().unwrap();
    let _state = open_dashboard(&t, &sim, xdg.path(), "DOCKER_HOST=unix:///nonexistent");
    let s = t.wait(20, "the host line", |s| s.contains("missing on this host"));
    let title = s.lines().find(|l| l.contains(" machines ")).unwrap();
    assert!(
        title.contains("smolvm-sim 0.1.0 (a test double for smolvm 1.32.2) · no Docker · registry"),
        "{title}"
    );
    // (Docker first; a host short of disk space adds `state-dir`.)
    assert!(s.contains("missing on this host: docker"), "{s}");
    assert!(s.contains("`bottle-freeze doctor` says what to do"), "{s}");
    t.keys(&["q"]);
    t.wait(15, "the shell again", |s| s.contains("EXITED:0"));
}

/// Whether a screen captured with its escapes (`capture-pane -e`) sets any colour.
fn has_colour(escaped: &str) -> bool {
    escaped.split("\x1b[").skip(1).any(|rest| {
        let Some(end) = rest.find('m') else {
            return false;
        };
        let params = &rest[..end];
        if !params.chars().all(|c| c.is_ascii_digit() || c == ';') {
            return false;
        }
        params.split(';').any(|p| {
            matches!(p.parse::<u16>(), Ok(n) if (30..=38).contains(&n) || (40..=48).contains(&n) || (90..=107).contains(&n))
        })
    })
}

#[test]
fn no_color_keeps_the_real_dashboard_colourless() {
    let Some(t) = Tmux::start(120, 36) else {
        return;
    };
    let sim = Sim::new();
    sim.create("bot-bottle-alpha", "running", None);
    sim.create("bot-bottle-beta", "stopped", None);
    let xdg = tempfile::tempdir().unwrap();
    // Without NO_COLOR the same screen has colours: the check can fail.
    let _s1 = open_dashboard(&t, &sim, xdg.path(), "BOTTLE_FREEZE_REFRESH=60");
    let coloured = t.run(&["capture-pane", "-e", "-p", "-t", "e2e"]);
    assert!(has_colour(&coloured), "{coloured:?}");
    t.keys(&["q"]);
    t.wait(15, "the shell again", |s| s.contains("EXITED:0"));
    t.type_line("clear");
    std::thread::sleep(Duration::from_millis(300));
    let _s2 = open_dashboard(&t, &sim, xdg.path(), "NO_COLOR=1");
    for keys in [&[][..], &["?"], &["Escape", "h"]] {
        t.keys(keys);
        std::thread::sleep(Duration::from_millis(300));
        let plain = t.run(&["capture-pane", "-e", "-p", "-t", "e2e"]);
        assert!(!has_colour(&plain), "colour under NO_COLOR:\n{plain:?}");
    }
    let s = t.screen();
    assert!(s.contains("back"), "{s}");
    t.keys(&["Escape", "q"]);
    t.wait(15, "the shell again", |s| s.contains("EXITED:0"));
}

#[test]
fn the_dashboard_logs_to_the_file_and_never_to_the_screen() {
    let Some(t) = Tmux::start(120, 36) else {
        return;
    };
    let sim = Sim::new();
    sim.create("bot-bottle-alpha", "running", None);
    let xdg = tempfile::tempdir().unwrap();
    let state = open_dashboard(
        &t,
        &sim,
        xdg.path(),
        "RUST_LOG=trace BOTTLE_FREEZE_REFRESH=0.5",
    );
    // A few refreshes and key presses, all logged at trace.
    for k in ["j", "k", "r", "h", "Escape"] {
        t.keys(&[k]);
    }
    std::thread::sleep(Duration::from_millis(1200));
    let s = t.screen();
    for needle in ["TRACE", "DEBUG", " INFO ", "bottle_freeze::"] {
        assert!(!s.contains(needle), "{needle} on screen:\n{s}");
    }
    t.keys(&["q"]);
    let s = t.wait(15, "the shell again", |s| s.contains("EXITED:0"));
    for needle in ["TRACE", "DEBUG", " INFO "] {
        assert!(!s.contains(needle), "{needle} on screen after quit:\n{s}");
    }
    let mut log = String::new();
    for e in std::fs::read_dir(state.path().join("logs"))
        .unwrap()
        .flatten()
    {
        log.push_str(&std::fs::read_to_string(e.path()).unwrap());
    }
    assert!(log.contains("dashboard starting"), "{log}");
    assert!(log.contains("dashboard closed"), "{log}");
}

#[test]
fn m_gives_the_mouse_back_to_the_terminal_and_takes_it_again() {
    let Some(t) = Tmux::start(120, 36) else {
        return;
    };
    let sim = Sim::new();
    sim.create("bot-bottle-alpha", "running", None);
    let xdg = tempfile::tempdir().unwrap();
    let _state = open_dashboard(&t, &sim, xdg.path(), "");
    let wait_flag = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = t.format("#{mouse_any_flag}#{mouse_standard_flag}");
            if got.chars().any(|c| c == '1') == (want == "on") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mouse flags {got}, wanted {want}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_flag("on");
    t.keys(&["m"]);
    wait_flag("off");
    t.wait(5, "the message", |s| s.contains("mouse off"));
    t.keys(&["m"]);
    wait_flag("on");
    t.keys(&["q"]);
    t.wait(15, "the shell again", |s| s.contains("EXITED:0"));
    assert_eq!(
        t.format("#{mouse_any_flag}#{mouse_standard_flag}"),
        "00",
        "mouse left on after quit"
    );
}

#[test]
fn demo_shows_the_fleet_freezes_the_small_one_shows_the_failure_and_leaves_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    if rt.block_on(common::docker()).is_none() || common::registry_bin().is_none() {
        return;
    }
    let Some(t) = Tmux::start(130, 40) else {
        return;
    };
    // The demo makes its fleet under TMPDIR: a folder of the test's own, to check it is
    // empty afterwards.
    let tmpdir = tempfile::Builder::new()
        .prefix("demo-tmp.")
        .tempdir()
        .unwrap();
    let xdg = tempfile::tempdir().unwrap();
    t.type_line(&format!(
        "env TMPDIR='{}' XDG_CONFIG_HOME='{}' '{}' demo; echo EXITED:$?",
        tmpdir.path().display(),
        xdg.path().display(),
        common::freeze_bin()
    ));
    let s = t.wait(30, "the simulated fleet", |s| {
        [
            "demo-small",
            "demo-large",
            "demo-slow",
            "demo-failing",
            "demo-stopped",
        ]
        .iter()
        .all(|m| s.contains(m))
    });
    assert!(
        s.contains("smolvm: simulated") && s.contains("Docker: real daemon"),
        "the demo says what is simulated:\n{s}"
    );
    assert!(s.contains("stopped"), "{s}");

    pick(&t, "demo-small");
    t.keys(&["f"]);
    t.wait(10, "the confirmation", |s| {
        s.contains("Freeze bot-bottle-demo-small?")
    });
    t.keys(&["y"]);
    t.wait(120, "the artifact", |s| {
        s.contains("committed-smolmachine.smolmachine")
    });
    clear_filter(&t);

    pick(&t, "demo-failing");
    t.keys(&["f"]);
    t.wait(10, "the confirmation", |s| {
        s.contains("Freeze bot-bottle-demo-failing?")
    });
    t.keys(&["y"]);
    let s = t.wait(60, "the failure with its stderr", |s| {
        s.contains("exec-tar failed") && s.contains("tar:")
    });
    assert!(s.contains("status 2"), "{s}");
    clear_filter(&t);

    t.keys(&["q"]);
    t.wait(30, "the shell again", |s| s.contains("EXITED:0"));
    let left: Vec<_> = std::fs::read_dir(tmpdir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "the demo left {left:?}");
    assert!(
        processes_mentioning(&tmpdir.path().to_string_lossy()).is_empty(),
        "a demo process outlived it"
    );
    let images = Command::new("docker")
        .args(["images", "-q", "bot-bottle-committed-demo-small"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&images.stdout).trim().is_empty(),
        "the demo's image was left"
    );
}

#[test]
fn demo_without_docker_says_so_on_screen_and_cleans_up() {
    let Some(t) = Tmux::start(130, 40) else {
        return;
    };
    let tmpdir = tempfile::Builder::new()
        .prefix("demo-tmp.")
        .tempdir()
        .unwrap();
    let xdg = tempfile::tempdir().unwrap();
    t.type_line(&format!(
        "env TMPDIR='{}' XDG_CONFIG_HOME='{}' DOCKER_HOST=unix:///nonexistent/docker.sock '{}' demo; echo EXITED:$?",
        tmpdir.path().display(),
        xdg.path().display(),
        common::freeze_bin()
    ));
    t.wait(30, "the missing daemon named", |s| {
        s.contains("Docker: MISSING") && s.contains("demo-small")
    });
    t.keys(&["q"]);
    t.wait(30, "the shell again", |s| s.contains("EXITED:0"));
    assert_eq!(std::fs::read_dir(tmpdir.path()).unwrap().count(), 0);
}

/// A headless freeze in a terminal rings the bell when it ends (the operator may have
/// looked away); tmux raises the bell flag of the window it ran in.
#[test]
fn headless_freeze_rings_the_bell_in_a_terminal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    if rt.block_on(common::docker()).is_none() || common::registry_bin().is_none() {
        return;
    }
    let Some(t) = Tmux::start(100, 30) else {
        return;
    };
    let sim = Sim::new();
    let root = common::small_root();
    sim.create("bot-bottle-bell", "running", Some(root.path()));
    let state = tempfile::tempdir().unwrap();
    let line = format!(
        "env SMOLVM_SIM_HOME='{}' BOTTLE_FREEZE_SMOLVM='{}' BOTTLE_FREEZE_STATE_DIR='{}' '{}' freeze bell; echo EXITED:$?",
        sim.home().display(),
        common::sim_bin(),
        state.path().display(),
        common::freeze_bin()
    );
    t.run(&["new-window", "-t", "e2e:1", "sh"]);
    t.run(&["send-keys", "-t", "e2e:1", "-l", &line]);
    t.run(&["send-keys", "-t", "e2e:1", "Enter"]);
    t.run(&["select-window", "-t", "e2e:0"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = t.run(&["capture-pane", "-p", "-t", "e2e:1"]);
        // The typed command line holds "EXITED:$?"; the shell's answer starts a line.
        if let Some(l) = s.lines().find(|l| l.starts_with("EXITED:")) {
            assert_eq!(l.trim(), "EXITED:0", "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "the freeze did not end:\n{s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let flag = t.run(&[
        "display-message",
        "-p",
        "-t",
        "e2e:1",
        "#{window_bell_flag}",
    ]);
    assert_eq!(flag.trim(), "1", "no bell from the finished freeze");
    let _ = Command::new("docker")
        .args(["rmi", "-f", "bot-bottle-committed-bell:latest"])
        .output();
}
