//! `tar` in the guest: the host's GNU tar with guest paths moved into the machine's root,
//! or a generated archive when the machine has `synthetic-size`.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::faults::{cut_point, CutAfterSpool};
use crate::forward::Source;
use crate::guestpath::resolve;
use crate::spawn::spawn;
use crate::store::MachineRecord;
use crate::synthetic::SyntheticTar;

/// Short options of GNU tar that take a value.
const SHORT_WITH_VALUE: &str = "bCfFgHIKLNTVX";

#[derive(Debug, PartialEq)]
pub struct TarArgs {
    pub args: Vec<OsString>,
    /// The archive as the guest named it, when it is a file rather than stdout.
    pub guest_file: Option<String>,
    /// Host path of that file.
    pub file: Option<PathBuf>,
    pub creating: bool,
}

/// Rewrite absolute `--directory`/`-C` and `--file`/`-f` values into `root`; leave
/// everything else (patterns of `--exclude`, operands) as the guest wrote it.
pub fn rewrite(root: &Path, args: &[String]) -> TarArgs {
    let mut t = TarArgs {
        args: Vec::new(),
        guest_file: None,
        file: None,
        creating: false,
    };
    let mut i = 0;
    // Traditional style: `tar cf - .` — letters first, their values in the next args.
    if let Some(first) = args.first() {
        if !first.is_empty() && first.chars().all(|c| c.is_ascii_alphabetic()) {
            t.args.push(first.into());
            i = 1;
            for c in first.chars() {
                if c == 'c' {
                    t.creating = true;
                }
                if SHORT_WITH_VALUE.contains(c) && i < args.len() {
                    let v = t.value(root, c, &args[i]);
                    t.args.push(v);
                    i += 1;
                }
            }
        }
    }
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            t.args.extend(args[i - 1..].iter().map(OsString::from));
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (opt, inline) = match long.split_once('=') {
                Some((o, v)) => (o, Some(v)),
                None => (long, None),
            };
            let letter = match opt {
                "file" => Some('f'),
                "directory" => Some('C'),
                _ => None,
            };
            if opt == "create" {
                t.creating = true;
            }
            match (letter, inline) {
                (Some(c), Some(v)) => {
                    let mut s = OsString::from(format!("--{opt}="));
                    s.push(t.value(root, c, v));
                    t.args.push(s);
                }
                (Some(c), None) if i < args.len() => {
                    t.args.push(a.into());
                    let v = t.value(root, c, &args[i]);
                    t.args.push(v);
                    i += 1;
                }
                _ => t.args.push(a.into()),
            }
            continue;
        }
        let Some(body) = a.strip_prefix('-').filter(|b| !b.is_empty()) else {
            t.args.push(a.into());
            continue;
        };
        // A cluster like `-cvf`: the first value-taking letter takes the rest or the next arg.
        let mut pushed = false;
        for (idx, c) in body.char_indices() {
            if c == 'c' {
                t.creating = true;
            }
            if SHORT_WITH_VALUE.contains(c) {
                let head = &body[..idx + c.len_utf8()];
                let rest = &body[idx + c.len_utf8()..];
                if !rest.is_empty() {
                    let mut s = OsString::from(format!("-{head}"));
                    s.push(t.value(root, c, rest));
                    t.args.push(s);
                } else {
                    t.args.push(a.into());
                    if i < args.len() {
                        let v = t.value(root, c, &args[i]);
                        t.args.push(v);
                        i += 1;
                    }
                }
                pushed = true;
                break;
            }
        }
        if !pushed {
            t.args.push(a.into());
        }
    }
    if t.file
        .as_ref()
        .is_some_and(|f| f.to_string_lossy().contains(':'))
    {
        // GNU tar reads `host:path` as a remote archive.
        t.args.push("--force-local".into());
    }
    t
}

