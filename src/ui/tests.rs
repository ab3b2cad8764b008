//! Snapshot tests of every pane and view on a `TestBackend`, and tests of the loop
//! driven by injected keys.

use crossterm::event::KeyCode;
use insta::assert_snapshot;

use super::app::{Action, View};
use super::fixtures::*;
use crate::freeze::Stage;

#[test]
fn empty_list() {
    let mut a = app(80, 24);
    a.update(Action::Machines(Ok(vec![])));
    assert_snapshot!(screen(&a));
}

#[test]
fn smolvm_missing() {
    let mut a = app(80, 24);
    a.update(Action::Machines(Err(
        "cannot run smolvm: No such file or directory (os error 2) (install smolvm, or point --smolvm / BOTTLE_FREEZE_SMOLVM at it)".into(),
    )));
    assert_snapshot!(screen(&a));
}

#[test]
fn still_looking() {
    let a = app(80, 24);
    assert_snapshot!(screen(&a));
}

#[test]
fn refresh_failure_keeps_the_list_and_says_stale() {
    let mut a = with_machines(80, 24);
    a.update(Action::Tick {
        now_ms: NOW_MS + 3_000,
    });
    a.update(Action::Machines(Err(
        "`smolvm machine ls --json` did not answer within 10 s".into(),
    )));
    a.update(Action::Tick {
        now_ms: NOW_MS + 20_000,
    });
    assert_snapshot!(screen(&a));
}

#[test]
fn mixed_states_80x24() {
    let a = with_machines(80, 24);
    assert_snapshot!(screen(&a));
}

#[test]
fn mixed_states_200x50() {
    let mut a = with_machines(200, 50);
    a.update(Action::HistoryLoaded(Ok(records())));
    assert_snapshot!(screen(&a));
}

#[test]
fn unsafe_name_selected() {
    let mut a = with_machines(100, 30);
    select(&mut a, "bot-bottle-Evil\u{1b}]0;pwned\u{7}");
    assert_snapshot!(screen(&a));
}

/// The parts' versions in the list's title, and what the host lacks under it.
#[test]
fn host_versions_and_what_is_missing() {
    let mut a = with_machines(120, 30);
    a.update(Action::Host {
        versions: "smolvm 1.32.2 · Docker 20.10.24 · registry 2.8.2".into(),
        missing: Some("missing on this host: kvm · `bottle-freeze doctor` says what to do".into()),
    });
    let s = screen(&a);
    let lines: Vec<&str> = s.lines().collect();
    assert!(
        lines[0].contains(" smolvm 1.32.2 · Docker 20.10.24 · registry 2.8.2 "),
        "{s}"
    );
    assert!(
        s.contains("missing on this host: kvm · `bottle-freeze doctor` says what to do"),
        "{s}"
    );
    assert_snapshot!(s);
}

/// A machine whose start failed says why it cannot be frozen, in smolvm's words.
#[test]
fn created_after_a_failed_start_selected() {
    let mut a = with_machines(100, 30);
    select(&mut a, "bot-bottle-scratch");
    let s = screen(&a);
    assert!(
        s.contains("cannot be frozen: machine is created (last start failed: VMM exited with"),
        "{s}"
    );
    assert_snapshot!(s);
}

#[test]
fn freeze_in_exec_tar_80x24() {
    let mut a = with_machines(80, 24);
    freeze_until(&mut a, "web", Stage::ExecTar);
    assert_snapshot!(screen(&a));
}

#[test]
fn freeze_in_exec_tar_200x50() {
    let mut a = with_machines(200, 50);
    a.update(Action::HistoryLoaded(Ok(records())));
    freeze_until(&mut a, "web", Stage::ExecTar);
    assert_snapshot!(screen(&a));
}

#[test]
fn freeze_in_build() {
    let mut a = with_machines(120, 30);
    freeze_until(&mut a, "web", Stage::Build);
    assert_snapshot!(screen(&a));
}

