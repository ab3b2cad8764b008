//! Performance benches: each figure is a ratio against a baseline measured in the same run.
//!
//! `cargo bench --bench perf` runs all sections; name some to run only those:
//! `cargo bench --bench perf -- exec-tar memory build e2e scan`. Sizes scale with
//! `BENCH_EXEC_SIZE` (default 2G), `BENCH_E2E_SIZE` (512M). Needs the Docker daemon,
//! `docker-registry`, and for `e2e` Debian's `skopeo` (the original tool's push).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bottle_freeze::freeze::stream_copy::{copy_archive, CopyOptions};
use bottle_freeze::freeze::{
    run_export, FreezeConfig, RegistryChoice, RunOutcome, TransportChoice,
};
use bottle_freeze::names::Slug;
use bottle_freeze::smolvm::Smolvm;

const SIM: &str = env!("CARGO_BIN_EXE_smolvm-sim");
const FREEZE: &str = env!("CARGO_BIN_EXE_bottle-freeze");
const TAR: [&str; 9] = [
    "tar",
    "--create",
    "--exclude=./proc",
    "--exclude=./sys",
    "--exclude=./dev",
    "--exclude=./run",
    "--file=-",
    "--directory=/",
    ".",
];

fn size_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| {
            let (num, mul) = match v.chars().last() {
                Some('G') => (&v[..v.len() - 1], 1u64 << 30),
                Some('M') => (&v[..v.len() - 1], 1 << 20),
                _ => (&v[..], 1),
            };
            num.parse::<u64>().ok().map(|n| n * mul)
        })
        .unwrap_or(default)
}

