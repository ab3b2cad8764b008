//! The key map (shared by `config` and `ui`): a typed set of actions, each bound to keys per context, with defaults.
//!
//! The help overlay and the status bar read their text from here, so a later user
//! configuration (overlaying [`KeyMap::set`]) changes what they show too.

use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Where a key is pressed: each context has its own bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Everywhere, after the current context's own bindings.
    Global,
    Dashboard,
    History,
    Record,
    Dialog,
    Help,
}

impl Context {
    pub const ALL: [Context; 6] = [
        Context::Dashboard,
        Context::History,
        Context::Record,
        Context::Dialog,
        Context::Help,
        Context::Global,
    ];

    /// The context's name in the configuration file (`[keys.dashboard]`).
    pub fn name(self) -> &'static str {
        match self {
            Context::Global => "global",
            Context::Dashboard => "dashboard",
            Context::History => "history",
            Context::Record => "record",
            Context::Dialog => "dialog",
            Context::Help => "help",
        }
    }

    pub fn from_name(name: &str) -> Option<Context> {
        Context::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "everywhere",
            Context::Dashboard => "dashboard",
            Context::History => "history",
            Context::Record => "freeze record",
            Context::Dialog => "confirmations",
            Context::Help => "this help",
        }
    }
}

/// What a key does. The same action may mean a slightly different thing per context
/// (Up selects a machine on the dashboard and scrolls a log in a record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAction {
    Quit,
    Help,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Freeze,
    Cancel,
    Refresh,
    Filter,
    SortNext,
    SortReverse,
    History,
    Follow,
    Wrap,
    Open,
    Back,
    Search,
    NextMatch,
    PrevMatch,
    Save,
    Confirm,
    Deny,
    /// Mouse capture on/off (off: the terminal's own text selection works).
    Mouse,
    /// History: show all, failed, cancelled or succeeded runs.
    OutcomeFilter,
    /// Copy a record's artifact path or export hint to the clipboard (OSC 52).
    Copy,
    /// Resume a failed freeze from what it kept (asks first).
    Resume,
    /// Drop what a failed freeze kept (asks first).
    Discard,
    /// Remove old records, with their images and artifacts (asks first).
    Prune,
}

impl KeyAction {
    pub const ALL: [KeyAction; 31] = [
        A::Quit,
        A::Help,
        A::Up,
        A::Down,
        A::PageUp,
        A::PageDown,
        A::Top,
        A::Bottom,
        A::Freeze,
        A::Cancel,
        A::Refresh,
        A::Filter,
        A::SortNext,
        A::SortReverse,
        A::History,
        A::Follow,
        A::Wrap,
        A::Open,
        A::Back,
        A::Search,
        A::NextMatch,
        A::PrevMatch,
        A::Save,
        A::Confirm,
        A::Deny,
        A::Mouse,
        A::OutcomeFilter,
        A::Copy,
        A::Resume,
        A::Discard,
        A::Prune,
    ];

