//! The effective configuration: flags over environment over the user's file over the
//! defaults, with where each value came from.
//!
//! The file is `$XDG_CONFIG_HOME/bottle-freeze/config.toml` (or `--config` /
//! `BOTTLE_FREEZE_CONFIG`). A file that does not parse is reported with its line and
//! column and ignored as a whole; unknown keys and unusable key bindings are named as
//! warnings. Nothing here panics on what a user wrote.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use crate::args::TransportArg;
use crate::ui::keys::{Context, KeyAction, KeyMap, KeySeq};
use crate::ui::theme::ThemeName;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env(&'static str),
    Flag(&'static str),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File => f.write_str("file"),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One line of the effective configuration, for `bottle-freeze config`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `""` for the top level, else the table (`freeze`, `registry`, `ui`).
    pub section: &'static str,
    pub key: &'static str,
    /// None: unset (the help says what that means).
    pub value: Option<toml::Value>,
    pub source: Source,
    pub help: &'static str,
}

/// Every setting, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub smolvm: PathBuf,
    pub prefix: String,
    pub state_dir: PathBuf,
    pub tmp_dir: PathBuf,
    pub docker_host: Option<String>,
    pub refresh: f64,
    pub query_timeout: u64,
    pub log_level: String,
    pub transport: TransportArg,
    pub guest_scratch_dir: String,
    pub user: String,
    pub workdir: String,
    pub registry: Option<String>,
    pub registry_bin: Option<PathBuf>,
    pub registry_port: Option<u16>,
    pub push_host: String,
    pub pull_host: String,
    pub theme: ThemeName,
    pub mouse: bool,
    pub bell: bool,
    pub keys: KeyMap,
    /// The file read, if any (also when it was ignored for an error).
    pub file: Option<PathBuf>,
    pub entries: Vec<Entry>,
    /// Problems with the file, each a full sentence for the operator.
    pub warnings: Vec<String>,
}

