//! smolvm-sim: `machine ls` and the `sim` admin commands.

mod sim_support;

use sim_support::Sim;

/// The field set smolvm 1.32.2 prints for a machine that never exited (`last_exit`
/// comes after a failed start); tests/real_smolvm.rs checks it against the real binary.
const FIELDS: &[&str] = &[
    "block_io",
    "branchable",
    "branchpoint_held",
    "cmd",
    "cpus",
    "created_at",
    "cuda",
    "cuda_branch_pool_size",
    "cuda_fork_pool_size",
    "cuda_vram_limit_mib",
    "detached",
    "disk_durability",
    "disks",
    "entrypoint",
    "ephemeral",
    "forkable",
    "forkpoint_held",
    "gpu",
    "gpu_vram_mib",
    "health_cmd",
    "health_interval_secs",
    "health_retries",
    "health_startup_grace_secs",
    "health_timeout_secs",
    "image",
    "labels",
    "memory_mib",
    "mounts",
    "name",
    "network",
    "overlay_gb",
    "parent_machine",
    "pid",
    "ports",
    "restart_count",
    "restart_max_retries",
    "restart_policy",
    "state",
    "state_reason",
    "storage_gb",
];

#[test]
fn empty_home_lists_an_empty_array_and_no_machines_table() {
    let sim = Sim::new();
    let out = sim.ok(&["machine", "ls", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    let out = sim.ok(&["machine", "ls"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "No machines found\n");
}

#[test]
fn json_has_smolvm_fields_and_types() {
    let sim = Sim::new();
    sim.ok(&["sim", "create", "bot-bottle-run", "--label", "owner=bot"]);
    sim.ok(&[
        "sim",
        "create",
        "bot-bottle-off",
        "--state",
        "stopped",
        "--cpus",
        "2",
        "--memory-mib",
        "1024",
        "--image",
        "alpine:3",
    ]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let list = sim.ls_json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for m in list {
        let obj = m.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
        assert!(m["created_at"].as_u64().unwrap() <= before);
        assert!(m["created_at"].as_u64().unwrap() > before - 60);
        assert!(m["mounts"].is_u64() && m["ports"].is_u64());
    }
    let run = sim.machine("bot-bottle-run");
    assert_eq!(run["state"], "running");
    assert!(run["pid"].is_u64(), "running machine has a pid: {run}");
    assert!(run["image"].is_null());
    assert_eq!(run["labels"]["owner"], "bot");
    let off = sim.machine("bot-bottle-off");
    assert_eq!(off["state"], "stopped");
    assert!(off["pid"].is_null());
    assert_eq!(off["cpus"], 2);
    assert_eq!(off["memory_mib"], 1024);
    assert_eq!(off["image"], "alpine:3");
}

#[test]
fn table_has_smolvm_layout() {
    let sim = Sim::new();
    sim.ok(&[
        "sim",
        "create",
        "a-very-long-machine-name-indeed",
        "--state",
        "frozen",
    ]);
    let out = sim.ok(&["machine", "ls"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "NAME                 STATE         CPUS     MEMORY  MOUNTS   PORTS  STORAGE  OVERLAY"
    );
    assert_eq!(lines[1], "-".repeat(88));
    assert_eq!(
        lines[2],
        "a-very-long-mac...   frozen           4   8192 MiB       0       0   20 GiB   10 GiB"
    );
}

#[test]
fn every_state_round_trips() {
    let sim = Sim::new();
    for s in [
        "running",
        "stopped",
        "created",
        "failed",
        "unreachable",
        "frozen",
    ] {
        sim.ok(&["sim", "create", s, "--state", s]);
        assert_eq!(sim.machine(s)["state"], s);
    }
    sim.ok(&["sim", "set", "stopped", "--state", "running"]);
    assert_eq!(sim.machine("stopped")["state"], "running");
    assert!(sim.machine("stopped")["pid"].is_u64());
}

#[test]
fn hostile_names_are_stored_as_given_without_becoming_paths() {
    let sim = Sim::new();
    let names = [
        "../../escape",
        "with space",
        "new\nline",
        "x/y/../z",
        ".",
        "",
    ];
    for n in names {
        sim.ok(&["sim", "create", n]);
    }
    let listed: Vec<String> = sim
        .ls_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    for n in names {
        assert!(
            listed.iter().any(|l| l == n),
            "{n:?} missing from {listed:?}"
        );
    }
    // Nothing was created outside the home.
    let parent = sim.home.path().parent().unwrap();
    assert!(!parent.join("escape").exists());
    for entry in std::fs::read_dir(sim.home.path().join("machines")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let hex = name
            .strip_prefix("m-")
            .and_then(|n| n.strip_suffix(".json"))
            .unwrap();
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    }
    sim.ok(&["sim", "rm", "../../escape"]);
    assert_eq!(sim.ls_json().as_array().unwrap().len(), names.len() - 1);
}

#[test]
fn root_is_registered_in_place_and_kept_on_rm() {
    let sim = Sim::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("marker"), b"x").unwrap();
    sim.create("m", root.path());
    let out = sim.exec("m", true, &["cat", "/marker"]);
    assert_eq!(out.stdout, b"x");
    sim.ok(&["sim", "rm", "m"]);
    assert!(
        root.path().join("marker").exists(),
        "a registered root is not the sim's to delete"
    );
    assert_eq!(sim.ls_json(), serde_json::json!([]));
    // A root the sim made itself goes with the machine.
    sim.ok(&["sim", "create", "own"]);
    let roots: Vec<_> = std::fs::read_dir(sim.home.path().join("roots"))
        .unwrap()
        .collect();
    assert_eq!(roots.len(), 1);
    sim.ok(&["sim", "rm", "own"]);
    assert_eq!(
        std::fs::read_dir(sim.home.path().join("roots"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn admin_errors_are_clear() {
    let sim = Sim::new();
    sim.ok(&["sim", "create", "dup"]);
    let out = sim.run(&["sim", "create", "dup"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("smolvm-sim: error: machine \"dup\" already exists"));
    let out = sim.run(&["sim", "set", "ghost", "--truncate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no machine named \"ghost\""));
    let out = sim.run(&["sim", "create", "r", "--root", "/nonexistent/dir"]);
    assert_eq!(out.status.code(), Some(1));
    let out = sim.run(&["sim", "set", "dup", "--die-after", "12Q"]);
    assert_eq!(out.status.code(), Some(2), "clap rejects a bad size");
}

#[test]
fn home_is_required() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smolvm-sim"))
        .args(["machine", "ls", "--json"])
        .env_remove("SMOLVM_SIM_HOME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("smolvm-sim: error: SMOLVM_SIM_HOME is not set"),
        "{err}"
    );
}

#[test]
fn help_says_it_is_a_test_double() {
    let sim = Sim::new();
    for flag in ["-h", "--help"] {
        let out = sim.ok(&[flag]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("TEST DOUBLE"));
    }
}

#[test]
fn set_and_clear_behaviours_are_recorded() {
    let sim = Sim::new();
    sim.ok(&["sim", "create", "m"]);
    sim.ok(&[
        "sim",
        "set",
        "m",
        "--die-after",
        "1M",
        "--throttle",
        "64K",
        "--stderr-hostile",
        "--truncate",
        "--exit-silent",
        "3",
        "--synthetic-size",
        "2G",
    ]);
    let record = std::fs::read_dir(sim.home.path().join("machines"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(rec["sim"]["die_after"], 1_048_576);
    assert_eq!(rec["sim"]["throttle"], 65_536);
    assert_eq!(rec["sim"]["synthetic_size"], 2_147_483_648u64);
    assert_eq!(rec["sim"]["exit_silent"], 3);
    assert_eq!(rec["sim"]["stderr_hostile"], true);
    assert_eq!(rec["name"], "m");
    sim.ok(&["sim", "clear", "m"]);
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert!(rec["sim"]["die_after"].is_null());
    assert_eq!(rec["sim"]["truncate"], false);
}

#[test]
fn ls_faults_hang_and_fail() {
    let sim = Sim::new();
    sim.ok(&["sim", "config", "--ls-fail", "database is locked"]);
    let out = sim.run(&["machine", "ls", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: database is locked\n"
    );
    // As smolvm 1.32 does with --error-format json; in an older one clap refuses the flag.
    let out = sim.run(&["--error-format", "json", "machine", "ls", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "{\"error\":{\"code\":\"SMOLVM_ERROR\",\"message\":\"database is locked\"}}\n"
    );
    let out = sim.run(&["machine", "ls", "--json", "--error-format", "json"]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("{\"error\""));
    sim.ok(&["sim", "config", "--error-format-flag", "off"]);
    let out = sim.run(&["--error-format", "json", "machine", "ls", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("error: unexpected argument '--error-format' found"));
    sim.ok(&["sim", "config", "--error-format-flag", "on"]);
    assert!(out.stdout.is_empty());
    sim.ok(&["sim", "config", "--ls-fail", "", "--ls-hang-secs", "1"]);
    let t = std::time::Instant::now();
    let out = sim.ok(&["machine", "ls", "--json"]);
    assert!(t.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(out.stdout, b"[]\n");
    let shown = sim.ok(&["sim", "config"]);
    let cfg: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(cfg["ls_hang_secs"], 1);
    assert!(cfg["ls_fail"].is_null());
    assert_eq!(cfg["exec_cap"], true);
    assert_eq!(cfg["stream_flag"], true);
}