    /// The action's name in the configuration file (`freeze = ["f", "enter"]`).
    pub fn name(self) -> &'static str {
        match self {
            A::Quit => "quit",
            A::Help => "help",
            A::Up => "up",
            A::Down => "down",
            A::PageUp => "page-up",
            A::PageDown => "page-down",
            A::Top => "top",
            A::Bottom => "bottom",
            A::Freeze => "freeze",
            A::Cancel => "cancel",
            A::Refresh => "refresh",
            A::Filter => "filter",
            A::SortNext => "sort-next",
            A::SortReverse => "sort-reverse",
            A::History => "history",
            A::Follow => "follow",
            A::Wrap => "wrap",
            A::Open => "open",
            A::Back => "back",
            A::Search => "search",
            A::NextMatch => "next-match",
            A::PrevMatch => "prev-match",
            A::Save => "save",
            A::Confirm => "confirm",
            A::Deny => "deny",
            A::Mouse => "mouse",
            A::OutcomeFilter => "outcome-filter",
            A::Copy => "copy",
            A::Resume => "resume",
            A::Discard => "discard",
            A::Prune => "prune",
        }
    }

    pub fn from_name(name: &str) -> Option<KeyAction> {
        KeyAction::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// One key with its modifiers, e.g. `ctrl-c`, `G`, `pgup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyChord {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl KeyChord {
    pub const fn new(code: KeyCode, mods: KeyModifiers) -> KeyChord {
        KeyChord { code, mods }
    }

    pub const fn plain(code: KeyCode) -> KeyChord {
        KeyChord::new(code, KeyModifiers::NONE)
    }

    pub const fn ch(c: char) -> KeyChord {
        KeyChord::plain(KeyCode::Char(c))
    }

    pub const fn ctrl(c: char) -> KeyChord {
        KeyChord::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    /// Only Ctrl and Alt count: Shift is already in the character (`G`, `?`).
    fn significant(mods: KeyModifiers) -> KeyModifiers {
        mods & (KeyModifiers::CONTROL | KeyModifiers::ALT)
    }

    /// The chord of a key press (Shift dropped, as it is in the character).
    pub fn from_event(ev: &KeyEvent) -> KeyChord {
        KeyChord::new(ev.code, Self::significant(ev.modifiers))
    }

    fn same(&self, other: &KeyChord) -> bool {
        self.code == other.code && Self::significant(self.mods) == Self::significant(other.mods)
    }

    pub fn matches(&self, ev: &KeyEvent) -> bool {
        ev.code == self.code && Self::significant(ev.modifiers) == Self::significant(self.mods)
    }

    /// Parses `q`, `G`, `ctrl-c`, `alt-x`, `enter`, `esc`, `pgup`, `up`, `f1`, `space`…
    pub fn parse(s: &str) -> Result<KeyChord, String> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            if lower.starts_with("ctrl-") && rest.len() > 5 {
                mods |= KeyModifiers::CONTROL;
                rest = &rest[5..];
            } else if lower.starts_with("alt-") && rest.len() > 4 {
                mods |= KeyModifiers::ALT;
                rest = &rest[4..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(c),
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backspace" => KeyCode::Backspace,
                "space" => KeyCode::Char(' '),
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "pgup" | "pageup" => KeyCode::PageUp,
                "pgdn" | "pagedown" => KeyCode::PageDown,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "delete" | "del" => KeyCode::Delete,
                f if f.starts_with('f') => match f[1..].parse::<u8>() {
                    Ok(n) if (1..=12).contains(&n) => KeyCode::F(n),
                    _ => return Err(format!("unknown key {s:?}")),
                },
                _ => return Err(format!("unknown key {s:?}")),
            },
        };
        Ok(KeyChord { code, mods })
    }
}

impl KeyChord {
    /// The chord as the configuration file spells it (what [`KeyChord::parse`] reads).
    pub fn config_name(&self) -> String {
        let mut out = String::new();
        if self.mods.contains(KeyModifiers::CONTROL) {
            out.push_str("ctrl-");
        }
        if self.mods.contains(KeyModifiers::ALT) {
            out.push_str("alt-");
        }
        let code = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "enter".into(),
            KeyCode::Esc => "esc".into(),
            KeyCode::Tab => "tab".into(),
            KeyCode::Backspace => "backspace".into(),
            KeyCode::Up => "up".into(),
            KeyCode::Down => "down".into(),
            KeyCode::Left => "left".into(),
            KeyCode::Right => "right".into(),
            KeyCode::PageUp => "pgup".into(),
            KeyCode::PageDown => "pgdn".into(),
            KeyCode::Home => "home".into(),
            KeyCode::End => "end".into(),
            KeyCode::Delete => "delete".into(),
            KeyCode::F(n) => format!("f{n}"),
            _ => "?".into(),
        };
        out.push_str(&code);
        out
    }
}

impl fmt::Display for KeyChord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::Backspace => f.write_str("Bksp"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::Delete => f.write_str("Del"),
            KeyCode::F(n) => write!(f, "F{n}"),
            _ => f.write_str("?"),
        }
    }
}

/// Keys pressed one after the other (`g g`); most bindings are a single key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySeq(pub Vec<KeyChord>);

