//! `bottle-freeze list`.

use std::process::ExitCode;
use std::time::SystemTime;

use crate::args::ListArgs;
use crate::freeze::FreezeConfig;
use crate::machines::{discover, ListEntry};
use crate::sanitize::escape_str;

pub async fn run(cfg: &FreezeConfig, args: &ListArgs) -> ExitCode {
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
    // Notes go to stderr: stdout holds only the table.
    for note in notes(&entries) {
        eprintln!("{note}");
    }
    ExitCode::SUCCESS
}

/// Why listed machines cannot be frozen, when their names are unsafe.
fn notes(entries: &[ListEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.slug.is_none())
        .filter_map(|e| {
            e.refusal
                .as_ref()
                .map(|why| format!("note: {} cannot be frozen: {why}", escape_str(&e.name)))
        })
        .collect()
}

fn table(entries: &[ListEntry]) -> String {
    if entries.is_empty() {
        return "no bot-bottle machines\n".to_string();
    }
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.slug.clone().unwrap_or_else(|| escape_str(&e.name)),
                e.state
                    .clone()
                    .map(|s| escape_str(&s))
                    .unwrap_or_else(|| "-".into()),
                e.cpus.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                // As the dashboard shows it; `--json` keeps the MiB.
                e.memory_mib
                    .map(|m| crate::format::bytes(m.saturating_mul(1 << 20)))
                    .unwrap_or_else(|| "-".into()),
                e.image
                    .clone()
                    .map(|s| escape_str(&s))
                    .unwrap_or_else(|| "-".into()),
                e.age_seconds
                    .map(crate::format::age)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["SLUG", "STATE", "CPUS", "MEMORY", "IMAGE", "AGE"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
