//! smolvm-sim: `machine exec` — the archive, the pipe rule, modes, commands, machines.

mod sim_support;

use std::fs;
use std::os::unix::fs::{chown, symlink};
use std::process::Stdio;
use std::time::Duration;

use sim_support::{archive_entries, noise, put, run_timed, tar_args, tree_entries, Sim};

/// A tree with what a bot-bottle root has: uid-1000 files, hard links, symlinks.
fn rich_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    put(&r.join("etc/hostname"), b"bottle\n");
    put(&r.join("home/node/app/index.js"), b"console.log('hi')\n");
    put(
        &r.join("home/node/notes with spaces.txt"),
        &noise(70_000, 3),
    );
    chown(r.join("home/node"), Some(1000), Some(1000)).unwrap();
    chown(r.join("home/node/app/index.js"), Some(1000), Some(1000)).unwrap();
    fs::hard_link(r.join("etc/hostname"), r.join("etc/hostname.link")).unwrap();
    symlink("/etc/hostname", r.join("home/node/host")).unwrap();
    symlink("../etc", r.join("home/etc-rel")).unwrap();
    fs::create_dir_all(r.join("var/empty")).unwrap();
    fs::create_dir_all(r.join("proc/1")).unwrap();
    put(&r.join("proc/1/status"), b"excluded");
    dir
}

#[test]
fn tar_to_a_pipe_is_an_archive_of_the_root() {
    let root = rich_root();
    let sim = Sim::new();
    sim.create("bot-bottle-a", root.path());
    for stream in [true, false] {
        let out = sim.exec("bot-bottle-a", stream, &tar_args());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = archive_entries(&out.stdout).unwrap();
        let mut want = tree_entries(root.path());
        want.retain(|k, _| k != "proc" && !k.starts_with("proc/"));
        assert_eq!(got, want, "stream={stream}");
        assert_eq!(got["home/node/app/index.js"].uid, 1000);
        assert!(out.stdout[out.stdout.len() - 1024..]
            .iter()
            .all(|b| *b == 0));
    }
}

