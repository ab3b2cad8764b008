//! `bottle-freeze list`.

use std::process::ExitCode;
use std::time::SystemTime;

use crate::args::ListArgs;
use crate::config::Settings;
use crate::freeze::FreezeConfig;
use crate::hosts::{self, Host};
use crate::machines::{bottle_machines, discover, ListEntry};
use crate::sanitize::escape_str;

pub async fn run(cfg: &FreezeConfig, args: &ListArgs, settings: &Settings) -> ExitCode {
    if args.all_hosts || !settings.hosts.is_empty() {
        return run_hosts(cfg, args, settings).await;
    }
    let machines = match discover(&cfg.smolvm, &cfg.prefix, args.all).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("bottle-freeze: {e}");
            return ExitCode::from(2);
        }
    };
    let now = SystemTime::now();
    let entries: Vec<ListEntry> = machines
        .iter()
        .map(|m| ListEntry::from_machine(m, now))
        .collect();
    if args.json {
        match serde_json::to_string_pretty(&entries) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("bottle-freeze: cannot encode JSON: {e}");
                return ExitCode::from(2);
            }
        }
        return ExitCode::SUCCESS;
    }
    print!("{}", table(&entries));
    ExitCode::SUCCESS
}

/// The fleet's list: every host asked at once, each with its own timeout; a host that
/// cannot be listed is named on stderr and the others are still shown (exit 1).
async fn run_hosts(cfg: &FreezeConfig, args: &ListArgs, settings: &Settings) -> ExitCode {
    let hosts = match hosts::parse_all(&settings.hosts, settings.insecure_remote) {
        Ok(h) if h.is_empty() => vec![Host::local()],
        Ok(h) => h,
        Err(e) => {
            eprintln!("bottle-freeze: {e}");
            return ExitCode::from(2);
        }
    };
    let listings = hosts::list_hosts(&hosts, &cfg.smolvm, cfg.smolvm.query_timeout()).await;
    let now = SystemTime::now();
    let mut entries = Vec::new();
    let mut down = 0;
    for l in &listings {
        match &l.machines {
            Ok(ms) => {
                for b in bottle_machines(ms.clone(), &cfg.prefix, args.all) {
                    let mut e = ListEntry::from_machine(&b, now);
                    e.host = Some(l.host.to_string());
                    entries.push(e);
                }
            }
            Err(why) => {
                down += 1;
                eprintln!(
                    "bottle-freeze: host {} ({}) unreachable: {why}",
                    l.host,
                    escape_str(&l.host.address())
                );
            }
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&entries) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("bottle-freeze: cannot encode JSON: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", table(&entries));
    }
    match down {
        0 => ExitCode::SUCCESS,
        n if n == listings.len() => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

fn table(entries: &[ListEntry]) -> String {
    if entries.is_empty() {
        return "no bot-bottle machines\n".to_string();
    }
    let with_host = entries.iter().any(|e| e.host.is_some());
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let mut row = Vec::with_capacity(7);
            if with_host {
                row.push(e.host.clone().unwrap_or_else(|| "-".into()));
            }
            row.extend([
                e.slug.clone().unwrap_or_else(|| escape_str(&e.name)),
                e.state
                    .clone()
                    .map(|s| escape_str(&s))
                    .unwrap_or_else(|| "-".into()),
                e.cpus.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                e.memory_mib
                    .map(|m| format!("{m} MiB"))
                    .unwrap_or_else(|| "-".into()),
                e.image
                    .clone()
                    .map(|s| escape_str(&s))
                    .unwrap_or_else(|| "-".into()),
                e.age_seconds
                    .map(crate::format::age)
                    .unwrap_or_else(|| "-".into()),
            ]);
            row
        })
        .collect();
    let mut header: Vec<String> = ["SLUG", "STATE", "CPUS", "MEMORY", "IMAGE", "AGE"]
        .map(String::from)
        .to_vec();
    if with_host {
        header.insert(0, "HOST".into());
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for e in entries.iter().filter(|e| e.slug.is_none()) {
        if let Some(why) = &e.refusal {
            out.push_str(&format!(
                "note: {} cannot be frozen: {}\n",
                escape_str(&e.name),
                why
            ));
        }
    }
    out
}