impl TarArgs {
    fn value(&mut self, root: &Path, letter: char, v: &str) -> OsString {
        match letter {
            'f' if v == "-" => {
                self.guest_file = None;
                self.file = None;
                v.into()
            }
            'f' => {
                let host = resolve(root, v, true);
                self.guest_file = Some(v.to_string());
                self.file = Some(host.clone());
                host.into_os_string()
            }
            'C' if v.starts_with('/') => resolve(root, v, true).into_os_string(),
            _ => v.into(),
        }
    }
}

/// The source of an exec of tar on machine `rec`.
pub fn source(rec: &MachineRecord, args: &[String]) -> io::Result<Source> {
    let t = rewrite(&rec.root, args);
    let guest_file = t.file.clone().filter(|_| t.creating);
    let mut src = source_of(rec, t)?;
    if rec.sim.corrupt_header {
        src.stdout = Box::new(CorruptFirstHeader {
            inner: src.stdout,
            at: 0,
        });
        if let Some(path) = guest_file {
            let before = src.after_exit.take();
            src.after_exit = Some(Box::new(move || {
                if let Some(f) = before {
                    f()?;
                }
                corrupt_file(&path)
            }));
        }
    }
    Ok(src)
}

/// The byte changed to corrupt a first header: the first digit of its mode field, so the
/// name stays readable and the checksum no longer matches.
const CORRUPT_AT: u64 = 100;

struct CorruptFirstHeader {
    inner: Box<dyn Read + Send>,
    at: u64,
}

impl Read for CorruptFirstHeader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let end = self.at + n as u64;
        if (self.at..end).contains(&CORRUPT_AT) {
            buf[(CORRUPT_AT - self.at) as usize] ^= 1;
        }
        self.at = end;
        Ok(n)
    }
}

fn corrupt_file(path: &Path) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(CORRUPT_AT))?;
    f.read_exact(&mut b)?;
    f.seek(SeekFrom::Start(CORRUPT_AT))?;
    f.write_all(&[b[0] ^ 1])
}

fn source_of(rec: &MachineRecord, t: TarArgs) -> io::Result<Source> {
    if let (Some(size), true) = (rec.sim.synthetic_size, t.creating) {
        return synthetic(rec, &t, size);
    }
    let mut cmd = Command::new("tar");
    cmd.args(&t.args).current_dir(&rec.root).env("LC_ALL", "C");
    let mut src = match spawn(cmd) {
        Ok(src) => src,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Source::fixed(
                Vec::new(),
                b"sh: tar: not found\n".to_vec(),
                127,
            ));
        }
        Err(e) => return Err(e),
    };
    src.stderr = Box::new(HidePrefix::new(src.stderr, &rec.root));
    if rec.sim.truncate {
        match t.file {
            None => src.stdout = Box::new(CutAfterSpool::new(src.stdout)),
            Some(path) => src.after_exit = Some(Box::new(move || cut_file(&path))),
        }
    }
    Ok(src)
}

/// Tar's messages name host paths (`/home/…/root/tmp/x.tar`); the guest's tar would say
/// `/tmp/x.tar`. Rewrites them line by line.
struct HidePrefix<R> {
    inner: io::BufReader<R>,
    prefix: Vec<u8>,
    line: Vec<u8>,
    pos: usize,
}

impl<R: Read> HidePrefix<R> {
    fn new(inner: R, root: &Path) -> Self {
        HidePrefix {
            inner: io::BufReader::new(inner),
            prefix: root.as_os_str().as_encoded_bytes().to_vec(),
            line: Vec::new(),
            pos: 0,
        }
    }
}

