//! The guest's other commands: `df`, `rm`, `cat`, `echo`, `true`, `false`, `sleep`.
//! All but `sleep` run in-process so their messages name guest paths, never host ones.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Read};
use std::process::Command;

use crate::forward::Source;
use crate::guestpath::resolve;
use crate::spawn::spawn;
use crate::store::MachineRecord;
use crate::tar::io_reason;

/// `argv[0]` as the guest shell would find it: `/bin/x` and `/usr/bin/x` are `x`.
pub fn program(arg0: &str) -> &str {
    match arg0.rsplit_once('/') {
        Some((dir, base))
            if ["/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin"].contains(&dir) =>
        {
            base
        }
        _ => arg0,
    }
}

pub fn source(rec: &MachineRecord, prog: &str, args: &[String]) -> io::Result<Source> {
    match prog {
        "df" => Ok(df(rec, args)),
        "rm" => Ok(rm(rec, args)),
        "cat" => Ok(cat(rec, args)),
        "echo" => Ok(echo(args)),
        "true" => Ok(Source::fixed(Vec::new(), Vec::new(), 0)),
        "false" => Ok(Source::fixed(Vec::new(), Vec::new(), 1)),
        "sleep" => {
            let mut cmd = Command::new("sleep");
            cmd.args(args).current_dir(&rec.root);
            spawn(cmd)
        }
        other => Ok(Source::fixed(
            Vec::new(),
            format!("sh: {other}: not found\n").into_bytes(),
            127,
        )),
    }
}

fn operands(args: &[String]) -> (Vec<&str>, Vec<&str>) {
    let mut flags = Vec::new();
    let mut ops = Vec::new();
    let mut only_ops = false;
    for a in args {
        if only_ops || !a.starts_with('-') || a == "-" {
            ops.push(a.as_str());
        } else if a == "--" {
            only_ops = true;
        } else {
            flags.push(a.as_str());
        }
    }
    (flags, ops)
}

/// POSIX `df -Pk` for guest paths; the guest has one filesystem, mounted on `/`.
fn df(rec: &MachineRecord, args: &[String]) -> Source {
    let (_, mut ops) = operands(args);
    if ops.is_empty() {
        ops.push("/");
    }
    let mut out =
        String::from("Filesystem     1024-blocks      Used Available Capacity Mounted on\n");
    let mut err = String::new();
    let mut code = 0;
    for p in ops {
        let host = resolve(&rec.root, p, true);
        match nix::sys::statvfs::statvfs(&host) {
            Ok(st) => {
                let frsize = st.fragment_size();
                // The guest's root is a filesystem of its own: what it uses is the root's
                // content (or the synthetic archive's size), not the host disk's.
                let used = rec
                    .sim
                    .synthetic_size
                    .unwrap_or_else(|| tree_bytes(&rec.root))
                    / 1024;
                let avail = rec
                    .sim
                    .df_avail_kb
                    .unwrap_or(st.blocks_available() * frsize / 1024);
                let blocks = used + avail;
                let pct = if used + avail == 0 {
                    0
                } else {
                    (used * 100).div_ceil(used + avail)
                };
                out.push_str(&format!(
                    "overlay        {blocks:>11} {used:>9} {avail:>9} {:>7}% /\n",
                    pct
                ));
            }
            Err(e) => {
                err.push_str(&format!("df: {p}: {}\n", e.desc()));
                code = 1;
            }
        }
    }
    Source::fixed(out.into_bytes(), err.into_bytes(), code)
}

/// Bytes of regular files under `dir`, not following symlinks.
fn tree_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn rm(rec: &MachineRecord, args: &[String]) -> Source {
    let (flags, ops) = operands(args);
    let has = |c: char, long: &str| {
        flags
            .iter()
            .any(|f| *f == long || (!f.starts_with("--") && f.contains(c)))
    };
    let force = has('f', "--force");
    let recursive = has('r', "--recursive") || has('R', "--recursive");
    let mut err = String::new();
    let mut code = 0;
    if ops.is_empty() && !force {
        err.push_str("rm: missing operand\n");
        code = 1;
    }
    for p in ops {
        let host = resolve(&rec.root, p, false);
        if host == rec.root {
            err.push_str(&format!(
                "rm: cannot remove '{p}': Device or resource busy\n"
            ));
            code = 1;
            continue;
        }
        let result = match fs::symlink_metadata(&host) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && force => Ok(()),
            Err(e) => Err(e),
            Ok(m) if m.is_dir() && !recursive => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "Is a directory",
            )),
            Ok(m) if m.is_dir() => fs::remove_dir_all(&host),
            Ok(_) => fs::remove_file(&host),
        };
        if let Err(e) = result {
            err.push_str(&format!("rm: cannot remove '{p}': {}\n", io_reason(&e)));
            code = 1;
        }
    }
    Source::fixed(Vec::new(), err.into_bytes(), code)
}

/// Files read one after another, opened up front so errors are known before output.
struct Files(VecDeque<File>);

impl Read for Files {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(f) = self.0.front_mut() {
            let n = f.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.0.pop_front();
        }
        Ok(0)
    }
}

fn cat(rec: &MachineRecord, args: &[String]) -> Source {
    let (_, ops) = operands(args);
    let mut files = VecDeque::new();
    let mut err = String::new();
    for p in ops {
        let host = resolve(&rec.root, p, true);
        let opened = File::open(&host).and_then(|f| {
            if f.metadata()?.is_dir() {
                Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "Is a directory",
                ))
            } else {
                Ok(f)
            }
        });
        match opened {
            Ok(f) => files.push_back(f),
            Err(e) => err.push_str(&format!("cat: {p}: {}\n", io_reason(&e))),
        }
    }
    let code = i32::from(!err.is_empty());
    Source {
        stdout: Box::new(Files(files)),
        stderr: Box::new(io::Cursor::new(err.into_bytes())),
        child: None,
        code,
        after_exit: None,
    }
}

fn echo(args: &[String]) -> Source {
    let (newline, words) = match args.first().map(String::as_str) {
        Some("-n") => (false, &args[1..]),
        _ => (true, args),
    };
    let mut out = words.join(" ");
    if newline {
        out.push('\n');
    }
    Source::fixed(out.into_bytes(), Vec::new(), 0)
}
