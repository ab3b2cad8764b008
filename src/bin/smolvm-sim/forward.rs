//! The sim between a command and its own stdout/stderr: it relays chunks from both streams
//! (read concurrently), counts them, and applies smolvm's exec output cap and the faults.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::process::Child;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use crate::faults;

/// smolvm's `MAX_STREAMING_EXEC_OUTPUT` (src/agent/client.rs): 11 MiB of stdout+stderr.
pub const EXEC_OUTPUT_CAP: u64 = 11 * 1024 * 1024;

/// The agent's `TIMEOUT_EXIT_CODE` (crates/smolvm-agent/src/process.rs).
const TIMEOUT_EXIT_CODE: i32 = 124;

/// Exit status when the "agent connection" dies mid-stream.
const DIED_EXIT_CODE: i32 = 255;

/// What a closed stdout pipe would have done to us had SIGPIPE not been ignored.
const BROKEN_PIPE_EXIT_CODE: i32 = 141;

const CHUNK: usize = 64 * 1024;

/// The running child, so a SIGTERM handler can take it down with the sim.
pub static CHILD_PID: AtomicI32 = AtomicI32::new(0);

/// Output of one exec: two readers and, for real processes, the child to wait for.
pub struct Source {
    pub stdout: Box<dyn Read + Send>,
    pub stderr: Box<dyn Read + Send>,
    pub child: Option<Child>,
    /// Exit status when there is no child (in-process commands).
    pub code: i32,
    /// Runs after the command ended (e.g. cutting a guest-side archive).
    pub after_exit: Option<Box<dyn FnOnce() -> io::Result<()>>>,
}

impl Source {
    pub fn fixed(stdout: Vec<u8>, stderr: Vec<u8>, code: i32) -> Self {
        Source {
            stdout: Box::new(io::Cursor::new(stdout)),
            stderr: Box::new(io::Cursor::new(stderr)),
            child: None,
            code,
            after_exit: None,
        }
    }
}

/// Faults that shape the stream (only applied to tar).
#[derive(Debug, Default, Clone)]
pub struct Faults {
    pub flood: u64,
    pub hostile: bool,
    pub die_after: Option<u64>,
    pub hang_after: Option<u64>,
    pub throttle: Option<u64>,
    pub exit_after_stream: Option<i32>,
}

pub struct Options {
    /// `--stream`: write chunks as they arrive; otherwise hold all until the end.
    pub stream: bool,
    pub cap: Option<u64>,
    pub timeout: Option<Duration>,
    /// smolvm's name for the operation in agent errors.
    pub op: &'static str,
    pub faults: Faults,
}

enum Ev {
    Out(Vec<u8>),
    Err(Vec<u8>),
    OutEof,
    ErrEof,
}

/// Ends the pump early with an exit status (its output already written).
struct Stop(i32);

/// Where output goes: straight to our fds, or held in temp files until the command ends.
struct Sink {
    out: File,
    err: File,
    held: Option<(File, File)>,
}

impl Sink {
    fn new(stream: bool) -> io::Result<Sink> {
        // Duplicated fds give plain unbuffered Files: binary data, no line buffering.
        let out = File::from(io::stdout().as_fd().try_clone_to_owned()?);
        let err = File::from(io::stderr().as_fd().try_clone_to_owned()?);
        let held = if stream {
            None
        } else {
            Some((tempfile::tempfile()?, tempfile::tempfile()?))
        };
        Ok(Sink { out, err, held })
    }

    fn out(&mut self, data: &[u8]) -> io::Result<()> {
        match self.held.as_mut() {
            Some((o, _)) => o.write_all(data),
            None => self.out.write_all(data),
        }
    }

    fn err(&mut self, data: &[u8]) -> io::Result<()> {
        match self.held.as_mut() {
            Some((_, e)) => e.write_all(data),
            None => self.err.write_all(data),
        }
    }

    /// Release held output: stdout first, then stderr, as smolvm's `print_output_and_exit`.
    fn release(&mut self) -> io::Result<()> {
        if let Some((mut o, mut e)) = self.held.take() {
            o.seek(SeekFrom::Start(0))?;
            io::copy(&mut o, &mut self.out)?;
            e.seek(SeekFrom::Start(0))?;
            io::copy(&mut e, &mut self.err)?;
        }
        Ok(())
    }

