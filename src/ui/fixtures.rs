//! Builders for tests: an `App` at a fixed clock, machines, freeze event sequences,
//! history records, and rendering to a `TestBackend`.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::app::{Action, App, Effects, Settings};
use super::keys::KeyMap;
use crate::freeze::{Artifact, Failure, FreezeEvent, OutputStream, Progress, Stage, Transport};
use crate::history::{Kind, Outcome, Record, StageStatus};
use crate::machines::{bottle_machines, BottleMachine, Machine};

/// The fixed clock of every fixture: 2027-01-15T08:00:00Z.
pub const NOW_MS: u64 = 1_799_999_200_000;
pub const MIB: u64 = 1024 * 1024;

pub fn settings() -> Settings {
    Settings {
        prefix: "bot-bottle-".into(),
        state_dir: PathBuf::from("/home/op/.local/state/bot-bottle"),
        tmp_dir: PathBuf::from("/tmp"),
        refresh_ms: 3_000,
        theme: super::theme::ThemeName::Dark,
        bell: false,
        notify: false,
        prune_keep: 3,
        stall_after_ms: 10_000,
    }
}

/// An app of `w`×`h` at [`NOW_MS`], its history read and empty, no machines yet.
pub fn app(w: u16, h: u16) -> App {
    let mut a = App::new(settings(), KeyMap::defaults());
    a.update(Action::Resize {
        width: w,
        height: h,
    });
    a.update(Action::Tick { now_ms: NOW_MS });
    a.update(Action::HistoryLoaded(Ok(vec![])));
    a
}

pub fn machine(
    slug: &str,
    state: &str,
    cpus: u64,
    mem_mib: u64,
    age_secs: i64,
    image: Option<&str>,
) -> Machine {
    Machine {
        name: format!("bot-bottle-{slug}"),
        state: Some(state.into()),
        cpus: Some(cpus),
        memory_mib: Some(mem_mib),
        pid: (state == "running").then_some(4242),
        created_at: Some((NOW_MS / 1000) as i64 - age_secs),
        image: image.map(str::to_string),
        ..Machine::default()
    }
}

/// Running, stopped, failed, created and unsafe-named machines, as discovery keeps them.
pub fn mixed() -> Vec<BottleMachine> {
    // As smolvm 1.32 leaves a machine whose first start failed.
    let mut scratch = machine("scratch", "created", 1, 512, 50, None);
    scratch.last_exit = Some(crate::machines::LastExit {
        cause: Some("exited".into()),
        exit_code: Some(1),
        ..Default::default()
    });
    let mut hostile = machine("x", "running", 1, 512, 40, None);
    hostile.name = "bot-bottle-Evil\u{1b}]0;pwned\u{7}".into();
    bottle_machines(
        vec![
            machine("web", "running", 2, 2048, 3 * 3600, Some("node:22")),
            machine("api", "running", 4, 4096, 26 * 3600, Some("python:3.13")),
            machine("db", "stopped", 2, 1024, 9 * 86_400, Some("postgres:17")),
            scratch,
            machine("broken", "failed", 2, 2048, 600, Some("node:22")),
            hostile,
            machine("other", "running", 1, 512, 40, None),
        ]
        .into_iter()
        .map(|mut m| {
            if m.name == "bot-bottle-other" {
                // Not a bot-bottle: filtered out by discovery.
                m.name = "someone-else".into();
            }
            m
        })
        .collect(),
        "bot-bottle-",
        true,
    )
}

/// An app with the mixed machines loaded, `web` selected.
pub fn with_machines(w: u16, h: u16) -> App {
    let mut a = app(w, h);
    a.update(Action::Machines(Ok(mixed())));
    select(&mut a, "bot-bottle-web");
    a
}

