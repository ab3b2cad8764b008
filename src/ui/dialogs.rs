//! The dialogs: the freeze confirmation (with its probes) and the cancel question.

use std::path::PathBuf;

use super::app::*;
use super::keys::KeyAction;
use super::state::*;
use super::theme::guard;
use crate::names::Slug;
use crate::sanitize::escape_str;

/// A probe whose answer comes later.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe<T> {
    Pending,
    Ready(T),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FreezeDialog {
    pub machine: String,
    pub slug: Slug,
    pub artifact: PathBuf,
    pub tmp_dir: PathBuf,
    /// Free bytes in the temp folder.
    pub tmp_free: Probe<u64>,
    /// Used bytes of the guest's root (`df` in the guest): the archive's size, roughly.
    pub estimate: Probe<u64>,
    /// Some(pid, or 0 when unknown): another process holds the machine's freeze lock.
    pub held_by: Option<u32>,
    /// Where the artifact goes, and its free bytes.
    pub state_dir: PathBuf,
    pub state_free: Probe<u64>,
    /// Docker and the registry, as the configured path needs them.
    pub parts: Probe<Vec<crate::freeze::PreCheck>>,
    /// The temp and state folders share a filesystem (known with `state_free`).
    pub same_disk: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dialog {
    Freeze(FreezeDialog),
    Cancel {
        machine: String,
    },
    Quit {
        running: usize,
    },
    /// Resume a failed freeze from what it kept.
    Resume {
        id: String,
        machine: String,
        slug: String,
        /// The stage it starts from, and what it uses (the archive or the image).
        from: crate::freeze::Stage,
        uses: Vec<String>,
    },
    /// Drop what a failed freeze kept: `what` lists it.
    Discard {
        id: String,
        machine: String,
        what: Vec<String>,
    },
    /// Prune old records, images and artifacts: the plan, once made.
    Prune(Probe<crate::freeze::PrunePlan>),
}

/// The process holding `slug`'s freeze lock, if one does (a CLI freeze, another
/// operator): a cheap, non-blocking check, so it runs as the dialog opens.
fn held_by(state_dir: &std::path::Path, slug: &Slug) -> Option<u32> {
    if !crate::lock::MachineLock::is_held(state_dir, slug) {
        return None;
    }
    let pid = std::fs::read_to_string(crate::lock::lock_path(state_dir, slug))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    Some(pid.unwrap_or(0))
}

impl App {
    /// The answers of the freeze dialog's probes (free space, estimate).
    pub(super) fn on_space(
        &mut self,
        machine: &str,
        tmp_free: Result<u64, String>,
        estimate: Result<u64, String>,
        fx: &mut Effects,
    ) {
        if let Some(Dialog::Freeze(d)) = &mut self.dialog {
            if d.machine == machine {
                d.tmp_free = probe(tmp_free);
                d.estimate = probe(estimate);
                fx.redraw = true;
            }
        }
    }

    /// The freeze dialog's other pre-checks (parts, the state folder's space).
    pub(super) fn on_checks(
        &mut self,
        machine: &str,
        parts: Vec<crate::freeze::PreCheck>,
        state_free: Result<u64, String>,
        same_disk: bool,
        fx: &mut Effects,
    ) {
        if let Some(Dialog::Freeze(d)) = &mut self.dialog {
            if d.machine == machine {
                d.parts = Probe::Ready(
                    parts
                        .into_iter()
                        .map(|mut c| {
                            c.text = guard(&c.text);
                            c
                        })
                        .collect(),
                );
                d.state_free = probe(state_free);
                d.same_disk = same_disk;
                fx.redraw = true;
            }
        }
    }

    pub(super) fn dialog_key(&mut self, action: KeyAction, fx: &mut Effects) {
        let Some(dialog) = self.dialog.take() else {
            return;
        };
        match (action, dialog) {
            (KeyAction::Confirm, Dialog::Freeze(d)) => self.start_freeze(d, fx),
            (KeyAction::Confirm, Dialog::Cancel { machine }) => {
                match self.freezes.get_mut(&machine) {
                    Some(f) if f.is_live() => {
                        f.cancel_requested = true;
                        fx.commands.push(Command::Cancel {
                            machine: machine.clone(),
                        });
                        self.flash(
                            Level::Warn,
                            format!("cancelling the freeze of {}…", escape_str(&machine)),
                        );
                    }
                    _ => self.flash(
                        Level::Info,
                        format!("{} has no running freeze any more", escape_str(&machine)),
                    ),
                }
            }
            (KeyAction::Confirm, Dialog::Quit { .. }) => self.confirm_quit(fx),
            (
                KeyAction::Confirm,
                Dialog::Resume {
                    id, machine, slug, ..
                },
            ) => self.start_resume(machine, &slug, id, fx),
            (KeyAction::Confirm, Dialog::Discard { id, .. }) => {
                self.flash(
                    Level::Info,
                    format!("discarding what {} kept…", escape_str(&id)),
                );
                fx.commands.push(Command::Discard { id });
            }
            (KeyAction::Confirm, Dialog::Prune(Probe::Ready(plan))) => {
                if !plan.is_empty() {
                    self.flash(Level::Info, "pruning…");
                    fx.commands.push(Command::Prune(plan));
                }
            }
            // Nothing is known yet: confirming waits for the list.
            (KeyAction::Confirm, d @ Dialog::Prune(Probe::Pending)) => self.dialog = Some(d),
            (KeyAction::Confirm, Dialog::Prune(Probe::Failed(_))) => {}
            (KeyAction::Deny, _) => {}
            (_, d) => self.dialog = Some(d),
        }
    }

    pub(super) fn open_freeze_dialog(&mut self, fx: &mut Effects) {
        let Some(m) = self.selected_machine() else {
            self.flash(Level::Info, "no machine selected");
            return;
        };
        let name = m.machine.name.clone();
        if let Some(why) = m.refusal() {
            self.flash(
                Level::Warn,
                format!("{} cannot be frozen: {}", escape_str(&name), guard(&why)),
            );
            return;
        }
        let Ok(slug) = m.slug.clone() else {
            return;
        };
        if self.freezes.get(&name).is_some_and(|f| f.is_live()) {
            self.flash(
                Level::Warn,
                format!(
                    "{} is already being frozen: one freeze per machine",
                    escape_str(&name)
                ),
            );
            return;
        }
        let artifact = crate::freeze::pack::sidecar_of(
            &self
                .settings
                .state_dir
                .join(slug.as_str())
                .join(crate::freeze::pack::LAUNCHER),
        );
        let held_by = held_by(&self.settings.state_dir, &slug);
        self.dialog = Some(Dialog::Freeze(FreezeDialog {
            machine: name.clone(),
            slug,
            artifact,
            tmp_dir: self.settings.tmp_dir.clone(),
            tmp_free: Probe::Pending,
            estimate: Probe::Pending,
            held_by,
            state_dir: self.settings.state_dir.clone(),
            state_free: Probe::Pending,
            parts: Probe::Pending,
            same_disk: false,
        }));
        fx.commands.push(Command::ProbeSpace { machine: name });
    }

    pub(super) fn open_cancel_dialog(&mut self) {
        let Some(name) = self.machines.selected.clone() else {
            self.flash(Level::Info, "no machine selected");
            return;
        };
        match self.freezes.get(&name) {
            Some(f) if f.is_live() && f.cancel_requested => self.flash(
                Level::Info,
                format!("{} is already being cancelled", escape_str(&name)),
            ),
            Some(f) if f.is_live() => self.dialog = Some(Dialog::Cancel { machine: name }),
            _ => self.flash(
                Level::Info,
                format!("{} has no running freeze", escape_str(&name)),
            ),
        }
    }
}

pub(super) fn probe(r: Result<u64, String>) -> Probe<u64> {
    match r {
        Ok(v) => Probe::Ready(v),
        Err(e) => Probe::Failed(guard(&e)),
    }
}

#[cfg(test)]
mod tests {

    use crossterm::event::KeyCode;

    use super::*;
    use crate::freeze::FreezeEvent;
    use crate::freeze::Stage;
    use crate::history::StageStatus;
    use crate::ui::fixtures::*;

    #[test]
    fn freeze_asks_probes_and_starts() {
        let mut a = with_machines(80, 24);
        let fx = a.update(key('f'));
        assert_eq!(
            fx.commands,
            [Command::ProbeSpace {
                machine: "bot-bottle-web".into()
            }]
        );
        assert!(
            matches!(&a.dialog, Some(Dialog::Freeze(d)) if d.artifact.ends_with("web/committed-smolmachine.smolmachine"))
        );
        let fx = a.update(code(KeyCode::Enter));
        assert!(
            matches!(&fx.commands[..], [Command::StartFreeze { machine, slug }] if machine == "bot-bottle-web" && slug.as_str() == "web")
        );
        assert!(a.dialog.is_none());
        assert_eq!(a.freezes["bot-bottle-web"].phase, Phase::Starting);
    }

    #[test]
    fn backing_out_starts_nothing() {
        let mut a = with_machines(80, 24);
        a.update(key('f'));
        let fx = a.update(code(KeyCode::Esc));
        assert!(fx.commands.is_empty());
        assert!(a.dialog.is_none() && a.freezes.is_empty());
        a.update(key('f'));
        let fx = a.update(key('n'));
        assert!(fx.commands.is_empty() && a.freezes.is_empty());
    }

    #[test]
    fn one_freeze_per_machine() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::ExecTar);
        let fx = a.update(key('f'));
        assert!(a.dialog.is_none());
        assert!(fx.commands.is_empty());
        assert!(a
            .flash
            .as_ref()
            .is_some_and(|f| f.text.contains("already being frozen")));
        // Even a dialog left open from before is refused on confirm.
        let slug = crate::names::Slug::parse("web").unwrap();
        a.dialog = Some(Dialog::Freeze(FreezeDialog {
            machine: "bot-bottle-web".into(),
            slug,
            artifact: "/x".into(),
            tmp_dir: "/tmp".into(),
            tmp_free: Probe::Pending,
            estimate: Probe::Pending,
            held_by: None,
            state_dir: "/state".into(),
            state_free: Probe::Pending,
            parts: Probe::Pending,
            same_disk: false,
        }));
        let fx = a.update(key('y'));
        assert!(fx.commands.is_empty());
        // Another machine can be frozen at the same time.
        select(&mut a, "bot-bottle-api");
        let fx = confirm_freeze(&mut a);
        assert!(
            matches!(&fx.commands[..], [Command::StartFreeze { machine, .. }] if machine == "bot-bottle-api")
        );
        assert_eq!(a.live_count(), 2);
    }

    #[test]
    fn cancel_asks_then_cancels() {
        let mut a = with_machines(80, 24);
        freeze_until(&mut a, "web", Stage::Build);
        let fx = a.update(key('c'));
        assert!(fx.commands.is_empty());
        assert!(matches!(a.dialog, Some(Dialog::Cancel { .. })));
        let fx = a.update(key('y'));
        assert_eq!(
            fx.commands,
            [Command::Cancel {
                machine: "bot-bottle-web".into()
            }]
        );
        assert!(a.freezes["bot-bottle-web"].cancel_requested);
        a.update(Action::Freeze(FreezeEvent::Cancelled {
            id: id_of("web"),
            stage: Some(Stage::Build),
        }));
        let f = &a.freezes["bot-bottle-web"];
        assert_eq!(f.phase, Phase::Cancelled);
        assert_eq!(f.stage(Stage::Build).status, StageStatus::Cancelled);
        // What never ran is skipped, not waiting.
        assert_eq!(f.stage(Stage::Push).status, StageStatus::Skipped);
        // Nothing to cancel on a machine without a freeze.
        select(&mut a, "bot-bottle-api");
        a.update(key('c'));
        assert!(a.dialog.is_none());
    }
}
