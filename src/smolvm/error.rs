//! smolvm's own failures, told apart from the output of the command it ran.
//!
//! smolvm exits 1 both when it fails itself (`Error: vm not found: NAME`) and when the
//! guest command exits 1 (GNU tar: "file changed as we read it", not fatal). Its own
//! failure is its last stderr line: `Error: MESSAGE` as text, or with
//! `--error-format json` (1.32.2 has it) `{"error":{"code":"NOT_FOUND","message":…}}`,
//! whose `code` is stable and preferred. Usage errors are clap's (`error: …`, exit 2)
//! in both formats. The exact texts smolvm 1.32.2 prints are in docs/smolvm-real-cli.md.

use serde::Deserialize;

/// What kind of failure smolvm reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No machine of that name (`NOT_FOUND`, `vm not found: NAME`).
    NotFound,
    /// The machine exists but is not running, so exec and cp cannot reach its agent.
    NotRunning,
    /// The hypervisor cannot be used (`KVM_UNAVAILABLE`, `KvmOpen(…)`).
    Hypervisor,
    /// Clap rejected the command line (exit 2): a flag this smolvm does not know.
    Usage,
    /// Anything else smolvm reported about itself.
    Other,
}

/// One failure smolvm reported about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmolvmFailure {
    /// The stable code, when smolvm printed JSON.
    pub code: Option<String>,
    pub message: String,
    pub kind: FailureKind,
}

#[derive(Deserialize)]
struct JsonError {
    error: JsonBody,
}

#[derive(Deserialize)]
struct JsonBody {
    code: String,
    message: String,
}

fn kind_of(code: Option<&str>, message: &str) -> FailureKind {
    match code {
        Some("NOT_FOUND") => return FailureKind::NotFound,
        Some("KVM_UNAVAILABLE" | "HYPERVISOR_UNAVAILABLE") => return FailureKind::Hypervisor,
        _ => {}
    }
    // 1.32.2 reports a stopped machine and a KVM it cannot open as SMOLVM_ERROR, so the
    // message still tells these apart.
    if message.starts_with("vm not found: ") {
        FailureKind::NotFound
    } else if message.contains("is not running") {
        FailureKind::NotRunning
    } else if message.contains("KvmOpen") || message.contains("/dev/kvm") {
        FailureKind::Hypervisor
    } else {
        FailureKind::Other
    }
}

/// The failure smolvm reported in `stderr` (its last such line), if it reported one.
/// `exit_code` 2 with clap's `error:` is a usage error.
pub fn find(exit_code: i32, stderr: &str) -> Option<SmolvmFailure> {
    if exit_code == 0 {
        return None;
    }
    if exit_code == 2 {
        if let Some(line) = stderr.lines().find(|l| l.starts_with("error: ")) {
            return Some(SmolvmFailure {
                code: None,
                message: line.trim_start_matches("error: ").to_string(),
                kind: FailureKind::Usage,
            });
        }
    }
    stderr.lines().rev().find_map(|line| {
        let line = line.trim();
        if let Some(msg) = line.strip_prefix("Error: ") {
            return Some(SmolvmFailure {
                code: None,
                message: msg.to_string(),
                kind: kind_of(None, msg),
            });
        }
        if line.starts_with("{\"error\"") {
            let e: JsonError = serde_json::from_str(line).ok()?;
            return Some(SmolvmFailure {
                kind: kind_of(Some(&e.error.code), &e.error.message),
                code: Some(e.error.code),
                message: e.error.message,
            });
        }
        None
    })
}

/// `stderr` with each JSON failure line written as smolvm's text form plus its code
/// (`Error: vm not found: x [NOT_FOUND]`), for people reading it.
pub fn readable(stderr: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stderr);
    if !text.contains("{\"error\"") {
        return stderr.to_vec();
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        match serde_json::from_str::<JsonError>(body.trim()) {
            Ok(e) => {
                out.push_str(&format!("Error: {} [{}]", e.error.message, e.error.code));
                out.push_str(&line[body.len()..]);
            }
            Err(_) => out.push_str(line),
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_forms() {
        let f = find(1, "note: x\nError: vm not found: bot-bottle-a\n").unwrap();
        assert_eq!(f.kind, FailureKind::NotFound);
        assert_eq!(f.message, "vm not found: bot-bottle-a");
        assert_eq!(f.code, None);
        let j = find(
            1,
            r#"{"error":{"code":"NOT_FOUND","message":"vm not found: x"}}"#,
        )
        .unwrap();
        assert_eq!(
            (j.kind, j.code.as_deref()),
            (FailureKind::NotFound, Some("NOT_FOUND"))
        );
        let stopped = find(1, r#"{"error":{"code":"SMOLVM_ERROR","message":"agent operation failed: connect: machine 'm' is not running. Start it"}}"#).unwrap();
        assert_eq!(stopped.kind, FailureKind::NotRunning);
        let kvm = find(
            1,
            "Error: agent operation failed: start machine: KvmContext(KvmOpen(Error(13)))",
        )
        .unwrap();
        assert_eq!(kvm.kind, FailureKind::Hypervisor);
        let usage = find(
            2,
            "error: unexpected argument '--bogus' found\n\nUsage: smolvm",
        )
        .unwrap();
        assert_eq!(usage.kind, FailureKind::Usage);
    }

    #[test]
    fn json_lines_read_as_text() {
        let raw = b"WARN x\n{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"vm not found: m\"}}\n";
        assert_eq!(
            String::from_utf8(readable(raw)).unwrap(),
            "WARN x\nError: vm not found: m [NOT_FOUND]\n"
        );
        assert_eq!(readable(b"plain\n"), b"plain\n");
    }

    #[test]
    fn tar_output_is_not_smolvm_failing() {
        assert_eq!(find(1, "tar: ./a: file changed as we read it\n"), None);
        assert_eq!(find(0, "Error: x"), None);
        assert_eq!(find(1, "{\"error\": not json"), None);
    }
}