/// An app watching three hosts (the local CLI, `build` and `old`), nothing listed yet.
pub fn fleet_app(w: u16, h: u16) -> App {
    let mut a = App::new(settings(), KeyMap::defaults());
    a.set_fleet(vec![
        super::fleet::HostState::new("local", "smolvm CLI", true),
        super::fleet::HostState::new("build", "http://127.0.0.1:7070", false),
        super::fleet::HostState::new("old", "unix:///run/old.sock", false),
    ]);
    a.update(Action::Resize {
        width: w,
        height: h,
    });
    a
}

/// A host's answer with `(slug, state)` machines and smolvm 1.32.2.
pub fn host_listed(label: &str, machines: &[(&str, &str)]) -> Action {
    let host = (label != "local").then(|| crate::names::Slug::parse(label).unwrap());
    let mut list = bottle_machines(
        machines
            .iter()
            .map(|(slug, state)| machine(slug, state, 2, 2048, 3600, Some("node:22")))
            .collect(),
        "bot-bottle-",
        true,
    );
    for m in &mut list {
        m.host = host.clone();
    }
    Action::HostListed(super::fleet::HostListed {
        label: label.into(),
        version: (label != "local").then(|| "1.32.2".into()),
        machines: Ok(list),
    })
}

/// [`fleet_app`] after every host answered: build has api and web, local has db
/// (stopped), old has cache and web.
pub fn fleet_loaded(w: u16, h: u16) -> App {
    let mut a = fleet_app(w, h);
    a.update(Action::Tick { now_ms: NOW_MS });
    a.update(host_listed(
        "build",
        &[("web", "running"), ("api", "running")],
    ));
    a.update(host_listed("local", &[("db", "stopped")]));
    a.update(host_listed(
        "old",
        &[("web", "running"), ("cache", "running")],
    ));
    a.update(Action::HistoryLoaded(Ok(vec![])));
    a
}

/// A root's content summary: a base of three folders plus `extra` (path, is a folder, size).
fn content_of(extra: &[(&str, bool, u64)]) -> crate::content::ContentSummary {
    let mut t = crate::content::ContentTally::new();
    for (p, d, s) in [
        ("./usr/", true, 0),
        ("./usr/lib/", true, 0),
        ("./usr/lib/libnode.so", false, 80 * MIB),
        ("./usr/share/", true, 0),
        ("./usr/share/zoneinfo", false, 3 * MIB),
        ("./home/", true, 0),
        ("./home/node/", true, 0),
        ("./home/node/.npm/", true, 0),
    ]
    .iter()
    .chain(extra)
    {
        t.add(p.as_bytes(), *d, *s);
    }
    t.finish()
}

/// The record view of web's newest freeze, whose root changed since the day before: the npm
/// cache grew, /opt (with a hostile name) appeared, /tmp went.
pub fn what_changed(w: u16, h: u16) -> App {
    let mut a = with_machines(w, h);
    a.update(key('h'));
    let mut rs = records();
    let mut older = rs[0].clone();
    older.id = "20270114T060000Z-web-0000".into();
    older.started_at_ms -= 86_400_000;
    older.ended_at_ms = older.ended_at_ms.map(|t| t - 86_400_000);
    older.content = Some(content_of(&[
        ("./home/node/.npm/cache", false, 40 * MIB),
        ("./tmp/", true, 0),
        ("./tmp/build/", true, 0),
        ("./tmp/build/out.o", false, 12 * MIB),
    ]));
    rs[0].content = Some(content_of(&[
        ("./home/node/.npm/cache", false, 900 * MIB),
        ("./opt/", true, 0),
        ("./opt/\x1b[2Jtools/", true, 0),
        ("./opt/\x1b[2Jtools/bin", false, 25 * MIB),
    ]));
    let newer = rs[0].clone();
    rs.insert(1, older);
    a.update(Action::HistoryLoaded(Ok(rs)));
    a.update(code(crossterm::event::KeyCode::Enter));
    a.update(Action::RecordLoaded {
        id: newer.id.clone(),
        result: Ok(Box::new(super::app::LoadedRecord {
            record: newer,
            logs: vec![],
        })),
    });
    a
}

