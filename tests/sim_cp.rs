//! smolvm-sim: `machine cp`, streamed and capped.

mod sim_support;

use sim_support::{noise, put, Sim};

fn setup() -> (tempfile::TempDir, tempfile::TempDir, Sim) {
    let root = tempfile::tempdir().unwrap();
    put(
        &root.path().join("tmp/rootfs.tar"),
        &noise(3 * 1024 * 1024 + 17, 9),
    );
    let local = tempfile::tempdir().unwrap();
    let sim = Sim::new();
    sim.create("m", root.path());
    (root, local, sim)
}

#[test]
fn download_copies_the_file() {
    let (root, local, sim) = setup();
    let dst = local.path().join("rootfs.tar");
    let out = sim.run(&["machine", "cp", "m:/tmp/rootfs.tar", dst.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&dst).unwrap(),
        std::fs::read(root.path().join("tmp/rootfs.tar")).unwrap()
    );
}

#[test]
fn cap_refuses_and_removes_the_partial_file_and_env_raises_it() {
    let (_root, local, sim) = setup();
    let dst = local.path().join("rootfs.tar");
    let out = sim
        .cmd()
        .env("SMOLVM_FILE_TRANSFER_MAX_BYTES", "1M")
        .args(["machine", "cp", "m:/tmp/rootfs.tar", dst.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        "Error: agent operation failed: read file: guest streamed 3145745 bytes, exceeding the 1048576 byte cap\n"
    );
    assert!(!dst.exists(), "partial download left behind");

    for cap in ["64G", "100M", "3145745"] {
        let out = sim
            .cmd()
            .env("SMOLVM_FILE_TRANSFER_MAX_BYTES", cap)
            .args(["machine", "cp", "m:/tmp/rootfs.tar", dst.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cap {cap}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::metadata(&dst).unwrap().len(), 3_145_745);
    }
}

#[test]
fn missing_file_and_unknown_machine_are_errors() {
    let (_root, local, sim) = setup();
    let dst = local.path().join("x");
    std::fs::write(&dst, b"old").unwrap();
    let out = sim.run(&["machine", "cp", "m:/tmp/none.tar", dst.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("Error: agent operation failed: read file: /tmp/none.tar:"),
        "{err}"
    );
    assert!(!dst.exists());

    let out = sim.run(&[
        "machine",
        "cp",
        "ghost:/tmp/rootfs.tar",
        dst.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: vm not found: ghost\n"
    );
}

#[test]
fn upload_writes_into_the_root_and_stopped_machines_refuse() {
    let (root, local, sim) = setup();
    sim.ok(&["sim", "set", "m", "--state", "stopped"]);
    let src = local.path().join("up.bin");
    std::fs::write(&src, b"payload").unwrap();
    let out = sim.run(&["machine", "cp", src.to_str().unwrap(), "m:/tmp/up.bin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("machine 'm' is not running"));
    assert!(!root.path().join("tmp/up.bin").exists());
    sim.ok(&["machine", "start", "--name", "m"]);
    let out = sim.run(&["machine", "cp", src.to_str().unwrap(), "m:/tmp/up.bin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(root.path().join("tmp/up.bin")).unwrap(),
        b"payload"
    );
    assert_eq!(sim.machine("m")["state"], "running");
}
