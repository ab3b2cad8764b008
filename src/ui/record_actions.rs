//! Acting on a record from the history or the record view: resume a failed freeze, discard
//! what it kept, freeze its machine again, prune old records. Each asks first, in a dialog
//! that lists what it will use or remove; the work is the core's (`freeze::run_resume`,
//! `freeze::discard`, `freeze::plan_prune` / `apply_prune`, as the CLI's `freeze --resume`,
//! `discard` and `prune`), done by the loop.

use super::app::*;
use super::dialogs::Probe;
use super::state::*;
use super::theme::guard;
use crate::freeze::{PrunePlan, PruneReport};
use crate::history::{Outcome, Record};
use crate::sanitize::escape_str;

/// What a record kept, one line each, as the dialogs list it.
fn kept_lines(r: &Record) -> Vec<String> {
    let Some(k) = &r.kept else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(a) = &k.archive {
        out.push(format!("archive  {}", escape_str(&a.display().to_string())));
    }
    if let Some(t) = &k.temp_dir {
        out.push(format!("folder   {}", escape_str(&t.display().to_string())));
    }
    if let Some(i) = &k.image {
        let id = k.image_id.as_deref().unwrap_or("id unknown");
        out.push(format!("image    {} ({})", escape_str(i), escape_str(id)));
    }
    out
}

impl App {
    /// The record the history list or the record view is on.
    fn acted_record(&self) -> Option<Record> {
        match self.view {
            View::Record => self.record.as_ref().and_then(|rv| rv.record.clone()),
            _ => self.selected_record().cloned(),
        }
    }

    /// `R`: asks to resume a failed freeze from what it kept.
    pub(super) fn ask_resume(&mut self) {
        let Some(r) = self.acted_record() else {
            return;
        };
        let Some(k) = &r.kept else {
            self.flash(
                Level::Info,
                format!(
                    "{} kept nothing to resume from (only a freeze that failed at build, push or pack keeps its work)",
                    escape_str(&r.id)
                ),
            );
            return;
        };
        if self.freezes.get(&r.machine).is_some_and(|f| f.is_live()) {
            self.flash(
                Level::Warn,
                format!(
                    "{} is already being frozen: one freeze per machine",
                    escape_str(&r.machine)
                ),
            );
            return;
        }
        self.dialog = Some(Dialog::Resume {
            id: r.id.clone(),
            machine: r.machine.clone(),
            slug: r.slug.clone(),
            from: k.from,
            uses: kept_lines(&r),
        });
    }

    /// `D`: asks to drop what a failed freeze kept.
    pub(super) fn ask_discard(&mut self) {
        let Some(r) = self.acted_record() else {
            return;
        };
        let what = kept_lines(&r);
        if what.is_empty() {
            self.flash(
                Level::Info,
                format!("{} kept nothing to discard", escape_str(&r.id)),
            );
            return;
        }
        if r.outcome == Outcome::Running {
            self.flash(
                Level::Warn,
                "this freeze is running: nothing to discard yet",
            );
            return;
        }
        self.dialog = Some(Dialog::Discard {
            id: r.id.clone(),
            machine: r.machine.clone(),
            what,
        });
    }

    /// `f` on a record: the freeze dialog for its machine, on the dashboard.
    pub(super) fn refreeze(&mut self, fx: &mut Effects) {
        let Some(r) = self.acted_record() else {
            return;
        };
        if !self
            .machines
            .list
            .iter()
            .any(|m| m.machine.name == r.machine)
        {
            self.flash(
                Level::Warn,
                format!(
                    "{} is not in the machine list: it cannot be frozen from here",
                    escape_str(&r.machine)
                ),
            );
            return;
        }
        // The list's filter must not hide it, or the dialog would open on nothing.
        self.machines.filter.clear();
        self.machines.filter_editing = false;
        self.machines.selected = Some(r.machine.clone());
        self.fix_selection();
        self.view = View::Dashboard;
        self.open_freeze_dialog(fx);
    }

