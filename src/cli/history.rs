//! `bottle-freeze history` and `history show <id>`.

use std::process::ExitCode;
use std::time::Duration;

use crate::args::{HistoryArgs, HistoryCommand};
use crate::format;
use crate::freeze::Stage;
use crate::history::{when, History};
use crate::sanitize::{escape_str, escape_text};

pub fn run(state_dir: &std::path::Path, args: &HistoryArgs) -> ExitCode {
    let h = History::new(state_dir);
    match &args.command {
        Some(HistoryCommand::Show { id, json }) => show(&h, id, *json || args.json),
        None => list(&h, args.json),
    }
}

fn list(h: &History, json: bool) -> ExitCode {
    let (records, damaged) = match h.list_all() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bottle-freeze: {e}");
            return ExitCode::from(2);
        }
    };
    for d in &damaged {
        eprintln!(
            "bottle-freeze: damaged record {} (not listed): {}",
            h.root().join(&d.folder).display(),
            d.why
        );
    }
    if json {
        return print_json(&records);
    }
    if records.is_empty() {
        println!("no freezes yet (history in {})", h.root().display());
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<40} {:<24} {:<24} {:<20} {:>9} {:>10}",
        "ID", "MACHINE", "OUTCOME", "STARTED", "DURATION", "SIZE"
    );
    for r in &records {
        println!(
            "{:<40} {:<24} {:<24} {:<20} {:>9} {:>10}",
            r.id,
            escape_str(&r.machine),
            r.outcome_text(),
            when(r.started_at_ms),
            r.duration_ms()
                .map(|d| format::duration(Duration::from_millis(d)))
                .unwrap_or_else(|| "-".into()),
            format::bytes(r.bytes),
        );
    }
    ExitCode::SUCCESS
}

fn print_json<T: serde::Serialize>(v: &T) -> ExitCode {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bottle-freeze: cannot encode JSON: {e}");
            ExitCode::from(2)
        }
    }
}

fn show(h: &History, id: &str, json: bool) -> ExitCode {
    let record = match h.load(id) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bottle-freeze: {e}");
            return ExitCode::from(2);
        }
    };
    let logs: Vec<(Stage, Option<String>)> = record
        .stages_failed_first()
        .into_iter()
        .map(|s| (s, h.read_log(id, s).ok().flatten().map(|b| escape_text(&b))))
        .collect();
    if json {
        let logs_json: serde_json::Map<String, serde_json::Value> = logs
            .iter()
            .map(|(s, l)| {
                (
                    s.name().to_string(),
                    l.clone()
                        .map(serde_json::Value::String)
                        .unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        return print_json(&serde_json::json!({ "record": record, "logs": logs_json }));
    }
    println!("freeze {}", record.id);
    println!("machine   {}", escape_str(&record.machine));
    println!("outcome   {}", record.outcome_text());
    println!("started   {}", when(record.started_at_ms));
    if let Some(d) = record.duration_ms() {
        println!("duration  {}", format::duration(Duration::from_millis(d)));
    }
    println!(
        "archive   {} in {} entries{}",
        format::bytes(record.bytes),
        record.entries,
        record
            .transport
            .map(|t| format!(" via {}", t.name()))
            .unwrap_or_default()
    );
    if let Some(d) = &record.layer_digest {
        println!("layer     {d}");
    }
    if let Some(d) = &record.docker {
        println!("docker    {}", escape_str(d));
    }
    if let Some(a) = &record.artifact {
        println!("artifact  {}", a.sidecar.display());
        println!("          {}", a.hint);
    }
    if let Some(f) = &record.failure {
        println!("error     {}", f.message);
        if let Some(c) = f.exit_status {
            println!("exit      {c}");
        }
    }
    for w in &record.warnings {
        println!("warning   {w}");
    }
    if let Some(found) = record.credentials.as_ref().filter(|f| !f.is_empty()) {
        println!("\nfiles named like credentials (names only; --exclude PATH leaves them out):");
        for c in &found.listed {
            println!("  {}  ({})", c.path, c.kind);
        }
        if found.more > 0 {
            println!("  … and {} more", found.more);
        }
    }
    println!("\nstages:");
    for s in &record.stages {
        println!(
            "  {:<9} {:<10} {:>8}{}",
            s.stage.name(),
            format!("{:?}", s.status).to_lowercase(),
            s.duration_ms
                .map(|d| format::duration(Duration::from_millis(d)))
                .unwrap_or_else(|| "-".into()),
            s.does
                .as_deref()
                .map(|d| format!("  {}", escape_str(d)))
                .unwrap_or_default()
        );
    }
    if !record.commands.is_empty() {
        println!("\ncommands:");
        for c in &record.commands {
            println!("  {}", crate::format::shell_words(c));
        }
    }
    for (stage, log) in logs {
        if let Some(log) = log {
            println!("\n── {stage} log ──");
            print!("{log}");
            if !log.ends_with('\n') {
                println!();
            }
        }
    }
    ExitCode::SUCCESS
}