impl KeySeq {
    /// Parses chords separated by spaces: `x`, `g g`, `ctrl-w j`.
    pub fn parse(s: &str) -> Result<KeySeq, String> {
        let chords = s
            .split_whitespace()
            .map(KeyChord::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if chords.is_empty() {
            return Err("an empty key".into());
        }
        Ok(KeySeq(chords))
    }

    pub fn config_name(&self) -> String {
        self.0
            .iter()
            .map(KeyChord::config_name)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn starts_with(&self, prefix: &[KeyChord]) -> bool {
        self.0.len() >= prefix.len() && self.0.iter().zip(prefix).all(|(a, b)| a.same(b))
    }

    fn is(&self, keys: &[KeyChord]) -> bool {
        self.0.len() == keys.len() && self.starts_with(keys)
    }
}

impl fmt::Display for KeySeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}")?;
        }
        Ok(())
    }
}

/// What a key press means given the keys pressed before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Action(KeyAction),
    /// The start of a longer sequence: wait for the next key.
    Pending,
    None,
}

/// An action's keys in one context, and what it does there.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub action: KeyAction,
    pub keys: Vec<KeySeq>,
    /// Set by the user's file rather than the defaults (for `bottle-freeze config`).
    pub from_file: bool,
    pub help: &'static str,
    /// Shown in the status bar (the short label) as well as in the help.
    pub status: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyMap {
    contexts: Vec<(Context, Vec<Binding>)>,
}

fn b(
    action: KeyAction,
    keys: &[KeyChord],
    help: &'static str,
    status: Option<&'static str>,
) -> Binding {
    Binding {
        action,
        keys: keys.iter().map(|k| KeySeq(vec![*k])).collect(),
        from_file: false,
        help,
        status,
    }
}

use KeyAction as A;

const UP: KeyChord = KeyChord::plain(KeyCode::Up);
const DOWN: KeyChord = KeyChord::plain(KeyCode::Down);
const PGUP: KeyChord = KeyChord::plain(KeyCode::PageUp);
const PGDN: KeyChord = KeyChord::plain(KeyCode::PageDown);
const HOME: KeyChord = KeyChord::plain(KeyCode::Home);
const END: KeyChord = KeyChord::plain(KeyCode::End);
const ENTER: KeyChord = KeyChord::plain(KeyCode::Enter);
const ESC: KeyChord = KeyChord::plain(KeyCode::Esc);

impl Default for KeyMap {
    fn default() -> Self {
        KeyMap::defaults()
    }
}

