//! `bottle-freeze demo`: a throw-away fleet of simulated bot-bottle machines, the
//! dashboard on them, and nothing left afterwards.
//!
//! smolvm is simulated by this very binary, started through a link named `smolvm-sim`
//! (the simulator is compiled into `bottle-freeze`; see `src/main.rs`). Docker and the
//! registry are the real ones when they are there; the dashboard says which parts are
//! simulated and which are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The demo machines: slug and what each shows.
pub const MACHINES: [(&str, &str); 5] = [
    ("demo-small", "a small root: freezes in seconds"),
    (
        "demo-large",
        "24 MiB: past smolvm's 11 MiB exec cap, so the guest-file transport",
    ),
    (
        "demo-slow",
        "a slow stream (64 KiB/s): watch the rate, cancel with c",
    ),
    (
        "demo-failing",
        "tar fails after streaming: stderr and exit status 2",
    ),
    ("demo-stopped", "stopped: listed, dimmed, not freezable"),
];

/// A fleet that exists while this value lives: its folder (sim home, roots, state,
/// temp) is removed on drop.
pub struct Fleet {
    pub dir: TempDir,
    pub sim: PathBuf,
}

impl Fleet {
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("sim-home")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }
}

/// The name under which this binary is the simulator (see `src/main.rs`).
pub const SIM_NAME: &str = "smolvm-sim";

/// Whether `arg0` (the program name this process was started as) names the simulator.
pub fn invoked_as_sim(arg0: Option<&std::ffi::OsStr>) -> bool {
    arg0.map(Path::new)
        .and_then(Path::file_name)
        .is_some_and(|n| n == SIM_NAME)
}

/// A link named `smolvm-sim` to the running binary in `dir`: `bottle-freeze` started
/// through it is the simulator, so the demo needs nothing beside the binary (`cargo run`
/// builds only this one).
fn link_sim(dir: &Path) -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the running binary to simulate smolvm with: {e}"))?;
    let link = dir.join(SIM_NAME);
    std::os::unix::fs::symlink(&exe, &link)
        .map_err(|e| format!("cannot link {} to {}: {e}", link.display(), exe.display()))?;
    Ok(link)
}