#[test]
fn freeze_in_push() {
    let mut a = with_machines(120, 30);
    freeze_until(&mut a, "web", Stage::Push);
    assert_snapshot!(screen(&a));
}

#[test]
fn freeze_in_pack() {
    let mut a = with_machines(120, 30);
    freeze_until(&mut a, "web", Stage::Pack);
    assert_snapshot!(screen(&a));
}

#[test]
fn freeze_done() {
    let mut a = with_machines(120, 30);
    super::fixtures::freeze_done(&mut a, "web");
    assert_snapshot!(screen(&a));
}

#[test]
fn freeze_failed_with_stderr() {
    let mut a = with_machines(120, 30);
    freeze_failed(&mut a, "web");
    let s = screen(&a);
    // Escapes shown as text, never a raw control character.
    assert!(!s.chars().any(|c| c.is_control() && c != '\n'), "{s}");
    assert!(s.contains("\\x1b]0;pwned\\x07"), "{s}");
    assert_snapshot!(s);
}

#[test]
fn freeze_failed_80x24() {
    let mut a = with_machines(80, 24);
    freeze_failed(&mut a, "web");
    assert_snapshot!(screen(&a));
}

#[test]
fn freeze_cancelled() {
    let mut a = with_machines(120, 30);
    super::fixtures::freeze_cancelled(&mut a, "web");
    assert_snapshot!(screen(&a));
}

#[test]
fn two_freezes_at_once_inline_progress() {
    let mut a = with_machines(120, 30);
    freeze_until(&mut a, "api", Stage::Push);
    freeze_until(&mut a, "web", Stage::ExecTar);
    assert_snapshot!(screen(&a));
}

#[test]
fn stderr_scrolled_and_wrapped() {
    let mut a = with_machines(120, 30);
    freeze_failed(&mut a, "web");
    a.update(key('w'));
    a.update(code(KeyCode::PageUp));
    assert_snapshot!(screen(&a));
}

#[test]
fn history_list() {
    let mut a = with_machines(100, 24);
    a.update(key('h'));
    a.update(Action::HistoryLoaded(Ok(records())));
    assert_eq!(a.view, View::History);
    assert_snapshot!(screen(&a));
}

/// Issue 14: a preview beside the list, relative times, exports marked and listed apart.
#[test]
fn history_with_preview_200x50() {
    let mut a = with_machines(200, 50);
    a.update(key('h'));
    let mut rs = records();
    let mut export = rs[0].clone();
    export.id = "20270115T063000Z-web-5555".into();
    export.kind = crate::history::Kind::Export;
    export.started_at_ms += 1_800_000;
    rs.insert(0, export);
    a.update(Action::HistoryLoaded(Ok(rs)));
    a.update(key('j'));
    let text = screen(&a);
    // The export is listed after the freezes, marked.
    let export_row = text.lines().position(|l| l.contains("· export")).unwrap();
    let db_row = text.lines().position(|l| l.contains("cancelled")).unwrap();
    assert!(export_row > db_row, "{text}");
    assert!(text.contains("preview"), "{text}");
    // The failed one's preview: its stage, status and first stderr lines.
    assert!(text.contains("stage    build"), "{text}");
    assert_snapshot!(text);
}

#[test]
fn history_empty() {
    let mut a = with_machines(80, 24);
    a.update(key('h'));
    a.update(Action::HistoryLoaded(Ok(vec![])));
    assert_snapshot!(screen(&a));
}

#[test]
fn record_view_with_search_hit() {
    let mut a = with_machines(100, 30);
    a.update(key('h'));
    a.update(Action::HistoryLoaded(Ok(records())));
    a.update(key('j'));
    a.update(code(KeyCode::Enter));
    let id = "20270115T050000Z-api-2222".to_string();
    a.update(Action::RecordLoaded {
        id: id.clone(),
        result: Ok(Box::new(super::app::LoadedRecord {
            record: records()[1].clone(),
            logs: failed_logs(),
        })),
    });
    a.update(key('/'));
    typed(&mut a, "no space");
    a.update(code(KeyCode::Enter));
    a.update(key('n'));
    assert_eq!(a.view, View::Record);
    assert_snapshot!(screen(&a));
}

