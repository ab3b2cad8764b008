//! `machine ls`: smolvm's JSON array and table (src/cli/vm_common.rs `list_vms`).

use std::io::Write;

use serde_json::{json, Value};

use crate::cli::LsArgs;
use crate::error::{Context, Failure};
use crate::store::{Home, MachineRecord, MachineState};

/// smolvm's defaults shown in the table when a record has no explicit disk sizes.
const DEFAULT_STORAGE_SIZE_GIB: u64 = 20;
const DEFAULT_OVERLAY_SIZE_GIB: u64 = 10;

pub fn run(home: &Home, args: &LsArgs) -> Result<i32, Failure> {
    let cfg = home.config()?;
    if cfg.ls_hang_secs > 0 {
        std::thread::sleep(std::time::Duration::from_secs(cfg.ls_hang_secs));
    }
    if let Some(msg) = cfg.ls_fail {
        return Err(Failure::smolvm(msg));
    }
    let fault = crate::faults::ls_fault();
    match fault {
        Some(crate::faults::LsFault::StdoutFlood(n)) => {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(b"[");
            crate::faults::flood(&mut o, n, |k| vec![b' '; k as usize]);
            return Ok(0);
        }
        Some(crate::faults::LsFault::StderrFlood(n)) => {
            let mut line = 0;
            crate::faults::flood(&mut std::io::stderr().lock(), n, |k| {
                crate::faults::flood_text(k, &mut line)
            });
            return Ok(1);
        }
        Some(crate::faults::LsFault::Linger(secs)) => {
            // A child that inherits our stdout and outlives us, as a daemon might.
            let _ = std::process::Command::new("sleep")
                .arg(secs.to_string())
                .stdin(std::process::Stdio::null())
                .spawn();
        }
        _ => {}
    }
    let mut machines = home.list()?;
    if fault == Some(crate::faults::LsFault::Duplicate) {
        machines = machines.into_iter().flat_map(|m| [m.clone(), m]).collect();
    }
    let mut out = String::new();
    if machines.is_empty() {
        out.push_str(if args.json {
            "[]\n"
        } else {
            "No machines found\n"
        });
    } else if args.json {
        let objs: Vec<Value> = machines.iter().map(machine_json).collect();
        out.push_str(&serde_json::to_string_pretty(&objs).context(|| "serialize json".into())?);
        out.push('\n');
    } else {
        table(&machines, args.verbose, &mut out);
    }
    // A closed pipe (`| head`) just means the reader is done.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(0)
}

/// The object smolvm 1.32.2 prints for a machine, key for key and in its (alphabetical)
/// order; `last_exit` is present only once the VM process has exited. The parity test
/// in tests/real_smolvm.rs compares these keys and types with the real binary's.
fn machine_json(m: &MachineRecord) -> Value {
    let pid = if m.state == MachineState::Running {
        m.pid
    } else {
        None
    };
    let mut v = json!({
        "block_io": "sync",
        "branchable": false,
        "branchpoint_held": false,
        "cmd": Vec::<String>::new(),
        "cpus": m.cpus,
        "created_at": m.created_at,
        "cuda": false,
        "cuda_branch_pool_size": null,
        "cuda_fork_pool_size": null,
        "cuda_vram_limit_mib": null,
        "detached": false,
        "disk_durability": "full",
        "disks": Vec::<String>::new(),
        "entrypoint": Vec::<String>::new(),
        "ephemeral": m.ephemeral,
        "forkable": false,
        "forkpoint_held": false,
        "gpu": false,
        "gpu_vram_mib": null,
        "health_cmd": null,
        "health_interval_secs": null,
        "health_retries": null,
        "health_startup_grace_secs": null,
        "health_timeout_secs": null,
        "image": m.image,
        "labels": m.labels,
        "memory_mib": m.memory_mib,
        "mounts": m.mounts,
        "name": m.name,
        "network": m.network,
        "overlay_gb": m.overlay_gb,
        "parent_machine": null,
        "pid": pid,
        "ports": m.ports,
        "restart_count": 0,
        "restart_max_retries": 0,
        "restart_policy": "never",
        "state": m.state.to_string(),
        "state_reason": m.state_reason,
        "storage_gb": m.storage_gb,
    });
    if let (Some(obj), Some(exit)) = (v.as_object_mut(), &m.last_exit) {
        obj.insert("last_exit".into(), json!(exit));
    }
    v
}

fn table(machines: &[MachineRecord], verbose: bool, out: &mut String) {
    out.push_str(&format!(
        "{:<20} {:<12} {:>5} {:>10} {:>7} {:>7} {:>8} {:>8}\n",
        "NAME", "STATE", "CPUS", "MEMORY", "MOUNTS", "PORTS", "STORAGE", "OVERLAY"
    ));
    out.push_str(&"-".repeat(88));
    out.push('\n');
    for m in machines {
        let state = if m.ephemeral {
            format!("{} (eph)", m.state)
        } else {
            m.state.to_string()
        };
        out.push_str(&format!(
            "{:<20} {:<12} {:>5} {:>10} {:>7} {:>7} {:>8} {:>8}\n",
            truncate(&m.name, 18),
            state,
            m.cpus,
            format!("{} MiB", m.memory_mib),
            m.mounts,
            m.ports,
            format!("{} GiB", m.storage_gb.unwrap_or(DEFAULT_STORAGE_SIZE_GIB)),
            format!("{} GiB", m.overlay_gb.unwrap_or(DEFAULT_OVERLAY_SIZE_GIB)),
        ));
        if verbose {
            if let (MachineState::Running, Some(pid)) = (m.state, m.pid) {
                out.push_str(&format!("  PID: {pid}\n"));
            }
            if m.network {
                out.push_str("  Network: enabled\n");
            }
            let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.created_at);
            out.push_str(&format!(
                "  Created: {}\n\n",
                humantime::format_rfc3339_seconds(created)
            ));
        }
    }
}

/// smolvm's `truncate`, but on characters so a multi-byte name cannot split.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let kept: String = s.chars().take(max.saturating_sub(3)).collect();
        format!("{kept}...")
    }
}