pub fn select(a: &mut App, name: &str) {
    for _ in 0..20 {
        if a.machines.selected.as_deref() == Some(name) {
            return;
        }
        a.update(key('j'));
    }
    for _ in 0..20 {
        if a.machines.selected.as_deref() == Some(name) {
            return;
        }
        a.update(key('k'));
    }
}

pub fn key(c: char) -> Action {
    Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

pub fn code(c: KeyCode) -> Action {
    Action::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

pub fn ctrl(c: char) -> Action {
    Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub fn typed(a: &mut App, s: &str) {
    for c in s.chars() {
        a.update(key(c));
    }
}

pub fn id_of(slug: &str) -> String {
    format!("20270115T075800Z-{slug}-0a1b")
}

/// Opens the freeze dialog on the selected machine, answers its probes and confirms.
pub fn confirm_freeze(a: &mut App) -> Effects {
    a.update(key('f'));
    if let Some(super::state::Dialog::Freeze(d)) = &a.dialog {
        let machine = d.machine.clone();
        a.update(Action::Space {
            machine,
            tmp_free: Ok(40 * 1024 * MIB),
            estimate: Ok(1200 * MIB),
        });
    }
    a.update(key('y'))
}

fn ev(a: &mut App, e: FreezeEvent) {
    a.update(Action::Freeze(e));
}

/// How long after its start a fixture freeze is in `stage`, when it is looked at.
fn looked_at(stage: Stage) -> u64 {
    match stage {
        Stage::ExecTar => 13_000,
        Stage::Build => 17_100,
        Stage::Push => 40_200,
        Stage::Pack => 52_500,
    }
}

/// Starts a freeze of `bot-bottle-<slug>` (selected) and plays its events up to
/// `upto`, running; the clock ends at [`NOW_MS`].
pub fn freeze_until(a: &mut App, slug: &str, upto: Stage) {
    play(a, slug, upto, NOW_MS - looked_at(upto));
}

fn play(a: &mut App, slug: &str, upto: Stage, start: u64) {
    let id = id_of(slug);
    let machine = format!("bot-bottle-{slug}");
    select(a, &machine);
    a.update(Action::Tick { now_ms: start });
    confirm_freeze(a);
    ev(
        a,
        FreezeEvent::Started {
            id: id.clone(),
            machine: machine.clone(),
            slug: slug.into(),
            at_ms: start,
        },
    );
    ev(
        a,
        FreezeEvent::StageStarted {
            id: id.clone(),
            stage: Stage::ExecTar,
            does: None,
        },
    );
    ev(
        a,
        FreezeEvent::TransportChosen {
            id: id.clone(),
            transport: Transport::Pipe,
        },
    );
    ev(
        a,
        FreezeEvent::Note {
            id: id.clone(),
            stage: Stage::ExecTar,
            message: "streaming through the pipe (smolvm supports --stream)".into(),
        },
    );
    // Twelve seconds of streaming at a varying rate.
    let rates = [4u64, 9, 12, 11, 6, 3, 8, 14, 15, 10, 7, 5];
    let mut bytes = 0;
    for (s, r) in rates.iter().enumerate() {
        for q in 0..4u64 {
            bytes += r * MIB / 4;
            let elapsed = s as u64 * 1000 + q * 250 + 100;
            a.update(Action::Tick {
                now_ms: start + 1_000 + elapsed,
            });
            ev(
                a,
                FreezeEvent::Progress {
                    id: id.clone(),
                    stage: Stage::ExecTar,
                    progress: Progress {
                        bytes,
                        total: None,
                        entries: Some(bytes / 40_000),
                        current_path: Some("./usr/lib/node_modules/npm/node_modules/@npmcli/arborist/lib/arborist/reify.js".into()),
                        elapsed_ms: elapsed,
                        layers: Vec::new(),
                    },
                },
            );
        }
    }
    ev(
        a,
        FreezeEvent::Output {
            id: id.clone(),
            stage: Stage::ExecTar,
            stream: OutputStream::Stderr,
            lines: vec![
                "tar: Removing leading `/' from member names".into(),
                "tar: ./var/log/app.log: file changed as we read it".into(),
            ],
            dropped: 0,
        },
    );
    if upto == Stage::ExecTar {
        a.update(Action::Tick {
            now_ms: start + looked_at(upto),
        });
        return;
    }
    ev(
        a,
        FreezeEvent::StageFinished {
            id: id.clone(),
            stage: Stage::ExecTar,
            duration_ms: 12_300,
            warnings: vec!["./var/log/app.log: file changed as we read it".into()],
        },
    );
    a.update(Action::Tick {
        now_ms: start + 14_000,
    });
    ev(
        a,
        FreezeEvent::StageStarted {
            id: id.clone(),
            stage: Stage::Build,
            does: None,
        },
    );
    ev(
        a,
        FreezeEvent::Output {
            id: id.clone(),
            stage: Stage::Build,
            stream: OutputStream::Stdout,
            lines: vec![
                "Step 1/4 : FROM scratch".into(),
                "Step 2/4 : ADD rootfs.tar /".into(),
            ],
            dropped: 0,
        },
    );
    ev(
        a,
        FreezeEvent::Progress {
            id: id.clone(),
            stage: Stage::Build,
            progress: Progress {
                bytes: 45 * MIB,
                total: Some(bytes),
                entries: None,
                current_path: None,
                elapsed_ms: 3_100,
                layers: Vec::new(),
            },
        },
    );
    if upto == Stage::Build {
        a.update(Action::Tick {
            now_ms: start + looked_at(upto),
        });
        return;
    }
    ev(
        a,
        FreezeEvent::Output {
            id: id.clone(),
            stage: Stage::Build,
            stream: OutputStream::Stdout,
            lines: vec![
                "Step 3/4 : USER node".into(),
                "Step 4/4 : WORKDIR /home/node".into(),
                "Successfully built 0123456789ab".into(),
            ],
            dropped: 0,
        },
    );
    ev(
        a,
        FreezeEvent::StageFinished {
            id: id.clone(),
            stage: Stage::Build,
            duration_ms: 21_400,
            warnings: vec![],
        },
    );
    a.update(Action::Tick {
        now_ms: start + 36_000,
    });
    ev(
        a,
        FreezeEvent::StageStarted {
            id: id.clone(),
            stage: Stage::Push,
            does: None,
        },
    );
    ev(
        a,
        FreezeEvent::Progress {
            id: id.clone(),
            stage: Stage::Push,
            progress: Progress {
                bytes: 30 * MIB,
                total: Some(118 * MIB),
                entries: None,
                current_path: None,
                elapsed_ms: 4_200,
                layers: Vec::new(),
            },
        },
    );
    if upto == Stage::Push {
        a.update(Action::Tick {
            now_ms: start + looked_at(upto),
        });
        return;
    }
    ev(
        a,
        FreezeEvent::StageFinished {
            id: id.clone(),
            stage: Stage::Push,
            duration_ms: 9_800,
            warnings: vec![],
        },
    );
    a.update(Action::Tick {
        now_ms: start + 46_000,
    });
    ev(
        a,
        FreezeEvent::StageStarted {
            id: id.clone(),
            stage: Stage::Pack,
            does: None,
        },
    );
    ev(
        a,
        FreezeEvent::Output {
            id: id.clone(),
            stage: Stage::Pack,
            stream: OutputStream::Stderr,
            lines: vec![
                "Pulling 127.0.0.1:41234/bot-bottle-committed:0123456789abcdef".into(),
                "Packing layers (2/3)".into(),
            ],
            dropped: 0,
        },
    );
    a.update(Action::Tick {
        now_ms: start + looked_at(upto),
    });
}

/// Plays a whole successful freeze, ending at [`NOW_MS`].
pub fn freeze_done(a: &mut App, slug: &str) {
    play(a, slug, Stage::Pack, NOW_MS - 55_000);
    let id = id_of(slug);
    let sidecar = PathBuf::from(format!(
        "/home/op/.local/state/bot-bottle/{slug}/committed-smolmachine.smolmachine"
    ));
    ev(
        a,
        FreezeEvent::StageFinished {
            id: id.clone(),
            stage: Stage::Pack,
            duration_ms: 8_600,
            warnings: vec![],
        },
    );
    a.update(Action::Tick { now_ms: NOW_MS });
    ev(
        a,
        FreezeEvent::Done {
            id,
            artifact: Artifact {
                launcher: sidecar.with_extension(""),
                hint: format!(
                    "to export for migration: cp {} {slug}.smolmachine",
                    sidecar.display()
                ),
                sidecar,
                image: format!("bot-bottle-committed-{slug}:latest"),
                tag: "bot-bottle-committed:0123456789abcdef".into(),
            },
        },
    );
    a.update(Action::FreezeEnded {
        machine: format!("bot-bottle-{slug}"),
        error: None,
    });
}

/// The stderr of a hostile VM: an OSC title, a screen clear, invalid UTF-8 (as the
/// core escapes it), C1 and bidi controls (raw, escaped by the reducer).
pub fn hostile_lines() -> Vec<String> {
    vec![
        crate::sanitize::escape_bytes(b"\x1b]0;pwned\x07title changed?"),
        crate::sanitize::escape_bytes(b"\x1b[2J\x1b[Hscreen cleared?"),
        crate::sanitize::escape_bytes(b"bad utf-8: \xff\xfe\xc3("),
        "raw C1 \u{9b}31m and bidi \u{202e}txt.exe".into(),
        "tar: ./root/.ssh: Cannot open: Permission denied".into(),
        "tar: Exiting with failure status due to previous errors".into(),
    ]
}

/// A freeze that failed in exec-tar with a hostile stderr.
pub fn freeze_failed(a: &mut App, slug: &str) {
    freeze_until(a, slug, Stage::ExecTar);
    let id = id_of(slug);
    ev(
        a,
        FreezeEvent::Output {
            id: id.clone(),
            stage: Stage::ExecTar,
            stream: OutputStream::Stderr,
            lines: hostile_lines(),
            dropped: 3,
        },
    );
    ev(
        a,
        FreezeEvent::Failed {
            id,
            failure: Failure {
                stage: Stage::ExecTar,
                message: "tar exited with status 2".into(),
                exit_status: Some(2),
                stderr_tail: "tar: Exiting with failure status due to previous errors".into(),
            },
        },
    );
    a.update(Action::FreezeEnded {
        machine: format!("bot-bottle-{slug}"),
        error: None,
    });
}

/// A freeze cancelled during build.
pub fn freeze_cancelled(a: &mut App, slug: &str) {
    freeze_until(a, slug, Stage::Build);
    a.update(key('c'));
    a.update(key('y'));
    let id = id_of(slug);
    ev(
        a,
        FreezeEvent::Cancelled {
            id,
            stage: Some(Stage::Build),
        },
    );
    a.update(Action::FreezeEnded {
        machine: format!("bot-bottle-{slug}"),
        error: None,
    });
}

/// Three past freezes: a success, a failure in build, a cancellation.
pub fn records() -> Vec<Record> {
    let mut ok = Record::new(
        "20270115T060000Z-web-1111",
        Kind::Freeze,
        "bot-bottle-web",
        "web",
    );
    ok.started_at_ms = NOW_MS - 2 * 3_600_000;
    ok.ended_at_ms = Some(ok.started_at_ms + 62_000);
    ok.outcome = Outcome::Succeeded;
    ok.bytes = 1_234 * MIB;
    ok.entries = 48_210;
    ok.transport = Some(Transport::Pipe);
    for s in ok.stages.iter_mut() {
        s.status = StageStatus::Done;
        s.duration_ms = Some(10_000);
    }
    let sidecar =
        PathBuf::from("/home/op/.local/state/bot-bottle/web/committed-smolmachine.smolmachine");
    ok.artifact = Some(Artifact {
        launcher: sidecar.with_extension(""),
        hint: format!(
            "to export for migration: cp {} web.smolmachine",
            sidecar.display()
        ),
        sidecar,
        image: "bot-bottle-committed-web:latest".into(),
        tag: "bot-bottle-committed:0123456789abcdef".into(),
    });

    let mut failed = Record::new(
        "20270115T050000Z-api-2222",
        Kind::Freeze,
        "bot-bottle-api",
        "api",
    );
    failed.started_at_ms = NOW_MS - 3 * 3_600_000;
    failed.ended_at_ms = Some(failed.started_at_ms + 31_500);
    failed.outcome = Outcome::Failed;
    failed.bytes = 800 * MIB;
    failed.entries = 20_001;
    failed.transport = Some(Transport::GuestFile);
    failed.stage_mut(Stage::ExecTar).status = StageStatus::Warning;
    failed.stage_mut(Stage::ExecTar).duration_ms = Some(20_000);
    failed.stage_mut(Stage::Build).status = StageStatus::Failed;
    failed.stage_mut(Stage::Build).duration_ms = Some(11_500);
    failed.warnings = vec!["./var/log/app.log: file changed as we read it".into()];
    failed.failure = Some(Failure {
        stage: Stage::Build,
        message: "the Docker daemon refused the build context: no space left on device".into(),
        exit_status: None,
        stderr_tail: "<no stderr>".into(),
    });
    failed.commands = vec![vec![
        "smolvm".into(),
        "machine".into(),
        "exec".into(),
        "--name".into(),
        "bot-bottle-api".into(),
        "--stream".into(),
        "--".into(),
        "tar".into(),
    ]];

    let mut cancelled = Record::new(
        "20270114T080000Z-db-3333",
        Kind::Freeze,
        "bot-bottle-db",
        "db",
    );
    cancelled.started_at_ms = NOW_MS - 86_400_000;
    cancelled.ended_at_ms = Some(cancelled.started_at_ms + 5_000);
    cancelled.outcome = Outcome::Cancelled;
    cancelled.stage_mut(Stage::ExecTar).status = StageStatus::Cancelled;
    vec![ok, failed, cancelled]
}

/// The logs of the failed record.
pub fn failed_logs() -> Vec<(Stage, Option<String>)> {
    vec![
        (
            Stage::ExecTar,
            Some(
                [
                    "tar: Removing leading `/' from member names",
                    "tar: ./var/log/app.log: file changed as we read it",
                    "exported 800.0 MiB via guest-file",
                ]
                .join("\n"),
            ),
        ),
        (
            Stage::Build,
            Some(
                [
                    "Step 1/4 : FROM scratch",
                    "Step 2/4 : ADD rootfs.tar /",
                    "write /var/lib/docker/tmp/docker-builder1234/rootfs.tar: no space left on device",
                    "the Docker daemon refused the build context: no space left on device",
                ]
                .join("\n"),
            ),
        ),
        (Stage::Push, None),
        (Stage::Pack, None),
    ]
}

/// Renders `a` on a `TestBackend` of its size.
pub fn render(a: &App) -> Terminal<TestBackend> {
    let mut t = match Terminal::new(TestBackend::new(a.area.width, a.area.height)) {
        Ok(t) => t,
        Err(e) => match e {},
    };
    let _ = t.draw(|f| super::draw(f, a));
    t
}

/// The screen as text, one line per row.
pub fn screen(a: &App) -> String {
    let t = render(a);
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}