#[test]
fn help_overlay_80x24() {
    let mut a = with_machines(80, 24);
    a.update(key('?'));
    assert_snapshot!(screen(&a));
}

#[test]
fn help_overlay_200x50() {
    let mut a = with_machines(200, 50);
    a.update(key('?'));
    assert_snapshot!(screen(&a));
}

#[test]
fn confirmation_dialog() {
    let mut a = with_machines(80, 24);
    a.update(key('f'));
    a.update(Action::Space {
        machine: "bot-bottle-web".into(),
        tmp_free: Ok(40 * 1024 * MIB),
        estimate: Ok(1200 * MIB),
    });
    a.update(Action::Checks {
        machine: "bot-bottle-web".into(),
        parts: vec![
            crate::freeze::PreCheck {
                level: crate::freeze::CheckLevel::Ok,
                text:
                    "Docker answers at unix:///var/run/docker.sock: the image is loaded beside pack"
                        .into(),
            },
            crate::freeze::PreCheck {
                level: crate::freeze::CheckLevel::Ok,
                text: "smolvm packs from the archive: no registry needed".into(),
            },
        ],
        state_free: Ok(40 * 1024 * MIB),
        same_disk: true,
    });
    assert_snapshot!(screen(&a));
}

/// Issue 14, item 14: the pre-checks say what would fail (Docker for the Docker build, a
/// missing registry) in the dialog, before confirming.
#[test]
fn confirmation_dialog_shows_failed_prechecks() {
    let mut a = with_machines(100, 30);
    a.update(key('f'));
    a.update(Action::Checks {
        machine: "bot-bottle-web".into(),
        parts: vec![crate::freeze::PreCheck {
            level: crate::freeze::CheckLevel::Fail,
            text: "the Docker build needs the daemon: cannot reach \x1b[2Jit".into(),
        }],
        state_free: Err("no such folder".into()),
        same_disk: false,
    });
    // The space still being checked: said, and the parts shown already.
    let text = screen(&a);
    assert!(
        text.contains("✗ the Docker build needs the daemon"),
        "{text}"
    );
    assert!(text.contains("… checking the space"), "{text}");
    assert!(!text.contains('\x1b'), "{text}");
    a.update(Action::Space {
        machine: "bot-bottle-web".into(),
        tmp_free: Ok(300 * MIB),
        estimate: Ok(1200 * MIB),
    });
    let text = screen(&a);
    assert!(text.contains("unknown (no such folder)"), "{text}");
    assert!(!text.contains("checking the space"), "{text}");
    assert!(text.contains("y/Enter") && text.contains("n/Esc"), "{text}");
}

#[test]
fn confirmation_dialog_low_space_pending_df() {
    let mut a = with_machines(100, 30);
    a.update(key('f'));
    let pending = screen(&a);
    assert!(pending.contains("checking"), "{pending}");
    a.update(Action::Space {
        machine: "bot-bottle-web".into(),
        tmp_free: Ok(300 * MIB),
        estimate: Ok(1200 * MIB),
    });
    a.update(Action::Checks {
        machine: "bot-bottle-web".into(),
        parts: vec![],
        state_free: Ok(40 * 1024 * MIB),
        same_disk: false,
    });
    assert_snapshot!(screen(&a));
}