impl<R: Read> Read for HidePrefix<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.line.len() {
            let mut raw = Vec::new();
            if io::BufRead::read_until(&mut self.inner, b'\n', &mut raw)? == 0 {
                return Ok(0);
            }
            self.line = replace_prefix(&raw, &self.prefix);
            self.pos = 0;
        }
        let n = buf.len().min(self.line.len() - self.pos);
        buf[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Replace `prefix/` by `/` and a bare `prefix` by `/`.
fn replace_prefix(line: &[u8], prefix: &[u8]) -> Vec<u8> {
    if prefix.is_empty() || prefix == b"/" {
        return line.to_vec();
    }
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i..].starts_with(prefix) {
            i += prefix.len();
            if line.get(i) != Some(&b'/') {
                out.push(b'/');
            }
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    out
}

fn cut_file(path: &Path) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    let len = f.metadata()?.len();
    f.set_len(cut_point(len))
}

fn synthetic(rec: &MachineRecord, t: &TarArgs, size: u64) -> io::Result<Source> {
    let limit = if rec.sim.truncate {
        cut_point(size)
    } else {
        u64::MAX
    };
    let gen = SyntheticTar::new(size).take(limit);
    match (&t.file, &t.guest_file) {
        (Some(path), Some(guest)) => {
            let hang_after = rec.sim.hang_after;
            let written = File::create(path).and_then(|mut f| {
                let mut gen = gen;
                if let Some(limit) = hang_after {
                    // The guest-file transport hangs too: part of the scratch archive is
                    // written, then tar never returns (until the exec is killed).
                    io::copy(&mut io::Read::take(&mut gen, limit), &mut f)?;
                    f.sync_all()?;
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(3600));
                    }
                }
                io::copy(&mut gen, &mut f)
            });
            match written {
                Ok(_) => Ok(Source::fixed(Vec::new(), Vec::new(), 0)),
                Err(e) => {
                    let msg = format!(
                        "tar: {guest}: Cannot open: {}\ntar: Error is not recoverable: exiting now\n",
                        io_reason(&e)
                    );
                    Ok(Source::fixed(Vec::new(), msg.into_bytes(), 2))
                }
            }
        }
        _ => Ok(Source {
            stdout: Box::new(gen),
            stderr: Box::new(io::empty()),
            child: None,
            code: 0,
            after_exit: None,
        }),
    }
}

/// An io error as tools print it, without Rust's "(os error N)" suffix.
pub fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory".into(),
        io::ErrorKind::PermissionDenied => "Permission denied".into(),
        io::ErrorKind::IsADirectory => "Is a directory".into(),
        io::ErrorKind::NotADirectory => "Not a directory".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn host_root_is_hidden_in_messages() {
        assert_eq!(
            replace_prefix(b"tar: /h/r/tmp/x.tar: Cannot open; /h/r\n", b"/h/r"),
            b"tar: /tmp/x.tar: Cannot open; /\n".to_vec()
        );
    }

    #[test]
    fn rewrites_the_freeze_command() {
        let root = Path::new("/r");
        let t = rewrite(
            root,
            &strs(&[
                "--create",
                "--exclude=./proc",
                "--file=-",
                "--directory=/",
                ".",
            ]),
        );
        assert_eq!(
            t.args,
            vec![
                OsString::from("--create"),
                "--exclude=./proc".into(),
                "--file=-".into(),
                "--directory=/r".into(),
                ".".into()
            ]
        );
        assert!(t.creating);
        assert_eq!(t.file, None);
    }

    #[test]
    fn rewrites_short_and_traditional_forms() {
        let root = Path::new("/r");
        let t = rewrite(root, &strs(&["-cf", "/tmp/a.tar", "-C", "/", "."]));
        assert_eq!(
            t.args,
            vec![
                OsString::from("-cf"),
                "/r/tmp/a.tar".into(),
                "-C".into(),
                "/r".into(),
                ".".into()
            ]
        );
        assert_eq!(t.file, Some(PathBuf::from("/r/tmp/a.tar")));
        let t = rewrite(root, &strs(&["cf", "/x.tar", "-C/etc", "."]));
        assert_eq!(
            t.args,
            vec![
                OsString::from("cf"),
                "/r/x.tar".into(),
                "-C/r/etc".into(),
                ".".into()
            ]
        );
        assert!(t.creating);
    }
}