    /// `P`: plans a prune; the dialog shows the plan once it is made.
    pub(super) fn ask_prune(&mut self, fx: &mut Effects) {
        self.dialog = Some(Dialog::Prune(Probe::Pending));
        fx.commands.push(Command::PlanPrune {
            keep: self.settings.prune_keep,
        });
    }

    pub(super) fn start_resume(
        &mut self,
        machine: String,
        slug: &str,
        id: String,
        fx: &mut Effects,
    ) {
        if self.freezes.get(&machine).is_some_and(|f| f.is_live())
            || matches!(self.quit, QuitState::Cancelling { .. })
        {
            return;
        }
        self.freezes.insert(
            machine.clone(),
            FreezeState::new(&machine, slug, self.now_ms),
        );
        if self.machines.selected.as_deref() == Some(machine.as_str()) {
            self.tail_view.follow = true;
        }
        self.flash(
            Level::Info,
            format!("resuming {} ({})…", escape_str(&machine), escape_str(&id)),
        );
        fx.commands.push(Command::Resume { machine, id });
    }

    pub(super) fn on_discarded(
        &mut self,
        id: &str,
        result: Result<String, String>,
        fx: &mut Effects,
    ) {
        match result {
            Ok(done) => self.flash(
                Level::Info,
                format!("discarded what {} kept: {}", escape_str(id), guard(&done)),
            ),
            Err(why) => self.flash(
                Level::Error,
                format!("discard of {} incomplete: {}", escape_str(id), guard(&why)),
            ),
        }
        self.reload_after_change(fx);
    }

    pub(super) fn on_prune_planned(&mut self, r: Result<PrunePlan, String>, fx: &mut Effects) {
        if let Some(Dialog::Prune(p)) = &mut self.dialog {
            *p = match r {
                Ok(plan) => Probe::Ready(plan),
                Err(e) => Probe::Failed(guard(&e)),
            };
            fx.redraw = true;
        }
    }

    pub(super) fn on_pruned(&mut self, r: PruneReport, fx: &mut Effects) {
        let n = r.removed.len();
        match r.failed.first() {
            None => self.flash(Level::Info, format!("pruned: {n} removed")),
            Some(first) => self.flash(
                Level::Error,
                format!(
                    "pruned: {n} removed, {} left: {}",
                    r.failed.len(),
                    guard(first)
                ),
            ),
        }
        self.reload_after_change(fx);
    }