fn sim(fleet_sim: &Path, home: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(fleet_sim)
        .env("SMOLVM_SIM_HOME", home)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", fleet_sim.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "smolvm-sim {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `len` bytes that do not compress (so the archive really is that large).
fn noise(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A root with what a bot-bottle workspace has at least: /etc/passwd with `node`, a
/// home, /tmp (the guest-file transport's scratch), and `payload` bytes of data.
fn make_root(dir: &Path, payload: usize) -> std::io::Result<()> {
    for d in ["etc", "tmp", "home/node/project"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
    )?;
    std::fs::write(
        dir.join("home/node/project/README.md"),
        "A simulated bot-bottle workspace made by `bottle-freeze demo`.\n",
    )?;
    if payload > 0 {
        std::fs::write(dir.join("home/node/project/data.bin"), noise(payload))?;
    }
    Ok(())
}

/// Points the settings at the fleet: its smolvm-sim, state and temp folders and the
/// default prefix, whatever the configuration said. Every other setting stays.
pub fn point_at(fleet: &Fleet, settings: &mut crate::config::Settings) {
    settings.smolvm = fleet.sim.clone();
    settings.state_dir = fleet.state_dir();
    settings.tmp_dir = fleet.tmp_dir();
    settings.prefix = crate::names::DEFAULT_PREFIX.to_string();
}

/// The dashboard's configuration for the demo: the settings (already pointed at the
/// fleet) and a line saying which parts are real.
pub async fn ui_config(settings: &crate::config::Settings) -> crate::ui::UiConfig {
    let docker = crate::docker::connect()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    let registry =
        crate::registry::find_binary(settings.registry_bin.as_deref()).map_err(|e| e.to_string());
    let mut ui = crate::ui::UiConfig::from_settings(settings);
    ui.notice = Some(parts_line(docker, registry));
    // A newcomer's first f, y should succeed: the small one first; each says what it shows.
    let name = |slug: &str| format!("{}{slug}", crate::names::DEFAULT_PREFIX);
    ui.select_first = Some(name("demo-small"));
    ui.purposes = MACHINES
        .iter()
        .map(|(slug, what)| (name(slug), (*what).to_string()))
        .collect();
    ui
}

/// The demo front end: the dashboard on the fleet, then the demo's images removed.
pub async fn run(settings: &crate::config::Settings) -> color_eyre::Result<()> {
    let result = crate::ui::run(ui_config(settings).await).await;
    remove_images().await;
    result
}

/// Makes the fleet in a private temp folder (under `TMPDIR`).
pub fn create() -> Result<Fleet, String> {
    let dir = tempfile::Builder::new()
        .prefix("bottle-freeze-demo.")
        .tempdir()
        .map_err(|e| format!("cannot make the demo folder: {e}"))?;
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let sim_bin = link_sim(&bin)?;
    let fleet = Fleet { dir, sim: sim_bin };
    for d in [fleet.home(), fleet.state_dir(), fleet.tmp_dir()] {
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let io = |e: std::io::Error| format!("cannot write a demo root: {e}");
    let home = fleet.home();
    let s = |args: &[&str]| sim(&fleet.sim, &home, args);
    for (slug, _) in MACHINES {
        let name = format!("{}{slug}", crate::names::DEFAULT_PREFIX);
        let root = fleet.dir.path().join("roots").join(slug);
        let payload = match slug {
            "demo-large" => 24 << 20,
            "demo-slow" => 2 << 20,
            _ => 64 << 10,
        };
        make_root(&root, payload).map_err(io)?;
        let state = if slug == "demo-stopped" {
            "stopped"
        } else {
            "running"
        };
        let root_s = root.to_string_lossy().into_owned();
        s(&[
            "sim",
            "create",
            &name,
            "--state",
            state,
            "--root",
            &root_s,
            "--cpus",
            "2",
            "--memory-mib",
            "2048",
            "--image",
            "bot-bottle:demo",
        ])?;
        match slug {
            "demo-slow" => s(&["sim", "set", &name, "--throttle", "64K"])?,
            "demo-failing" => s(&["sim", "set", &name, "--exit-after-stream", "2"])?,
            _ => {}
        }
    }
    Ok(fleet)
}

/// One line for the dashboard: what is simulated, what is real, what is missing.
pub fn parts_line(docker: Result<(), String>, registry: Result<PathBuf, String>) -> String {
    let mut parts = vec!["DEMO · smolvm: simulated (smolvm-sim)".to_string()];
    parts.push(match docker {
        Ok(()) => "Docker: real daemon".into(),
        Err(_) => "Docker: MISSING (artifacts are made; images are not loaded into Docker)".into(),
    });
    parts.push(match registry {
        Ok(p) => format!(
            "registry: real ({})",
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        Err(_) => "registry: MISSING (not needed: smolvm-sim packs archives)".into(),
    });
    parts.push("q removes it all".into());
    parts.join(" · ")
}

/// Removes the images the demo's freezes built (the only thing outside the folder).
pub async fn remove_images() {
    let Ok(docker) = crate::docker::connect().await else {
        return;
    };
    for (slug, _) in MACHINES {
        let image = format!("bot-bottle-committed-{slug}:latest");
        let opts = bollard::query_parameters::RemoveImageOptionsBuilder::default()
            .force(true)
            .build();
        if docker.remove_image(&image, Some(opts), None).await.is_ok() {
            tracing::info!("demo: removed {image}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulator_is_recognised_by_its_program_name_alone() {
        use std::ffi::OsStr;
        assert!(invoked_as_sim(Some(OsStr::new("smolvm-sim"))));
        assert!(invoked_as_sim(Some(OsStr::new(
            "/tmp/demo.x/bin/smolvm-sim"
        ))));
        assert!(!invoked_as_sim(Some(OsStr::new("bottle-freeze"))));
        assert!(!invoked_as_sim(Some(OsStr::new(
            "/opt/smolvm-sim/bottle-freeze"
        ))));
        assert!(!invoked_as_sim(Some(OsStr::new("smolvm-sim-2"))));
        assert!(!invoked_as_sim(None));
    }

    #[test]
    fn the_parts_line_says_what_is_simulated_and_what_is_missing() {
        let all = parts_line(Ok(()), Ok(PathBuf::from("/usr/bin/docker-registry")));
        assert_eq!(
            all,
            "DEMO · smolvm: simulated (smolvm-sim) · Docker: real daemon · registry: real (docker-registry) · q removes it all"
        );
        let none = parts_line(Err("no".into()), Err("no".into()));
        assert!(none.contains("Docker: MISSING") && none.contains("registry: MISSING"));
    }
}
