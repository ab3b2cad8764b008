//! The real-CLI tier: bottle-freeze's smolvm command lines and `machine ls --json` parser
//! against the real smolvm binary (the `smolmachines` wheel's `smol/smol-vmm`, fetched by
//! `.ci/run` and named by `BOTTLE_FREEZE_REAL_SMOLVM`). No VM boots on CI machines, so
//! what is checked is grammar (every argv gets past smolvm's parser) and schema (our
//! parser reads what smolvm prints); the exact answers are recorded in
//! docs/smolvm-real-cli.md. Without the binary the tests skip, and fail under
//! `BOTTLE_FREEZE_REQUIRE_DOCKER=1`.

mod common;
mod real_support;

use bottle_freeze::machines::parse_ls_json;
use bottle_freeze::smolvm::argv::{self as argv, ExecOptions};
use bottle_freeze::smolvm::error::FailureKind;
use real_support::{docker_save_archive, every_form, real, Answer};

const UNKNOWN: &str = "bot-bottle-nosuch";

/// What the real CLI must answer for one command line.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Exit 0.
    Success,
    /// `Error: vm not found: NAME`, exit 1.
    NotFound,
    /// The machine exists but is not running: `agent operation failed: connect: …`.
    NotRunning,
    /// Accepted by the parser and then failed (or succeeded) for want of a VM.
    AnyButUsage,
}