/// CPU time (user + system) of this process so far, all threads.
fn cpu_self() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Waits for `pid` and returns its own CPU time (it has no children of its own here).
fn wait_cpu(pid: u32) -> Duration {
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, writing into structs we own.
    unsafe { libc::wait4(pid as i32, &mut status, 0, &mut ru) };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Sim {
    home: tempfile::TempDir,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            home: tempfile::Builder::new()
                .prefix("bench-sim.")
                .tempdir()
                .unwrap(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(SIM);
        c.env("SMOLVM_SIM_HOME", self.home.path());
        c
    }

    fn ok(&self, args: &[&str]) {
        let s = self
            .cmd()
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(s.success(), "smolvm-sim {args:?}");
    }

    fn machine(&self, name: &str, size: u64, extra: &[&str]) {
        self.ok(&["sim", "create", name]);
        let size = size.to_string();
        let mut args = vec!["sim", "set", name, "--synthetic-size", &size];
        args.extend_from_slice(extra);
        self.ok(&args);
        self.ok(&["sim", "config", "--exec-cap", "off"]);
    }

    /// `smolvm-sim machine exec --name N --stream -- tar …` with stdout piped.
    fn exec_tar(&self, name: &str, stderr: Stdio) -> std::process::Child {
        self.cmd()
            .args(["machine", "exec", "--name", name, "--stream", "--"])
            .args(TAR)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap()
    }
}

fn report(what: &str, ours: f64, base: f64, unit: &str, target: Option<(f64, &str)>) {
    let ratio = ours / base;
    let verdict = match target {
        Some((t, op)) => {
            let met = if op == "≤" { ratio <= t } else { ratio >= t };
            format!(
                "(target {op} {t:.2}) {}",
                if met { "met" } else { "MISSED" }
            )
        }
        None => String::new(),
    };
    println!(
        "{what}: ours {ours:.3} {unit} vs baseline {base:.3} {unit} -> ratio {ratio:.3} {verdict}"
    );
}

fn config(sim: &Sim, state: &Path, tmp: &Path) -> FreezeConfig {
    // SAFETY-free: the library reads SMOLVM_SIM_HOME through the sim's own environment.
    std::env::set_var("SMOLVM_SIM_HOME", sim.home.path());
    FreezeConfig {
        smolvm: Smolvm::new(SIM),
        prefix: "bot-bottle-".into(),
        state_dir: state.to_path_buf(),
        tmp_dir: tmp.to_path_buf(),
        transport: TransportChoice::Pipe,
        guest_scratch_dir: "/tmp".into(),
        user: "node".into(),
        workdir: "/home/node".into(),
        registry: RegistryChoice::Spawn { bin: None },
        push_host: "127.0.0.1".into(),
        pull_host: "127.0.0.1".into(),
        registry_port: None,
        push_via: bottle_freeze::freeze::push::PushVia::Stream,
        stall_timeout: None,
        exclude: Vec::new(),
        fail_on_secrets: false,
        builder: bottle_freeze::freeze::Builder::Native,
        push_to: None,
    }
}

type Run<'a> = &'a dyn Fn() -> (Duration, Duration);

/// Three rounds over `runs`, each run started by `settle`; the best wall and CPU seconds of
/// each. Round robin, so a drift of this machine's disk never lands on one side only.
fn round_robin<const N: usize>(
    settle: &dyn Fn(Run) -> (Duration, Duration),
    runs: [Run; N],
) -> [(f64, f64); N] {
    let mut bests = [(f64::MAX, f64::MAX); N];
    for _ in 0..3 {
        for (i, run) in runs.iter().enumerate() {
            let (w, c) = settle(*run);
            bests[i].0 = bests[i].0.min(w.as_secs_f64());
            bests[i].1 = bests[i].1.min(c.as_secs_f64());
        }
    }
    bests
}

/// exec-tar: our export against `exec | cat > file` and the original 64 KiB copy loop.
fn bench_exec_tar(rt: &tokio::runtime::Runtime) {
    let size = size_env("BENCH_EXEC_SIZE", 2 << 30);
    println!(
        "== exec-tar: {} MiB synthetic root, pipe transport, cap off",
        size >> 20
    );
    let sim = Sim::new();
    sim.machine("bot-bottle-bench", size, &[]);
    let dir = tempfile::Builder::new()
        .prefix("bench-out.")
        .tempdir_in(".")
        .unwrap();
    let out = dir.path().join("out.tar");
    let state = tempfile::tempdir().unwrap();

    // Baseline: smolvm exec | cat > file; cat's own CPU from wait4.
    let cat_run = || {
        let started = Instant::now();
        let mut src = sim.exec_tar("bot-bottle-bench", Stdio::null());
        let cat = Command::new("cat")
            .stdin(src.stdout.take().unwrap())
            .stdout(File::create(&out).unwrap())
            .spawn()
            .unwrap();
        // Reaped here with wait4, for its rusage; std's Child never sees it exit.
        let cpu = wait_cpu(cat.id());
        std::mem::forget(cat);
        src.wait().unwrap();
        (started.elapsed(), cpu)
    };
    // Ours: the library's export, in this process; its own CPU from getrusage.
    let ours_run = || {
        let cfg = config(&sim, state.path(), dir.path());
        let slug = Slug::parse("bench").unwrap();
        let cpu0 = cpu_self();
        let started = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let outcome = rt.block_on(async {
            let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let o = run_export(cfg, slug, out.clone(), tx, Default::default()).await;
            let _ = drain.await;
            o
        });
        assert!(
            matches!(outcome, RunOutcome::Exported { .. }),
            "{outcome:?}"
        );
        (started.elapsed(), cpu_self() - cpu0)
    };
    // The original tool: 64 KiB read/write loop, stderr drained on a thread.
    let original_run = || {
        let cpu0 = cpu_self();
        let started = Instant::now();
        let mut src = sim.exec_tar("bot-bottle-bench", Stdio::piped());
        let mut err = src.stderr.take().unwrap();
        let t = std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = err.read_to_end(&mut sink);
        });
        let mut stdout = src.stdout.take().unwrap();
        let mut f = File::create(&out).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stdout.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n]).unwrap();
        }
        t.join().unwrap();
        src.wait().unwrap();
        (started.elapsed(), cpu_self() - cpu0)
    };
    // Each run starts with no dirty pages left by the one before: a run that has to wait
    // for the previous 2 GiB to be written back would be charged for it.
    let settled = |f: &dyn Fn() -> (Duration, Duration)| {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        // And an empty page cache (as root): otherwise whichever run comes next pays for
        // reclaiming the last run's 2 GiB, which the profile shows as most of its time.
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
        f()
    };
    let bests = round_robin(&settled, [&cat_run, &ours_run, &original_run]);
    let [(cat_wall, cat_cpu), (our_wall, our_cpu), (orig_wall, orig_cpu)] = bests;
    report(
        "exec-tar wall, export vs exec|cat",
        our_wall,
        cat_wall,
        "s",
        Some((1.05, "≤")),
    );
    report(
        "exec-tar own CPU, export vs cat",
        our_cpu,
        cat_cpu,
        "s",
        Some((1.0, "≤")),
    );
    report(
        "exec-tar wall, export vs original loop",
        our_wall,
        orig_wall,
        "s",
        None,
    );
    report(
        "exec-tar own CPU, export vs original loop",
        our_cpu,
        orig_cpu,
        "s",
        None,
    );
    println!(
        "  throughput: export {:.0} MiB/s, cat {:.0} MiB/s",
        size as f64 / our_wall / 1048576.0,
        size as f64 / cat_wall / 1048576.0
    );

    // Header parsing on and off, the same read/write copy otherwise.
    let copy_run = |opts: CopyOptions, hash: bool| {
        let cpu0 = cpu_self();
        let started = Instant::now();
        let mut src = sim.exec_tar("bot-bottle-bench", Stdio::null());
        let stdout = src.stdout.take().unwrap();
        let (reader, mut writer) = std::io::pipe().unwrap();
        // Feed our own pipe so copy_archive sees a PipeReader as in the stage.
        let pump = std::thread::spawn(move || {
            let mut stdout = stdout;
            std::io::copy(&mut stdout, &mut writer).unwrap();
        });
        let mut file = File::create(&out).unwrap();
        let copied = copy_archive(reader, &mut file, &out, opts, hash, |_, _, _| {}).unwrap();
        pump.join().unwrap();
        src.wait().unwrap();
        assert_eq!(copied.bytes, std::fs::metadata(&out).unwrap().len());
        (started.elapsed(), cpu_self() - cpu0)
    };
    let on = || {
        copy_run(
            CopyOptions {
                scan: true,
                zero_copy: false,
            },
            false,
        )
    };
    let off = || {
        copy_run(
            CopyOptions {
                scan: false,
                zero_copy: false,
            },
            false,
        )
    };
    let zc = || {
        copy_run(
            CopyOptions {
                scan: true,
                zero_copy: true,
            },
            false,
        )
    };
    // The native build hashes the layer in the same loop (sha2, SHA-NI when the CPU has it).
    let hashed = || {
        copy_run(
            CopyOptions {
                scan: true,
                zero_copy: false,
            },
            true,
        )
    };
    let bests = round_robin(&settled, [&on, &off, &zc, &hashed]);
    let [(on_wall, on_cpu), (off_wall, off_cpu), (zc_wall, zc_cpu), (h_wall, h_cpu)] = bests;
    report(
        "sha256 of the layer in the copy loop, wall (hash on vs off)",
        h_wall,
        on_wall,
        "s",
        Some((1.10, "≤")),
    );
    report(
        "sha256 of the layer in the copy loop, CPU (hash on vs off)",
        h_cpu,
        on_cpu,
        "s",
        None,
    );
    report(
        "header parsing cost, wall (scan on vs off)",
        on_wall,
        off_wall,
        "s",
        Some((1.05, "≤")),
    );
    report(
        "header parsing cost, CPU (scan on vs off)",
        on_cpu,
        off_cpu,
        "s",
        None,
    );
    report(
        "splice vs read/write, wall (both reading headers)",
        zc_wall,
        on_wall,
        "s",
        None,
    );
    report(
        "splice vs read/write, CPU (both reading headers)",
        zc_cpu,
        on_cpu,
        "s",
        None,
    );
    let _ = std::fs::remove_file(&out);
}