impl KeyMap {
    /// The default bindings: arrows and vim-style keys side by side.
    pub fn defaults() -> KeyMap {
        let ch = KeyChord::ch;
        let contexts = vec![
            (
                Context::Dashboard,
                vec![
                    b(A::Up, &[ch('k'), UP], "select the previous machine", None),
                    b(A::Down, &[ch('j'), DOWN], "select the next machine", None),
                    b(A::Top, &[ch('g'), HOME], "select the first machine", None),
                    b(
                        A::Freeze,
                        &[ch('f')],
                        "freeze the selected machine (asks first)",
                        Some("freeze"),
                    ),
                    b(
                        A::Open,
                        &[ENTER],
                        "open the selected machine's last record",
                        None,
                    ),
                    b(
                        A::Cancel,
                        &[ch('c')],
                        "cancel the selected machine's freeze (asks first)",
                        Some("cancel"),
                    ),
                    b(
                        A::Refresh,
                        &[ch('r')],
                        "refresh the machine list now",
                        Some("refresh"),
                    ),
                    b(
                        A::Filter,
                        &[ch('/')],
                        "filter machines (Enter keeps, Esc clears)",
                        Some("filter"),
                    ),
                    b(
                        A::SortNext,
                        &[ch('o')],
                        "sort by the next column",
                        Some("sort"),
                    ),
                    b(A::SortReverse, &[ch('O')], "reverse the sort order", None),
                    b(
                        A::PageUp,
                        &[PGUP],
                        "scroll the stderr tail up (stops following)",
                        None,
                    ),
                    b(A::PageDown, &[PGDN], "scroll the stderr tail down", None),
                    b(
                        A::Follow,
                        &[ch('G'), END],
                        "follow the stderr tail again",
                        None,
                    ),
                    b(A::Wrap, &[ch('w')], "wrap long stderr lines on/off", None),
                    b(A::History, &[ch('h')], "past freezes", Some("history")),
                ],
            ),
            (
                Context::History,
                vec![
                    b(A::Up, &[ch('k'), UP], "select the previous freeze", None),
                    b(A::Down, &[ch('j'), DOWN], "select the next freeze", None),
                    b(A::PageUp, &[PGUP], "one page up", None),
                    b(A::PageDown, &[PGDN], "one page down", None),
                    b(A::Top, &[ch('g'), HOME], "the newest freeze", None),
                    b(A::Bottom, &[ch('G'), END], "the oldest freeze", None),
                    b(
                        A::Open,
                        &[ENTER],
                        "open the freeze with its logs",
                        Some("open"),
                    ),
                    b(
                        A::Filter,
                        &[ch('/')],
                        "filter by machine, outcome, id and log text (Enter keeps, Esc clears)",
                        Some("filter"),
                    ),
                    b(
                        A::OutcomeFilter,
                        &[ch('o')],
                        "show all, failed, cancelled or succeeded runs",
                        Some("outcome"),
                    ),
                    b(
                        A::Copy,
                        &[ch('y')],
                        "copy the artifact path or export hint (OSC 52)",
                        Some("copy"),
                    ),
                    b(A::Refresh, &[ch('r')], "reload the history", Some("reload")),
                    b(
                        A::Back,
                        &[ESC, ch('h')],
                        "back to the dashboard",
                        Some("back"),
                    ),
                    b(
                        A::Resume,
                        &[ch('R')],
                        "resume a failed freeze from what it kept (asks first)",
                        Some("resume"),
                    ),
                    b(
                        A::Discard,
                        &[ch('D')],
                        "discard what a failed freeze kept (asks first)",
                        Some("discard"),
                    ),
                    b(
                        A::Freeze,
                        &[ch('f')],
                        "freeze the record's machine again (asks first)",
                        Some("re-freeze"),
                    ),
                    b(
                        A::Prune,
                        &[ch('P')],
                        "prune old records, images and artifacts (lists them, asks first)",
                        Some("prune"),
                    ),
                ],
            ),
            (
                Context::Record,
                vec![
                    b(A::Up, &[ch('k'), UP], "scroll up a line", None),
                    b(A::Down, &[ch('j'), DOWN], "scroll down a line", None),
                    b(A::PageUp, &[PGUP, ch('b')], "one page up", None),
                    b(
                        A::PageDown,
                        &[PGDN, KeyChord::ch(' ')],
                        "one page down",
                        None,
                    ),
                    b(A::Top, &[ch('g'), HOME], "the top", None),
                    b(A::Bottom, &[ch('G'), END], "the bottom", None),
                    b(
                        A::Search,
                        &[ch('/')],
                        "search the logs (Enter keeps, Esc clears)",
                        Some("search"),
                    ),
                    b(A::NextMatch, &[ch('n')], "next match", Some("next")),
                    b(A::PrevMatch, &[ch('N')], "previous match", None),
                    b(A::Wrap, &[ch('w')], "wrap long lines on/off", None),
                    b(
                        A::Copy,
                        &[ch('y')],
                        "copy the artifact path or export hint (OSC 52)",
                        None,
                    ),
                    b(
                        A::Save,
                        &[ch('s')],
                        "save the shown log to a file",
                        Some("save"),
                    ),
                    b(
                        A::Back,
                        &[ESC, ch('h'), KeyChord::plain(KeyCode::Backspace)],
                        "back to the list",
                        Some("back"),
                    ),
                    b(
                        A::Resume,
                        &[ch('R')],
                        "resume this failed freeze from what it kept (asks first)",
                        Some("resume"),
                    ),
                    b(
                        A::Discard,
                        &[ch('D')],
                        "discard what this failed freeze kept (asks first)",
                        Some("discard"),
                    ),
                    b(
                        A::Freeze,
                        &[ch('f')],
                        "freeze this record's machine again (asks first)",
                        Some("re-freeze"),
                    ),
                ],
            ),
            (
                Context::Dialog,
                vec![
                    b(A::Confirm, &[ch('y'), ENTER], "yes, go ahead", Some("yes")),
                    b(A::Deny, &[ch('n'), ESC], "no, back out", Some("no")),
                ],
            ),
            (
                Context::Help,
                vec![
                    b(A::Up, &[ch('k'), UP], "scroll up", None),
                    b(A::Down, &[ch('j'), DOWN], "scroll down", None),
                    b(A::PageUp, &[PGUP], "one page up", None),
                    b(A::PageDown, &[PGDN], "one page down", None),
                    b(A::Back, &[ESC, ch('?')], "close this help", Some("close")),
                ],
            ),
            (
                Context::Global,
                vec![
                    b(A::Help, &[ch('?')], "help: every key", Some("help")),
                    b(
                        A::Mouse,
                        &[ch('m')],
                        "mouse on/off (off: select text with the terminal as usual)",
                        None,
                    ),
                    b(
                        A::Quit,
                        &[ch('q'), KeyChord::ctrl('c')],
                        "quit (asks first while freezes run; cancels them)",
                        Some("quit"),
                    ),
                ],
            ),
        ];
        KeyMap { contexts }
    }