fn check(answer: &Answer, expect: Expect) -> Result<(), String> {
    if answer.is_usage_error() {
        return Err("the parser rejected it".into());
    }
    let kind = answer.failure().map(|f| f.kind);
    let ok = match expect {
        Expect::Success => answer.code == 0,
        Expect::NotFound => answer.code == 1 && kind == Some(FailureKind::NotFound),
        Expect::NotRunning => answer.code == 1 && kind == Some(FailureKind::NotRunning),
        Expect::AnyButUsage => answer.code == 0 || answer.failure().is_some(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {expect:?}"))
    }
}

/// Every smolvm command line bottle-freeze builds, run against a created machine and an
/// unknown name, plus `pack create` with each kind of image source, every `--help` probe
/// and `--version`. A usage error (clap's exit 2) anywhere fails the test.
#[test]
fn every_argv_we_build_gets_past_the_real_parser() {
    let Some(real) = real() else { return };
    let created = "bot-bottle-grammar";
    real.ok(&["machine", "create", "--name", created]);
    let local = real.work().join("rootfs.tar");
    let archive = real.work().join("image.tar");
    std::fs::write(&archive, docker_save_archive()).unwrap();

    let mut cases: Vec<(Vec<String>, Expect)> = Vec::new();
    for (name, on_machine) in [(created, Expect::NotRunning), (UNKNOWN, Expect::NotFound)] {
        for a in every_form(name, &local) {
            let expect = match a[1].as_str() {
                "ls" => Expect::Success,
                "start" if name == created => Expect::AnyButUsage,
                _ => on_machine,
            };
            cases.push((a, expect));
        }
    }
    let out = real.work().join("out/committed-smolmachine");
    for image in [
        "127.0.0.1:9/bot-bottle-committed:0123456789abcdef".to_string(),
        archive.display().to_string(),
        "-".to_string(),
    ] {
        cases.push((argv::pack_create(&image, &out), Expect::AnyButUsage));
    }
    for sub in argv::HELP_PROBES {
        cases.push((argv::help(sub), Expect::Success));
    }
    cases.push((argv::version(), Expect::Success));

    let mut bad = Vec::new();
    for (a, expect) in &cases {
        let answer = real.run(a);
        eprintln!("{}", answer.record_line(a));
        if let Err(why) = check(&answer, *expect) {
            bad.push(format!("{why}: {}", answer.describe(a)));
        }
        if a.first().map(String::as_str) == Some("machine") && a[1] == "ls" {
            parse_ls_json(answer.stdout.as_bytes()).expect("our parser reads machine ls --json");
        }
    }
    assert!(
        bad.is_empty(),
        "the real smolvm disagreed:\n{}",
        bad.join("\n")
    );
}

/// The detector itself can fail: a flag smolvm does not know is a usage error (exit 2,
/// `error: unexpected argument`), whichever machine is named.
#[test]
fn a_flag_smolvm_does_not_know_is_caught() {
    let Some(real) = real() else { return };
    let mut a = argv::exec(UNKNOWN, ExecOptions::default(), argv::guest_df("/"));
    let sep = a.iter().position(|x| x == "--").unwrap();
    a.insert(sep, "--no-such-flag".into());
    let answer = real.run(&a);
    assert_eq!(answer.code, 2, "{}", answer.describe(&a));
    assert!(answer.is_usage_error(), "{}", answer.describe(&a));
    assert!(
        answer
            .stderr
            .contains("error: unexpected argument '--no-such-flag' found"),
        "{}",
        answer.stderr
    );
    assert_eq!(
        answer.failure().map(|f| f.kind),
        Some(FailureKind::Usage),
        "our classifier"
    );
}

/// The exact texts the real 1.32.2 prints for the failures we classify, in text and JSON.
#[test]
fn error_texts_and_codes() {
    let Some(real) = real() else { return };
    real.ok(&["machine", "create", "--name", "bot-bottle-stopped"]);
    let exec = argv::exec(UNKNOWN, ExecOptions::default(), argv::guest_df("/"));
    let a = real.run(&exec);
    assert_eq!(a.code, 1);
    assert_eq!(
        a.stderr.trim_end(),
        format!("Error: vm not found: {UNKNOWN}")
    );

    let mut json = argv::ERROR_FORMAT_JSON.map(String::from).to_vec();
    json.extend(exec.clone());
    let j = real.run(&json);
    assert_eq!(j.code, 1);
    let f = j.failure().expect("a JSON error");
    assert_eq!(f.code.as_deref(), Some("NOT_FOUND"));
    assert_eq!(f.message, format!("vm not found: {UNKNOWN}"));
    assert_eq!(f.kind, FailureKind::NotFound);

    let mut stopped = argv::ERROR_FORMAT_JSON.map(String::from).to_vec();
    stopped.extend(argv::exec(
        "bot-bottle-stopped",
        ExecOptions {
            stream: true,
            timeout: None,
        },
        argv::guest_df("/"),
    ));
    let s = real.run(&stopped);
    let f = s.failure().expect("an error");
    assert_eq!(s.code, 1);
    assert_eq!(f.kind, FailureKind::NotRunning, "{}", s.stderr);
    assert_eq!(f.code.as_deref(), Some("SMOLVM_ERROR"));
    assert!(f.message.starts_with(
        "agent operation failed: connect: machine 'bot-bottle-stopped' is not running."
    ));

    // An archive that is not there is refused before any VM is needed.
    let missing = real.work().join("missing.tar");
    let p = real.run(&argv::pack_create(
        &missing.display().to_string(),
        &real.work().join("out/p"),
    ));
    assert_eq!(p.code, 1);
    assert_eq!(
        p.stderr.trim_end(),
        format!(
            "Error: config operation failed: --image: cannot read archive {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert_eq!(p.failure().map(|f| f.kind), Some(FailureKind::Other));

    // A usage error stays clap's text even under --error-format json.
    let mut usage = argv::ERROR_FORMAT_JSON.map(String::from).to_vec();
    usage.extend(argv::list());
    usage.push("--bogus".into());
    let u = real.run(&usage);
    assert_eq!(u.code, 2);
    assert!(u
        .stderr
        .starts_with("error: unexpected argument '--bogus' found"));
}

/// `machine ls --json` of machines made four ways, read by our parser; every field we
/// show has the value the machine was created with.
#[test]
fn our_parser_reads_real_machines() {
    let Some(real) = real() else { return };
    let archive = real.work().join("image.tar");
    std::fs::write(&archive, docker_save_archive()).unwrap();
    let archive = archive.display().to_string();
    real.ok(&["machine", "create", "--name", "bot-bottle-plain"]);
    real.ok(&[
        "machine",
        "create",
        "--name",
        "bot-bottle-small",
        "--cpus",
        "1",
        "--mem",
        "512",
    ]);
    real.ok(&[
        "machine",
        "create",
        "--name",
        "bot-bottle-label",
        "--label",
        "k=v",
    ]);
    real.ok(&[
        "machine",
        "create",
        "--name",
        "bot-bottle-image",
        "--image",
        &archive,
    ]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ls = real.run(&argv::list());
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    let ms = parse_ls_json(ls.stdout.as_bytes()).unwrap();
    let by = |n: &str| ms.iter().find(|m| m.name == n).unwrap().clone();
    assert_eq!(ms.len(), 4);
    for m in &ms {
        assert_eq!(m.state.as_deref(), Some("created"), "{m:?}");
        assert!(!m.is_running());
        assert_eq!(m.pid, None);
        let created = m.created_at.expect("created_at");
        assert!(
            (now - 120..=now + 5).contains(&created),
            "{created} vs {now}"
        );
    }
    let plain = by("bot-bottle-plain");
    assert_eq!((plain.cpus, plain.memory_mib), (Some(4), Some(8192)));
    assert_eq!(plain.image, None);
    let small = by("bot-bottle-small");
    assert_eq!((small.cpus, small.memory_mib), (Some(1), Some(512)));
    let image = by("bot-bottle-image").image.expect("an image");
    assert!(image.starts_with("local:"), "{image}");

    // The raw objects: labels as given, and the refusal our list shows.
    let raw: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    let label = raw
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "bot-bottle-label")
        .unwrap();
    assert_eq!(label["labels"], serde_json::json!({"k": "v"}));
    let bottles = bottle_freeze::machines::bottle_machines(ms, "bot-bottle-", true);
    assert_eq!(bottles.len(), 4);
    for b in &bottles {
        let why = b.refusal().expect("a created machine is not frozen");
        assert!(why.contains("created"), "{why}");
    }
}

/// The keys of `machine ls --json` and their value types are the same in smolvm-sim's
/// answer as in the real one's, for a machine that never started and one whose start
/// failed (`last_exit`). Fails when either side drifts.
#[test]
fn sim_ls_keys_match_the_real_ones() {
    let Some(real) = real() else { return };
    real.ok(&[
        "machine",
        "create",
        "--name",
        "bot-bottle-a",
        "--label",
        "k=v",
    ]);
    real.ok(&["machine", "create", "--name", "bot-bottle-b"]);
    // No VM boots here: the start fails and leaves `last_exit` behind (on a host where
    // VMs boot, the machine runs instead and is stopped again).
    let started = real.run(&argv::start("bot-bottle-b"));
    if started.code == 0 {
        real.ok(&["machine", "stop", "--name", "bot-bottle-b"]);
    }
    let ls = real.run(&argv::list());
    let real_ms: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    if started.code != 0 {
        // Our parser reads the failed start and says why the machine cannot be frozen.
        let ms = parse_ls_json(ls.stdout.as_bytes()).unwrap();
        let b = bottle_freeze::machines::bottle_machines(ms, "bot-bottle-", true)
            .into_iter()
            .find(|m| m.machine.name == "bot-bottle-b")
            .unwrap();
        assert_eq!(b.machine.state.as_deref(), Some("created"));
        assert_eq!(
            b.refusal().unwrap(),
            "machine is created (last start failed: VMM exited with code 1), only running machines are frozen"
        );
    }

    let sim = common::Sim::new();
    sim.ok(&[
        "sim",
        "create",
        "bot-bottle-a",
        "--state",
        "created",
        "--label",
        "k=v",
    ]);
    sim.ok(&["sim", "create", "bot-bottle-b", "--state", "created"]);
    sim.ok(&["sim", "set", "bot-bottle-b", "--last-exit-code", "1"]);
    let out = sim.ok(&["machine", "ls", "--json"]);
    let sim_ms: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    for name in ["bot-bottle-a", "bot-bottle-b"] {
        let find = |v: &serde_json::Value| {
            v.as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == name)
                .unwrap()
                .clone()
        };
        let (r, s) = (find(&real_ms), find(&sim_ms));
        assert_eq!(
            real_support::shape(&r),
            real_support::shape(&s),
            "{name}: real (left) and sim (right) differ"
        );
        assert_eq!(r["state"], s["state"], "{name}");
        assert_eq!(r["labels"], s["labels"], "{name}");
    }
}

/// For every flag we use or probe, the real `--help` and smolvm-sim's describe it in the
/// same words (whitespace aside), so a sim that drifts from smolvm fails here.
#[test]
fn sim_help_matches_the_real_help_for_the_flags_we_use() {
    let Some(real) = real() else { return };
    let sim = common::Sim::new();
    let mut bad = Vec::new();
    for (sub, flag) in argv::PROBED_FLAGS {
        let real_help = real.run(&argv::help(sub));
        assert_eq!(real_help.code, 0, "{}", real_help.stderr);
        let want = real_support::help_entry(&real_help.stdout, flag)
            .unwrap_or_else(|| panic!("real smolvm {sub:?} --help has no {flag}"));
        let out = sim.cmd().args(argv::help(sub)).output().unwrap();
        let got = real_support::help_entry(&String::from_utf8_lossy(&out.stdout), flag);
        if got.as_deref() != Some(want.as_str()) {
            bad.push(format!(
                "{sub:?} {flag}:\n  real: {want}\n  sim:  {}",
                got.unwrap_or_else(|| "<missing>".into())
            ));
        }
    }
    assert!(bad.is_empty(), "help drift:\n{}", bad.join("\n"));
}

/// The wheel's note is filtered exactly, also through a symlink named `smolvm`, and our
/// client reads the real machine list through it.
#[test]
fn wheel_note_is_dropped_for_the_wheel_binary_only() {
    let Some(real) = real() else { return };
    let link = real.work().join("smolvm");
    std::os::unix::fs::symlink(real.bin(), &link).unwrap();
    for program in [real.bin(), link.as_path()] {
        let out = real
            .command_for(program)
            .args(argv::version())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            stderr.trim_end(),
            bottle_freeze::smolvm::note::note_for("smol-vmm"),
            "the note names the resolved binary"
        );
        assert!(bottle_freeze::smolvm::note::is_wheel_binary(program));
        let filtered = bottle_freeze::smolvm::note::NoteFilter::strip(&out.stderr);
        assert!(
            filtered.is_empty(),
            "{}",
            String::from_utf8_lossy(&filtered)
        );
    }
    // A copy under another name prints its own name, which is left alone.
    let copy = real.work().join("othername");
    std::fs::copy(real.bin(), &copy).unwrap();
    let out = real.command_for(&copy).arg("--version").output().unwrap();
    assert!(!bottle_freeze::smolvm::note::is_wheel_binary(&copy));
    assert_eq!(
        bottle_freeze::smolvm::note::NoteFilter::strip(&out.stderr),
        out.stderr
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("'othername'"));
}

/// Our smolvm client end to end on the real binary: list through the symlink, with the
/// state dir passed the way an operator's wrapper would.
#[test]
fn our_client_lists_real_machines() {
    let Some(real) = real() else { return };
    real.ok(&["machine", "create", "--name", "bot-bottle-client"]);
    let wrapper = real.wrapper();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let smolvm = bottle_freeze::smolvm::Smolvm::new(&wrapper);
    let ms = rt
        .block_on(bottle_freeze::machines::discover(
            &smolvm,
            "bot-bottle-",
            true,
        ))
        .unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].machine.name, "bot-bottle-client");
}