/// Peak RSS (VmHWM, KiB) of a child process, polled until it exits.
fn peak_rss(mut cmd: Command) -> (u64, bool) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (peak, status.success());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn bench_memory() {
    println!("== memory: peak RSS of bottle-freeze at two root sizes");
    let sim = Sim::new();
    let state = tempfile::tempdir().unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("bench-out.")
        .tempdir_in(".")
        .unwrap();
    let small = 256u64 << 20;
    let large = size_env("BENCH_MEMORY_LARGE", 2 << 30);
    sim.machine("bot-bottle-small", small, &[]);
    sim.machine("bot-bottle-large", large, &[]);
    sim.machine("bot-bottle-flood", large, &["--stderr-flood", "100M"]);
    let run = |sub: &str, slug: &str| {
        let mut c = Command::new(FREEZE);
        c.env("SMOLVM_SIM_HOME", sim.home.path())
            .env("BOTTLE_FREEZE_SMOLVM", SIM)
            .env("BOTTLE_FREEZE_STATE_DIR", state.path())
            .args([sub, slug, "--tmp-dir"])
            .arg(tmp.path());
        if sub == "export" {
            c.arg("-o").arg(tmp.path().join("x.tar"));
        }
        let (kb, ok) = peak_rss(c);
        assert!(ok, "{sub} {slug} failed");
        let _ = Command::new("docker")
            .args(["rmi", "-f", &format!("bot-bottle-committed-{slug}:latest")])
            .output();
        kb as f64 / 1024.0
    };
    let e_small = run("export", "small");
    let e_large = run("export", "large");
    let e_flood = run("export", "flood");
    report(
        &format!("export peak RSS, {} MiB vs 256 MiB root", large >> 20),
        e_large,
        e_small,
        "MiB",
        Some((1.10, "≤")),
    );
    println!(
        "  export peak RSS under 40 MiB: {:.1} MiB {}",
        e_large,
        if e_large < 40.0 { "met" } else { "MISSED" }
    );
    println!(
        "  100 MiB stderr flood moves export's peak by {:+.1} MiB (target ≤ 10) {}",
        e_flood - e_large,
        if e_flood - e_large <= 10.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    let f_small = run("freeze", "small");
    let f_large = run("freeze", "large");
    report(
        &format!("freeze peak RSS, {} MiB vs 256 MiB root", large >> 20),
        f_large,
        f_small,
        "MiB",
        Some((1.10, "≤")),
    );
    println!(
        "  freeze peak RSS under 40 MiB: {f_small:.1} MiB (256 MiB), {f_large:.1} MiB ({} MiB) {}",
        large >> 20,
        if f_large < 40.0 && f_small < 40.0 {
            "met"
        } else {
            "MISSED"
        }
    );
}

fn docker(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn prune(image: &str) {
    docker(&["rmi", "-f", image]);
    docker(&["image", "prune", "-f"]);
    docker(&["builder", "prune", "-af"]);
}

/// Writes a synthetic root's archive with the sim (for the build and e2e baselines).
fn archive_of(sim: &Sim, name: &str, out: &Path) {
    let mut src = sim.exec_tar(name, Stdio::null());
    let mut f = File::create(out).unwrap();
    std::io::copy(src.stdout.as_mut().unwrap(), &mut f).unwrap();
    assert!(src.wait().unwrap().success());
}

fn context_dir(archive: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::rename(archive, dir.join("rootfs.tar")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        bottle_freeze::freeze::build::dockerfile("node", "/home/node", "bench"),
    )
    .unwrap();
}

fn bench_build(rt: &tokio::runtime::Runtime) {
    let size = size_env("BENCH_E2E_SIZE", 512 << 20);
    println!(
        "== build: {} MiB archive, our streamed context vs `docker build`",
        size >> 20
    );
    let sim = Sim::new();
    sim.machine("bot-bottle-build", size, &[]);
    let work = tempfile::Builder::new()
        .prefix("bench-build.")
        .tempdir_in(".")
        .unwrap();
    let archive = work.path().join("rootfs.tar");
    archive_of(&sim, "bot-bottle-build", &archive);
    let image = "bot-bottle-committed-build:latest";
    prune(image);

    let docker_client = rt
        .block_on(bottle_freeze::docker::connect())
        .expect("docker daemon");
    let state = tempfile::tempdir().unwrap();
    let history = bottle_freeze::history::History::new(state.path());
    let record = bottle_freeze::history::Record::new(
        "bench-build",
        bottle_freeze::history::Kind::Freeze,
        "bot-bottle-build",
        "build",
    );
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut rep = bottle_freeze::freeze::report::Reporter::new(record, history, tx);
    // The record's folder holds the stage logs, as in a real run.
    rep.started();
    let ctx = work.path().join("ctx");
    context_dir(&archive, &ctx);
    let archive = ctx.join("rootfs.tar");
    // Alternating, best of two each: the daemon's caches favour whichever runs second.
    let (mut ours, mut base) = (f64::MAX, f64::MAX);
    for _ in 0..2 {
        let started = Instant::now();
        let built = rt.block_on(bottle_freeze::freeze::build::run(
            &mut rep,
            &bottle_freeze::freeze::build::Track::new(&docker_client),
            &archive,
            "build",
            "node",
            "/home/node",
        ));
        ours = ours.min(started.elapsed().as_secs_f64());
        assert!(built.is_ok());
        prune(image);
        let started = Instant::now();
        assert!(docker(&["build", "-q", "-t", image, ctx.to_str().unwrap()]));
        base = base.min(started.elapsed().as_secs_f64());
        prune(image);
    }
    report(
        "build stage vs docker build CLI",
        ours,
        base,
        "s",
        Some((1.10, "≤")),
    );
}

fn bench_e2e() {
    let size = size_env("BENCH_E2E_SIZE", 512 << 20);
    println!(
        "== end to end: {} MiB root, freeze vs the original sequence",
        size >> 20
    );
    if Command::new("skopeo").arg("--version").output().is_err() {
        println!("  skipped: skopeo is not installed (apt-get install skopeo)");
        return;
    }
    let sim = Sim::new();
    sim.machine("bot-bottle-e2e", size, &[]);
    let work = tempfile::Builder::new()
        .prefix("bench-e2e.")
        .tempdir_in(".")
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let image = "bot-bottle-committed-e2e:latest";
    prune(image);

    let started = Instant::now();
    let ok = Command::new(FREEZE)
        .env("SMOLVM_SIM_HOME", sim.home.path())
        .env("BOTTLE_FREEZE_SMOLVM", SIM)
        .env("BOTTLE_FREEZE_STATE_DIR", state.path())
        .args(["freeze", "e2e", "--tmp-dir"])
        .arg(work.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    let ours = started.elapsed().as_secs_f64();
    assert!(ok, "freeze failed");
    prune(image);

    // The original tool's sequence, step by step.
    let started = Instant::now();
    let archive = work.path().join("rootfs.tar");
    archive_of(&sim, "bot-bottle-e2e", &archive);
    let ctx = work.path().join("ctx");
    context_dir(&archive, &ctx);
    assert!(docker(&["build", "-q", "-t", image, ctx.to_str().unwrap()]));
    let saved = work.path().join("image.tar");
    assert!(docker(&["save", "-o", saved.to_str().unwrap(), image]));
    let reg_dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bin = bottle_freeze::registry::find_binary(None).unwrap();
    let reg = rt
        .block_on(bottle_freeze::registry::SpawnedRegistry::start(
            &bin,
            reg_dir.path(),
            None,
        ))
        .unwrap();
    let dest = format!("docker://{}/bot-bottle-committed:orig", reg.addr());
    let ok = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", saved.display()))
        .arg(&dest)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "skopeo copy failed");
    let packed = work.path().join("packed");
    let ok = sim
        .cmd()
        .args([
            "pack",
            "create",
            "--image",
            &format!("{}/bot-bottle-committed:orig", reg.addr()),
            "-o",
        ])
        .arg(&packed)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "pack failed");
    let base = started.elapsed().as_secs_f64();
    rt.block_on(reg.stop());
    prune(image);
    report(
        "end-to-end freeze vs original sequence",
        ours,
        base,
        "s",
        Some((0.75, "≤")),
    );
}

/// Bytes this process (and the children it reaped) caused to be written to storage.
fn write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|n| n.trim().parse().ok())
}

