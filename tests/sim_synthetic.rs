//! smolvm-sim: `synthetic-size`, a generated archive for benchmarks.

mod sim_support;

use std::io::Read;
use std::process::Stdio;

use sim_support::{tar_args, Sim, CAP, CAP_ERROR};

/// Read a tar stream to its end with the `tar` crate; returns (bytes, regular files).
fn read_archive(r: impl Read) -> (u64, usize) {
    let mut counted = CountingReader { inner: r, n: 0 };
    let mut files = 0;
    {
        let mut ar = tar::Archive::new(&mut counted);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.header().entry_type() == tar::EntryType::Regular {
                let n = std::io::copy(&mut e, &mut std::io::sink()).unwrap();
                assert_eq!(n, e.header().size().unwrap());
                files += 1;
            }
        }
    }
    // Drain what follows the end blocks.
    std::io::copy(&mut counted, &mut std::io::sink()).unwrap();
    (counted.n, files)
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

#[test]
fn synthetic_stream_is_a_valid_tar_of_about_the_size() {
    let sim = Sim::new();
    sim.ok(&["sim", "create", "m"]);
    sim.ok(&["sim", "set", "m", "--synthetic-size", "200M"]);
    sim.ok(&["sim", "config", "--exec-cap", "off"]);
    let mut child = sim
        .cmd()
        .args(["machine", "exec", "--name", "m", "--stream", "--"])
        .args(tar_args())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (bytes, files) = read_archive(child.stdout.take().unwrap());
    let status = child.wait().unwrap();
    assert!(status.success());
    let want: u64 = 200 * 1024 * 1024;
    assert!(bytes <= want && bytes + 4096 >= want, "{bytes} bytes");
    assert!(files >= 199, "{files} files");
}

#[test]
fn synthetic_respects_the_cap_and_die_after() {
    let sim = Sim::new();
    sim.ok(&["sim", "create", "m"]);
    sim.ok(&["sim", "set", "m", "--synthetic-size", "64M"]);
    let out = sim.exec("m", true, &tar_args());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), CAP_ERROR);
    assert!((CAP..=CAP + 64 * 1024).contains(&out.stdout.len()));

    sim.ok(&["sim", "set", "m", "--die-after", "5M"]);
    let out = sim.exec("m", true, &tar_args());
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(out.stdout.len(), 5 * 1024 * 1024);
}

#[test]
fn synthetic_writes_into_the_guest_when_asked() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("tmp")).unwrap();
    let sim = Sim::new();
    sim.create("m", root.path());
    sim.ok(&["sim", "set", "m", "--synthetic-size", "20M"]);
    let out = sim.exec(
        "m",
        true,
        &[
            "tar",
            "--create",
            "--file=/tmp/rootfs.tar",
            "--exclude=./tmp/rootfs.tar",
            "--directory=/",
            ".",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let f = std::fs::File::open(root.path().join("tmp/rootfs.tar")).unwrap();
    let (bytes, files) = read_archive(f);
    assert!(bytes <= 20 << 20 && bytes + 4096 >= 20 << 20);
    assert!(files >= 19);

    // …and is cut there too when the machine truncates.
    sim.ok(&["sim", "set", "m", "--truncate"]);
    let out = sim.exec(
        "m",
        true,
        &["tar", "--create", "--file=/tmp/rootfs.tar", "."],
    );
    assert!(out.status.success());
    let len = std::fs::metadata(root.path().join("tmp/rootfs.tar"))
        .unwrap()
        .len();
    assert!(len < 11 << 20, "{len}");
}