#[test]
fn stdout_to_a_regular_file_exits_1_silently() {
    let root = rich_root();
    let sim = Sim::new();
    sim.create("m", root.path());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rootfs.tar");
    let out = sim
        .cmd()
        .args(["machine", "exec", "--name", "m", "--stream", "--"])
        .args(tar_args())
        .stdout(fs::File::create(&file).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty());
    assert_eq!(fs::metadata(&file).unwrap().len(), 0);
    // /dev/null is not a regular file: allowed.
    let status = sim
        .cmd()
        .args(["machine", "exec", "--name", "m", "--", "echo", "x"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn unknown_machine_is_an_error() {
    let sim = Sim::new();
    let out = sim.exec("bot-bottle-nope", true, &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: vm not found: bot-bottle-nope\n"
    );
}

#[test]
fn exec_on_a_stopped_machine_is_refused_as_smolvm_1_32_does() {
    let sim = Sim::new();
    for state in ["stopped", "created"] {
        sim.ok(&["sim", "create", state, "--state", state]);
        assert!(sim.machine(state)["pid"].is_null());
        let out = sim.exec(state, false, &["echo", "up"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "Error: agent operation failed: connect: machine '{state}' is not running. \
                 Start it with 'smolvm machine start --name {state}'; if a start is already \
                 in progress, retry once it finishes.\n"
            )
        );
        let m = sim.machine(state);
        assert_eq!(m["state"], state);
        assert!(m["pid"].is_null());
        // `machine start` starts it.
        sim.ok(&["machine", "start", "--name", state]);
        assert_eq!(sim.machine(state)["state"], "running");
        assert!(sim.machine(state)["pid"].is_u64());
    }
    sim.ok(&["sim", "create", "z", "--state", "unreachable"]);
    let out = sim.exec("z", false, &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("Error: agent operation failed: connect:")
    );
    assert_eq!(sim.machine("z")["state"], "unreachable");
}

#[test]
fn old_smolvm_rejects_stream_like_clap() {
    let sim = Sim::new();
    sim.ok(&["sim", "create", "m"]);
    let help = sim.ok(&["machine", "exec", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--stream"));

    sim.ok(&["sim", "config", "--stream-flag", "off"]);
    let out = sim.exec("m", true, &["true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: unexpected argument '--stream' found"),
        "{err}"
    );
    let help = sim.ok(&["machine", "exec", "--help"]);
    assert!(!String::from_utf8_lossy(&help.stdout).contains("--stream"));
    // Without --stream the old smolvm still runs commands.
    assert_eq!(sim.exec("m", false, &["echo", "ok"]).stdout, b"ok\n");

    // The env override wins over the stored setting, both ways.
    let out = sim
        .cmd()
        .env("SMOLVM_SIM_STREAM_FLAG", "on")
        .args([
            "machine", "exec", "--name", "m", "--stream", "--", "echo", "s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"s\n");
    sim.ok(&["sim", "config", "--stream-flag", "on"]);
    let out = sim
        .cmd()
        .env("SMOLVM_SIM_STREAM_FLAG", "off")
        .args(["machine", "exec", "--name", "m", "--stream", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn non_stream_holds_output_until_the_end_and_stream_does_not() {
    let root = sim_support::root_with_noise(512 * 1024);
    let sim = Sim::new();
    sim.create("m", root.path());
    sim.ok(&["sim", "set", "m", "--throttle", "256K"]);
    let mut cmd = sim.cmd();
    cmd.args(["machine", "exec", "--name", "m", "--"])
        .args(tar_args());
    let held = run_timed(cmd);
    assert!(held.status.success());
    let first = held.out_times[0].duration_since(held.started);
    assert!(
        first >= Duration::from_millis(1500),
        "first byte after {first:?}"
    );
    assert!(archive_entries(&held.out).is_ok());

    let mut cmd = sim.cmd();
    cmd.args(["machine", "exec", "--name", "m", "--stream", "--"])
        .args(tar_args());
    let streamed = run_timed(cmd);
    assert!(streamed.status.success());
    let first = streamed.out_times[0].duration_since(streamed.started);
    let last = streamed
        .out_times
        .last()
        .unwrap()
        .duration_since(streamed.started);
    assert!(
        first < Duration::from_millis(1000),
        "first byte after {first:?}"
    );
    assert!(
        last >= Duration::from_millis(1500),
        "throttled stream ended after {last:?}"
    );
    assert_eq!(streamed.out, held.out);
}

#[test]
fn exit_status_is_the_commands() {
    let sim = Sim::new();
    sim.ok(&["sim", "create", "m"]);
    assert_eq!(sim.exec("m", true, &["false"]).status.code(), Some(1));
    assert_eq!(sim.exec("m", true, &["/bin/true"]).status.code(), Some(0));
    let out = sim.exec(
        "m",
        true,
        &["tar", "--create", "--file=-", "--directory=/", "missing"],
    );
    assert_eq!(out.status.code(), Some(2), "GNU tar's fatal status");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing: Cannot stat"), "{err}");
    let out = sim.exec("m", false, &["bash", "-c", "true"]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sh: bash: not found\n"
    );
}

#[test]
fn timeout_kills_the_command() {
    let sim = Sim::new();
    sim.ok(&["sim", "create", "m"]);
    let t = std::time::Instant::now();
    let out = sim.run(&[
        "machine",
        "exec",
        "--name",
        "m",
        "--timeout",
        "500ms",
        "--",
        "sleep",
        "20",
    ]);
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out after 500ms"));
}

#[test]
fn df_rm_cat_work_on_guest_paths() {
    let root = tempfile::tempdir().unwrap();
    put(&root.path().join("tmp/scratch.tar"), b"abc");
    let sim = Sim::new();
    sim.create("m", root.path());

    let out = sim.exec("m", false, &["df", "-Pk", "/tmp"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(line.len(), 6);
    assert_eq!(line[5], "/");
    let real_avail: u64 = line[3].parse().unwrap();
    assert!(real_avail > 0);
    sim.ok(&["sim", "set", "m", "--df-avail-kb", "4096"]);
    let out = sim.exec("m", false, &["df", "-Pk", "/"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().nth(1).unwrap().split_whitespace().nth(3),
        Some("4096")
    );

    assert_eq!(
        sim.exec("m", false, &["cat", "/tmp/scratch.tar"]).stdout,
        b"abc"
    );
    let out = sim.exec("m", false, &["cat", "/tmp/none"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cat: /tmp/none: No such file or directory\n"
    );

    assert!(sim
        .exec("m", false, &["rm", "-f", "/tmp/scratch.tar", "/tmp/none"])
        .status
        .success());
    assert!(!root.path().join("tmp/scratch.tar").exists());
    let out = sim.exec("m", false, &["rm", "/tmp/none"]);
    assert_eq!(out.status.code(), Some(1));
    // `..` cannot leave the root.
    let outside = tempfile::NamedTempFile::new_in(root.path().parent().unwrap()).unwrap();
    let name = outside
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let out = sim.exec("m", false, &["rm", "-f", &format!("/../../{name}")]);
    assert!(out.status.success());
    assert!(outside.path().exists());
}

#[test]
fn tar_can_write_the_archive_inside_the_guest() {
    let root = rich_root();
    fs::create_dir(root.path().join("tmp")).unwrap();
    let sim = Sim::new();
    sim.create("m", root.path());
    let out = sim.exec(
        "m",
        true,
        &[
            "tar",
            "--create",
            "--exclude=./proc",
            "--exclude=./tmp/rootfs.tar",
            "--file=/tmp/rootfs.tar",
            "--directory=/",
            ".",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let bytes = fs::read(root.path().join("tmp/rootfs.tar")).unwrap();
    let got = archive_entries(&bytes).unwrap();
    assert!(got.contains_key("home/node/notes with spaces.txt"));
    assert!(!got.contains_key("tmp/rootfs.tar"));
    // Messages name guest paths, not host ones.
    let out = sim.exec(
        "m",
        true,
        &["tar", "--create", "--file=/no/such/dir/x.tar", "."],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tar: /no/such/dir/x.tar: Cannot open"),
        "{err}"
    );
    assert!(!err.contains(root.path().to_str().unwrap()), "{err}");
}