/// The one-pass freeze (issue 11) against the original sequence and its own parts.
fn bench_onepass() {
    use std::io::BufRead;
    let size = size_env("BENCH_E2E_SIZE", 512 << 20);
    let rounds = size_env("BENCH_ROUNDS", 2).max(1);
    println!(
        "== one pass: {} MiB root, native freeze vs the original sequence ({rounds} rounds, best of each)",
        size >> 20
    );
    let have_docker = docker(&["info"]);
    let sim = Sim::new();
    sim.machine("bot-bottle-onepass", size, &[]);
    let work = tempfile::Builder::new()
        .prefix("bench-onepass.")
        .tempdir_in(".")
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let image = "bot-bottle-committed-onepass:latest";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reg_bin = bottle_freeze::registry::find_binary(None).ok();

    let freeze_cmd = |docker_host: Option<&str>| {
        let mut c = Command::new(FREEZE);
        c.env("SMOLVM_SIM_HOME", sim.home.path())
            .env("BOTTLE_FREEZE_SMOLVM", SIM)
            .env("BOTTLE_FREEZE_STATE_DIR", state.path())
            .args(["freeze", "onepass", "--json", "--tmp-dir"])
            .arg(work.path())
            .stderr(Stdio::null());
        if let Some(h) = docker_host {
            c.env("DOCKER_HOST", h);
        }
        c
    };
    let settle = || {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
    };
    let timed = |f: &dyn Fn()| {
        settle();
        let started = Instant::now();
        f();
        started.elapsed().as_secs_f64()
    };
    let ours = || {
        let ok = freeze_cmd(None).stdout(Stdio::null()).status().unwrap();
        assert!(ok.success(), "freeze failed");
    };
    let ours_no_docker = || {
        let ok = freeze_cmd(Some("unix:///nonexistent/docker.sock"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "freeze without Docker failed");
    };
    let tar = work.path().join("rootfs.tar");
    let export = || {
        let ok = Command::new(FREEZE)
            .env("SMOLVM_SIM_HOME", sim.home.path())
            .env("BOTTLE_FREEZE_SMOLVM", SIM)
            .env("BOTTLE_FREEZE_STATE_DIR", state.path())
            .args(["export", "onepass", "-o"])
            .arg(&tar)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "export failed");
    };
    // An archive to pack alone: the exported tar wrapped by the library, once.
    let archive = work.path().join("image.tar");
    export();
    let spec = bottle_freeze::freeze::image_archive::ImageSpec {
        repo_tag: image.into(),
        user: "node".into(),
        workdir: "/home/node".into(),
        machine: "bot-bottle-onepass".into(),
    };
    let (made, _) = bottle_freeze::freeze::image_archive::wrap_file(&tar, &archive, &spec).unwrap();
    let packed = work.path().join("packed");
    let pack_alone = || {
        let ok = sim
            .cmd()
            .args(["pack", "create", "--image"])
            .arg(&archive)
            .arg("-o")
            .arg(&packed)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "pack failed");
    };
    // The original tool: exec | file, docker build, docker push, pack from the registry.
    let original = || {
        let reg_dir = tempfile::tempdir_in(work.path()).unwrap();
        let reg = rt
            .block_on(bottle_freeze::registry::SpawnedRegistry::start(
                reg_bin.as_ref().unwrap(),
                reg_dir.path(),
                None,
            ))
            .unwrap();
        let ctx = work.path().join("ctx");
        let rootfs = work.path().join("orig.tar");
        archive_of(&sim, "bot-bottle-onepass", &rootfs);
        context_dir(&rootfs, &ctx);
        assert!(docker(&["build", "-q", "-t", image, ctx.to_str().unwrap()]));
        let pushed = format!("{}/bot-bottle-committed:orig", reg.addr());
        assert!(docker(&["tag", image, &pushed]));
        assert!(docker(&["push", &pushed]));
        let ok = sim
            .cmd()
            .args(["pack", "create", "--image", &pushed, "-o"])
            .arg(&packed)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "pack from the registry failed");
        docker(&["rmi", "-f", &pushed]);
        rt.block_on(reg.stop());
        let _ = std::fs::remove_dir_all(&ctx);
    };

    let (mut b_ours, mut b_nod, mut b_exp, mut b_pack, mut b_orig) =
        (f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..rounds {
        if have_docker && reg_bin.is_some() {
            prune(image);
            b_orig = b_orig.min(timed(&original));
            prune(image);
            b_ours = b_ours.min(timed(&ours));
            prune(image);
        }
        b_nod = b_nod.min(timed(&ours_no_docker));
        b_exp = b_exp.min(timed(&export));
        b_pack = b_pack.min(timed(&pack_alone));
    }
    if b_orig < f64::MAX {
        report(
            "full freeze (native, archive-packing smolvm, docker load beside pack) vs original sequence",
            b_ours,
            b_orig,
            "s",
            Some((0.30, "≤")),
        );
    } else {
        println!("  original sequence skipped: needs the Docker daemon and docker-registry");
    }
    report(
        "freeze without Docker vs export alone + pack alone",
        b_nod,
        b_exp + b_pack,
        "s",
        Some((1.3, "≤")),
    );

    // The bytes bottle-freeze writes before pack starts, against the archive's size.
    settle();
    let mut child = freeze_cmd(Some("unix:///nonexistent/docker.sock"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = write_bytes(pid).unwrap_or(0);
    let mut before_pack = None;
    let mut archive_bytes = 0u64;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["event"] == "stage-started" && v["stage"] == "pack" && before_pack.is_none() {
            before_pack = write_bytes(pid);
        }
        if v["event"] == "stage-finished" && v["stage"] == "build" {
            archive_bytes = std::fs::read_dir(work.path())
                .unwrap()
                .flatten()
                .map(|e| e.path().join("image.tar"))
                .find(|p| p.exists())
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .unwrap_or(made.archive_bytes);
        }
    }
    assert!(child.wait().unwrap().success());
    let written = before_pack.unwrap_or(0).saturating_sub(start);
    report(
        "bytes written before pack (write_bytes) vs archive size",
        written as f64 / 1048576.0,
        archive_bytes.max(1) as f64 / 1048576.0,
        "MiB",
        Some((1.02, "≤")),
    );
    prune(image);
}

/// The dashboard's render: 500 machines and a running freeze, on a TestBackend.
fn bench_ui_render() {
    use bottle_freeze::freeze::{FreezeEvent, OutputStream, Progress, Stage};
    use bottle_freeze::machines::{BottleMachine, Machine};
    use bottle_freeze::ui::app::{Action, App, Settings};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    println!("== dashboard render: 500 machines and a running freeze, 200x50");
    let now = 1_800_000_000_000u64;
    let mut app = App::new(
        Settings {
            prefix: "bot-bottle-".into(),
            state_dir: PathBuf::from("/tmp/bench-state"),
            tmp_dir: PathBuf::from("/tmp"),
            refresh_ms: 3000,
            theme: Default::default(),
            bell: false,
            notify: false,
            prune_keep: 3,
            stall_after_ms: 10_000,
        },
        bottle_freeze::ui::keys::KeyMap::defaults(),
    );
    app.update(Action::Resize {
        width: 200,
        height: 50,
    });
    app.update(Action::Tick { now_ms: now });
    let machines: Vec<BottleMachine> = (0..500)
        .map(|i| BottleMachine {
            machine: Machine {
                name: format!("bot-bottle-m{i:03}"),
                state: Some(if i % 7 == 0 { "stopped" } else { "running" }.into()),
                cpus: Some(2),
                memory_mib: Some(2048),
                pid: Some(1000 + i),
                created_at: Some((now / 1000) as i64 - 3600 * i),
                image: Some("node:22".into()),
                ..Machine::default()
            },
            slug: Slug::parse(&format!("m{i:03}")),
            listed: 1,
            host: None,
        })
        .collect();
    app.update(Action::Machines(Ok(machines)));
    let key = |c: char| Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    app.update(key('j'));
    app.update(key('f'));
    app.update(Action::Space {
        machine: "bot-bottle-m001".into(),
        tmp_free: Ok(40 << 30),
        estimate: Ok(2 << 30),
    });
    app.update(key('y'));
    let id = "bench-freeze".to_string();
    app.update(Action::Freeze(FreezeEvent::Started {
        id: id.clone(),
        machine: "bot-bottle-m001".into(),
        slug: "m001".into(),
        at_ms: now,
    }));
    app.update(Action::Freeze(FreezeEvent::StageStarted {
        id: id.clone(),
        stage: Stage::ExecTar,
        does: None,
    }));
    for i in 0..300u64 {
        app.update(Action::Freeze(FreezeEvent::Progress {
            id: id.clone(),
            stage: Stage::ExecTar,
            progress: Progress {
                bytes: i * (8 << 20),
                total: None,
                entries: Some(i * 40),
                current_path: Some(format!("./usr/lib/node_modules/pkg{i}/index.js")),
                elapsed_ms: i * 50,
                ..Progress::default()
            },
        }));
        app.update(Action::Freeze(FreezeEvent::Output {
            id: id.clone(),
            stage: Stage::ExecTar,
            stream: OutputStream::Stderr,
            lines: vec![format!(
                "tar: ./var/log/app{i}.log: file changed as we read it"
            )],
            dropped: 0,
        }));
    }
    let Ok(mut term) = Terminal::new(TestBackend::new(200, 50));
    let frames = 2000;
    let time_frames = |term: &mut Terminal<TestBackend>, app: &App| {
        let started = Instant::now();
        for _ in 0..frames {
            term.draw(|f| bottle_freeze::ui::draw(f, app)).unwrap();
        }
        started.elapsed().as_secs_f64() * 1000.0 / frames as f64
    };
    time_frames(&mut term, &app);
    let busy = time_frames(&mut term, &app);
    // Baseline: the same terminal drawing one full-screen paragraph of the same text.
    let text: String = (0..50).map(|_| "x".repeat(200) + "\n").collect();
    let started = Instant::now();
    for _ in 0..frames {
        term.draw(|f| f.render_widget(ratatui::widgets::Paragraph::new(text.as_str()), f.area()))
            .unwrap();
    }
    let plain = started.elapsed().as_secs_f64() * 1000.0 / frames as f64;
    report(
        "dashboard frame vs one full-screen paragraph",
        busy,
        plain,
        "ms",
        None,
    );
    println!(
        "  frame time {busy:.3} ms (target ≤ 2 ms) {}",
        if busy <= 2.0 { "met" } else { "MISSED" }
    );
}

/// The dashboard as a real process under tmux: idle CPU, and how soon a key shows.
fn bench_ui_tmux() {
    println!("== dashboard under tmux: idle CPU over 10 s, key latency while a freeze streams");
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("  skipped: tmux is not installed");
        return;
    }
    let sim = Sim::new();
    sim.machine("bot-bottle-idle", 1 << 20, &[]);
    sim.machine("bot-bottle-fast", 8 << 30, &[]);
    let state = tempfile::tempdir().unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("bench-ui.")
        .tempdir_in(".")
        .unwrap();
    let sock = state.path().join("tmux.sock");
    let tmux = |args: &[&str]| -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let line = format!(
        "exec env SMOLVM_SIM_HOME='{}' BOTTLE_FREEZE_SMOLVM='{}' BOTTLE_FREEZE_STATE_DIR='{}' BOTTLE_FREEZE_TMPDIR='{}' '{}'",
        sim.home.path().display(),
        SIM,
        state.path().display(),
        tmp.path().canonicalize().unwrap().display(),
        FREEZE
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "b",
        "-x",
        "120",
        "-y",
        "36",
        &line,
    ]);
    let screen = || tmux(&["capture-pane", "-p", "-t", "b"]);
    let wait = |pred: &dyn Fn(&str) -> bool, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if pred(&screen()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    };
    assert!(
        wait(&|s| s.contains("fast") && s.contains("idle"), 20),
        "dashboard up"
    );
    let pid: u32 = tmux(&["display-message", "-p", "-t", "b", "#{pane_pid}"])
        .trim()
        .parse()
        .unwrap();
    let cpu_of = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        ticks / 100.0
    };
    let c0 = cpu_of(pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle_pct = (cpu_of(pid) - c0) / 10.0 * 100.0;
    println!(
        "  idle dashboard: {idle_pct:.2}% of a core over 10 s (target ≤ 1%) {}",
        if idle_pct <= 1.0 { "met" } else { "MISSED" }
    );

    let latency = |n: usize| -> Vec<f64> {
        let mut v = Vec::new();
        for _ in 0..n {
            let started = Instant::now();
            tmux(&["send-keys", "-t", "b", "?"]);
            assert!(
                wait(&|s| s.to_lowercase().contains("keys"), 5),
                "help opens"
            );
            v.push(started.elapsed().as_secs_f64() * 1000.0);
            tmux(&["send-keys", "-t", "b", "Escape"]);
            assert!(wait(
                &|s| s.contains("fast") && !s.to_lowercase().contains("keys ·"),
                5
            ));
            std::thread::sleep(Duration::from_millis(100));
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    let idle = latency(10);
    // Select "fast" (filter), freeze it, and measure while it streams at full speed.
    tmux(&["send-keys", "-t", "b", "/"]);
    tmux(&["send-keys", "-t", "b", "-l", "fast"]);
    tmux(&["send-keys", "-t", "b", "Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux(&["send-keys", "-t", "b", "f"]);
    assert!(wait(&|s| s.contains("Freeze bot-bottle-fast?"), 10));
    tmux(&["send-keys", "-t", "b", "y"]);
    assert!(wait(&|s| s.contains("streamed"), 20), "streaming");
    let busy = latency(10);
    let median = |v: &[f64]| v[v.len() / 2];
    report(
        "key-to-screen latency while streaming vs idle (median)",
        median(&busy),
        median(&idle),
        "ms",
        None,
    );
    println!(
        "  while streaming: median {:.1} ms, worst {:.1} ms (target ≤ 50 ms, measured through tmux capture-pane polling) {}",
        median(&busy),
        busy[busy.len() - 1],
        if busy[busy.len() - 1] <= 50.0 { "met" } else { "MISSED" }
    );
    tmux(&["send-keys", "-t", "b", "q"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux(&["send-keys", "-t", "b", "y"]);
    std::thread::sleep(Duration::from_secs(2));
    tmux(&["kill-server"]);
}

/// The content summary's cost in the tar-header scan, on a root of many small files (the
/// worst case: the tally works per entry, never per byte): the scanner alone with and
/// without it, and what that adds to a GiB of a typical root.
fn bench_scan() {
    use bottle_freeze::freeze::tar_scan::TarScanner;
    const ENTRIES: u64 = 200_000;
    println!("== tar scan: {ENTRIES} entries, content summary on vs off");
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..ENTRIES {
        let size = (i * 37) % 2048;
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        let path = format!(
            "./usr/lib/node_modules/pkg{}/lib/sub{}/file{i}.js",
            i % 700,
            i % 13
        );
        b.append_data(&mut h, path, &vec![b'x'; size as usize][..])
            .unwrap();
    }
    let data = b.into_inner().unwrap();
    let run = |content: bool| {
        let started = Instant::now();
        let mut s = TarScanner::new();
        if content {
            s = s.with_content();
        }
        for chunk in data.chunks(256 * 1024) {
            s.feed(chunk).unwrap();
        }
        assert_eq!(s.finish().unwrap().entries, ENTRIES);
        if content {
            assert!(!s.content().unwrap().dirs.is_empty());
        }
        started.elapsed().as_secs_f64()
    };
    // The tally's own work, on the same paths, without the scan around it.
    let paths: Vec<Vec<u8>> = (0..ENTRIES)
        .map(|i| {
            format!(
                "./usr/lib/node_modules/pkg{}/lib/sub{}/file{i}.js",
                i % 700,
                i % 13
            )
            .into_bytes()
        })
        .collect();
    let tally = || {
        let started = Instant::now();
        let mut t = bottle_freeze::content::ContentTally::new();
        for (i, p) in paths.iter().enumerate() {
            t.add(p, false, i as u64);
        }
        let elapsed = started.elapsed().as_secs_f64();
        assert!(!t.finish().dirs.is_empty());
        elapsed
    };
    let (mut on, mut off, mut alone) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..15 {
        off = off.min(run(false));
        on = on.min(run(true));
        alone = alone.min(tally());
    }
    let per = |t: f64| t * 1e9 / ENTRIES as f64;
    report(
        "tar scan per entry, content summary on vs off (best of 15; noisy on a shared machine)",
        per(on),
        per(off),
        "ns",
        None,
    );
    println!("  the tally alone: {:.0} ns per entry", per(alone));
    // A node workspace root: about 40 000 entries per GiB (48 210 in 1.2 GiB in our
    // fixtures); exec-tar moves a GiB in about 1.4 s here (`-- exec-tar`).
    let added_ms = per(alone) * 40_000.0 / 1e6;
    println!(
        "  adds {added_ms:.1} ms per GiB of a typical root: {:.2}% of exec-tar's 1.4 s/GiB (target ≤ 1%) {}",
        added_ms / 14.0,
        if added_ms / 14.0 <= 1.0 { "met" } else { "MISSED" }
    );
}

/// A smolvm-sim API server over `home` on a loopback port (the port it prints).
fn sim_server(home: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(SIM)
        .env("SMOLVM_SIM_HOME", home)
        .args(["serve", "start", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit_once("http://").unwrap().1.to_string();
    (child, addr)
}

/// The fleet: 20 hosts × 500 machines listed at once against one host's 500 alone; and
/// with one host answering after 10 s, how long the 19 others take to arrive.
fn bench_fleet(rt: &tokio::runtime::Runtime) {
    use bottle_freeze::hosts::{self, Host};
    const HOSTS: usize = 20;
    const MACHINES: usize = 500;
    println!("fleet: {HOSTS} hosts × {MACHINES} machines (smolvm-sim API servers)");
    let fast = Sim::new();
    for i in 0..MACHINES {
        fast.ok(&["sim", "create", &format!("bot-bottle-m{i:04}")]);
    }
    // The slow host has the same machines and answers its list after 10 s.
    let slow = Sim::new();
    let status = Command::new("cp")
        .arg("-r")
        .arg(fast.home.path().join("machines"))
        .arg(slow.home.path())
        .status()
        .unwrap();
    assert!(status.success());
    slow.ok(&["sim", "config", "--ls-hang-secs", "10"]);
    let mut servers: Vec<(std::process::Child, String)> =
        (0..HOSTS).map(|_| sim_server(fast.home.path())).collect();
    let slow_server = sim_server(slow.home.path());
    let spec =
        |i: usize, addr: &str| hosts::parse(&format!("h{i:02}=http://{addr}"), false).unwrap();
    let all_fast: Vec<Host> = servers
        .iter()
        .enumerate()
        .map(|(i, (_, a))| spec(i, a))
        .collect();
    let one: Vec<Host> = all_fast[..1].to_vec();
    let mut with_slow: Vec<Host> = all_fast[..HOSTS - 1].to_vec();
    with_slow.push(spec(99, &slow_server.1));
    let smolvm = Smolvm::new(SIM);
    let timeout = Duration::from_secs(15);

    let time = |hs: &[Host]| {
        let started = Instant::now();
        let ls = rt.block_on(hosts::list_hosts(hs, &smolvm, timeout));
        let n: usize = ls
            .iter()
            .map(|l| l.machines.as_ref().map_or(0, Vec::len))
            .sum();
        assert_eq!(n, hs.len() * MACHINES);
        started.elapsed()
    };
    let (mut best_one, mut best_all) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        best_one = best_one.min(time(&one));
        best_all = best_all.min(time(&all_fast));
    }
    report(
        &format!("fleet list, {HOSTS} hosts at once vs 1 host"),
        best_all.as_secs_f64() * 1000.0,
        best_one.as_secs_f64() * 1000.0,
        "ms",
        None,
    );

    // The 19 fast hosts' answers, with the slow one among them, against all 20 fast.
    let started = Instant::now();
    let arrived = rt.block_on(async {
        let mut rx = hosts::spawn_listings(with_slow.clone(), smolvm.clone(), timeout);
        let mut fast_done = None;
        let mut got = 0;
        while let Some(l) = rx.recv().await {
            got += 1;
            if l.host.label.as_str() != "h99" {
                assert!(l.reachable());
                if got == HOSTS - 1 {
                    fast_done = Some(started.elapsed());
                }
            }
            if got == HOSTS {
                break;
            }
        }
        (fast_done, started.elapsed())
    });
    let (fast_done, slow_done) = (arrived.0.unwrap_or(Duration::MAX), arrived.1);
    report(
        "fleet: 19 fast hosts arrived, one slow host (10 s) among them vs none",
        fast_done.as_secs_f64() * 1000.0,
        best_all.as_secs_f64() * 1000.0,
        "ms",
        Some((2.0, "≤")),
    );
    println!(
        "fleet: the slow host arrived after {:.1} s",
        slow_done.as_secs_f64()
    );
    bench_fleet_dashboard(rt, &with_slow, fast_done);
    for (c, _) in servers.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let (mut c, _) = slow_server;
    let _ = c.kill();
    let _ = c.wait();
}

/// The dashboard over the fleet: its own refresh path (one task per host, each with its
/// own timeout) with the slow host among 20, then frames of the 10 000-row list, a key's
/// update and redraw, against one full-screen paragraph.
fn bench_fleet_dashboard(
    rt: &tokio::runtime::Runtime,
    hosts: &[bottle_freeze::hosts::Host],
    listed_alone: Duration,
) {
    use bottle_freeze::ui::app::{Action, App, Command as UiCommand, Settings};
    use bottle_freeze::ui::event::Services;
    use bottle_freeze::ui::fleet::HostState;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    println!(
        "== dashboard over the fleet: {} hosts, one answering after 10 s",
        hosts.len()
    );
    let sim = Sim::new();
    let (state, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = config(&sim, state.path(), tmp.path());
    let mut app = App::new(
        Settings {
            prefix: "bot-bottle-".into(),
            state_dir: state.path().to_path_buf(),
            tmp_dir: tmp.path().to_path_buf(),
            refresh_ms: 3000,
            theme: Default::default(),
            bell: false,
            notify: false,
            stall_after_ms: 10_000,
            prune_keep: 3,
        },
        bottle_freeze::ui::keys::KeyMap::defaults(),
    );
    app.set_fleet(
        hosts
            .iter()
            .map(|h| HostState::new(h.label.as_str(), &h.address(), h.is_local()))
            .collect(),
    );
    app.update(Action::Resize {
        width: 200,
        height: 50,
    });
    // The loop's first tick asks every host; the services answer each on its own.
    let now = bottle_freeze::history::now_ms();
    let fx = app.update(Action::Tick { now_ms: now });
    let (fast_in, all_in, reduce_ms) = rt.block_on(async {
        let (services, mut rx) = Services::new(cfg, Duration::from_secs(15));
        let mut services = services.with_hosts(hosts.to_vec());
        let started = Instant::now();
        for c in fx.commands {
            if matches!(c, UiCommand::DiscoverHost { .. }) {
                services.perform(c);
            }
        }
        let (mut got, mut fast_in, mut reduce) = (0, None, Duration::ZERO);
        while let Some(a) = rx.background.recv().await {
            let Action::HostListed(l) = a else { continue };
            got += 1;
            let slow = l.label == "h99";
            let t = Instant::now();
            app.update(Action::HostListed(l));
            reduce = reduce.max(t.elapsed());
            if !slow && got == hosts.len() - 1 {
                fast_in = Some(started.elapsed());
            }
            if got == hosts.len() {
                break;
            }
        }
        (
            fast_in.unwrap_or(Duration::MAX),
            started.elapsed(),
            reduce.as_secs_f64() * 1000.0,
        )
    });
    assert_eq!(app.machines.list.len(), hosts.len() * 500);
    report(
        "dashboard: 19 fast hosts' rows in, one slow host (10 s) among them vs listing them alone",
        fast_in.as_secs_f64() * 1000.0,
        listed_alone.as_secs_f64() * 1000.0,
        "ms",
        Some((2.0, "≤")),
    );
    println!(
        "  the slow host's rows after {:.1} s; one host's answer (500 rows) reduced in ≤ {reduce_ms:.2} ms",
        all_in.as_secs_f64()
    );

    let Ok(mut term) = Terminal::new(TestBackend::new(200, 50));
    let frames = 300;
    let time_frames = |term: &mut Terminal<TestBackend>, app: &App| {
        let started = Instant::now();
        for _ in 0..frames {
            term.draw(|f| bottle_freeze::ui::draw(f, app)).unwrap();
        }
        started.elapsed().as_secs_f64() * 1000.0 / frames as f64
    };
    time_frames(&mut term, &app);
    let frame = time_frames(&mut term, &app);
    let text: String = (0..50).map(|_| "x".repeat(200) + "\n").collect();
    let started = Instant::now();
    for _ in 0..frames {
        term.draw(|f| f.render_widget(ratatui::widgets::Paragraph::new(text.as_str()), f.area()))
            .unwrap();
    }
    let plain = started.elapsed().as_secs_f64() * 1000.0 / frames as f64;
    report(
        "dashboard frame, 20 hosts × 500 rows vs one full-screen paragraph",
        frame,
        plain,
        "ms",
        None,
    );
    println!(
        "  frame time {frame:.3} ms (target ≤ 2 ms) {}",
        if frame <= 2.0 { "met" } else { "MISSED" }
    );
    // A key: the reducer's update and the redraw it asks for.
    let key = |c: char| Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    let mut worst = Duration::ZERO;
    let mut total = Duration::ZERO;
    for i in 0..100 {
        let t = Instant::now();
        let fx = app.update(key(if i % 2 == 0 { 'j' } else { 'k' }));
        if fx.redraw {
            term.draw(|f| bottle_freeze::ui::draw(f, &app)).unwrap();
        }
        let d = t.elapsed();
        worst = worst.max(d);
        total += d;
    }
    println!(
        "  a key (update + redraw): mean {:.3} ms, worst {:.3} ms (issue: under 50 ms)",
        total.as_secs_f64() * 10.0,
        worst.as_secs_f64() * 1000.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    let rt = tokio::runtime::Runtime::new().unwrap();
    if want("exec-tar") {
        bench_exec_tar(&rt);
    }
    if want("memory") {
        bench_memory();
    }
    if want("build") {
        bench_build(&rt);
    }
    if want("e2e") {
        bench_e2e();
    }
    if want("onepass") {
        bench_onepass();
    }
    if want("ui") {
        bench_ui_render();
        bench_ui_tmux();
    }
    if want("fleet") {
        bench_fleet(&rt);
    }
    if want("scan") {
        bench_scan();
    }
    let _ = PathBuf::new();
}
