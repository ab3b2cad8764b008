//! Hardening (issue 12): privacy of the guest's data, trust in what is on disk, bounded
//! output, broken pipes, names Docker cannot tag. Real processes and files, the real
//! registry and Docker daemon where a freeze needs them, smolvm-sim for the VM.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{json_events, World};

fn ready() -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::docker()).is_some()
        && common::registry_bin().is_some()
        && common::busybox().is_some()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Whether the unprivileged uid 65534 (nobody) can read `path`, tried for real.
fn nobody_can_read(path: &Path) -> bool {
    assert!(path.exists(), "{} does not exist", path.display());
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(path)
        .stdout(Stdio::null())
        .output()
        .expect("setpriv (util-linux) runs");
    out.status.success()
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

fn with_umask_022(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        })
    }
}

// Item 1: a kept archive after a failed build, and an artifact after a success, cannot be
// read by another local user, whatever the umask the operator runs with.
#[test]
fn guest_data_is_private_to_the_operator() {
    if !ready() {
        return;
    }
    let w = World::new();
    // The world's folders are as open as a default umask makes them.
    std::fs::set_permissions(w.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(w.state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-priv", "running", Some(root.path()));

    let out = with_umask_022(&mut w.cmd(&[
        "freeze",
        "priv",
        "--json",
        "--builder",
        "docker",
        "--workdir",
        "/etc/passwd",
    ]))
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    let id = events[0]["id"].as_str().unwrap().to_string();
    let kept = &w.record(&id)["record"]["kept"];
    let archive = PathBuf::from(kept["archive"].as_str().expect("the archive is kept"));
    let temp = PathBuf::from(kept["temp_dir"].as_str().unwrap());
    assert_eq!(mode(&temp), 0o700, "kept temp folder");
    assert!(
        !nobody_can_read(&archive),
        "another user read the kept archive"
    );

    // Resume to success: the artifact and its folder are private too.
    let out = with_umask_022(&mut w.cmd(&["freeze", "--resume", &id, "--json"]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = json_events(&out.stdout)
        .into_iter()
        .find(|e| e["event"] == "done")
        .expect("a done event");
    let sidecar = PathBuf::from(done["artifact"]["sidecar"].as_str().unwrap());
    assert_eq!(
        mode(&w.state.path().join("priv")),
        0o700,
        "the machine's folder"
    );
    assert!(!nobody_can_read(&sidecar), "another user read the artifact");
    for f in files_under(&w.state.path().join("history")) {
        assert!(!nobody_can_read(&f), "another user read {}", f.display());
    }
    let _ = Command::new("docker")
        .args(["rmi", "-f", "bot-bottle-committed-priv:latest"])
        .output();
}

// Item 1: the registry's blob files (the image's layers) are private even when it is
// started in a folder others can enter, under a umask that would make them 0644.
#[test]
fn registry_blobs_are_private() {
    let Some(bin) = common::registry_bin() else {
        return;
    };
    use sha2::Digest as _;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reg = rt
        .block_on(bottle_freeze::registry::SpawnedRegistry::start(
            &bin,
            dir.path(),
            None,
        ))
        .unwrap();
    let blob = b"the guest's secret layer".to_vec();
    let hex: String = sha2::Sha256::digest(&blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let digest = format!("sha256:{hex}");
    let start = ureq::post(&format!("http://{}/v2/priv/blobs/uploads/", reg.addr()))
        .send_empty()
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let location = if location.starts_with("http") {
        location
    } else {
        format!("http://{}{location}", reg.addr())
    };
    let done = ureq::put(&format!("{location}{sep}digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .send(&blob[..])
        .unwrap();
    assert_eq!(done.status(), 201);
    let storage = dir.path().join("registry-storage");
    assert_eq!(mode(&storage), 0o700);
    let files = files_under(&storage);
    let data = files
        .iter()
        .find(|f| f.ends_with("data") && std::fs::read(f).unwrap() == blob)
        .expect("the blob's data file");
    assert_eq!(mode(data) & 0o077, 0, "blob mode {:o}", mode(data));
    assert!(!nobody_can_read(data), "another user read a blob");
    rt.block_on(reg.stop());
}

/// A record of a run that "was killed": outcome running, nobody holding its lock.
fn abandoned_record(
    state: &Path,
    id: &str,
    temp: &Path,
    pid: u32,
    stamp: Option<bottle_freeze::proc_stamp::ProcessStamp>,
) {
    use bottle_freeze::history::{History, Kind, Record};
    let mut rec = Record::new(id, Kind::Freeze, "bot-bottle-rec", "rec");
    rec.temp_dir = Some(temp.to_path_buf());
    rec.registry_pid = Some(pid);
    rec.registry_stamp = stamp;
    History::new(state).save(&rec).unwrap();
}

/// `sh -c 'sleep 300' ARG0`: a process whose command line holds `arg0`, in a group of its
/// own so that [`stop`] takes its `sleep` too.
fn sleeper(arg0: &Path) -> std::process::Child {
    use std::os::unix::process::CommandExt as _;
    Command::new("sh")
        .args(["-c", "sleep 300"])
        .arg(arg0)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop(mut child: std::process::Child) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
}

fn alive(child: &mut std::process::Child) -> bool {
    // Give a kill, if one was sent, time to land; a dead child is reaped here.
    std::thread::sleep(std::time::Duration::from_millis(100));
    child.try_wait().unwrap().is_none()
}

fn recover(w: &World) -> String {
    let out = w.run(&["history"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// Item 3: a record whose registry_pid names an unrelated process whose command line
// contains the record's temp_dir (/tmp) must not get it killed.
#[test]
fn recovery_never_kills_an_unrelated_process() {
    let w = World::new();
    let mut victim = sleeper(Path::new("/tmp"));
    abandoned_record(
        w.state.path(),
        "rec-unrelated",
        Path::new("/tmp"),
        victim.id(),
        None,
    );
    let said = recover(&w);
    assert!(
        alive(&mut victim),
        "recovery killed an unrelated process; it said: {said}"
    );
    assert!(said.contains("left pid"), "{said}");
    let rec = w.record("rec-unrelated");
    assert_eq!(rec["record"]["outcome"], "interrupted");
    stop(victim);
}

// Item 3: even a process naming a real temp folder of ours is spared when its start time
// is not the one recorded (the pid was reused); with the right proof it is stopped.
#[test]
fn recovery_kills_only_the_process_it_can_prove_it_started() {
    use bottle_freeze::proc_stamp::ProcessStamp;
    let w = World::new();
    let temp = bottle_freeze::private::temp_dir(w.tmp.path(), "bot-bottle-vm-commit.").unwrap();
    let config = temp.join("registry-0.yml");
    let mut reused = sleeper(&config);
    let mut stale = ProcessStamp::of(reused.id()).unwrap();
    stale.start_ticks -= 1;
    abandoned_record(
        w.state.path(),
        "rec-reused",
        &temp,
        reused.id(),
        Some(stale),
    );
    let said = recover(&w);
    assert!(alive(&mut reused), "a reused pid was killed: {said}");

    let temp = bottle_freeze::private::temp_dir(w.tmp.path(), "bot-bottle-vm-commit.").unwrap();
    let config2 = temp.join("registry-0.yml");
    let mut ours = sleeper(&config2);
    let stamp = ProcessStamp::of(ours.id());
    abandoned_record(w.state.path(), "rec-ours", &temp, ours.id(), stamp);
    let said = recover(&w);
    assert!(
        !alive(&mut ours),
        "our own registry was left running: {said}"
    );
    assert!(said.contains("stopped its registry"), "{said}");
    assert!(!temp.exists());
    stop(reused);
    stop(ours);
}

// Item 11: a record whose id differs from its folder is damaged: it never overwrites the
// record it names, and `history` says it is there.
#[test]
fn a_record_with_a_foreign_id_overwrites_nothing_and_is_listed_as_damaged() {
    use bottle_freeze::history::{History, Kind, Outcome, Record};
    let w = World::new();
    let h = History::new(w.state.path());
    let mut good = Record::new("run-b", Kind::Freeze, "bot-bottle-b", "b");
    good.outcome = Outcome::Succeeded;
    h.save(&good).unwrap();
    let forged = Record::new("run-b", Kind::Freeze, "bot-bottle-a", "a");
    std::fs::create_dir_all(h.root().join("run-a")).unwrap();
    std::fs::write(
        h.root().join("run-a/record.json"),
        serde_json::to_vec(&forged).unwrap(),
    )
    .unwrap();
    let said = recover(&w);
    let b = h.load("run-b").unwrap();
    assert_eq!(b.outcome, Outcome::Succeeded, "run-b was overwritten");
    assert_eq!(b.machine, "bot-bottle-b");
    assert!(
        said.contains("damaged record") && said.contains("run-a"),
        "no notice: {said}"
    );
}

/// `bottle-freeze ARGS` with `machine ls` misbehaving as `fault` says.
fn with_ls_fault(w: &World, fault: &str, args: &[&str]) -> std::process::Output {
    w.cmd(args)
        .env("SMOLVM_SIM_LS_FAULT", fault)
        .output()
        .unwrap()
}

// Item 14: `machine ls` floods 256 MiB on stderr and fails: the error is bounded, keeps
// both ends, and the failed freeze's record stays small.
#[test]
fn a_flood_from_machine_ls_is_bounded_in_errors_and_records() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-flood", "running", Some(root.path()));
    let flood = format!("stderr-flood={}", 256u64 << 20);
    let out = with_ls_fault(&w, &flood, &["list", "--query-timeout", "120"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.len() < 256 << 10,
        "list printed {} bytes",
        out.stderr.len()
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("dropped"), "{}", &text[..text.len().min(500)]);
    assert!(text.contains("blob-00000000"), "the start is kept");

    let out = with_ls_fault(
        &w,
        &flood,
        &["freeze", "flood", "--json", "--query-timeout", "120"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.len() < 512 << 10,
        "{} bytes of events",
        out.stdout.len()
    );
    let id = json_events(&out.stdout)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let record = w.state.path().join("history").join(&id).join("record.json");
    let size = std::fs::metadata(&record).unwrap().len();
    assert!(size < 512 << 10, "record.json is {size} bytes");
    let out = w.run(&["history"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
}

// Item 14: an `ls` answer over 64 MiB is refused with a clear error.
#[test]
fn an_ls_answer_over_64_mib_is_refused() {
    let w = World::new();
    let out = with_ls_fault(
        &w,
        &format!("stdout-flood={}", 80u64 << 20),
        &["list", "--json", "--query-timeout", "120"],
    );
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("more than 64.0 MiB"), "{text}");
    assert!(out.stderr.len() < 4096, "{} bytes", out.stderr.len());
}

// Item 17: a name listed twice is reported as ambiguous and never frozen.
#[test]
fn a_machine_listed_twice_is_ambiguous_and_refused() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-twice", "running", Some(root.path()));
    let out = with_ls_fault(&w, "duplicate", &["list", "--json", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let twice: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "bot-bottle-twice")
        .collect();
    assert_eq!(twice.len(), 2);
    for m in twice {
        assert_eq!(m["freezable"], false);
        assert!(m["refusal"].as_str().unwrap().contains("ambiguous"), "{m}");
    }
    // Refused as bad input before any run: exit 2, no events, no record.
    let out = with_ls_fault(&w, "duplicate", &["freeze", "twice", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("2 machines named bot-bottle-twice"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// Item 18: smolvm exits 0 but a process it started holds its stdout: that is not "did
// not answer"; the answer it printed is used.
#[test]
fn a_query_whose_output_is_held_open_after_exit_is_not_a_timeout() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-linger", "running", Some(root.path()));
    let out = with_ls_fault(&w, "linger=37", &["list", "--json", "--query-timeout", "5"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("did not answer"), "{err}");
    assert!(out.status.success(), "{err}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "bot-bottle-linger");
    // The lingering child was stopped with the query.
    assert!(common::processes_running("sleep 37").is_empty());
}

// Item 16: slugs Docker cannot tag are listed as not freezable, with the reason, and a
// freeze of one is refused before anything streams.
#[test]
fn slugs_docker_cannot_tag_are_not_freezable() {
    let w = World::new();
    let root = common::small_root();
    for name in [
        "bot-bottle-rt-",
        "bot-bottle-rt.",
        "bot-bottle-rt___x",
        "bot-bottle-rt._x",
    ] {
        w.sim.create(name, "running", Some(root.path()));
    }
    let out = w.run(&["list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);
    for m in list.as_array().unwrap() {
        assert_eq!(m["freezable"], false, "{m}");
        assert!(
            m["refusal"].as_str().unwrap().contains("Docker image name"),
            "{m}"
        );
    }
    let out = w.run(&["freeze", "rt-", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Docker image name"));
}

/// A real pipe whose reader has already gone, as `| head -1` leaves it once head exits.
fn closed_pipe() -> Stdio {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    Stdio::from(w)
}

/// Runs with stdout (and, when `both`, stderr) a closed pipe; returns the status and
/// what reached stderr otherwise.
fn run_into_closed_pipe(mut cmd: Command, both: bool) -> (std::process::ExitStatus, String) {
    cmd.stdout(closed_pipe());
    if both {
        cmd.stderr(closed_pipe());
    } else {
        cmd.stderr(Stdio::piped());
    }
    let out = cmd.output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// Item 15: the listing commands exit quietly when their reader is gone.
#[test]
fn listing_commands_exit_quietly_on_a_closed_pipe() {
    use bottle_freeze::history::{History, Kind, Outcome, Record};
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-pipe", "running", Some(root.path()));
    let h = History::new(w.state.path());
    let mut rec = Record::new("rec-pipe", Kind::Freeze, "bot-bottle-pipe", "pipe");
    rec.outcome = Outcome::Failed;
    h.save(&rec).unwrap();
    std::fs::write(
        h.log_path("rec-pipe", bottle_freeze::freeze::Stage::ExecTar)
            .unwrap(),
        "x\n".repeat(100_000),
    )
    .unwrap();
    for args in [
        &["history"][..],
        &["history", "--json"],
        &["history", "show", "rec-pipe"],
        &["history", "show", "rec-pipe", "--json"],
        &["list"],
        &["list", "--json"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["config"],
        &["config", "--default"],
        &["man"],
    ] {
        let (status, err) = run_into_closed_pipe(w.cmd(args), false);
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

// Item 15: a closed stdout (and stderr) never aborts a freeze: it finishes, writes its
// artifact, and its record is not left `running`.
#[test]
fn a_closed_pipe_never_aborts_a_freeze() {
    if !ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-head", "running", Some(root.path()));
    for (args, both) in [
        (&["freeze", "head", "--json"][..], false),
        (&["freeze", "head", "-v"][..], true),
    ] {
        let (status, err) = run_into_closed_pipe(w.cmd(args), both);
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        let records = bottle_freeze::history::History::new(w.state.path())
            .list()
            .unwrap();
        let last = &records[0];
        assert_eq!(
            last.outcome,
            bottle_freeze::history::Outcome::Succeeded,
            "{args:?}: {err}"
        );
        assert!(last.artifact.as_ref().unwrap().sidecar.exists());
    }
    w.assert_clean(root.path());
    let _ = Command::new("docker")
        .args(["rmi", "-f", "bot-bottle-committed-head:latest"])
        .output();
}

// Item 18: `DOCKER_HOST=""` is unset, as the docker CLI takes it.
#[test]
fn an_empty_docker_host_means_the_local_socket() {
    if !ready() {
        return;
    }
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-dh", "running", Some(root.path()));
    let out = w
        .cmd(&["freeze", "dh", "--json"])
        .env("DOCKER_HOST", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = Command::new("docker")
        .args(["rmi", "-f", "bot-bottle-committed-dh:latest"])
        .output();
}

// Item 18: one message says the exit status once.
#[test]
fn an_incomplete_archive_names_its_exit_status_once() {
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-cut", "running", Some(root.path()));
    w.sim.ok(&["sim", "set", "bot-bottle-cut", "--truncate"]);
    let out_file = w.state.path().join("cut.tar");
    let out = w.run(&["export", "cut", "-o", out_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("incomplete archive"))
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(line.matches("exit status").count(), 1, "{line}");
}

// Item 18: a resume that cannot start is bad input (exit 2), not a failed build.
#[test]
fn resume_refusals_are_bad_input_not_stage_failures() {
    use bottle_freeze::history::{History, Kind, Outcome, Record};
    let w = World::new();
    let mut rec = Record::new("rec-nothing-kept", Kind::Freeze, "bot-bottle-r", "r");
    rec.outcome = Outcome::Failed;
    History::new(w.state.path()).save(&rec).unwrap();
    for id in ["no-such-run", "rec-nothing-kept"] {
        for json in [false, true] {
            let mut args = vec!["freeze", "--resume", id];
            if json {
                args.push("--json");
            }
            let out = w.run(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(!err.contains("build failed"), "{args:?}: {err}");
            assert!(err.contains("cannot resume"), "{args:?}: {err}");
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains("\"failed\""),
                "{args:?}"
            );
        }
    }
}

/// A root holding well-known credential files beside ordinary ones.
fn root_with_credentials() -> tempfile::TempDir {
    let root = common::small_root();
    let r = root.path();
    for (path, text) in [
        (
            "home/node/.ssh/id_ed25519",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        ),
        ("home/node/.ssh/id_ed25519.pub", "ssh-ed25519 AAAA\n"),
        (
            "home/node/.aws/credentials",
            "[default]\naws_secret_access_key=x\n",
        ),
        ("home/node/project/.env", "TOKEN=x\n"),
        ("home/node/project/README", "nothing secret\n"),
    ] {
        std::fs::create_dir_all(r.join(path).parent().unwrap()).unwrap();
        std::fs::write(r.join(path), text).unwrap();
    }
    root
}

fn archive_names(path: &Path) -> Vec<String> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

// Item 5: credential files are found by name, listed in the record and warned about, on
// both transports; --fail-on-secrets refuses; --exclude leaves them out.
#[test]
fn credential_files_are_listed_refused_on_request_and_excludable() {
    let w = World::new();
    let root = root_with_credentials();
    w.sim
        .create("bot-bottle-cred", "running", Some(root.path()));
    for transport in ["pipe", "guest-file"] {
        let out_file = w.state.path().join(format!("cred-{transport}.tar"));
        let out = w.run(&[
            "export",
            "cred",
            "--json",
            "--transport",
            transport,
            "-o",
            out_file.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events = json_events(&out.stdout);
        let finished = events
            .iter()
            .find(|e| e["event"] == "stage-finished")
            .unwrap();
        let warning = finished["warnings"].to_string();
        assert!(
            warning.contains("3 files named like credentials"),
            "{warning}"
        );
        assert!(
            warning.contains("/home/node/.ssh/id_ed25519 (SSH private key)"),
            "{warning}"
        );
        let id = events[0]["id"].as_str().unwrap();
        let listed = &w.record(id)["record"]["credentials"]["listed"];
        let mut paths: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["path"].as_str().unwrap())
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "/home/node/.aws/credentials",
                "/home/node/.ssh/id_ed25519",
                "/home/node/project/.env"
            ]
        );
        let shown = w.run(&["history", "show", id]).stdout;
        let shown = String::from_utf8_lossy(&shown);
        assert!(
            shown.contains("/home/node/.aws/credentials  (AWS credentials)"),
            "{shown}"
        );
    }

    // Without --json too: a warning on stderr.
    let out_file = w.state.path().join("cred-plain.tar");
    let out = w.run(&["export", "cred", "-o", out_file.to_str().unwrap()]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: the root holds 3 files named like credentials"),
        "{err}"
    );

    // --fail-on-secrets: a refusal, and no archive.
    let refused = w.state.path().join("cred-refused.tar");
    let out = w.run(&[
        "export",
        "cred",
        "--fail-on-secrets",
        "-o",
        refused.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused (--fail-on-secrets)"), "{err}");
    assert!(!refused.exists());

    // --exclude leaves them out (an absolute path with all below it, a name anywhere).
    for transport in ["guest-file", "pipe"] {
        let clean = w.state.path().join(format!("cred-clean-{transport}.tar"));
        let out = w.run(&[
            "export",
            "cred",
            "--transport",
            transport,
            "--json",
            "--fail-on-secrets",
            "--exclude",
            "/home/node/.ssh",
            "--exclude",
            "/home/node/.aws/",
            "--exclude",
            ".env",
            "-o",
            clean.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let names = archive_names(&clean);
        assert!(
            names.iter().any(|n| n.ends_with("project/README")),
            "{names:?}"
        );
        assert!(
            !names
                .iter()
                .any(|n| n.contains(".ssh") || n.contains(".aws") || n.ends_with(".env")),
            "{names:?}"
        );
        let events = json_events(&out.stdout);
        let cmd = events
            .iter()
            .filter(|e| e["event"] == "command")
            .map(|e| e["argv"].to_string())
            .find(|a| a.contains("--create"))
            .unwrap();
        assert!(cmd.contains("--exclude=./home/node/.ssh"), "{cmd}");
    }
}

// Item 5: `[freeze] exclude` and `fail_on_secrets` in the file reach the freeze; flags win.
#[test]
fn excludes_and_fail_on_secrets_come_from_the_config_file() {
    let w = World::new();
    let root = root_with_credentials();
    w.sim
        .create("bot-bottle-conf", "running", Some(root.path()));
    let config = w.state.path().join("config.toml");
    std::fs::write(
        &config,
        "[freeze]\nexclude = [\"/home/node/.ssh\", \"/home/node/.aws\", \".env\"]\nfail_on_secrets = true\n",
    )
    .unwrap();
    let shown = w.run(&["--config", config.to_str().unwrap(), "config"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("exclude = [\"/home/node/.ssh\", \"/home/node/.aws\", \".env\"]  # file"),
        "{text}"
    );
    assert!(text.contains("fail_on_secrets = true  # file"), "{text}");
    let out_file = w.state.path().join("conf.tar");
    let out = w.run(&[
        "--config",
        config.to_str().unwrap(),
        "export",
        "conf",
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!archive_names(&out_file).iter().any(|n| n.contains(".ssh")));
    // A flag replaces the file's list: .aws and .env are back, and refused.
    let out = w.run(&[
        "--config",
        config.to_str().unwrap(),
        "export",
        "conf",
        "--exclude",
        "/home/node/.ssh",
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 files named like credentials"), "{err}");
}

// Item 14: a `df` answer (a non-streamed query) that floods 256 MiB of stderr: the export
// goes on, and our memory stays bounded (a bound check, not a timing).
#[test]
fn a_flooding_df_answer_keeps_memory_bounded() {
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-df", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    let out_file = w.state.path().join("df.tar");
    let mut cmd = w.cmd(&[
        "export",
        "df",
        "--query-timeout",
        "300",
        "-o",
        out_file.to_str().unwrap(),
    ]);
    cmd.env("SMOLVM_SIM_DF_FLOOD", (256u64 << 20).to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(common::peak_rss_kib(pid).unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(peak > 0 && peak < 64 * 1024, "peak RSS {peak} KiB");
    assert!(out_file.exists());
}

// Item 2: a `.freeze.lock` planted as a symlink is refused, and its target untouched.
#[test]
fn a_symlinked_lock_file_is_refused_by_the_cli() {
    let w = World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-lk", "running", Some(root.path()));
    let victim = w.tmp.path().join("../lk-victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir_all(w.state.path().join("lk")).unwrap();
    std::os::unix::fs::symlink(&victim, w.state.path().join("lk/.freeze.lock")).unwrap();
    let out_file = w.state.path().join("lk.tar");
    let out = w.run(&["export", "lk", "-o", out_file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("it is a symbolic link, not a regular file"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!out_file.exists());
    std::fs::remove_file(&victim).unwrap();
}

// Item 1, native builder: the image archive a failed pack keeps, and the pack's staging,
// cannot be read by another local user.
#[test]
fn a_kept_image_archive_is_private() {
    let w = World::new();
    std::fs::set_permissions(w.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(w.state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-privn", "running", Some(root.path()));
    w.sim
        .ok(&["sim", "config", "--pack-fail", "no room for the pack VM"]);
    let out = with_umask_022(&mut w.cmd(&["freeze", "privn", "--json"]))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = json_events(&out.stdout)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = &w.record(&id)["record"]["kept"];
    let archive = PathBuf::from(kept["archive"].as_str().expect("the archive is kept"));
    assert_eq!(mode(archive.parent().unwrap()) & 0o077, 0, "its folder");
    assert!(
        !nobody_can_read(&archive),
        "another user read the kept archive"
    );
    assert_eq!(mode(&w.state.path().join("privn")), 0o700);
    let out = w.run(&["discard", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// A second freeze of a machine another freeze holds is refused before any work: bad input
// (status 2, issue 15's convention), and no record of its own.
#[test]
fn a_second_freeze_of_a_busy_machine_exits_2_without_a_record() {
    let w = World::new();
    let root = common::small_root();
    w.sim
        .create("bot-bottle-busy", "running", Some(root.path()));
    w.sim.ok(&["sim", "config", "--exec-cap", "off"]);
    // The first freeze streams a little, then hangs until it is stopped.
    w.sim.ok(&[
        "sim",
        "set",
        "bot-bottle-busy",
        "--synthetic-size",
        "64M",
        "--hang-after",
        "1M",
    ]);
    let no_docker = "unix:///nonexistent/docker.sock";
    let mut first = common::Watched::spawn({
        let mut c = w.cmd(&["freeze", "busy", "--json"]);
        c.env("DOCKER_HOST", no_docker);
        c
    });
    let started = first.wait_for(60, |v| {
        v["event"] == "stage-started" && v["stage"] == "exec-tar"
    });
    let first_id = started["id"].as_str().unwrap().to_string();
    for json in [false, true] {
        let mut args = vec!["freeze", "busy"];
        if json {
            args.push("--json");
        }
        let again = w.cmd(&args).env("DOCKER_HOST", no_docker).output().unwrap();
        let err = String::from_utf8_lossy(&again.stderr);
        assert_eq!(again.status.code(), Some(2), "json {json}: {err}");
        assert!(err.contains("is already running"), "json {json}: {err}");
        assert!(!err.contains("history show"), "a record is named: {err}");
    }
    let records: Vec<String> = std::fs::read_dir(w.state.path().join("history"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(records, [first_id], "the refusals made records");
    first.signal(nix::sys::signal::Signal::SIGINT);
    let (status, err) = first.finish(30);
    assert_eq!(status.code(), Some(130), "{err}");
    w.assert_clean(root.path());
}
