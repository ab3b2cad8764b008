//! `smolvm-sim sim …`: the test-side controls of the double.

use std::collections::BTreeMap;
use std::fs;

use crate::cli::{SimCmd, SimConfigArgs, SimCreateArgs, SimSetArgs};
use crate::error::{Context, Failure};
use crate::store::{now_secs, Behaviours, Home, MachineRecord, MachineState};

pub fn run(home: &Home, cmd: SimCmd) -> Result<i32, Failure> {
    match cmd {
        SimCmd::Create(args) => create(home, args),
        SimCmd::Set(args) => set(home, args),
        SimCmd::Clear(arg) => {
            let mut rec = load(home, &arg.name)?;
            rec.sim = Behaviours::default();
            home.save(&rec)?;
            Ok(0)
        }
        SimCmd::Config(args) => config(home, args),
        SimCmd::Rm(arg) => {
            let rec = load(home, &arg.name)?;
            home.remove(&rec.name)?;
            if rec.root_owned {
                fs::remove_dir_all(&rec.root)
                    .context(|| format!("remove {}", rec.root.display()))?;
            }
            Ok(0)
        }
    }
}

fn load(home: &Home, name: &str) -> Result<MachineRecord, Failure> {
    home.load(name)?
        .ok_or_else(|| Failure::sim(format!("no machine named {name:?}")))
}

fn create(home: &Home, args: SimCreateArgs) -> Result<i32, Failure> {
    if home.load(&args.name)?.is_some() {
        return Err(Failure::sim(format!(
            "machine {:?} already exists",
            args.name
        )));
    }
    let mut labels = BTreeMap::new();
    for spec in &args.labels {
        let (k, v) = spec
            .split_once('=')
            .ok_or_else(|| Failure::sim(format!("label {spec:?} is not KEY=VALUE")))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let (root, root_owned) = match args.root {
        Some(dir) => {
            // Registered in place: tests build trees with owners, hard links and symlinks
            // that a copy would not preserve.
            let dir = dir
                .canonicalize()
                .context(|| format!("--root {}", dir.display()))?;
            if !dir.is_dir() {
                return Err(Failure::sim(format!(
                    "--root {} is not a directory",
                    dir.display()
                )));
            }
            (dir, false)
        }
        None => {
            let dir = home.default_root(&args.name);
            fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
            (dir, true)
        }
    };
    let mut rec = MachineRecord {
        name: args.name,
        state: args.state,
        cpus: args.cpus,
        memory_mib: args.memory_mib,
        pid: None,
        mounts: 0,
        ports: 0,
        created_at: now_secs(),
        storage_gb: None,
        overlay_gb: None,
        image: args.image,
        network: false,
        ephemeral: false,
        labels,
        last_exit: None,
        state_reason: None,
        root,
        root_owned,
        sim: Behaviours::default(),
    };
    if rec.state == MachineState::Running {
        rec.start();
    }
    home.save(&rec)?;
    Ok(0)
}

fn set(home: &Home, args: SimSetArgs) -> Result<i32, Failure> {
    let mut rec = load(home, &args.name)?;
    if let Some(state) = args.state {
        if state == MachineState::Running {
            rec.start();
        } else {
            rec.state = state;
            rec.pid = None;
        }
    }
    if let Some(code) = args.last_exit_code {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        rec.last_exit = Some(crate::store::LastExit {
            cause: "exited".into(),
            exit_code: code,
            exited_at_unix_ms: ms,
            pid: std::process::id(),
        });
    }
    if let Some(reason) = args.state_reason {
        rec.state_reason = Some(reason).filter(|r| !r.is_empty());
    }
    let b = &mut rec.sim;
    if let Some(code) = args.exit_silent {
        b.exit_silent = Some(i32::from(code));
    }
    if let Some(code) = args.exit_after_stream {
        b.exit_after_stream = Some(i32::from(code));
    }
    if args.stderr_flood.is_some() {
        b.stderr_flood = args.stderr_flood;
    }
    if args.stderr_hostile {
        b.stderr_hostile = true;
    }
    if args.die_after.is_some() {
        b.die_after = args.die_after;
    }
    if args.truncate {
        b.truncate = true;
    }
    if args.corrupt_header {
        b.corrupt_header = true;
    }
    if args.hang_after.is_some() {
        b.hang_after = args.hang_after;
    }
    if args.throttle.is_some() {
        b.throttle = args.throttle.filter(|r| *r > 0);
    }
    if args.synthetic_size.is_some() {
        b.synthetic_size = args.synthetic_size;
    }
    if args.df_avail_kb.is_some() {
        b.df_avail_kb = args.df_avail_kb;
    }
    home.save(&rec)?;
    if let Some(msg) = args.pack_fail {
        // `pack create` names no machine, so this fault can only be home-wide.
        let mut cfg = home.stored_config()?;
        cfg.pack_fail = Some(msg).filter(|m| !m.is_empty());
        home.save_config(&cfg)?;
    }
    Ok(0)
}

fn config(home: &Home, args: SimConfigArgs) -> Result<i32, Failure> {
    let mut cfg = home.stored_config()?;
    let untouched = args.exec_cap.is_none()
        && args.stream_flag.is_none()
        && args.error_format_flag.is_none()
        && args.ls_hang_secs.is_none()
        && args.ls_fail.is_none()
        && args.pack_fail.is_none()
        && args.pack_delay_secs.is_none()
        && args.pack_archive.is_none();
    if untouched {
        // Show what is in force, env overrides included.
        let shown = serde_json::to_string_pretty(&cfg.with_env_overrides()?)
            .context(|| "serialize settings".into())?;
        println!("{shown}");
        return Ok(0);
    }
    if let Some(v) = args.exec_cap {
        cfg.exec_cap = v;
    }
    if let Some(v) = args.stream_flag {
        cfg.stream_flag = v;
    }
    if let Some(v) = args.error_format_flag {
        cfg.error_format_flag = v;
    }
    if let Some(v) = args.ls_hang_secs {
        cfg.ls_hang_secs = v;
    }
    if let Some(msg) = args.ls_fail {
        cfg.ls_fail = Some(msg).filter(|m| !m.is_empty());
    }
    if let Some(msg) = args.pack_fail {
        cfg.pack_fail = Some(msg).filter(|m| !m.is_empty());
    }
    if let Some(v) = args.pack_delay_secs {
        cfg.pack_delay_secs = v;
    }
    if let Some(v) = args.pack_archive {
        cfg.pack_archive = v;
    }
    home.save_config(&cfg)?;
    Ok(0)
}
