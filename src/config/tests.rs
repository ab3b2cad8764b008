//! The resolver and the file, end to end on `Settings`.

use std::path::PathBuf;

use super::*;
use crate::vocab::keys::KeyAction;

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
    use clap::FromArgMatches as _;
    let (_d, path) = file("prefix = \"file-\"\nquery_timeout = 7\n[freeze]\nuser = \"fileuser\"\n");
    let env = |v: &str| match v {
        "BOTTLE_FREEZE_PREFIX" => Some("env-".to_string()),
        "BOTTLE_FREEZE_QUERY_TIMEOUT" => Some("9".to_string()),
        _ => None,
    };
    let m = crate::args::command()
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
    let m = crate::args::command()
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
    // A value of the wrong kind has its position too, and only that key falls back.
    let (_d2, path) = file("refresh = 2.0\n[freeze]\ntransport = \"carrier-pigeon\"\n");
    let s = Settings::resolve(None, &|_| None, Some(&path));
    assert!(s.warnings[0].contains(":3:13"), "{:?}", s.warnings);
    assert_eq!(s.refresh, 2.0);
}

#[test]
fn a_bad_value_costs_only_its_own_key() {
    let (_d, path) = file(
        "prefix = \"mine-\"\nrefresh = \"often\"\n[ui]\ntheme = \"neon\"\nbell = false\n\
         [freeze]\nuser = \"me\"\npush_via = 7\n[registry]\nport = 70000\n\
         [keys.dashboard]\nfreeze = \"x\"\nhistory = 5\n",
    );
    let s = Settings::resolve(None, &|_| None, Some(&path));
    // Every valid value applies, key bindings included.
    assert_eq!(s.prefix, "mine-");
    assert!(!s.bell);
    assert_eq!(s.user, "me");
    assert_eq!(entry(&s, "prefix").source, Source::File);
    assert_eq!(s.keys.keys_text(Context::Dashboard, KeyAction::Freeze), "x");
    // Each bad one is named with its line, and only its key has the default.
    assert_eq!(s.refresh, 3.0);
    assert_eq!(s.theme, crate::vocab::theme::ThemeName::Dark);
    assert_eq!(s.push_via, PushViaArg::Stream);
    assert_eq!(s.registry_port, None);
    let all = s.warnings.join("\n");
    for (line, key) in [
        (2, "refresh"),
        (4, "ui.theme"),
        (8, "freeze.push_via"),
        (10, "registry.port"),
        (13, "keys.dashboard.history"),
    ] {
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains(&format!("{}:{line}:", path.display()))
                    && w.contains(&format!("`{key}`"))
                    && w.contains("the default is used for it")),
            "{key} (line {line}) not reported:\n{all}"
        );
    }
    assert_eq!(s.warnings.len(), 5, "{all}");
    assert!(all.contains("unknown variant `neon`"), "{all}");
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
