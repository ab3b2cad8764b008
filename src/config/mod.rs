//! The effective configuration: flags over environment over the user's file over the
//! defaults, with where each value came from, and the one place where it becomes the
//! freeze core's [`FreezeConfig`](crate::freeze::FreezeConfig).
//!
//! The file is `$XDG_CONFIG_HOME/bottle-freeze/config.toml` (or `--config` /
//! `BOTTLE_FREEZE_CONFIG`). A file that does not parse is reported with its line and
//! column and ignored as a whole; unknown keys and unusable key bindings are named as
//! warnings. Nothing here panics on what a user wrote. Settings know no screen: the key
//! and theme words come from `crate::vocab`.
//!
//! - [`file`]: the file's schema and reading it;
//! - [`resolve`]: the precedence resolver ([`Settings::resolve`]);
//! - [`keys`]: the `[keys]` tables over the default key map.

mod file;
mod keys;
mod resolve;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::args::{BuilderArg, PushViaArg, TransportArg};
use crate::vocab::keys::{Context, KeyMap};
use crate::vocab::theme::ThemeName;

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
    /// The smolvm hosts as written (`[LABEL=]local|unix:///…|http://…`); empty: no fleet.
    pub hosts: Vec<String>,
    /// Plain-http hosts beyond loopback allowed (`--insecure-remote`, a flag only).
    pub insecure_remote: bool,
    pub transport: TransportArg,
    pub guest_scratch_dir: String,
    /// Paths left out of the archive (`--exclude`, `[freeze] exclude`).
    pub exclude: Vec<String>,
    pub fail_on_secrets: bool,
    pub user: String,
    pub workdir: String,
    pub push_via: PushViaArg,
    /// Seconds without bytes before a stream is shown as stalled.
    pub stall_after: u64,
    /// Seconds without bytes before exec-tar fails (None: never).
    pub stall_timeout: Option<u64>,
    pub builder: BuilderArg,
    pub push_to: Option<String>,
    pub registry: Option<String>,
    pub registry_bin: Option<PathBuf>,
    pub registry_port: Option<u16>,
    pub push_host: String,
    pub pull_host: String,
    pub theme: ThemeName,
    pub mouse: bool,
    pub bell: bool,
    /// A desktop notification (OSC 9 and OSC 777) when a freeze ends.
    pub notify: bool,
    /// The newest records of each machine that a prune keeps.
    pub prune_keep: usize,
    pub keys: KeyMap,
    /// The file read, if any (also when it was ignored for an error).
    pub file: Option<PathBuf>,
    pub entries: Vec<Entry>,
    /// Problems with the file, each a full sentence for the operator.
    pub warnings: Vec<String>,
}

/// The default location of the file: `$XDG_CONFIG_HOME/bottle-freeze/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("bottle-freeze").join("config.toml"))
}

impl Settings {
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
            exclude: self.exclude.clone(),
            fail_on_secrets: self.fail_on_secrets,
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
            push_via: match self.push_via {
                PushViaArg::Stream => crate::freeze::push::PushVia::Stream,
                PushViaArg::Daemon => crate::freeze::push::PushVia::Daemon,
            },
            stall_timeout: self
                .stall_timeout
                .filter(|s| *s > 0)
                .map(std::time::Duration::from_secs),
            builder: match self.builder {
                BuilderArg::Native => crate::freeze::Builder::Native,
                BuilderArg::Docker => crate::freeze::Builder::Docker,
            },
            push_to: self.push_to.clone(),
        }
    }
}

fn looked_for() -> String {
    default_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "no config folder".into())
}