/// Issue 14, item 14: a long artifact path wraps; the key line stays; a lock held by
/// another process is said before confirming.
#[test]
fn confirmation_dialog_keeps_its_keys_with_a_long_path_and_says_the_lock_is_held() {
    let state = tempfile::tempdir().unwrap();
    let deep = state
        .path()
        .join("a-rather-long-folder-name-for-the-state/and-another-one-below-it");
    let mut a = with_machines(80, 24);
    a.settings.state_dir = deep.clone();
    let slug = crate::names::Slug::parse("web").unwrap();
    let _held = crate::lock::MachineLock::acquire(&deep, &slug, "bot-bottle-web").unwrap();
    // The lock above is this process's; the dialog asks the same way for any holder.
    a.update(key('f'));
    let text = screen(&a);
    assert!(text.contains("y/Enter") && text.contains("n/Esc"), "{text}");
    assert!(text.contains("running in another process"), "{text}");
    assert!(
        text.contains(&format!("(pid {})", std::process::id())),
        "{text}"
    );
}

#[test]
fn cancel_dialog() {
    let mut a = with_machines(80, 24);
    freeze_until(&mut a, "web", Stage::Build);
    a.update(key('c'));
    assert_snapshot!(screen(&a));
}

#[test]
fn quit_dialog() {
    let mut a = with_machines(80, 24);
    freeze_until(&mut a, "web", Stage::Build);
    a.update(key('q'));
    assert_snapshot!(screen(&a));
}

#[test]
fn filter_being_typed() {
    let mut a = with_machines(80, 24);
    a.update(key('/'));
    typed(&mut a, "run");
    assert_snapshot!(screen(&a));
}

#[test]
fn narrow_60x20_drops_columns() {
    let mut a = with_machines(60, 20);
    freeze_until(&mut a, "web", Stage::ExecTar);
    assert_snapshot!(screen(&a));
}

#[test]
fn tiny_40x12_still_draws() {
    let mut a = with_machines(40, 12);
    freeze_until(&mut a, "web", Stage::Build);
    assert_snapshot!(screen(&a));
}

#[test]
fn every_size_draws_without_panic() {
    let mut a = with_machines(80, 24);
    freeze_failed(&mut a, "web");
    for (w, h) in [(0, 0), (1, 1), (10, 3), (25, 8), (79, 23), (300, 100)] {
        a.update(Action::Resize {
            width: w,
            height: h,
        });
        for view in [View::Dashboard, View::History, View::Record] {
            a.view = view;
            let _ = screen(&a);
        }
        a.update(key('?'));
        let _ = screen(&a);
        a.update(code(KeyCode::Esc));
    }
}

mod event_loop {
    use std::time::Duration;

    use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
    use futures_util::Stream;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

    use crate::freeze::FreezeConfig;
    use crate::ui::app::App;
    use crate::ui::event::{run_loop, Services};
    use crate::ui::fixtures::settings;
    use crate::ui::keys::KeyMap;

    fn config(state: &std::path::Path) -> FreezeConfig {
        use clap::CommandFactory as _;
        let m = crate::args::Cli::command()
            .try_get_matches_from([
                "bottle-freeze".as_ref(),
                "--smolvm".as_ref(),
                "/nonexistent/smolvm".as_ref(),
                "--state-dir".as_ref(),
                state.as_os_str(),
            ])
            .unwrap();
        let s = crate::config::Settings::resolve(Some(&m), &|_| None, None);
        crate::ui::UiConfig::from_settings(&s).freeze
    }

    type Input = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Event>> + Send>>;