    /// Drop held output unseen (a non-stream exec whose agent died returns nothing).
    fn discard(&mut self) {
        self.held = None;
    }

    /// A line of smolvm's own, after everything relayed so far.
    fn note(&mut self, line: &str) {
        let _ = self.release();
        let _ = self.err.write_all(line.as_bytes());
    }
}

fn spawn_reader(mut r: Box<dyn Read + Send>, tx: SyncSender<Ev>, is_out: bool) {
    std::thread::spawn(move || {
        loop {
            let mut buf = vec![0u8; CHUNK];
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.truncate(n);
                    let ev = if is_out { Ev::Out(buf) } else { Ev::Err(buf) };
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(if is_out { Ev::OutEof } else { Ev::ErrEof });
    });
}

struct Pump<'a> {
    sink: Sink,
    child: Option<Child>,
    opts: &'a Options,
    deadline: Option<Instant>,
    started: Instant,
    relayed: u64,
    out_total: u64,
    flood_left: u64,
    flood_piece: u64,
    flood_line: u64,
}

/// Relay `src` under `opts`; returns the exit status smolvm would have.
pub fn run(mut src: Source, opts: &Options) -> i32 {
    let sink = match Sink::new(opts.stream) {
        Ok(s) => s,
        Err(e) => {
            kill(&mut src.child);
            eprintln!("smolvm-sim: error: set up output: {e}");
            return 1;
        }
    };
    let (tx, rx) = mpsc::sync_channel(8);
    spawn_reader(src.stdout, tx.clone(), true);
    spawn_reader(src.stderr, tx, false);
    let started = Instant::now();
    let flood = opts.faults.flood;
    let mut pump = Pump {
        sink,
        child: src.child,
        opts,
        deadline: opts.timeout.map(|t| started + t),
        started,
        relayed: 0,
        out_total: 0,
        flood_left: flood,
        // Spread over many stdout chunks so the flood interleaves with the archive; a
        // piece is at most one frame, like the guest's own stderr chunks.
        flood_piece: (flood / 32).clamp(4096, CHUNK as u64).min(flood),
        flood_line: 0,
    };
    match pump.relay(&rx) {
        Err(Stop(code)) => code,
        Ok(()) => match pump.finish(src.code, src.after_exit) {
            Ok(code) | Err(Stop(code)) => code,
        },
    }
}

