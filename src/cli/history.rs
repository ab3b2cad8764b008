//! `bottle-freeze history` and `history show <id>`.

use std::process::ExitCode;
use std::time::Duration;

use crate::args::{HistoryArgs, HistoryCommand};
use crate::format;
use crate::freeze::Stage;
use crate::history::{now_ms, resolve, when, History, Kind, Outcome, Record, RecordFilter};
use crate::sanitize::{escape_str, escape_text};

pub fn run(state_dir: &std::path::Path, args: &HistoryArgs) -> ExitCode {
    let h = History::new(state_dir);
    match &args.command {
        Some(HistoryCommand::Show { id, json }) => show(&h, id, *json || args.json),
        None => list(&h, args),
    }
}

/// The filter the flags ask for.
fn filter_of(args: &HistoryArgs) -> RecordFilter {
    let mut outcomes = Vec::new();
    if args.failed {
        outcomes.extend([Outcome::Failed, Outcome::Interrupted]);
    }
    if args.succeeded {
        outcomes.extend([Outcome::Succeeded, Outcome::SucceededWithWarnings]);
    }
    if args.cancelled {
        outcomes.push(Outcome::Cancelled);
    }
    RecordFilter {
        machine: args.machine.clone(),
        outcomes,
        since_ms: args.since.map(|age| now_ms().saturating_sub(age)),
        kind: None,
    }
}

fn list(h: &History, args: &HistoryArgs) -> ExitCode {
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
    let filter = filter_of(args);
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| filter.matches(r))
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    if args.json {
        return print_json(&records);
    }
    if records.is_empty() {
        if filter == RecordFilter::default() {
            println!("no freezes yet (history in {})", h.root().display());
        } else {
            println!("no records match");
        }
        return ExitCode::SUCCESS;
    }
    // Exports are not freezes: marked as such and listed apart, after them (one table,
    // so that scripts reading the first column keep working).
    let (freezes, exports): (Vec<&Record>, Vec<&Record>) =
        records.iter().partition(|r| r.kind == Kind::Freeze);
    let rows: Vec<&Record> = freezes.into_iter().chain(exports).collect();
    table(&rows, now_ms());
    ExitCode::SUCCESS
}

/// Record ids are printed whole: `history show` and `--resume` need them.
fn table(records: &[&Record], now: u64) {
    let id_w = records.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let m_w = records
        .iter()
        .map(|r| escape_str(&r.slug).chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    println!(
        "{:<id_w$}  {:<6}  {:<m_w$}  {:<24} {:>9} {:>9} {:>10}",
        "ID", "KIND", "MACHINE", "OUTCOME", "STARTED", "DURATION", "SIZE"
    );
    for r in records {
        println!(
            "{:<id_w$}  {:<6}  {:<m_w$}  {:<24} {:>9} {:>9} {:>10}",
            r.id,
            match r.kind {
                Kind::Freeze => "freeze",
                Kind::Export => "export",
            },
            escape_str(&r.slug),
            r.outcome_text(),
            ago(now, r.started_at_ms),
            r.duration_ms()
                .map(|d| format::duration(Duration::from_millis(d)))
                .unwrap_or_else(|| "-".into()),
            format::bytes(r.bytes),
        );
    }
}

/// `3m ago`, from `at_ms` to `now_ms`.
fn ago(now_ms: u64, at_ms: u64) -> String {
    format!("{} ago", format::age(now_ms.saturating_sub(at_ms) / 1000))
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

fn show(h: &History, key: &str, json: bool) -> ExitCode {
    let records = match h.list() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bottle-freeze: {e}");
            return ExitCode::from(2);
        }
    };
    let record = match resolve(&records, key) {
        Ok(r) => r.clone(),
        Err(e) => {
            eprintln!("bottle-freeze: {}", escape_str(&e));
            return ExitCode::from(2);
        }
    };
    let previous = crate::history::previous_success(&records, &record);
    let id = record.id.as_str();
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
        let mut doc = serde_json::json!({ "record": record, "logs": logs_json });
        if let (Some(p), Some(now)) = (previous, &record.content) {
            if let Some(before) = &p.content {
                doc["changes"] = serde_json::json!({
                    "since": p.id,
                    "bytes_before": before.bytes,
                    "bytes_after": now.bytes,
                    "dirs": crate::content::diff(before, now),
                });
            }
        }
        return print_json(&doc);
    }
    println!("freeze {}", record.id);
    println!("machine   {}", escape_str(&record.machine));
    println!("outcome   {}", record.outcome_text());
    println!(
        "started   {} ({})",
        when(record.started_at_ms),
        ago(now_ms(), record.started_at_ms)
    );
    if record.kind == Kind::Export {
        println!("kind      export (exec-tar only)");
    }
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
    for line in content_lines(&record, previous) {
        println!("{line}");
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
        if record.stage(stage).status == crate::history::StageStatus::Skipped {
            // A stage that never ran has no log: its header says so.
            println!("\n── {stage}: skipped (never ran) ──");
            continue;
        }
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

/// The largest directories, and what changed since `previous`, as printed lines.
fn content_lines(record: &Record, previous: Option<&Record>) -> Vec<String> {
    use crate::content::{change_lines, diff, largest_lines, total_line, SHOWN};
    let Some(now) = &record.content else {
        return Vec::new();
    };
    let mut out = vec![
        String::new(),
        "largest directories: file bytes, entries (all below counted):".into(),
    ];
    out.extend(
        largest_lines(now, SHOWN)
            .into_iter()
            .map(|l| format!("  {l}")),
    );
    if let Some((p, before)) = previous.and_then(|p| Some((p, p.content.as_ref()?))) {
        out.push(String::new());
        out.push(format!(
            "changes since {} ({}): {}",
            p.id,
            when(p.started_at_ms),
            total_line(before, now)
        ));
        let changes = diff(before, now);
        if changes.is_empty() {
            out.push("  no directory grew, shrank, appeared or went".into());
        }
        out.extend(
            change_lines(&changes, SHOWN)
                .into_iter()
                .map(|l| format!("  {l}")),
        );
    }
    out
}
