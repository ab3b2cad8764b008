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

/// What bash completes after `words` (the last one is being typed).
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let line = words.join(" ");
    let prog = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
         _bottle__freeze bottle-freeze '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        line.len(),
        words[words.len() - 1],
        words[words.len().saturating_sub(2)],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &prog])
        .output()
        .unwrap();
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

#[test]
fn bash_completion_offers_the_subcommands_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bottle-freeze.bash");
    std::fs::write(&script, stdout_of(&["completions", "bash"])).unwrap();
    let offered = bash_complete(&script, &["bottle-freeze", ""]);
    for sub in [
        "list",
        "export",
        "freeze",
        "history",
        "discard",
        "config",
        "completions",
        "man",
    ] {
        assert!(offered.iter().any(|o| o == sub), "{sub} not in {offered:?}");
    }
    let offered = bash_complete(&script, &["bottle-freeze", "freeze", "--tr"]);
    assert_eq!(offered, ["--transport"]);
    let offered = bash_complete(&script, &["bottle-freeze", "freeze", "--transport", ""]);
    for t in ["auto", "pipe", "guest-file"] {
        assert!(offered.iter().any(|o| o == t), "{t} not in {offered:?}");
    }
}

#[test]
fn zsh_and_fish_completions_generate() {
    let zsh = stdout_of(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef bottle-freeze"), "{zsh}");
    let fish = stdout_of(&["completions", "fish"]);
    assert!(fish.contains("complete -c bottle-freeze"), "{fish}");
    assert!(fish.contains("freeze"));
}

#[test]
fn the_man_page_generates_and_renders() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH bottle-freeze 1"), "{page}");
    for sub in ["list", "freeze", "history", "config", "completions"] {
        assert!(page.contains(sub), "{sub} missing");
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
