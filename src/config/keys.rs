//! The file's `[keys]` tables laid over the default key map. The words (contexts,
//! actions, sequences) are the shared vocabulary in `crate::vocab::keys`.

use std::collections::BTreeMap;

use super::file::KeySpec;
use crate::vocab::keys::{Context, KeyAction, KeyMap, KeySeq};

/// The default key map with the file's bindings applied; what cannot be used is
/// named in `warnings` and the default kept.
pub(super) fn apply(
    tables: &BTreeMap<String, BTreeMap<String, KeySpec>>,
    warnings: &mut Vec<String>,
) -> KeyMap {
    let mut keys = KeyMap::defaults();
    for (ctx_name, actions) in tables {
        let Some(ctx) = Context::from_name(ctx_name) else {
            warnings.push(format!(
                "config: unknown key `keys.{ctx_name}` (ignored; contexts: global, dashboard, history, record, dialog, help)"
            ));
            continue;
        };
        for (action_name, spec) in actions {
            let Some(action) = KeyAction::from_name(action_name) else {
                warnings.push(format!(
                    "config: unknown key `keys.{ctx_name}.{action_name}` (ignored)"
                ));
                continue;
            };
            let texts = match spec {
                KeySpec::One(t) => vec![t.clone()],
                KeySpec::Many(v) => v.clone(),
            };
            let parsed: Result<Vec<KeySeq>, String> =
                texts.iter().map(|t| KeySeq::parse(t)).collect();
            match parsed.and_then(|seqs| keys.set(ctx, action, seqs)) {
                Ok(()) => keys.mark_from_file(ctx, action),
                Err(why) => warnings.push(format!(
                    "config: `keys.{ctx_name}.{action_name}`: {why} (the default is kept)"
                )),
            }
        }
    }
    for (ctx, action, seq, by) in keys.shadowed() {
        warnings.push(format!(
            "config: `keys.{}.{}`: \"{}\" can never be typed: its start is bound to {} (rebind that, or pick another sequence)",
            ctx.name(),
            action.name(),
            seq.config_name(),
            by.name()
        ));
    }
    keys
}
