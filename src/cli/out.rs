//! Writing to stdout and stderr without panicking on a closed pipe.
//!
//! std's `println!` panics when stdout is a pipe whose reader has gone (`history | head
//! -1`): exit 101 and a panic message, and during a freeze an abandoned run. Unix tools stop
//! writing and exit quietly instead. The macros below shadow std's in the `cli` modules
//! declared after this one, so every line they print goes through here: once stdout is
//! closed, output to it stops and the command goes on (a freeze still writes its artifact
//! and its record); errors on stderr are ignored the same way.

use std::fmt;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether a write to stdout has failed (its reader is gone); nothing more is written.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes to stdout and flushes, so a closed pipe is noticed here and not at exit.
pub fn write_out(args: fmt::Arguments<'_>, newline: bool) {
    if stdout_closed() {
        return;
    }
    let mut o = io::stdout().lock();
    let r = o
        .write_fmt(args)
        .and_then(|()| if newline { o.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| o.flush());
    if r.is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Writes to stderr, ignoring a closed one.
pub fn write_err(args: fmt::Arguments<'_>) {
    let mut e = io::stderr().lock();
    let _ = e.write_fmt(args).and_then(|()| e.write_all(b"\n"));
}

/// Writes `bytes` to stdout (as [`write_out`] does).
pub fn write_out_bytes(bytes: &[u8]) {
    if stdout_closed() {
        return;
    }
    let mut o = io::stdout().lock();
    if o.write_all(bytes).and_then(|()| o.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

macro_rules! println {
    () => {
        $crate::cli::out::write_out(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write_out(format_args!($($arg)*), true)
    };
}

macro_rules! print {
    ($($arg:tt)*) => {
        $crate::cli::out::write_out(format_args!($($arg)*), false)
    };
}

macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::cli::out::write_err(format_args!($($arg)*))
    };
}
