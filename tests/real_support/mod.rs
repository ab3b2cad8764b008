//! The real smolvm binary for the real-CLI tier: where it is, how it is run (always with
//! `--state-dir` in a temp folder, `NO_COLOR=1`, no stdin), and what it answered.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bottle_freeze::smolvm::argv;
use bottle_freeze::smolvm::error::{self, SmolvmFailure};
use bottle_freeze::smolvm::note::NoteFilter;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::common;

/// A real smolvm with a private state dir.
pub struct Real {
    bin: PathBuf,
    state: TempDir,
    work: TempDir,
}

/// The real binary, or None after [`common::missing`] (a failure under CI).
pub fn real() -> Option<Real> {
    let bin = match std::env::var_os("BOTTLE_FREEZE_REAL_SMOLVM") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            common::missing(
                "the real smolvm CLI (BOTTLE_FREEZE_REAL_SMOLVM; .ci/run downloads smolmachines==1.32.2)",
            );
            return None;
        }
    };
    if !bin.is_file() {
        common::missing(&format!("the real smolvm CLI at {}", bin.display()));
        return None;
    }
    warm_up(&bin);
    Some(Real {
        bin,
        state: tempfile::Builder::new()
            .prefix("smolvm-state.")
            .tempdir()
            .unwrap(),
        work: tempfile::Builder::new()
            .prefix("smolvm-work.")
            .tempdir()
            .unwrap(),
    })
}

/// The first `machine start` of a fresh wheel unpacks its disk templates (sparse 10 and
/// 20 GiB ext4 files) beside the binary; several tests doing that at once took minutes.
/// So it is done once, under a lock, before any test starts a machine (`.ci/run` does it
/// too, right after unpacking).
fn warm_up(bin: &Path) {
    let dir = bin.parent().unwrap();
    let ready = || {
        ["storage-template.ext4", "overlay-template.ext4"]
            .iter()
            .all(|f| dir.join(f).is_file())
    };
    if ready() {
        return;
    }
    let lock = std::fs::File::create(dir.join(".bottle-freeze-warm-up.lock")).unwrap();
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    if ready() {
        return;
    }
    let real = Real {
        bin: bin.to_path_buf(),
        state: tempfile::tempdir().unwrap(),
        work: tempfile::tempdir().unwrap(),
    };
    real.ok(&["machine", "create", "--name", "warm-up"]);
    // It fails where no VM boots; the templates are unpacked either way.
    real.run(&[
        "machine".into(),
        "start".into(),
        "--name".into(),
        "warm-up".into(),
    ]);
}

/// What one call printed and how it ended; stderr without the wheel's note.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Answer {
    /// Clap's usage error: exit 2 with `error: unexpected argument` or a `Usage:` line.
    pub fn is_usage_error(&self) -> bool {
        self.code == 2
            && (self.stderr.contains("error: unexpected argument")
                || self.stderr.contains("Usage:"))
    }

    /// smolvm's own failure, as our classifier reads it.
    pub fn failure(&self) -> Option<SmolvmFailure> {
        error::find(self.code, &self.stderr)
    }

    /// The last line of stderr that is smolvm's error, else the last line.
    pub fn error_line(&self) -> String {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        lines
            .iter()
            .rev()
            .find(|l| l.starts_with("Error: ") || l.starts_with("error: ") || l.starts_with('{'))
            .or(lines.last())
            .map(|s| s.to_string())
            .unwrap_or_default()
    }

    pub fn describe(&self, argv: &[String]) -> String {
        format!(
            "smolvm {} -> exit {}\nstdout: {}\nstderr: {}",
            argv.join(" "),
            self.code,
            self.stdout.chars().take(300).collect::<String>(),
            self.stderr
        )
    }

    /// One line for the record in docs/smolvm-real-cli.md.
    pub fn record_line(&self, argv: &[String]) -> String {
        let kind = self
            .failure()
            .map(|f| format!("{:?}", f.kind))
            .unwrap_or_else(|| "-".into());
        format!(
            "| `smolvm {}` | {} | {} | `{}` |",
            argv.join(" "),
            self.code,
            kind,
            self.error_line()
        )
    }
}