    pub fn bindings(&self, ctx: Context) -> &[Binding] {
        self.contexts
            .iter()
            .find(|(c, _)| *c == ctx)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    /// Rebinds one action in one context (for a user's key file).
    pub fn set(
        &mut self,
        ctx: Context,
        action: KeyAction,
        keys: Vec<KeySeq>,
    ) -> Result<(), String> {
        let Some((_, list)) = self.contexts.iter_mut().find(|(c, _)| *c == ctx) else {
            return Err(format!("no context {ctx:?}"));
        };
        match list.iter_mut().find(|b| b.action == action) {
            Some(binding) => {
                binding.keys = keys;
                Ok(())
            }
            None => Err(format!(
                "{action:?} has no meaning in the {} context",
                ctx.title()
            )),
        }
    }

    /// Sequences that can never be typed because a shorter binding in the same context
    /// is a prefix of them (it acts first): `(context, action, sequence, the shorter
    /// binding's action)`.
    pub fn shadowed(&self) -> Vec<(Context, KeyAction, KeySeq, KeyAction)> {
        let mut out = Vec::new();
        for (ctx, list) in &self.contexts {
            for b in list {
                for seq in b.keys.iter().filter(|k| k.0.len() > 1) {
                    let by = list.iter().find_map(|other| {
                        other
                            .keys
                            .iter()
                            .any(|o| o.0.len() < seq.0.len() && seq.starts_with(&o.0))
                            .then_some(other.action)
                    });
                    if let Some(by) = by {
                        out.push((*ctx, b.action, seq.clone(), by));
                    }
                }
            }
        }
        out
    }

    /// Records that the user's file set this binding.
    pub fn mark_from_file(&mut self, ctx: Context, action: KeyAction) {
        if let Some((_, list)) = self.contexts.iter_mut().find(|(c, _)| *c == ctx) {
            for b in list.iter_mut().filter(|b| b.action == action) {
                b.from_file = true;
            }
        }
    }

    /// The action a single key press means in `ctx` (sequences aside).
    pub fn lookup(&self, ctx: Context, ev: &KeyEvent) -> Option<KeyAction> {
        match self.lookup_seq(ctx, &[], ev) {
            Lookup::Action(a) => Some(a),
            _ => None,
        }
    }

    /// What a key press means in `ctx` after the keys `pending` of an unfinished
    /// sequence. The context's own bindings come first; the global ones apply in the
    /// non-modal contexts only (a dialog or the help takes every key).
    pub fn lookup_seq(&self, ctx: Context, pending: &[KeyChord], ev: &KeyEvent) -> Lookup {
        if ev.kind == KeyEventKind::Release {
            return Lookup::None;
        }
        let mut keys = pending.to_vec();
        keys.push(KeyChord::from_event(ev));
        let mut ctxs = vec![ctx];
        // Global keys work in help too (one rule for `q`: it quits); a dialog takes only
        // its own answer.
        if !matches!(ctx, Context::Dialog | Context::Global) {
            ctxs.push(Context::Global);
        }
        for c in ctxs {
            let bindings = self.bindings(c);
            if let Some(b) = bindings.iter().find(|b| b.keys.iter().any(|k| k.is(&keys))) {
                return Lookup::Action(b.action);
            }
            if bindings
                .iter()
                .any(|b| b.keys.iter().any(|k| k.starts_with(&keys)))
            {
                return Lookup::Pending;
            }
        }
        Lookup::None
    }

    /// The keys of an action as the help shows them: `k/↑`.
    pub fn keys_text(&self, ctx: Context, action: KeyAction) -> String {
        self.bindings(ctx)
            .iter()
            .find(|b| b.action == action)
            .map(|b| {
                b.keys
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default()
    }

    /// `(first key, label)` pairs for the status bar of `ctx`, then the global ones.
    pub fn status_hints(&self, ctx: Context) -> Vec<(String, &'static str)> {
        let mut ctxs = vec![ctx];
        if !matches!(ctx, Context::Dialog | Context::Help | Context::Global) {
            ctxs.push(Context::Global);
        }
        ctxs.into_iter()
            .flat_map(|c| self.bindings(c).iter())
            .filter_map(|b| Some((b.keys.first()?.to_string(), b.status?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn vim_keys_and_arrows_both_work() {
        let m = KeyMap::defaults();
        let up = m.lookup(
            Context::Dashboard,
            &key(KeyCode::Char('k'), KeyModifiers::NONE),
        );
        assert_eq!(up, Some(KeyAction::Up));
        let up = m.lookup(Context::Dashboard, &key(KeyCode::Up, KeyModifiers::NONE));
        assert_eq!(up, Some(KeyAction::Up));
        // Shift is part of the character.
        let g = m.lookup(
            Context::Dashboard,
            &key(KeyCode::Char('G'), KeyModifiers::SHIFT),
        );
        assert_eq!(g, Some(KeyAction::Follow));
        let q = m.lookup(
            Context::History,
            &key(KeyCode::Char('c'), KeyModifiers::CONTROL),
        );
        assert_eq!(q, Some(KeyAction::Quit));
        // Plain c is not Ctrl-c.
        let c = m.lookup(
            Context::Dashboard,
            &key(KeyCode::Char('c'), KeyModifiers::NONE),
        );
        assert_eq!(c, Some(KeyAction::Cancel));
    }

    #[test]
    fn modal_contexts_take_every_key() {
        let m = KeyMap::defaults();
        assert_eq!(
            m.lookup(
                Context::Dialog,
                &key(KeyCode::Char('q'), KeyModifiers::NONE)
            ),
            None
        );
        assert_eq!(
            m.lookup(Context::Help, &key(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(KeyAction::Quit)
        );
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["q", "G", "Ctrl-c", "Enter", "PgUp", "F5", "Space", "↑"] {
            let parsed = KeyChord::parse(match s {
                "↑" => "up",
                other => other,
            })
            .unwrap();
            assert_eq!(parsed.to_string(), s);
        }
        assert!(KeyChord::parse("hyper-x").is_err());
        assert!(KeyChord::parse("f13").is_err());
    }

    #[test]
    fn rebinding_changes_lookup_and_help() {
        let mut m = KeyMap::defaults();
        m.set(
            Context::Dashboard,
            KeyAction::Freeze,
            vec![KeySeq(vec![KeyChord::ch('x')])],
        )
        .unwrap();
        assert_eq!(
            m.lookup(
                Context::Dashboard,
                &key(KeyCode::Char('x'), KeyModifiers::NONE)
            ),
            Some(KeyAction::Freeze)
        );
        assert_eq!(m.keys_text(Context::Dashboard, KeyAction::Freeze), "x");
        assert!(m.set(Context::Dialog, KeyAction::Freeze, vec![]).is_err());
        assert!(m
            .status_hints(Context::Dashboard)
            .contains(&("x".to_string(), "freeze")));
    }
}