impl Pump<'_> {
    fn relay(&mut self, rx: &Receiver<Ev>) -> Result<(), Stop> {
        if self.opts.faults.hostile {
            self.write_err(&faults::hostile_stderr())?;
        }
        let mut open = 2;
        while open > 0 {
            let ev = match self.deadline {
                Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(ev) => ev,
                    Err(RecvTimeoutError::Timeout) => return Err(self.timed_out()),
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(ev) => ev,
                    Err(_) => break,
                },
            };
            match ev {
                Ev::Out(data) => self.on_stdout(&data)?,
                Ev::Err(data) => {
                    self.write_err(&data)?;
                    self.check_cap()?;
                }
                Ev::OutEof | Ev::ErrEof => open -= 1,
            }
        }
        Ok(())
    }

    fn on_stdout(&mut self, data: &[u8]) -> Result<(), Stop> {
        let f = &self.opts.faults;
        if let Some(limit) = f.die_after {
            if self.out_total + data.len() as u64 >= limit {
                let keep = usize::try_from(limit.saturating_sub(self.out_total)).unwrap_or(0);
                self.write_out(&data[..keep.min(data.len())])?;
                return Err(self.died());
            }
        }
        if let Some(limit) = f.hang_after {
            if self.out_total + data.len() as u64 >= limit {
                let keep = usize::try_from(limit.saturating_sub(self.out_total)).unwrap_or(0);
                self.write_out(&data[..keep.min(data.len())])?;
                return Err(self.hang());
            }
        }
        self.write_out(data)?;
        self.check_cap()?;
        self.throttle()?;
        if self.flood_left > 0 {
            let n = self.flood_piece.min(self.flood_left);
            self.flood(n)?;
        }
        Ok(())
    }

    fn write_out(&mut self, data: &[u8]) -> Result<(), Stop> {
        if let Err(e) = self.sink.out(data) {
            return Err(self.broken(&e));
        }
        self.out_total += data.len() as u64;
        self.relayed += data.len() as u64;
        Ok(())
    }

    fn write_err(&mut self, data: &[u8]) -> Result<(), Stop> {
        if let Err(e) = self.sink.err(data) {
            return Err(self.broken(&e));
        }
        self.relayed += data.len() as u64;
        Ok(())
    }

    fn flood(&mut self, n: u64) -> Result<(), Stop> {
        let text = faults::flood_text(n, &mut self.flood_line);
        self.flood_left -= n;
        self.write_err(&text)?;
        self.check_cap()
    }

    /// smolvm checks after relaying each frame: at most cap + one frame gets through.
    fn check_cap(&mut self) -> Result<(), Stop> {
        match self.opts.cap {
            Some(cap) if self.relayed >= cap => {
                kill(&mut self.child);
                self.sink.note(&format!(
                    "error: streaming output exceeded {cap} byte cap; exec terminated (output truncated)\n"
                ));
                Err(Stop(1))
            }
            _ => Ok(()),
        }
    }

    fn throttle(&mut self) -> Result<(), Stop> {
        let Some(rate) = self.opts.faults.throttle else {
            return Ok(());
        };
        let due = Duration::from_secs_f64(self.out_total as f64 / rate as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            let mut wait = due - elapsed;
            if let Some(d) = self.deadline {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            std::thread::sleep(wait);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(self.timed_out());
        }
        Ok(())
    }

    fn died(&mut self) -> Stop {
        kill(&mut self.child);
        if !self.opts.stream {
            // The buffered exec never got its Completed response: nothing is printed.
            self.sink.discard();
        }
        self.sink.note(&format!(
            "Error: agent operation failed: {}: connection to VM lost\n",
            self.opts.op
        ));
        Stop(DIED_EXIT_CODE)
    }

    /// Stop writing, keep the child blocked, and wait to be killed (or for --timeout).
    fn hang(&mut self) -> Stop {
        loop {
            std::thread::sleep(Duration::from_millis(50));
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return self.timed_out();
            }
        }
    }

    fn timed_out(&mut self) -> Stop {
        kill(&mut self.child);
        let ms = self.opts.timeout.map(|t| t.as_millis()).unwrap_or(0);
        self.sink.note(&format!("command timed out after {ms}ms\n"));
        Stop(TIMEOUT_EXIT_CODE)
    }

    fn broken(&mut self, e: &io::Error) -> Stop {
        kill(&mut self.child);
        if e.kind() == io::ErrorKind::BrokenPipe {
            Stop(BROKEN_PIPE_EXIT_CODE)
        } else {
            let _ = writeln!(self.sink.err, "smolvm-sim: error: write output: {e}");
            Stop(1)
        }
    }

    fn finish(
        &mut self,
        fixed: i32,
        after_exit: Option<Box<dyn FnOnce() -> io::Result<()>>>,
    ) -> Result<i32, Stop> {
        if self.flood_left > 0 {
            let n = self.flood_left;
            self.flood(n)?;
        }
        let mut code = match self.child.take() {
            Some(child) => self.wait(child)?,
            None => fixed,
        };
        if let Some(hook) = after_exit {
            if let Err(e) = hook() {
                let _ = writeln!(self.sink.err, "smolvm-sim: error: {e}");
            }
        }
        if let Some(c) = self.opts.faults.exit_after_stream {
            self.write_err(faults::TAR_CHANGED)?;
            code = c;
        }
        if let Err(e) = self.sink.release() {
            return Err(self.broken(&e));
        }
        Ok(code)
    }

    fn wait(&mut self, mut child: Child) -> Result<i32, Stop> {
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    CHILD_PID.store(0, Ordering::SeqCst);
                    return Ok(exit_code(status));
                }
                Ok(None) => {}
                Err(_) => return Ok(1),
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.child = Some(child);
                return Err(self.timed_out());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A shell-style status: the code, or 128 + the signal that ended it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

pub fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
        CHILD_PID.store(0, Ordering::SeqCst);
    }
}
