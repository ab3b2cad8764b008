//! The file's shape (its tables and keys) and reading it: a file that does not parse
//! is reported with its line and column and ignored; unknown keys are warnings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::args::{BuilderArg, PushViaArg, TransportArg};
use crate::vocab::theme::ThemeName;

/// The file's shape. Unknown keys are found separately (see [`unknown_keys`]), so that
/// serde reports only type errors, with their position.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct FileConfig {
    pub(super) smolvm: Option<PathBuf>,
    pub(super) prefix: Option<String>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) tmp_dir: Option<PathBuf>,
    pub(super) docker_host: Option<String>,
    pub(super) refresh: Option<f64>,
    pub(super) query_timeout: Option<u64>,
    pub(super) log_level: Option<String>,
    pub(super) hosts: Option<Vec<String>>,
    pub(super) prune_keep: Option<u64>,
    pub(super) freeze: FreezeSection,
    pub(super) registry: RegistrySection,
    pub(super) ui: UiSection,
    pub(super) keys: BTreeMap<String, BTreeMap<String, KeySpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct FreezeSection {
    pub(super) transport: Option<TransportArg>,
    pub(super) guest_scratch_dir: Option<String>,
    pub(super) user: Option<String>,
    pub(super) workdir: Option<String>,
    pub(super) push_via: Option<PushViaArg>,
    pub(super) stall_after: Option<u64>,
    pub(super) stall_timeout: Option<u64>,
    pub(super) exclude: Option<Vec<String>>,
    pub(super) fail_on_secrets: Option<bool>,
    pub(super) builder: Option<BuilderArg>,
    pub(super) push_to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RegistrySection {
    pub(super) address: Option<String>,
    pub(super) bin: Option<PathBuf>,
    pub(super) port: Option<u16>,
    pub(super) push_host: Option<String>,
    pub(super) pull_host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct UiSection {
    pub(super) theme: Option<ThemeName>,
    pub(super) mouse: Option<bool>,
    pub(super) bell: Option<bool>,
    pub(super) notify: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum KeySpec {
    One(String),
    Many(Vec<String>),
}

const TOP_KEYS: &[&str] = &[
    "smolvm",
    "prefix",
    "state_dir",
    "tmp_dir",
    "docker_host",
    "refresh",
    "query_timeout",
    "log_level",
    "hosts",
    "prune_keep",
    "freeze",
    "registry",
    "ui",
    "keys",
];
const FREEZE_KEYS: &[&str] = &[
    "transport",
    "guest_scratch_dir",
    "user",
    "workdir",
    "push_via",
    "stall_after",
    "stall_timeout",
    "exclude",
    "fail_on_secrets",
    "builder",
    "push_to",
];
const REGISTRY_KEYS: &[&str] = &["address", "bin", "port", "push_host", "pull_host"];
const UI_KEYS: &[&str] = &["theme", "mouse", "bell", "notify"];

/// `line:column` (both from 1) of a byte offset in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Dotted names of the keys the file has and we do not know.
fn unknown_keys(table: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in table {
        if !TOP_KEYS.contains(&k.as_str()) {
            out.push(k.clone());
            continue;
        }
        let known: &[&str] = match k.as_str() {
            "freeze" => FREEZE_KEYS,
            "registry" => REGISTRY_KEYS,
            "ui" => UI_KEYS,
            // Key bindings are checked when they are applied (names and chords).
            _ => continue,
        };
        if let Some(t) = v.as_table() {
            out.extend(
                t.keys()
                    .filter(|sub| !known.contains(&sub.as_str()))
                    .map(|sub| format!("{k}.{sub}")),
            );
        }
    }
    out
}

/// The file's tables whose keys are checked one by one (`keys` holds one more level:
/// `[keys.<context>] <action> = …`).
const SECTIONS: &[&str] = &["freeze", "registry", "ui"];

type Doc<'i> = toml::de::DeTable<'i>;
type Key<'i> = toml::Spanned<toml::de::DeString<'i>>;
type Val<'i> = toml::Spanned<toml::de::DeValue<'i>>;
type Span = std::ops::Range<usize>;

/// `doc` (the file or a part of it) read as a [`FileConfig`].
fn read_doc(doc: Doc<'_>, span: Span) -> Result<FileConfig, toml::de::Error> {
    use serde::de::IntoDeserializer as _;
    FileConfig::deserialize(toml::Spanned::new(span, doc).into_deserializer())
}

/// A document holding only `key = value`, inside the tables of `path`.
fn only<'i>(path: &[(&Key<'i>, Span)], key: &Key<'i>, value: &Val<'i>) -> Doc<'i> {
    let mut leaf = Doc::new();
    leaf.insert(key.clone(), value.clone());
    path.iter().rev().fold(leaf, |inner, (k, span)| {
        let mut outer = Doc::new();
        outer.insert(
            (*k).clone(),
            toml::Spanned::new(span.clone(), toml::de::DeValue::Table(inner)),
        );
        outer
    })
}

