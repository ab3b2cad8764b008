//! smolvm-sim: injected faults on the tar stream.

mod sim_support;

use std::time::Duration;

use sim_support::{archive_entries, root_with_noise, run_timed, tar_args, Sim};

fn machine(size: usize) -> (tempfile::TempDir, Sim) {
    let root = root_with_noise(size);
    let sim = Sim::new();
    sim.create("m", root.path());
    (root, sim)
}

#[test]
fn exit_silent_prints_nothing() {
    let (_root, sim) = machine(4096);
    sim.ok(&["sim", "set", "m", "--exit-silent", "2"]);
    for stream in [true, false] {
        let out = sim.exec_tar("m", stream);
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
    }
    // Other commands are unaffected.
    assert_eq!(sim.exec("m", true, &["echo", "x"]).stdout, b"x\n");
}

#[test]
fn exit_after_stream_completes_the_archive_then_warns() {
    let (root, sim) = machine(100_000);
    sim.ok(&["sim", "set", "m", "--exit-after-stream", "1"]);
    let out = sim.exec("m", true, &tar_args());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tar: ./var/log/app.log: file changed as we read it\n"
    );
    let got = archive_entries(&out.stdout).unwrap();
    let want = std::fs::read(root.path().join("data/blob.bin")).unwrap();
    assert_eq!(got["data/blob.bin"].kind, sim_support::Kind::File(want));
}

#[test]
fn stderr_flood_is_interleaved_with_stdout() {
    let (_root, sim) = machine(2 * 1024 * 1024);
    sim.ok(&[
        "sim",
        "set",
        "m",
        "--stderr-flood",
        "256K",
        "--throttle",
        "2M",
    ]);
    let mut cmd = sim.cmd();
    cmd.args(["machine", "exec", "--name", "m", "--stream", "--"])
        .args(tar_args());
    let t = run_timed(cmd);
    assert!(t.status.success());
    assert_eq!(t.err.len(), 256 * 1024);
    assert!(t
        .err
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .all(|l| l.starts_with(b"tar: ")));
    assert!(archive_entries(&t.out).is_ok());
    let first_out = t.out_times[0];
    let last_out = *t.out_times.last().unwrap();
    let first_err = t.err_times[0];
    let last_err = *t.err_times.last().unwrap();
    assert!(first_err < last_out, "stderr only after stdout ended");
    assert!(last_err > first_out, "stderr only before stdout began");
    // Some stderr arrived strictly between stdout chunks.
    assert!(t.err_times.iter().any(|e| *e > first_out && *e < last_out));
}

#[test]
fn stderr_hostile_carries_escapes_and_bad_utf8() {
    let (_root, sim) = machine(10_000);
    sim.ok(&["sim", "set", "m", "--stderr-hostile"]);
    let out = sim.exec("m", true, &tar_args());
    assert!(out.status.success());
    let err = &out.stderr;
    let has = |needle: &[u8]| err.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"\x1b]0;pwned\x07"));
    assert!(has(b"\x1b[2J"));
    assert!(has(b"\x07") && has(b"\x08") && has(b"\r"));
    assert!(
        String::from_utf8(err.clone()).is_err(),
        "stderr should hold invalid UTF-8"
    );
    assert!(err.split(|b| *b == b'\n').any(|l| l.len() > 50_000));
    assert!(archive_entries(&out.stdout).is_ok());
}

#[test]
fn die_after_loses_the_connection() {
    let (_root, sim) = machine(1024 * 1024);
    sim.ok(&["sim", "set", "m", "--die-after", "300K"]);
    let out = sim.exec("m", true, &tar_args());
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(out.stdout.len(), 300 * 1024);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: agent operation failed: streaming exec: connection to VM lost\n"
    );
    // Without --stream the buffered output never arrives.
    let out = sim.exec("m", false, &tar_args());
    assert_eq!(out.status.code(), Some(255));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vm exec: connection to VM lost"));
}

#[test]
fn truncate_cuts_the_archive_before_its_end_blocks() {
    let (root, sim) = machine(200_000);
    let whole = sim.exec("m", true, &tar_args()).stdout;
    sim.ok(&["sim", "set", "m", "--truncate"]);
    let out = sim.exec("m", true, &tar_args());
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());
    assert!(out.stdout.len() < whole.len() / 2 + 1024);
    assert!(out.stdout.len() > whole.len() / 4);
    assert_eq!(
        &whole[..out.stdout.len()],
        &out.stdout[..],
        "a prefix of the real archive"
    );
    assert!(archive_entries(&out.stdout).is_err());

    // When tar writes into the guest, the guest file is cut.
    let out = sim.exec(
        "m",
        true,
        &["tar", "--create", "--file=/a.tar", "--directory=/data", "."],
    );
    assert!(out.status.success());
    let bytes = std::fs::read(root.path().join("a.tar")).unwrap();
    assert!(bytes.len() < 150_000);
    assert!(archive_entries(&bytes).is_err());
}

#[test]
fn hang_after_stops_the_stream_until_timeout() {
    let (_root, sim) = machine(1024 * 1024);
    sim.ok(&["sim", "set", "m", "--hang-after", "128K"]);
    let mut cmd = sim.cmd();
    cmd.args([
        "machine",
        "exec",
        "--name",
        "m",
        "--stream",
        "--timeout",
        "2s",
        "--",
    ])
    .args(tar_args());
    let t = run_timed(cmd);
    assert_eq!(t.status.code(), Some(124));
    assert_eq!(t.out.len(), 128 * 1024);
    let last = t.out_times.last().unwrap().duration_since(t.started);
    assert!(
        last < Duration::from_millis(1500),
        "bytes kept coming until {last:?}"
    );
    assert!(t.started.elapsed() >= Duration::from_secs(2));
}

#[test]
fn throttle_limits_the_rate() {
    let (_root, sim) = machine(600 * 1024);
    sim.ok(&["sim", "set", "m", "--throttle", "512K"]);
    let t = std::time::Instant::now();
    let out = sim.exec("m", true, &tar_args());
    let took = t.elapsed();
    assert!(out.status.success());
    let expect = out.stdout.len() as f64 / (512.0 * 1024.0);
    assert!(
        took.as_secs_f64() >= expect * 0.8,
        "{took:?} for {} bytes",
        out.stdout.len()
    );
    assert!(took.as_secs_f64() < expect + 5.0);
}
