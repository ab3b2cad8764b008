//! The dashboard's real event loop, on a `TestBackend`, driven by injected keys against
//! smolvm-sim: discovery in the background, and (with the real Docker daemon and
//! registry) a whole freeze started from the keyboard.

mod common;

use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bottle_freeze::history::{History, Outcome};
use bottle_freeze::ui::app::App;
use bottle_freeze::ui::event::{run_loop, Services};
use bottle_freeze::ui::state::Phase;
use bottle_freeze::ui::UiConfig;
use clap::CommandFactory as _;
use common::Sim;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures_util::Stream;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

type Input = Pin<Box<dyn Stream<Item = std::io::Result<Event>> + Send>>;

fn input() -> (UnboundedSender<Event>, Input) {
    let (tx, rx) = unbounded_channel::<Event>();
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    (tx, Box::pin(stream))
}

fn press(tx: &UnboundedSender<Event>, c: char) {
    let _ = tx.send(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::NONE,
    )));
}

fn screen(t: &Terminal<TestBackend>) -> String {
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

fn config(state: &Path, tmp: &Path) -> UiConfig {
    let m = bottle_freeze::args::Cli::command()
        .try_get_matches_from([
            "bottle-freeze".as_ref(),
            "--smolvm".as_ref(),
            common::sim_bin().as_ref(),
            "--state-dir".as_ref(),
            state.as_os_str(),
            "--tmp-dir".as_ref(),
            tmp.as_os_str(),
        ])
        .unwrap();
    let env = |v: &str| std::env::var(v).ok();
    UiConfig::from_settings(&bottle_freeze::config::Settings::resolve(
        Some(&m),
        &env,
        None,
    ))
}

/// Waits until the history holds a finished record, at most `limit`.
async fn finished_record(state: &Path, limit: Duration) -> Option<Outcome> {
    let h = History::new(state);
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(r) = h.list().ok().and_then(|l| l.into_iter().next()) {
            if r.outcome != Outcome::Running {
                return Some(r.outcome);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_freeze_a_sim_machine_through_the_real_loop() {
    let sim = Sim::new();
    let root = common::small_root();
    sim.create("bot-bottle-web", "running", Some(root.path()));
    sim.create("bot-bottle-old", "stopped", None);
    // The loop's children (smolvm-sim) find their home here; this file has one test.
    std::env::set_var("SMOLVM_SIM_HOME", sim.home());
    let docker = common::docker().await.is_some() && common::registry_bin().is_some();

    let state = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(state.path(), tmp.path());
    let (mut services, mut rx) = Services::new(cfg.freeze.clone(), cfg.query_timeout);
    let mut app = App::new(cfg.settings(), cfg.keys.clone());
    let mut terminal = Terminal::new(TestBackend::new(120, 30)).unwrap();
    let (tx, keys) = input();

    let state_path = state.path().to_path_buf();
    let driver = async move {
        // Discovery runs in the background; the list is sorted: old, then web.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The stopped machine is refused.
        press(&tx, 'f');
        tokio::time::sleep(Duration::from_millis(200)).await;
        press(&tx, 'j');
        let outcome = if docker {
            press(&tx, 'f');
            // The dialog's space probe (df in the guest, statvfs here).
            tokio::time::sleep(Duration::from_millis(1500)).await;
            press(&tx, 'y');
            finished_record(&state_path, Duration::from_secs(180)).await
        } else {
            None
        };
        // Let the last events arrive and be drawn.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        press(&tx, 'q');
        outcome
    };
    let (result, outcome) = tokio::time::timeout(Duration::from_secs(240), async {
        tokio::join!(
            run_loop(&mut terminal, &mut app, keys, &mut services, &mut rx),
            driver
        )
    })
    .await
    .expect("the loop ends on q");
    result.unwrap();
    assert!(app.should_exit());

    let text = screen(&terminal);
    assert!(text.contains("web") && text.contains("old"), "{text}");
    assert!(text.contains("stopped"), "{text}");
    assert_eq!(app.machines.list.len(), 2);
    assert!(app.machines.error.is_none());
    assert!(
        !app.freezes.contains_key("bot-bottle-old"),
        "a stopped machine is never frozen"
    );
    if !docker {
        return;
    }
    assert!(
        matches!(
            outcome,
            Some(Outcome::Succeeded | Outcome::SucceededWithWarnings)
        ),
        "{outcome:?}\n{text}"
    );
    let f = &app.freezes["bot-bottle-web"];
    assert!(
        matches!(f.phase, Phase::Succeeded | Phase::SucceededWithWarnings),
        "{text}"
    );
    assert!(f.artifact.as_ref().is_some_and(|a| a.sidecar.exists()));
    assert!(text.contains("artifact"), "{text}");
    assert!(text.contains("to export for migration"), "{text}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "temp folders left: {left:?}");
}