/// `bottle-freeze doctor` on the real binary: its version and every capability we detect.
#[test]
fn doctor_reads_the_real_smolvm() {
    let Some(real) = real() else { return };
    let out = std::process::Command::new(common::freeze_bin())
        .args(["doctor", "--json", "--smolvm"])
        .arg(real.bin())
        .env("BOTTLE_FREEZE_STATE_DIR", real.work())
        .env("DOCKER_HOST", "unix:///nonexistent")
        .env_remove("BOTTLE_FREEZE_CONFIG")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let detail = |name: &str| {
        let c = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(c["ok"], true, "{c}");
        c["detail"].as_str().unwrap().to_string()
    };
    assert_eq!(report["versions"]["smolvm"], "smolvm 1.32.2");
    assert!(detail("smolvm").ends_with(": smolvm 1.32.2"));
    assert!(detail("exec-stream").starts_with("machine exec --stream"));
    assert!(detail("exec-cap").contains("capped at 11 MiB"));
    assert!(detail("archive-pack").contains("takes a docker save archive"));
    assert!(detail("error-format-json").contains("stable code"));
}

/// Our client learns `--error-format json` from the real help once and then reads
/// smolvm's failures by their code.
#[test]
fn our_client_asks_for_json_errors() {
    let Some(real) = real() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let smolvm = bottle_freeze::smolvm::Smolvm::new(real.wrapper());
    let a = argv::exec(UNKNOWN, ExecOptions::default(), argv::guest_df("/"));
    let args: Vec<&str> = a.iter().map(String::as_str).collect();
    let Err(err) = rt.block_on(smolvm.query_ok(&args)) else {
        panic!("exec on an unknown machine succeeded");
    };
    let err = err.to_string();
    assert!(smolvm.json_errors());
    // (The wrapper is a script, not the wheel's binary, so the note stays in this one.)
    assert!(
        err.ends_with(&format!("Error: vm not found: {UNKNOWN} [NOT_FOUND]")),
        "{err}"
    );
    // The raw answer is JSON, classified by its code.
    let out = rt.block_on(smolvm.query(&args)).unwrap();
    let f = bottle_freeze::smolvm::error::find(out.code, &String::from_utf8_lossy(&out.stderr))
        .unwrap();
    assert_eq!(f.code.as_deref(), Some("NOT_FOUND"));
    assert_eq!(f.kind, FailureKind::NotFound);
}

