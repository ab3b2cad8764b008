//! Shell completions and the man page, generated from the clap definitions by the real
//! binary; the bash script is sourced in a real bash and asked for completions.

mod common;

use std::process::Command;

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(common::freeze_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A sim fleet (two running machines, one stopped) and a state folder with real records:
/// two exports, one of which is then marked as having kept its archive for a resume
/// (what a freeze that failed at build leaves; made by hand, as no build runs here).
struct Live {
    world: common::World,
    _root: tempfile::TempDir,
    /// The ids: every record, and the one that kept work.
    ids: Vec<String>,
    kept: String,
}

fn live() -> Live {
    let w = common::World::new();
    let root = common::small_root();
    w.sim.create("bot-bottle-web", "running", Some(root.path()));
    w.sim.create("bot-bottle-api", "running", Some(root.path()));
    w.sim.create("bot-bottle-off", "stopped", Some(root.path()));
    for slug in ["web", "api"] {
        let out = w.run(&["export", slug, "-o", "/dev/null"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let history = w.state.path().join("history");
    let mut ids: Vec<String> = std::fs::read_dir(&history)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 2);
    let kept = ids[1].clone();
    let path = history.join(&kept).join("record.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    rec["kept"] = serde_json::json!({
        "temp_dir": null, "archive": null, "image": "bot-bottle-committed-api:latest",
        "image_id": null, "from": "push"
    });
    std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    Live {
        world: w,
        _root: root,
        ids,
        kept,
    }
}

impl Live {
    /// A shell with this world's environment and `bottle-freeze` on PATH (the scripts
    /// call it back by name).
    fn shell(&self, shell: &str) -> Command {
        let bin_dir = std::path::Path::new(common::freeze_bin()).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(shell);
        c.env("PATH", path)
            .env("SMOLVM_SIM_HOME", self.world.sim.home())
            .env("BOTTLE_FREEZE_SMOLVM", common::sim_bin())
            .env("BOTTLE_FREEZE_STATE_DIR", self.world.state.path())
            .env("XDG_CONFIG_HOME", self.world.tmp.path())
            .env("HOME", self.world.tmp.path());
        c
    }
}

fn script(shell: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), stdout_of(&["completions", shell])).unwrap();
    f
}