    fn input() -> (UnboundedSender<Event>, Input) {
        let (tx, rx) = unbounded_channel::<Event>();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (Ok(e), rx))
        });
        (tx, Box::pin(stream))
    }

    fn press(tx: &UnboundedSender<Event>, code: KeyCode) {
        let _ = tx.send(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    fn text(t: &Terminal<TestBackend>) -> String {
        let buf = t.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }

    /// The real loop on a TestBackend: the missing smolvm is shown in place, keys reach
    /// the reducer, `q` ends the loop.
    #[tokio::test]
    async fn injected_keys_drive_the_real_loop() {
        let state = tempfile::tempdir().unwrap();
        let (mut services, mut rx) = Services::new(config(state.path()), Duration::from_secs(5));
        let mut app = App::new(settings(), KeyMap::defaults());
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let (tx, input) = input();
        let driver = async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            press(&tx, KeyCode::Char('h'));
            tokio::time::sleep(Duration::from_millis(200)).await;
            press(&tx, KeyCode::Esc);
            press(&tx, KeyCode::Char('?'));
            tokio::time::sleep(Duration::from_millis(200)).await;
            press(&tx, KeyCode::Esc);
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let run = run_loop(&mut terminal, &mut app, input, &mut services, &mut rx);
        let (r, ()) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(
                async {
                    let r = run.await;
                    r
                },
                async {
                    driver.await;
                    press(&tx, KeyCode::Char('q'));
                }
            )
        })
        .await
        .expect("the loop ends on q");
        r.unwrap();
        assert!(app.should_exit());
        assert!(app.history.loaded, "the history was read (empty)");
        let screen = text(&terminal);
        assert!(screen.contains("smolvm did not answer"), "{screen}");
        assert!(screen.contains("/nonexistent/smolvm"), "{screen}");
        assert!(app.help.is_none() && app.view == crate::ui::app::View::Dashboard);
    }

    /// A closed input (the terminal went away) ends the loop the clean way.
    #[tokio::test]
    async fn a_closed_input_ends_the_loop() {
        let state = tempfile::tempdir().unwrap();
        let (mut services, mut rx) = Services::new(config(state.path()), Duration::from_secs(5));
        let mut app = App::new(settings(), KeyMap::defaults());
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let (tx, input) = input();
        drop(tx);
        tokio::time::timeout(
            Duration::from_secs(5),
            run_loop(&mut terminal, &mut app, input, &mut services, &mut rx),
        )
        .await
        .expect("ends")
        .unwrap();
        assert!(app.should_exit());
    }
}

/// One character per cell: `r` reversed, `b` bold, `d` dim, `u` underlined, `.` plain.
fn weights(t: &ratatui::Terminal<ratatui::backend::TestBackend>) -> String {
    use ratatui::style::Modifier;
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let m = buf[(x, y)].modifier;
            out.push(if m.contains(Modifier::REVERSED) {
                'r'
            } else if m.contains(Modifier::UNDERLINED) {
                'u'
            } else if m.contains(Modifier::BOLD) {
                'b'
            } else if m.contains(Modifier::DIM) {
                'd'
            } else {
                '.'
            });
        }
        out.push('\n');
    }
    out
}

fn assert_colourless(t: &ratatui::Terminal<ratatui::backend::TestBackend>) {
    use ratatui::style::Color;
    for c in t.backend().buffer().content.iter() {
        assert_eq!((c.fg, c.bg), (Color::Reset, Color::Reset), "{c:?}");
    }
}

#[test]
fn no_color_monochrome_has_no_colours_and_keeps_every_mark() {
    use super::theme::ThemeName;
    let mut a = with_machines(100, 30);
    a.settings.theme = ThemeName::Mono;
    a.update(Action::HistoryLoaded(Ok(records())));
    freeze_failed(&mut a, "web");
    let t = render(&a);
    assert_colourless(&t);
    assert_snapshot!("mono_dashboard", screen(&a));
    assert_snapshot!("mono_dashboard_weights", weights(&t));
    // The dark theme of the same screen does use colour (the test can fail).
    a.settings.theme = ThemeName::Dark;
    let dark = render(&a);
    assert!(dark
        .backend()
        .buffer()
        .content
        .iter()
        .any(|c| c.fg != ratatui::style::Color::Reset));
    a.settings.theme = ThemeName::Mono;
    // Every other view too.
    a.update(key('h'));
    assert_colourless(&render(&a));
    a.update(code(KeyCode::Enter));
    assert_colourless(&render(&a));
    a.update(key('?'));
    assert_colourless(&render(&a));
}