/// The file's shape. Unknown keys are found separately (see [`unknown_keys`]), so that
/// serde reports only type errors, with their position.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileConfig {
    smolvm: Option<PathBuf>,
    prefix: Option<String>,
    state_dir: Option<PathBuf>,
    tmp_dir: Option<PathBuf>,
    docker_host: Option<String>,
    refresh: Option<f64>,
    query_timeout: Option<u64>,
    log_level: Option<String>,
    freeze: FreezeSection,
    registry: RegistrySection,
    ui: UiSection,
    keys: BTreeMap<String, BTreeMap<String, KeySpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FreezeSection {
    transport: Option<TransportArg>,
    guest_scratch_dir: Option<String>,
    user: Option<String>,
    workdir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RegistrySection {
    address: Option<String>,
    bin: Option<PathBuf>,
    port: Option<u16>,
    push_host: Option<String>,
    pull_host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UiSection {
    theme: Option<ThemeName>,
    mouse: Option<bool>,
    bell: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum KeySpec {
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
    "freeze",
    "registry",
    "ui",
    "keys",
];
const FREEZE_KEYS: &[&str] = &["transport", "guest_scratch_dir", "user", "workdir"];
const REGISTRY_KEYS: &[&str] = &["address", "bin", "port", "push_host", "pull_host"];
const UI_KEYS: &[&str] = &["theme", "mouse", "bell"];

/// The default location of the file: `$XDG_CONFIG_HOME/bottle-freeze/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("bottle-freeze").join("config.toml"))
}

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

/// Reads and checks the file. A missing file is no file; a file that does not parse
/// gives a warning with line and column, and no values.
fn read_file(path: &Path, warnings: &mut Vec<String>) -> Option<FileConfig> {
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
    let table: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            report(e, warnings);
            return None;
        }
    };
    let file: FileConfig = match toml::from_str(&text) {
        Ok(f) => f,
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
    Some(file)
}

/// Something a value can be shown as in TOML.
trait ToToml {
    fn to_toml(&self) -> toml::Value;
}

impl ToToml for String {
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(self.clone())
    }
}
impl ToToml for PathBuf {
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(self.to_string_lossy().into_owned())
    }
}
impl ToToml for u64 {
    fn to_toml(&self) -> toml::Value {
        toml::Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToToml for u16 {
    fn to_toml(&self) -> toml::Value {
        toml::Value::Integer(i64::from(*self))
    }
}
impl ToToml for f64 {
    fn to_toml(&self) -> toml::Value {
        toml::Value::Float(*self)
    }
}
impl ToToml for bool {
    fn to_toml(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
}
impl ToToml for TransportArg {
    fn to_toml(&self) -> toml::Value {
        use clap::ValueEnum as _;
        let name = self
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        toml::Value::String(name)
    }
}
impl ToToml for ThemeName {
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(self.name().into())
    }
}

/// One setting's description: where it lives in the file, its flag and its variable.
struct Spec {
    section: &'static str,
    key: &'static str,
    /// The clap argument id (the field name) and how the flag is spelt.
    arg: Option<(&'static str, &'static str)>,
    env: Option<&'static str>,
    help: &'static str,
}

/// The state of one resolution.
struct Resolver<'a> {
    matches: Option<&'a ArgMatches>,
    env: &'a dyn Fn(&str) -> Option<String>,
    entries: Vec<Entry>,
    warnings: Vec<String>,
}

impl Resolver<'_> {
    /// The value given on the command line (not a default, not clap's reading of the
    /// environment), looked up in the subcommand first.
    fn flag<T: Clone + Send + Sync + 'static>(&self, id: &str) -> Option<T> {
        let top = self.matches?;
        let mut chain = vec![top];
        if let Some((_, sub)) = top.subcommand() {
            chain.insert(0, sub);
            if let Some((_, subsub)) = sub.subcommand() {
                chain.insert(0, subsub);
            }
        }
        for m in chain {
            // try_get_one first: value_source panics on ids the command does not have.
            if let Ok(Some(v)) = m.try_get_one::<T>(id) {
                if m.value_source(id) == Some(ValueSource::CommandLine) {
                    return Some(v.clone());
                }
            }
        }
        None
    }

    /// flag > environment > file > `default` (None: unset).
    fn pick<T: ToToml + Clone + Send + Sync + 'static>(
        &mut self,
        spec: Spec,
        parse: impl Fn(&str) -> Result<T, String>,
        file: Option<T>,
        default: Option<T>,
    ) -> Option<T> {
        let mut found: Option<(T, Source)> = None;
        if let Some((id, flag)) = spec.arg {
            found = self.flag::<T>(id).map(|v| (v, Source::Flag(flag)));
        }
        if found.is_none() {
            if let Some(var) = spec.env {
                if let Some(raw) = (self.env)(var).filter(|v| !v.trim().is_empty()) {
                    match parse(&raw) {
                        Ok(v) => found = Some((v, Source::Env(var))),
                        Err(why) => self
                            .warnings
                            .push(format!("{var}={raw:?} is not usable ({why}); ignored")),
                    }
                }
            }
        }
        if found.is_none() {
            found = file.map(|v| (v, Source::File));
        }
        let (value, source) = match found {
            Some((v, s)) => (Some(v), s),
            None => (default, Source::Default),
        };
        self.entries.push(Entry {
            section: spec.section,
            key: spec.key,
            value: value.as_ref().map(ToToml::to_toml),
            source,
            help: spec.help,
        });
        value
    }
}

fn s(v: &str) -> Result<String, String> {
    Ok(v.to_string())
}
fn p(v: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(v))
}
fn num<T: std::str::FromStr>(v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.trim().parse::<T>().map_err(|e| e.to_string())
}

fn spec(
    section: &'static str,
    key: &'static str,
    arg: Option<(&'static str, &'static str)>,
    env: Option<&'static str>,
    help: &'static str,
) -> Spec {
    Spec {
        section,
        key,
        arg,
        env,
        help,
    }
}

