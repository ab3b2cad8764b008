//! The precedence resolver: flag > environment > file > default for every setting,
//! remembering where each value came from.

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;

use super::{file, keys, Entry, Settings, Source};
use crate::args::{BuilderArg, PushViaArg, TransportArg};
use crate::vocab::theme::ThemeName;

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
impl ToToml for Vec<String> {
    fn to_toml(&self) -> toml::Value {
        toml::Value::Array(self.iter().cloned().map(toml::Value::String).collect())
    }
}
impl ToToml for bool {
    fn to_toml(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
}
/// A clap value enum as its command-line spelling.
fn value_name<T: clap::ValueEnum>(v: &T) -> toml::Value {
    let name = v
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    toml::Value::String(name)
}
impl ToToml for TransportArg {
    fn to_toml(&self) -> toml::Value {
        value_name(self)
    }
}
impl ToToml for PushViaArg {
    fn to_toml(&self) -> toml::Value {
        value_name(self)
    }
}
impl ToToml for BuilderArg {
    fn to_toml(&self) -> toml::Value {
        value_name(self)
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

    /// A repeatable flag's values given on the command line (all of them), looked up as
    /// [`Resolver::flag`] does.
    fn flags(&self, id: &str) -> Option<Vec<String>> {
        let top = self.matches?;
        let mut chain = vec![top];
        if let Some((_, sub)) = top.subcommand() {
            chain.insert(0, sub);
        }
        for m in chain {
            if let Ok(Some(v)) = m.try_get_many::<String>(id) {
                if m.value_source(id) == Some(ValueSource::CommandLine) {
                    return Some(v.cloned().collect());
                }
            }
        }
        None
    }

    /// The host list: `--host` (repeatable) > `BOTTLE_FREEZE_HOSTS` (comma-separated) >
    /// the file's `hosts`; none means no fleet. `--insecure-remote` is a flag only, so a
    /// file cannot quietly open a host to the network.
    fn hosts(&mut self, file: Option<Vec<String>>) -> (Vec<String>, bool) {
        let mut found: Option<(Vec<String>, Source)> =
            self.flags("host").map(|v| (v, Source::Flag("--host")));
        if found.is_none() {
            if let Some(raw) = (self.env)("BOTTLE_FREEZE_HOSTS").filter(|v| !v.trim().is_empty()) {
                let v = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                found = Some((v, Source::Env("BOTTLE_FREEZE_HOSTS")));
            }
        }
        if found.is_none() {
            found = file.map(|v| (v, Source::File));
        }
        let (hosts, source) = found.unwrap_or((Vec::new(), Source::Default));
        self.entries.push(Entry {
            section: "",
            key: "hosts",
            value: (!hosts.is_empty()).then(|| {
                toml::Value::Array(hosts.iter().map(|h| toml::Value::String(h.clone())).collect())
            }),
            source,
            help: "smolvm hosts: local, unix:///path/smolvm.sock, http://127.0.0.1:PORT, each optionally LABEL=… [default: none, the local smolvm alone]",
        });
        let insecure = self.flag::<bool>("insecure_remote").unwrap_or(false);
        (hosts, insecure)
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
            .and_then(|path| file::read_file(path, &mut warnings))
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
        let prune_keep = r
            .pick(
                spec(
                    "",
                    "prune_keep",
                    None,
                    Some("BOTTLE_FREEZE_PRUNE_KEEP"),
                    "records of each machine a prune keeps (the newest; its last good freeze and running ones stay too)",
                ),
                num::<u64>,
                f.prune_keep,
                Some(3),
            )
            .map_or(3, |n| usize::try_from(n).unwrap_or(usize::MAX));
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
        let (hosts, insecure_remote) = r.hosts(f.hosts);
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
        // A list: the flags given replace the file's list, as any flag replaces a value.
        let exclude_flags = r.flags("exclude");
        let exclude_spec = spec(
            "freeze",
            "exclude",
            Some(("exclude", "--exclude")),
            None,
            "paths left out of the archive: absolute guest paths (with all below them) or names matched anywhere",
        );
        let exclude = match exclude_flags {
            Some(v) => {
                r.entries.push(Entry {
                    section: exclude_spec.section,
                    key: exclude_spec.key,
                    value: Some(v.to_toml()),
                    source: Source::Flag("--exclude"),
                    help: exclude_spec.help,
                });
                v
            }
            None => {
                let spec = Spec {
                    arg: None,
                    ..exclude_spec
                };
                r.pick(
                    spec,
                    |v| Ok(vec![v.to_string()]),
                    f.freeze.exclude,
                    Some(Vec::new()),
                )
                .unwrap_or_default()
            }
        };
        let fail_on_secrets = r
            .pick(
                spec(
                    "freeze",
                    "fail_on_secrets",
                    Some(("fail_on_secrets", "--fail-on-secrets")),
                    None,
                    "refuse, instead of warning, when the root holds files named like credentials",
                ),
                num::<bool>,
                f.freeze.fail_on_secrets,
                Some(false),
            )
            .unwrap_or(false);
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
        let push_via = r
            .pick(
                spec(
                    "freeze",
                    "push_via",
                    Some(("push_via", "--push-via")),
                    Some("BOTTLE_FREEZE_PUSH_VIA"),
                    "how the image reaches the registry: stream (docker save into the registry) or daemon (the daemon's push)",
                ),
                |v| {
                    use clap::ValueEnum as _;
                    PushViaArg::from_str(v, true)
                },
                f.freeze.push_via,
                Some(PushViaArg::Stream),
            )
            .unwrap_or(PushViaArg::Stream);
        let stall_after = r
            .pick(
                spec(
                    "freeze",
                    "stall_after",
                    None,
                    Some("BOTTLE_FREEZE_STALL_AFTER"),
                    "seconds without bytes before a stream is shown as stalled",
                ),
                num::<u64>,
                f.freeze.stall_after,
                Some(10),
            )
            .unwrap_or(10)
            .max(1);
        let stall_timeout = r.pick(
            spec(
                "freeze",
                "stall_timeout",
                Some(("stall_timeout", "--stall-timeout")),
                Some("BOTTLE_FREEZE_STALL_TIMEOUT"),
                "seconds without bytes before exec-tar fails [default: never]",
            ),
            num::<u64>,
            f.freeze.stall_timeout,
            None,
        );
        let builder = r
            .pick(
                spec(
                    "freeze",
                    "builder",
                    Some(("builder", "--builder")),
                    Some("BOTTLE_FREEZE_BUILDER"),
                    "who builds the image: native (an archive written as exec-tar streams) or docker (a Dockerfile build by the daemon)",
                ),
                |v| {
                    use clap::ValueEnum as _;
                    BuilderArg::from_str(v, true)
                },
                f.freeze.builder,
                Some(BuilderArg::Native),
            )
            .unwrap_or(BuilderArg::Native);
        let push_to = r.pick(
            spec(
                "freeze",
                "push_to",
                Some(("push_to", "--push-to")),
                Some("BOTTLE_FREEZE_PUSH_TO"),
                "also publish the image to HOST[:PORT]/REPO[:TAG] through the Docker daemon; unset: do not",
            ),
            s,
            f.freeze.push_to,
            None,
        );
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
        let notify = r
            .pick(
                spec(
                    "ui",
                    "notify",
                    None,
                    None,
                    "a desktop notification (OSC 9 / OSC 777) when a freeze ends",
                ),
                num::<bool>,
                f.ui.notify,
                Some(false),
            )
            .unwrap_or(false);
        let mut warnings = r.warnings;
        let keys = keys::apply(&f.keys, &mut warnings);
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
            hosts,
            insecure_remote,
            transport,
            guest_scratch_dir,
            exclude,
            fail_on_secrets,
            user,
            workdir,
            push_via,
            builder,
            push_to,
            registry,
            registry_bin,
            registry_port,
            push_host,
            pull_host,
            theme,
            mouse,
            bell,
            notify,
            prune_keep,
            stall_after,
            stall_timeout,
            keys,
            file: file_read,
            entries: r.entries,
            warnings,
        }
    }
}