    /// The history changed on disk: read it again, and the open record.
    fn reload_after_change(&mut self, fx: &mut Effects) {
        if !self.history.loading {
            self.history.loading = true;
            fx.commands.push(Command::LoadHistory);
        }
        if self.view == View::Record {
            if let Some(id) = self.record.as_ref().map(|rv| rv.id.clone()) {
                fx.commands.push(Command::LoadRecord { id });
            }
        }
        fx.redraw = true;
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyCode;

    use super::*;
    use crate::freeze::{PrunedRecord, Stage};
    use crate::history::Kept;
    use crate::ui::fixtures::*;

    fn failed_with_kept() -> Vec<Record> {
        let mut rs = records();
        let r = &mut rs[1];
        r.kept = Some(Kept {
            temp_dir: None,
            archive: None,
            image: Some("bot-bottle-committed-api:latest".into()),
            image_id: Some("sha256:abc".into()),
            from: Stage::Push,
        });
        rs
    }

    #[test]
    fn discard_asks_listing_what_goes_then_discards_and_reloads() {
        let mut a = with_machines(120, 30);
        a.update(key('h'));
        a.update(Action::HistoryLoaded(Ok(failed_with_kept())));
        // The first record kept nothing: said, no dialog.
        a.update(key('D'));
        assert!(a.dialog.is_none());
        assert!(a
            .flash
            .as_ref()
            .is_some_and(|f| f.text.contains("kept nothing")));
        a.update(key('j'));
        a.update(key('D'));
        let Some(Dialog::Discard { what, id, .. }) = &a.dialog else {
            panic!("{:?}", a.dialog);
        };
        assert_eq!(id, "20270115T050000Z-api-2222");
        assert!(what[0].contains("sha256:abc"), "{what:?}");
        let fx = a.update(key('y'));
        assert_eq!(
            fx.commands,
            [Command::Discard {
                id: "20270115T050000Z-api-2222".into()
            }]
        );
        a.history.loading = false;
        let fx = a.update(Action::Discarded {
            id: "20270115T050000Z-api-2222".into(),
            result: Ok("removed image x".into()),
        });
        assert_eq!(fx.commands, [Command::LoadHistory]);
        assert!(a
            .flash
            .as_ref()
            .is_some_and(|f| f.text.contains("removed image x")));
    }

    #[test]
    fn resume_asks_then_runs_as_a_freeze_of_the_machine() {
        let mut a = with_machines(120, 30);
        a.update(key('h'));
        a.update(Action::HistoryLoaded(Ok(failed_with_kept())));
        a.update(key('j'));
        a.update(code(KeyCode::Enter));
        a.update(Action::RecordLoaded {
            id: "20270115T050000Z-api-2222".into(),
            result: Ok(Box::new(LoadedRecord {
                record: failed_with_kept()[1].clone(),
                logs: failed_logs(),
            })),
        });
        a.update(key('R'));
        assert!(matches!(
            &a.dialog,
            Some(Dialog::Resume {
                from: Stage::Push,
                ..
            })
        ));
        let fx = a.update(key('n'));
        assert!(fx.commands.is_empty() && a.dialog.is_none());
        a.update(key('R'));
        let fx = a.update(key('y'));
        assert_eq!(
            fx.commands,
            [Command::Resume {
                machine: "bot-bottle-api".into(),
                id: "20270115T050000Z-api-2222".into()
            }]
        );
        assert_eq!(a.freezes["bot-bottle-api"].phase, Phase::Starting);
        assert_eq!(a.freezes["bot-bottle-api"].slug, "api");
        // One freeze per machine: a second resume is refused.
        a.update(key('R'));
        assert!(a.dialog.is_none());
    }

    #[test]
    fn f_on_a_record_opens_the_freeze_dialog_of_its_machine() {
        let mut a = with_machines(120, 30);
        a.update(key('h'));
        a.update(Action::HistoryLoaded(Ok(records())));
        a.update(key('j'));
        let fx = a.update(key('f'));
        assert_eq!(a.view, View::Dashboard);
        assert!(matches!(&a.dialog, Some(Dialog::Freeze(d)) if d.machine == "bot-bottle-api"));
        assert_eq!(
            fx.commands,
            [Command::ProbeSpace {
                machine: "bot-bottle-api".into()
            }]
        );
    }

    #[test]
    fn prune_waits_for_its_plan_lists_it_and_removes_only_that() {
        let mut a = with_machines(120, 30);
        a.update(key('h'));
        a.update(Action::HistoryLoaded(Ok(records())));
        let fx = a.update(key('P'));
        assert_eq!(fx.commands, [Command::PlanPrune { keep: 3 }]);
        // Confirming before the plan is there does nothing.
        let fx = a.update(key('y'));
        assert!(fx.commands.is_empty());
        assert!(matches!(a.dialog, Some(Dialog::Prune(Probe::Pending))));
        let plan = PrunePlan {
            records: vec![PrunedRecord {
                id: "old-1".into(),
                machine: "bot-bottle-web".into(),
                outcome: "failed".into(),
                started_at_ms: 1,
            }],
            images: vec![(
                "sha256:def".into(),
                "bot-bottle-committed-web:latest".into(),
            )],
            ..PrunePlan::default()
        };
        a.update(Action::PrunePlanned(Ok(plan.clone())));
        let text = screen(&a);
        assert!(
            text.contains("old-1") && text.contains("sha256:def"),
            "{text}"
        );
        assert!(text.contains("y/Enter") && text.contains("n/Esc"), "{text}");
        let fx = a.update(key('y'));
        assert_eq!(fx.commands, [Command::Prune(plan)]);
        a.history.loading = false;
        let fx = a.update(Action::Pruned(PruneReport {
            removed: vec!["removed record old-1".into()],
            failed: vec![],
        }));
        assert_eq!(fx.commands, [Command::LoadHistory]);
        assert!(a
            .flash
            .as_ref()
            .is_some_and(|f| f.text.contains("1 removed")));
    }
}