fn lines(out: std::process::Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// What bash completes after `words` (the last one is being typed), as bash's own
/// completion machinery would ask: the registered function, COMP_WORDS, COMP_CWORD.
fn bash_complete(live: &Live, script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let line = words.join(" ");
    let prog = format!(
        "source '{}'; fn=$(complete -p bottle-freeze | sed -E 's/.* -F ([^ ]+) .*/\\1/'); \
         COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; COMP_TYPE=9; \
         \"$fn\" bottle-freeze '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        line.len(),
        words[words.len() - 1],
        words[words.len().saturating_sub(2)],
    );
    lines(
        live.shell("bash")
            .args(["--norc", "--noprofile", "-c", &prog])
            .output()
            .unwrap(),
    )
}

#[test]
fn bash_completes_commands_options_slugs_and_record_ids() {
    let live = live();
    let script = script("bash");
    let s = script.path();
    let offered = bash_complete(&live, s, &["bottle-freeze", ""]);
    for sub in [
        "list",
        "export",
        "freeze",
        "history",
        "discard",
        "prune",
        "config",
        "completions",
        "man",
    ] {
        assert!(offered.iter().any(|o| o == sub), "{sub} not in {offered:?}");
    }
    assert_eq!(
        bash_complete(&live, s, &["bottle-freeze", "freeze", "--tr"]),
        ["--transport"]
    );
    let offered = bash_complete(&live, s, &["bottle-freeze", "freeze", "--transport", ""]);
    for t in ["auto", "pipe", "guest-file"] {
        assert!(offered.iter().any(|o| o == t), "{t} not in {offered:?}");
    }
    // The machines that can be frozen now, from smolvm: not the stopped one.
    for sub in ["freeze", "export"] {
        let offered = bash_complete(&live, s, &["bottle-freeze", sub, ""]);
        assert!(offered.contains(&"web".to_string()), "{sub}: {offered:?}");
        assert!(offered.contains(&"api".to_string()), "{sub}: {offered:?}");
        assert!(!offered.iter().any(|o| o == "off"), "{sub}: {offered:?}");
        assert_eq!(
            bash_complete(&live, s, &["bottle-freeze", sub, "w"]),
            ["web"]
        );
    }
    // Record ids: all of them for `history show`, the one that kept work for the rest.
    let offered = bash_complete(&live, s, &["bottle-freeze", "history", "show", ""]);
    for id in &live.ids {
        assert!(offered.contains(id), "{id} not in {offered:?}");
    }
    let prefix = &live.ids[0][..live.ids[0].len() - 2];
    let offered = bash_complete(&live, s, &["bottle-freeze", "history", "show", prefix]);
    assert!(offered.contains(&live.ids[0]), "{offered:?}");
    assert_eq!(
        bash_complete(&live, s, &["bottle-freeze", "freeze", "--resume", ""]),
        std::slice::from_ref(&live.kept)
    );
    let values = |words: &[&str]| -> Vec<String> {
        bash_complete(&live, s, words)
            .into_iter()
            .filter(|o| !o.starts_with('-'))
            .collect()
    };
    assert_eq!(
        values(&["bottle-freeze", "discard", ""]),
        std::slice::from_ref(&live.kept)
    );
}

/// zsh and fish are asked only where they are installed (CI installs both).
fn have(shell: &str) -> bool {
    let there = Command::new(shell)
        .args(["-c", "exit 0"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !there {
        common::missing(shell);
    }
    there
}

#[test]
fn zsh_loads_the_script_and_completes_live_values() {
    if !have("zsh") {
        return;
    }
    let live = live();
    let script = script("zsh");
    // compinit registers the function; `_describe` (what it hands the values to) is
    // replaced by one that prints them.
    let prog = format!(
        "autoload -U compinit && compinit -u -D; source '{}'; \
         [[ $_comps[bottle-freeze] == _clap_dynamic_completer_bottle_freeze ]] || exit 3; \
         _describe() {{ print -l -- ${{(P)3}}; }}; \
         words=(bottle-freeze freeze ''); CURRENT=3; _clap_dynamic_completer_bottle_freeze; \
         words=(bottle-freeze history show ''); CURRENT=4; _clap_dynamic_completer_bottle_freeze",
        script.path().display()
    );
    let out = lines(
        live.shell("zsh")
            .args(["-f", "-c", &prog])
            .output()
            .unwrap(),
    );
    let values: Vec<&str> = out
        .iter()
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    assert!(
        values.contains(&"web") && values.contains(&"api"),
        "{out:?}"
    );
    assert!(!values.contains(&"off"), "{out:?}");
    for id in &live.ids {
        assert!(values.contains(&id.as_str()), "{id} not in {out:?}");
    }
}

#[test]
fn fish_loads_the_script_and_completes_live_values() {
    if !have("fish") {
        return;
    }
    let live = live();
    let script = script("fish");
    let prog = format!(
        "source '{}'; complete -C 'bottle-freeze export '; complete -C 'bottle-freeze discard '",
        script.path().display()
    );
    let out = lines(
        live.shell("fish")
            .args(["--no-config", "-c", &prog])
            .output()
            .unwrap(),
    );
    let values: Vec<&str> = out
        .iter()
        .map(|l| l.split('\t').next().unwrap_or(""))
        .collect();
    assert!(
        values.contains(&"web") && values.contains(&"api"),
        "{out:?}"
    );
    assert!(!values.contains(&"off"), "{out:?}");
    assert!(values.contains(&live.kept.as_str()), "{out:?}");
    assert!(
        !values.contains(&live.ids[0].as_str()),
        "kept nothing: {out:?}"
    );
}

#[test]
fn the_man_page_generates_and_renders() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH BOTTLE-FREEZE 1"), "{page}");
    // The sections a reader looks for, in order.
    let mut at = 0;
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH COMMANDS",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH EXAMPLES",
    ] {
        let found = page[at..].find(section).map(|i| i + at);
        assert!(found.is_some(), "{section} missing or out of order");
        at = found.unwrap_or(at);
    }
    // Every command, with its own options.
    for sub in [
        "list",
        "export",
        "freeze",
        "history",
        "history show",
        "discard",
        "prune",
        "config",
        "demo",
    ] {
        assert!(
            page.contains(&format!(".SS \"bottle-freeze {sub}\"")),
            "{sub} missing"
        );
    }
    assert!(
        page.contains("\\-\\-resume") || page.contains("--resume"),
        "freeze's options"
    );
    // It names no other page of ours (there are none).
    assert!(
        !page.contains("bottle-freeze-"),
        "refers to a page that does not exist"
    );
    // The exit codes, as the README and --help say them.
    for code in ["0", "1", "2", "130"] {
        assert!(
            page.contains(&format!(".TP\n\\fB{code}\\fR")),
            "exit status {code} missing"
        );
    }
    let help = stdout_of(&["--help"]);
    assert!(
        help.contains("Exit status:") && help.contains("130"),
        "{help}"
    );
    // Every variable the sources read is in ENVIRONMENT.
    let env_section = &page[page.find(".SH ENVIRONMENT").unwrap()..page.find(".SH FILES").unwrap()];
    for var in variables_read() {
        assert!(
            env_section.contains(&var),
            "{var} is read but not in ENVIRONMENT"
        );
    }
    // groff formats it without complaint, when it is there.
    let Ok(mut child) = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        return;
    };
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SYNOPSIS"),
        "rendered"
    );
}

/// The environment variables the sources read: clap's `env = "…"`, `var("…")`,
/// `var_os("…")`, and the resolver's table (the simulator's own are not ours).
fn variables_read() -> std::collections::BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("bin") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs")
                // smolvm's error codes (`Some("NOT_FOUND")`), not variables.
                && !p.ends_with("smolvm/error.rs")
            {
                out.push(std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut texts = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut texts,
    );
    let mut vars = std::collections::BTreeSet::new();
    for text in texts {
        for pat in [
            "env = \"",
            "var(\"",
            "var_os(\"",
            "Some(\"",
            "_ENV: &str = \"",
        ] {
            for (i, _) in text.match_indices(pat) {
                // Set for children (the demo's simulator), not read.
                if text[..i].ends_with("set_") {
                    continue;
                }
                let rest = &text[i + pat.len()..];
                let name: String = rest.chars().take_while(|c| *c != '"').collect();
                let after = &rest[name.len()..];
                // `Some("NOT_FOUND" | …) =>` matches smolvm's error codes, not a variable.
                let is_match_arm = after.starts_with("\" |") || after.starts_with("\") =>");
                let is_var = name.len() > 2
                    && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    && after.starts_with('"')
                    && !is_match_arm;
                if is_var {
                    vars.insert(name);
                }
            }
        }
    }
    // Tests' own switches, not the tool's.
    vars.remove("UPDATE_ASSETS");
    assert!(
        vars.contains("BOTTLE_FREEZE_SMOLVM") && vars.contains("NO_COLOR"),
        "{vars:?}"
    );
    vars
}