#[test]
fn light_theme_recolours_what_a_light_background_hides() {
    use super::theme::ThemeName;
    use ratatui::style::Color;
    let mut a = with_machines(100, 30);
    a.settings.theme = ThemeName::Light;
    let t = render(&a);
    let cells = &t.backend().buffer().content;
    assert!(cells
        .iter()
        .all(|c| c.fg != Color::Yellow && c.fg != Color::Cyan));
    assert!(cells.iter().any(|c| c.fg != Color::Reset));
}

#[test]
fn the_record_view_lists_the_commands_ready_to_paste() {
    use super::state::RecordView;
    let mut rec = records().remove(0);
    rec.commands = vec![vec![
        "smolvm".into(),
        "machine".into(),
        "exec".into(),
        "--name".into(),
        "bot-bottle-web".into(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        "echo 'hi' > /tmp/x".into(),
    ]];
    let rv = RecordView::new(rec, vec![]);
    let line = rv
        .lines
        .iter()
        .find(|l| l.text.starts_with("command"))
        .unwrap();
    assert_eq!(
        line.text,
        "command   smolvm machine exec --name bot-bottle-web -- sh -c 'echo '\\''hi'\\'' > /tmp/x'"
    );
}

#[test]
fn stage_rows_say_what_each_stage_does() {
    let mut a = with_machines(120, 30);
    freeze_until(&mut a, "web", Stage::Build);
    for (stage, does) in [
        (Stage::Build, "native archive"),
        (Stage::Push, "docker load"),
        (Stage::Pack, "from the archive"),
    ] {
        a.update(Action::Freeze(crate::freeze::FreezeEvent::StageStarted {
            id: id_of("web"),
            stage,
            does: Some(does.into()),
        }));
    }
    let s = screen(&a);
    for (name, does) in [
        ("build", "· native archive"),
        ("push", "· docker load"),
        ("pack", "· from the archive"),
    ] {
        assert!(
            s.lines().any(|l| l.contains(name) && l.contains(does)),
            "{name} {does}:\n{s}"
        );
    }
}

/// Issue 14, item 9: the prune dialog lists what goes, cut to the screen with a count,
/// and its keys stay.
#[test]
fn prune_dialog_lists_what_goes() {
    use crate::freeze::{PrunePlan, PrunedRecord};
    let mut a = with_machines(100, 24);
    a.update(key('h'));
    a.update(Action::HistoryLoaded(Ok(records())));
    a.update(key('P'));
    let records = (0..20)
        .map(|i| PrunedRecord {
            id: format!("20270101T0000{i:02}Z-web-00{i:02}"),
            machine: "bot-bottle-web".into(),
            outcome: "failed at build (exit 1)".into(),
            started_at_ms: i,
        })
        .collect();
    a.update(Action::PrunePlanned(Ok(PrunePlan {
        records,
        temp_dirs: vec!["/tmp/bot-bottle-vm-commit.AbCd".into()],
        images: vec![(
            "sha256:0123456789ab".into(),
            "bot-bottle-committed-web:latest".into(),
        )],
        artifacts: vec![],
    })));
    assert_snapshot!(screen(&a));
}

/// Issue 14, item 9: discarding lists exactly what the run kept.
#[test]
fn discard_dialog_lists_what_the_run_kept() {
    let mut a = with_machines(100, 24);
    let mut rs = records();
    rs[1].kept = Some(crate::history::Kept {
        temp_dir: Some("/tmp/bot-bottle-vm-commit.AbCd".into()),
        archive: Some("/tmp/bot-bottle-vm-commit.AbCd/rootfs.tar".into()),
        image: None,
        image_id: None,
        from: Stage::Build,
    });
    a.update(key('h'));
    a.update(Action::HistoryLoaded(Ok(rs)));
    a.update(key('j'));
    a.update(key('D'));
    assert_snapshot!(screen(&a));
}