impl Real {
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// A scratch folder for archives and outputs.
    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// `program --state-dir STATE` with the wheel's library dirs and `NO_COLOR=1`.
    pub fn command_for(&self, program: &Path) -> Command {
        let lib = std::env::var_os("SMOLVM_LIB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.bin.parent().unwrap().to_path_buf());
        let rootfs = std::env::var_os("SMOLVM_AGENT_ROOTFS_TAR")
            .map(PathBuf::from)
            .unwrap_or_else(|| lib.join("agent-rootfs.tar.zst"));
        let mut c = Command::new(program);
        c.env("SMOLVM_LIB_DIR", &lib)
            .env("SMOLVM_AGENT_ROOTFS_TAR", rootfs)
            .env("NO_COLOR", "1")
            .env_remove("SMOLVM_MACHINE_NAME")
            .arg("--state-dir")
            .arg(self.state.path())
            .stdin(Stdio::null());
        c
    }

    /// Runs `smolvm ARGV…`; a call may take a while when a VM start is attempted, but
    /// never more than five minutes.
    pub fn run(&self, argv: &[String]) -> Answer {
        let out_path = self.work.path().join(".stdout");
        let err_path = self.work.path().join(".stderr");
        let mut cmd = self.command_for(&self.bin);
        cmd.args(argv)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(300) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("smolvm {} did not end within 300 s", argv.join(" "));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = NoteFilter::strip(&std::fs::read(&err_path).unwrap());
        Answer {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// Runs a setup command that must succeed.
    pub fn ok(&self, args: &[&str]) -> Answer {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let a = self.run(&argv);
        assert_eq!(a.code, 0, "{}", a.describe(&argv));
        a
    }

    /// An executable script that runs this smolvm with its state dir and library dirs,
    /// for code that takes a smolvm program path.
    pub fn wrapper(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.work.path().join("smolvm-wrapper");
        let lib = std::env::var_os("SMOLVM_LIB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.bin.parent().unwrap().to_path_buf());
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(
            f,
            "#!/bin/sh\nexport SMOLVM_LIB_DIR='{}'\nexport SMOLVM_AGENT_ROOTFS_TAR='{}'\nexec '{}' --state-dir '{}' \"$@\"",
            lib.display(),
            lib.join("agent-rootfs.tar.zst").display(),
            self.bin.display(),
            self.state.path().display()
        )
        .unwrap();
        drop(f);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

fn tar_append(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `docker save` archive of a one-layer image holding `/hello`, made by hand (no
/// Docker needed): manifest.json, the config, and the layer.
pub fn docker_save_archive() -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    tar_append(&mut layer, "hello", b"hi\n");
    let layer = layer.into_inner().unwrap();
    let layer_id = hex(&Sha256::digest(&layer));
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["sha256:{layer_id}"]}}}}"#
    );
    let config_id = hex(&Sha256::digest(config.as_bytes()));
    let manifest = format!(
        r#"[{{"Config":"{config_id}.json","RepoTags":["bot-bottle-committed:latest"],"Layers":["{layer_id}/layer.tar"]}}]"#
    );
    let mut b = tar::Builder::new(Vec::new());
    tar_append(&mut b, "manifest.json", manifest.as_bytes());
    tar_append(&mut b, &format!("{config_id}.json"), config.as_bytes());
    tar_append(&mut b, &format!("{layer_id}/layer.tar"), &layer);
    b.into_inner().unwrap()
}

/// Key -> JSON type, nested objects spelled out; for comparing two answers' schemas.
pub fn shape(v: &serde_json::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(obj) = v.as_object() {
        for (k, x) in obj {
            let t = match x {
                serde_json::Value::Null => "null".to_string(),
                serde_json::Value::Bool(_) => "bool".into(),
                serde_json::Value::Number(n) if n.is_f64() => "float".into(),
                serde_json::Value::Number(_) => "integer".into(),
                serde_json::Value::String(_) => "string".into(),
                serde_json::Value::Array(_) => "array".into(),
                serde_json::Value::Object(_) if k == "labels" => "map".into(),
                serde_json::Value::Object(_) => format!("{:?}", shape(x)),
            };
            out.insert(k.clone(), t);
        }
    }
    out
}

/// The help entry of `flag` (its line and description), whitespace collapsed, so the
/// one-line and the next-line layouts of clap compare equal.
pub fn help_entry(help: &str, flag: &str) -> Option<String> {
    let lines: Vec<&str> = help.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let is_flag_line = |l: &str| {
        let t = l.trim_start();
        let t = match t.as_bytes() {
            [b'-', c, b',', b' ', ..] if *c != b'-' => &t[4..],
            _ => t,
        };
        indent(l) <= 6
            && t.strip_prefix(flag)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    };
    let start = lines.iter().position(|l| is_flag_line(l))?;
    let mut words: Vec<&str> = lines[start].split_whitespace().collect();
    for l in &lines[start + 1..] {
        if l.trim().is_empty() {
            if l.is_empty() {
                break;
            }
            continue;
        }
        if indent(l) <= 6 {
            break;
        }
        words.extend(l.split_whitespace());
    }
    Some(words.join(" "))
}

/// Every smolvm command line bottle-freeze builds for `machine`, from its builders, with
/// stand-in values where a call site supplies its own (paths). `pack create`, the help
/// probes and `--version` name no machine and are added by the test.
pub fn every_form(machine: &str, local: &Path) -> Vec<Vec<String>> {
    let tar_pipe = bottle_freeze::freeze::exec_tar::tar_argv("-", None);
    let scratch = "/tmp/bottle-freeze-x.tar";
    let tar_file = bottle_freeze::freeze::exec_tar::tar_argv(scratch, Some(&format!(".{scratch}")));
    let mut v = vec![argv::list()];
    for stream in [false, true] {
        for timeout in [None, Some(Duration::from_secs(90))] {
            let opts = argv::ExecOptions { stream, timeout };
            v.push(argv::exec(machine, opts, tar_pipe.clone()));
            v.push(argv::exec(machine, opts, tar_file.clone()));
        }
    }
    v.push(argv::exec(
        machine,
        argv::ExecOptions::default(),
        argv::guest_df("/"),
    ));
    v.push(argv::exec(
        machine,
        argv::ExecOptions::default(),
        argv::guest_rm(scratch),
    ));
    v.push(argv::copy_out(machine, scratch, local));
    v.push(argv::start(machine));
    v
}