/// Removes from `table` (at `path` in the file) every value that does not read, each
/// named in `warnings` with its line, so that the rest of the file still applies.
fn drop_bad_values<'i>(
    text: &str,
    file: &Path,
    path: &[(&Key<'i>, Span)],
    table: &mut Doc<'i>,
    warnings: &mut Vec<String>,
) {
    let depth_of = |key: &str| match (path.len(), path.first().map(|(k, _)| k.get_ref().as_ref())) {
        (0, _) if SECTIONS.contains(&key) || key == "keys" => 1,
        (1, Some("keys")) => 1,
        _ => 0,
    };
    let keys: Vec<Key<'i>> = table.keys().cloned().collect();
    for key in keys {
        let Some(value) = table.get_mut(&key) else {
            continue;
        };
        if depth_of(key.get_ref()) > 0 {
            let span = value.span();
            if let toml::de::DeValue::Table(inner) = value.get_mut() {
                let mut inner_path = path.to_vec();
                inner_path.push((&key, span));
                drop_bad_values(text, file, &inner_path, inner, warnings);
                continue;
            }
        }
        let Err(e) = read_doc(only(path, &key, value), 0..text.len()) else {
            continue;
        };
        let at = e.span().unwrap_or_else(|| value.span());
        let (line, col) = line_col(text, at.start);
        let dotted: Vec<&str> = path
            .iter()
            .map(|(k, _)| k.get_ref().as_ref())
            .chain(std::iter::once(key.get_ref().as_ref()))
            .collect();
        warnings.push(format!(
            "config: {}:{line}:{col}: `{}`: {}; the default is used for it",
            file.display(),
            dotted.join("."),
            e.message().trim()
        ));
        table.remove(&key);
    }
}

/// Reads and checks the file. A missing file is no file; a file that does not parse as
/// TOML gives a warning with line and column, and no values; a value that does not fit
/// its key is named with its line and dropped alone (the key keeps its default).
pub(super) fn read_file(path: &Path, warnings: &mut Vec<String>) -> Option<FileConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warnings.push(format!(
                "config: cannot read {}: {e}; using the defaults",
                path.display()
            ));
            return None;
        }
    };
    let report = |e: toml::de::Error, warnings: &mut Vec<String>| {
        let at = e
            .span()
            .map(|s| {
                let (l, c) = line_col(&text, s.start);
                format!(":{l}:{c}")
            })
            .unwrap_or_default();
        warnings.push(format!(
            "config: {}{at}: {}; the file is ignored and the defaults are used",
            path.display(),
            e.message().trim()
        ));
    };
    let doc = match toml::de::DeTable::parse(&text) {
        Ok(d) => d,
        Err(e) => {
            report(e, warnings);
            return None;
        }
    };
    let (span, mut doc) = (doc.span(), doc.into_inner());
    let table: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            report(e, warnings);
            return None;
        }
    };
    for k in unknown_keys(&table) {
        warnings.push(format!(
            "config: {}: unknown key `{k}` (ignored)",
            path.display()
        ));
    }
    drop_bad_values(&text, path, &[], &mut doc, warnings);
    match read_doc(doc, span) {
        Ok(f) => Some(f),
        Err(e) => {
            report(e, warnings);
            None
        }
    }
}