impl Settings {
    /// Resolves every setting. `matches` are the parsed command line (None: no flags),
    /// `env` reads a variable, `file` is the configuration file to read (None: none).
    pub fn resolve(
        matches: Option<&ArgMatches>,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&Path>,
    ) -> Settings {
        let mut warnings = Vec::new();
        let f = file
            .and_then(|path| read_file(path, &mut warnings))
            .unwrap_or_default();
        let mut r = Resolver {
            matches,
            env,
            entries: Vec::new(),
            warnings,
        };
        let smolvm = r
            .pick(
                spec(
                    "",
                    "smolvm",
                    Some(("smolvm", "--smolvm")),
                    Some("BOTTLE_FREEZE_SMOLVM"),
                    "the smolvm binary (a name on PATH or a path)",
                ),
                p,
                f.smolvm,
                Some(PathBuf::from("smolvm")),
            )
            .unwrap_or_else(|| PathBuf::from("smolvm"));
        let prefix = r
            .pick(
                spec(
                    "",
                    "prefix",
                    Some(("prefix", "--prefix")),
                    Some("BOTTLE_FREEZE_PREFIX"),
                    "machine name prefix of bot-bottle sandboxes",
                ),
                s,
                f.prefix,
                Some(crate::names::DEFAULT_PREFIX.to_string()),
            )
            .unwrap_or_else(|| crate::names::DEFAULT_PREFIX.to_string());
        let state_dir = r
            .pick(
                spec(
                    "",
                    "state_dir",
                    Some(("state_dir", "--state-dir")),
                    Some("BOTTLE_FREEZE_STATE_DIR"),
                    "freeze records, artifacts and the log [default: $XDG_STATE_HOME/bot-bottle]",
                ),
                p,
                f.state_dir,
                Some(crate::history::default_state_dir()),
            )
            .unwrap_or_else(crate::history::default_state_dir);
        let tmp_dir = r
            .pick(
                spec(
                    "",
                    "tmp_dir",
                    Some(("tmp_dir", "--tmp-dir")),
                    Some("BOTTLE_FREEZE_TMPDIR"),
                    "where private temp folders are made [default: the system temp dir]",
                ),
                p,
                f.tmp_dir,
                Some(std::env::temp_dir()),
            )
            .unwrap_or_else(std::env::temp_dir);
        let docker_host = r.pick(
            spec(
                "",
                "docker_host",
                Some(("docker_host", "--docker-host")),
                Some("DOCKER_HOST"),
                "the Docker daemon [default: unix:///var/run/docker.sock]",
            ),
            s,
            f.docker_host,
            None,
        );
        let refresh = r
            .pick(
                spec(
                    "",
                    "refresh",
                    Some(("refresh", "--refresh")),
                    Some("BOTTLE_FREEZE_REFRESH"),
                    "dashboard: seconds between machine list refreshes",
                ),
                num::<f64>,
                f.refresh,
                Some(3.0),
            )
            .unwrap_or(3.0);
        let query_timeout = r
            .pick(
                spec(
                    "",
                    "query_timeout",
                    Some(("query_timeout", "--query-timeout")),
                    Some("BOTTLE_FREEZE_QUERY_TIMEOUT"),
                    "seconds a short smolvm query (machine ls, df) may take",
                ),
                num::<u64>,
                f.query_timeout,
                Some(15),
            )
            .unwrap_or(15);
        let log_level = r
            .pick(
                spec(
                    "",
                    "log_level",
                    Some(("log_level", "--log-level")),
                    Some("RUST_LOG"),
                    "log level or filter of the log file (error, warn, info, debug, trace)",
                ),
                s,
                f.log_level,
                Some("info".to_string()),
            )
            .unwrap_or_else(|| "info".into());
        let transport = r
            .pick(
                spec(
                    "freeze",
                    "transport",
                    Some(("transport", "--transport")),
                    Some("BOTTLE_FREEZE_TRANSPORT"),
                    "how the archive leaves the VM: auto, pipe or guest-file",
                ),
                |v| {
                    use clap::ValueEnum as _;
                    TransportArg::from_str(v, true)
                },
                f.freeze.transport,
                Some(TransportArg::Auto),
            )
            .unwrap_or(TransportArg::Auto);
        let guest_scratch_dir = r
            .pick(
                spec(
                    "freeze",
                    "guest_scratch_dir",
                    Some(("guest_scratch_dir", "--guest-scratch-dir")),
                    None,
                    "folder in the guest for the guest-file transport's scratch archive",
                ),
                s,
                f.freeze.guest_scratch_dir,
                Some("/tmp".into()),
            )
            .unwrap_or_else(|| "/tmp".into());
        let user = r
            .pick(
                spec(
                    "freeze",
                    "user",
                    Some(("user", "--user")),
                    None,
                    "USER of the image's Dockerfile",
                ),
                s,
                f.freeze.user,
                Some("node".into()),
            )
            .unwrap_or_else(|| "node".into());
        let workdir = r
            .pick(
                spec(
                    "freeze",
                    "workdir",
                    Some(("workdir", "--workdir")),
                    None,
                    "WORKDIR of the image's Dockerfile",
                ),
                s,
                f.freeze.workdir,
                Some("/home/node".into()),
            )
            .unwrap_or_else(|| "/home/node".into());
        let registry = r.pick(
            spec(
                "registry",
                "address",
                Some(("registry", "--registry")),
                Some("BOTTLE_FREEZE_REGISTRY"),
                "HOST:PORT of an existing registry; unset: spawn a throw-away one",
            ),
            s,
            f.registry.address,
            None,
        );
        let registry_bin = r.pick(
            spec(
                "registry",
                "bin",
                Some(("registry_bin", "--registry-bin")),
                Some("BOTTLE_FREEZE_REGISTRY_BIN"),
                "registry binary to spawn [default: registry, then docker-registry on PATH]",
            ),
            p,
            f.registry.bin,
            None,
        );
        let registry_port = r.pick(
            spec(
                "registry",
                "port",
                Some(("registry_port", "--registry-port")),
                Some("BOTTLE_FREEZE_REGISTRY_PORT"),
                "port to try first for the spawned registry [default: a free one]",
            ),
            num::<u16>,
            f.registry.port,
            None,
        );
        let push_host = r
            .pick(
                spec(
                    "registry",
                    "push_host",
                    Some(("push_host", "--push-host")),
                    None,
                    "host the Docker daemon pushes to",
                ),
                s,
                f.registry.push_host,
                Some("127.0.0.1".into()),
            )
            .unwrap_or_else(|| "127.0.0.1".into());
        let pull_host = r
            .pick(
                spec(
                    "registry",
                    "pull_host",
                    Some(("pull_host", "--pull-host")),
                    None,
                    "host smolvm pulls from",
                ),
                s,
                f.registry.pull_host,
                Some("127.0.0.1".into()),
            )
            .unwrap_or_else(|| "127.0.0.1".into());
        // NO_COLOR (any non-empty value) asks for no colours: the monochrome theme.
        let no_color = (r.env)("NO_COLOR").is_some_and(|v| !v.is_empty());
        let theme_env = if no_color {
            Some("NO_COLOR")
        } else {
            Some("BOTTLE_FREEZE_THEME")
        };
        let theme = r
            .pick(
                spec(
                    "ui",
                    "theme",
                    Some(("theme", "--theme")),
                    theme_env,
                    "dark, light or mono (NO_COLOR set: mono)",
                ),
                |v| {
                    if no_color {
                        Ok(ThemeName::Mono)
                    } else {
                        ThemeName::from_name(v).ok_or_else(|| "dark, light or mono".to_string())
                    }
                },
                f.ui.theme,
                Some(ThemeName::Dark),
            )
            .unwrap_or(ThemeName::Dark);
        let mouse = r
            .pick(
                spec(
                    "ui",
                    "mouse",
                    None,
                    None,
                    "mouse on at start (a key turns it off for the terminal's own selection)",
                ),
                num::<bool>,
                f.ui.mouse,
                Some(true),
            )
            .unwrap_or(true);
        let bell = r
            .pick(
                spec(
                    "ui",
                    "bell",
                    None,
                    None,
                    "ring the terminal bell when a freeze ends",
                ),
                num::<bool>,
                f.ui.bell,
                Some(true),
            )
            .unwrap_or(true);
        let mut keys = KeyMap::defaults();
        let mut warnings = r.warnings;
        for (ctx_name, actions) in &f.keys {
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
        let file_read = file.filter(|p| p.exists()).map(Path::to_path_buf);
        Settings {
            smolvm,
            prefix,
            state_dir,
            tmp_dir,
            docker_host,
            refresh,
            query_timeout,
            log_level,
            transport,
            guest_scratch_dir,
            user,
            workdir,
            registry,
            registry_bin,
            registry_port,
            push_host,
            pull_host,
            theme,
            mouse,
            bell,
            keys,
            file: file_read,
            entries: r.entries,
            warnings,
        }
    }

    /// The defaults alone (no flags, no environment, no file).
    pub fn defaults() -> Settings {
        Settings::resolve(None, &|_| None, None)
    }

    /// The effective configuration as TOML, each value with where it came from.
    pub fn render_effective(&self) -> String {
        let mut out = String::from("# bottle-freeze: the effective configuration\n");
        let _ = match &self.file {
            Some(p) => writeln!(out, "# file: {}", p.display()),
            None => writeln!(out, "# file: none (looked for {})", looked_for()),
        };
        out.push_str("# precedence: flag > environment > file > default\n");
        self.render(&mut out, false);
        out
    }

    /// A commented default file: every setting with its help, commented out.
    pub fn render_default_file() -> String {
        let mut out = String::from(
            "# bottle-freeze configuration: $XDG_CONFIG_HOME/bottle-freeze/config.toml\n\
             # Every line below is a default; uncomment to change it.\n\
             # Precedence: flag > environment > this file > default.\n",
        );
        Settings::defaults().render(&mut out, true);
        out
    }

    fn render(&self, out: &mut String, commented: bool) {
        let mut section = "";
        for e in &self.entries {
            if e.section != section {
                section = e.section;
                let _ = writeln!(out, "\n[{section}]");
            }
            let value = e.value.as_ref().map(|v| v.to_string());
            if commented {
                let _ = writeln!(out, "# {}", e.help);
                let v = value.unwrap_or_else(|| "…".into());
                let _ = writeln!(out, "# {} = {v}", e.key);
            } else {
                match value {
                    Some(v) => {
                        let _ = writeln!(out, "{} = {v}  # {}", e.key, e.source);
                    }
                    None => {
                        let _ = writeln!(out, "# {} unset  # {}: {}", e.key, e.source, e.help);
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "\n# keys: each action takes a key or a list; a sequence is keys separated by spaces (\"g g\")"
        );
        for ctx in Context::ALL {
            let _ = writeln!(out, "\n[keys.{}]", ctx.name());
            for b in self.keys.bindings(ctx) {
                let list = b
                    .keys
                    .iter()
                    .map(|k| toml::Value::String(k.config_name()).to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let line = format!("{} = [{list}]", b.action.name());
                if commented {
                    let _ = writeln!(out, "# {line}  # {}", b.help);
                } else {
                    let src = if b.from_file { "file" } else { "default" };
                    let _ = writeln!(out, "{line}  # {src}");
                }
            }
        }
    }

    /// The core's configuration for a freeze or an export.
    pub fn freeze_config(&self) -> crate::freeze::FreezeConfig {
        use crate::freeze::{RegistryChoice, TransportChoice};
        crate::freeze::FreezeConfig {
            smolvm: crate::smolvm::Smolvm::new(&self.smolvm)
                .with_query_timeout(std::time::Duration::from_secs(self.query_timeout)),
            prefix: self.prefix.clone(),
            state_dir: self.state_dir.clone(),
            tmp_dir: self.tmp_dir.clone(),
            transport: match self.transport {
                TransportArg::Auto => TransportChoice::Auto,
                TransportArg::Pipe => TransportChoice::Pipe,
                TransportArg::GuestFile => TransportChoice::GuestFile,
            },
            guest_scratch_dir: self.guest_scratch_dir.clone(),
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            registry: match &self.registry {
                Some(addr) => RegistryChoice::Existing { addr: addr.clone() },
                None => RegistryChoice::Spawn {
                    bin: self.registry_bin.clone(),
                },
            },
            push_host: self.push_host.clone(),
            pull_host: self.pull_host.clone(),
            registry_port: self.registry_port,
            push_via: crate::freeze::push::PushVia::Stream,
            exclude: Vec::new(),
            fail_on_secrets: false,
        }
    }
}

fn looked_for() -> String {
    default_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "no config folder".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn entry<'a>(s: &'a Settings, key: &str) -> &'a Entry {
        s.entries.iter().find(|e| e.key == key).unwrap()
    }

    #[test]
    fn flag_over_env_over_file_over_default() {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let (_d, path) =
            file("prefix = \"file-\"\nquery_timeout = 7\n[freeze]\nuser = \"fileuser\"\n");
        let env = |v: &str| match v {
            "BOTTLE_FREEZE_PREFIX" => Some("env-".to_string()),
            "BOTTLE_FREEZE_QUERY_TIMEOUT" => Some("9".to_string()),
            _ => None,
        };
        let m = crate::args::Cli::command()
            .try_get_matches_from(["bottle-freeze", "--prefix", "flag-", "config"])
            .unwrap();
        crate::args::Cli::from_arg_matches(&m).unwrap();
        let s = Settings::resolve(Some(&m), &env, Some(&path));
        assert_eq!(s.prefix, "flag-");
        assert_eq!(entry(&s, "prefix").source, Source::Flag("--prefix"));
        assert_eq!(s.query_timeout, 9);
        assert_eq!(
            entry(&s, "query_timeout").source,
            Source::Env("BOTTLE_FREEZE_QUERY_TIMEOUT")
        );
        assert_eq!(s.user, "fileuser");
        assert_eq!(entry(&s, "user").source, Source::File);
        assert_eq!(s.workdir, "/home/node");
        assert_eq!(entry(&s, "workdir").source, Source::Default);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn a_flag_given_after_the_subcommand_counts() {
        use clap::CommandFactory as _;
        let m = crate::args::Cli::command()
            .try_get_matches_from([
                "bottle-freeze",
                "freeze",
                "x",
                "--user",
                "u",
                "--smolvm",
                "/s",
            ])
            .unwrap();
        let s = Settings::resolve(Some(&m), &|_| None, None);
        assert_eq!(s.user, "u");
        assert_eq!(s.smolvm, PathBuf::from("/s"));
        assert_eq!(entry(&s, "smolvm").source, Source::Flag("--smolvm"));
    }

    #[test]
    fn a_malformed_file_names_line_and_column_and_keeps_defaults() {
        let (_d, path) = file("prefix = \"ok-\"\n[freeze]\nuser = = \"x\"\n");
        let s = Settings::resolve(None, &|_| None, Some(&path));
        assert_eq!(s.prefix, crate::names::DEFAULT_PREFIX);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        let w = &s.warnings[0];
        assert!(w.contains(&format!("{}:3:", path.display())), "{w}");
        assert!(w.contains("the defaults are used"), "{w}");
        // A type error has its position too.
        let (_d2, path) = file("refresh = 2.0\n[freeze]\ntransport = \"carrier-pigeon\"\n");
        let s = Settings::resolve(None, &|_| None, Some(&path));
        assert!(s.warnings[0].contains(":3:13"), "{:?}", s.warnings);
        assert_eq!(s.refresh, 3.0);
    }

    #[test]
    fn unknown_keys_are_warnings_and_the_rest_applies() {
        let (_d, path) = file(
            "colour = \"blue\"\n[freeze]\nusr = \"x\"\nuser = \"me\"\n[keys.dashboard]\nfreeze = \"x\"\nfly = \"y\"\n[keys.nowhere]\nup = \"k\"\n",
        );
        let s = Settings::resolve(None, &|_| None, Some(&path));
        assert_eq!(s.user, "me");
        let all = s.warnings.join("\n");
        for k in [
            "`colour`",
            "`freeze.usr`",
            "`keys.dashboard.fly`",
            "`keys.nowhere`",
        ] {
            assert!(all.contains(k), "{k} missing from {all}");
        }
        assert_eq!(s.keys.keys_text(Context::Dashboard, KeyAction::Freeze), "x");
    }

    #[test]
    fn a_sequence_hidden_by_a_shorter_binding_is_named() {
        let (_d, path) = file("[keys.dashboard]\nfreeze = \"g f\"\nhistory = \"z h\"\n");
        let s = Settings::resolve(None, &|_| None, Some(&path));
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(
            s.warnings[0].contains(
                "`keys.dashboard.freeze`: \"g f\" can never be typed: its start is bound to top"
            ),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn no_color_means_monochrome() {
        let s = Settings::resolve(None, &|v| (v == "NO_COLOR").then(|| "1".into()), None);
        assert_eq!(s.theme, ThemeName::Mono);
        let s = Settings::resolve(None, &|v| (v == "NO_COLOR").then(String::new), None);
        assert_eq!(s.theme, ThemeName::Dark);
    }

    #[test]
    fn the_default_file_uncommented_gives_the_defaults() {
        let text = Settings::render_default_file();
        let uncommented: String = text
            .lines()
            .filter_map(|l| {
                let l = l.strip_prefix("# ").unwrap_or(l);
                // Setting lines and table headers; help lines are dropped.
                let setting = l.contains(" = ") && !l.contains('…');
                (l.starts_with('[') || setting).then(|| format!("{l}\n"))
            })
            .collect();
        let (_d, path) = file(&uncommented);
        let s = Settings::resolve(None, &|_| None, Some(&path));
        assert!(s.warnings.is_empty(), "{:?}\n{uncommented}", s.warnings);
        let d = KeyMap::defaults();
        for ctx in Context::ALL {
            for b in d.bindings(ctx) {
                assert_eq!(
                    s.keys.keys_text(ctx, b.action),
                    d.keys_text(ctx, b.action),
                    "{} {}",
                    ctx.name(),
                    b.action.name()
                );
            }
        }
        assert_eq!(s.user, "node");
    }
}