/// smolvm colours its log lines even on a pipe; every child we run gets `NO_COLOR=1`.
#[test]
fn smolvm_children_run_without_colour() {
    let Some(real) = real() else { return };
    real.ok(&["machine", "create", "--name", "bot-bottle-colour"]);
    // Without NO_COLOR the real CLI colours the WARN line of a failed start.
    let out = real
        .command_for(real.bin())
        .env_remove("NO_COLOR")
        .args(argv::start("bot-bottle-colour"))
        .output()
        .unwrap();
    if out.status.success() {
        // A host where VMs boot: nothing failed, so nothing to colour.
        real.ok(&["machine", "stop", "--name", "bot-bottle-colour"]);
        return;
    }
    let raw = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(raw.contains("\u{1b}[33m WARN\u{1b}[0m"), "{raw}");
    // Through our client: the same line, plain.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let smolvm = bottle_freeze::smolvm::Smolvm::new(real.wrapper());
    let a = argv::start("bot-bottle-colour");
    let args: Vec<&str> = a.iter().map(String::as_str).collect();
    let q = rt.block_on(smolvm.query(&args)).unwrap();
    let stderr = String::from_utf8_lossy(&q.stderr).into_owned();
    assert!(stderr.contains(" WARN VMM exited with code 1"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}
