//! smolvm-sim: the 11 MiB exec output cap of smolvm ≥ 2026-07.

mod sim_support;

use sim_support::{archive_entries, root_with_noise, tar_args, Sim, CAP, CAP_ERROR};

/// A root whose archive is larger than the cap (13 MiB of noise).
fn big() -> (tempfile::TempDir, Sim) {
    let root = root_with_noise(13 * 1024 * 1024);
    let sim = Sim::new();
    sim.create("big", root.path());
    (root, sim)
}

#[test]
fn cap_truncates_and_fails_in_both_modes() {
    let (_root, sim) = big();
    for stream in [true, false] {
        let out = sim.exec("big", stream, &tar_args());
        assert_eq!(out.status.code(), Some(1), "stream={stream}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end(), CAP_ERROR, "stream={stream}");
        let relayed = out.stdout.len();
        // smolvm relays at most one frame past the cap.
        assert!(relayed >= CAP, "only {relayed} bytes relayed");
        assert!(relayed <= CAP + 64 * 1024, "{relayed} bytes relayed");
        assert!(
            archive_entries(&out.stdout).is_err(),
            "a truncated archive must not read as complete"
        );
    }
}

#[test]
fn cap_off_streams_everything() {
    let (root, sim) = big();
    sim.ok(&["sim", "config", "--exec-cap", "off"]);
    let out = sim.exec("big", true, &tar_args());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    assert!(out.stdout.len() > 13 * 1024 * 1024);
    let got = archive_entries(&out.stdout).unwrap();
    let want = std::fs::read(root.path().join("data/blob.bin")).unwrap();
    assert_eq!(got["data/blob.bin"].kind, sim_support::Kind::File(want));

    // The env switch overrides the stored setting.
    let out = sim
        .cmd()
        .env("SMOLVM_SIM_EXEC_CAP", "on")
        .args(["machine", "exec", "--name", "big", "--stream", "--"])
        .args(tar_args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), CAP_ERROR);
}

#[test]
fn stderr_counts_toward_the_cap() {
    let root = root_with_noise(6 * 1024 * 1024);
    let sim = Sim::new();
    sim.create("m", root.path());
    sim.ok(&["sim", "set", "m", "--stderr-flood", "8M"]);
    let out = sim.exec("m", true, &tar_args());
    assert_eq!(out.status.code(), Some(1));
    let total = out.stdout.len() + out.stderr.len() - CAP_ERROR.len() - 1;
    assert!((CAP..=CAP + 64 * 1024).contains(&total), "{total}");
    assert!(String::from_utf8_lossy(&out.stderr).ends_with(&format!("{CAP_ERROR}\n")));
}
