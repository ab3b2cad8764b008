//! Every argument vector bottle-freeze hands to smolvm, built in this one place.
//!
//! The real-CLI tier (`tests/real_smolvm.rs`) feeds each of these builders' output to the
//! real smolvm binary and fails when its parser rejects one, so a flag that smolvm renamed
//! or never had cannot hide in a call site. Callers never spell a smolvm flag themselves.

use std::path::Path;
use std::time::Duration;

/// The subcommands whose `--help` we read to learn what this smolvm can do.
pub const HELP_PROBES: [&[&str]; 3] = [&[], &["machine", "exec"], &["pack", "create"]];

/// The flags whose `--help` entries we rely on (we pass them, or detect a capability
/// from them); smolvm-sim must describe each in the real smolvm's words.
pub const PROBED_FLAGS: [(&[&str], &str); 8] = [
    (&[], "--error-format"),
    (&["machine", "exec"], "--name"),
    (&["machine", "exec"], "--stream"),
    (&["machine", "exec"], "--timeout"),
    (&["machine", "ls"], "--json"),
    (&["machine", "start"], "--name"),
    (&["pack", "create"], "--image"),
    (&["pack", "create"], "--output"),
];

/// The global flag asking for failures as `{"error":{"code":…,"message":…}}` (1.32.2 has it; an older smolvm may not).
pub const ERROR_FORMAT_JSON: [&str; 2] = ["--error-format", "json"];

fn owned(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// `smolvm --version`.
pub fn version() -> Vec<String> {
    owned(&["--version"])
}

/// `smolvm [SUBCOMMAND…] --help`.
pub fn help(subcommand: &[&str]) -> Vec<String> {
    let mut v = owned(subcommand);
    v.push("--help".into());
    v
}

/// `smolvm machine ls --json`.
pub fn list() -> Vec<String> {
    owned(&["machine", "ls", "--json"])
}

/// `smolvm machine start --name NAME`.
pub fn start(machine: &str) -> Vec<String> {
    owned(&["machine", "start", "--name", machine])
}

/// How `machine exec` is asked to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// `--stream`: output as it arrives (not every smolvm has it; see the exec help probe).
    pub stream: bool,
    /// `--timeout`: smolvm kills the command after this long (whole seconds).
    pub timeout: Option<Duration>,
}

/// `smolvm machine exec --name NAME [--stream] [--timeout Ns] -- CMD…`.
pub fn exec(machine: &str, opts: ExecOptions, cmd: Vec<String>) -> Vec<String> {
    let mut v = owned(&["machine", "exec", "--name", machine]);
    if opts.stream {
        v.push("--stream".into());
    }
    if let Some(t) = opts.timeout {
        v.push("--timeout".into());
        v.push(format!("{}s", t.as_secs().max(1)));
    }
    // Everything after `--` is the guest's, even words that look like smolvm flags.
    v.push("--".into());
    v.extend(cmd);
    v
}

/// `df -Pk PATH` in the guest: free and used space of the filesystem holding PATH.
pub fn guest_df(path: &str) -> Vec<String> {
    owned(&["df", "-Pk", path])
}

/// `rm -f PATH` in the guest.
pub fn guest_rm(path: &str) -> Vec<String> {
    owned(&["rm", "-f", path])
}

/// `smolvm machine cp NAME:GUEST_PATH LOCAL`: download one file from the guest.
pub fn copy_out(machine: &str, guest_path: &str, local: &Path) -> Vec<String> {
    vec![
        "machine".into(),
        "cp".into(),
        format!("{machine}:{guest_path}"),
        local.display().to_string(),
    ]
}

/// `smolvm pack create --image IMAGE -o OUTPUT`; IMAGE is a registry reference, a
/// `docker save` archive, or `-` for an archive on stdin.
pub fn pack_create(image: &str, output: &Path) -> Vec<String> {
    vec![
        "pack".into(),
        "create".into(),
        "--image".into(),
        image.into(),
        "-o".into(),
        output.display().to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_puts_flags_before_the_separator() {
        let v = exec(
            "bot-bottle-a",
            ExecOptions {
                stream: true,
                timeout: Some(Duration::from_millis(1500)),
            },
            vec!["tar".into(), "--create".into()],
        );
        assert_eq!(
            v.join(" "),
            "machine exec --name bot-bottle-a --stream --timeout 1s -- tar --create"
        );
        let plain = exec("m", ExecOptions::default(), guest_df("/"));
        assert_eq!(plain.join(" "), "machine exec --name m -- df -Pk /");
    }

    #[test]
    fn copy_and_pack_shapes() {
        assert_eq!(
            copy_out("m", "/tmp/x.tar", Path::new("/out/r.tar")).join(" "),
            "machine cp m:/tmp/x.tar /out/r.tar"
        );
        assert_eq!(
            pack_create("-", Path::new("/o/l")).join(" "),
            "pack create --image - -o /o/l"
        );
        assert_eq!(help(&["machine", "exec"]).join(" "), "machine exec --help");
        assert_eq!(help(&[]), ["--help"]);
    }
}
