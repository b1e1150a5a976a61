//! Running one case: the `ad` binary as a child process with a time limit and a memory
//! limit, in a scratch directory of its own.
//!
//! The memory limit is set by the shell (`ulimit -v`) just before it `exec`s the binary, so
//! no unsafe code is needed and the limit applies to `ad` alone. The time limit is enforced
//! here: a case that runs too long is killed.

use crate::target::Case;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Files the scratch directory always holds, so that cases can `:load` or `read_csv` them:
/// a file of definitions, one with errors, CSV files good and bad, and (see
/// [`Runner::new`]) copies of the examples.
pub const HELPER_FILES: &[(&str, &str)] = &[
    (
        "defs.ad",
        "def sq(x) = x * x\ndef loss(w) = sum((w - 1) ^ 2)\ndef lin(W: [2, 3], x: [3]) = W @ x\nlet k = 3\nlet v = [1, 2, 3]\n",
    ),
    ("bad.ad", "def h(x) = x +\nlet q = [1, 2] + [1, 2, 3]\nlet r = 1\n"),
    ("redef.ad", "def sq(x) = x * x * x\nlet k = [1, 2]\n"),
    ("data.csv", "a,b,c\n1,2,3\n4,5,6\n"),
    ("ragged.csv", "1,2,3\n4,5\n6\n"),
    ("empty.csv", ""),
    ("odd.csv", "nan,inf,-inf\n1e999,-0,1e-320\n,,\n1;2;3\n"),
];

/// Per-case limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall-clock time after which the case is killed and reported as a hang.
    pub time: Duration,
    /// The address-space limit (`ulimit -v`), in KiB. The `ad` binary reserves a 1 GiB
    /// stack for its worker thread, so less than about 2.5 GiB stops it from starting.
    pub memory_kib: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { time: Duration::from_secs(10), memory_kib: 4 << 20 }
    }
}

/// How the process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
    TimedOut,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: Status,
    /// At most [`OUTPUT_CAP`] bytes of each stream are kept; the rest is read and dropped.
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

pub const OUTPUT_CAP: usize = 1 << 20;

/// Runs cases against one `ad` binary.
pub struct Runner {
    binary: PathBuf,
    dir: PathBuf,
    pub limits: Limits,
    counter: AtomicUsize,
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

impl Runner {
    /// A runner with a fresh scratch directory under the system's temporary directory,
    /// holding [`HELPER_FILES`] and, if `examples` is given, copies of its `.ad` files in
    /// `examples/`. Cases run there, so a program that writes files (`write_csv`) writes
    /// them there and not into the repository.
    pub fn new(
        binary: impl Into<PathBuf>,
        limits: Limits,
        examples: Option<&Path>,
    ) -> std::io::Result<Runner> {
        let dir = std::env::temp_dir().join(format!(
            "ad-fuzz-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("examples"))?;
        for (name, text) in HELPER_FILES {
            std::fs::write(dir.join(name), text)?;
        }
        if let Some(ex) = examples {
            for entry in std::fs::read_dir(ex)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "ad") {
                    if let Some(name) = path.file_name() {
                        std::fs::copy(&path, dir.join("examples").join(name))?;
                    }
                }
            }
        }
        let binary = binary.into();
        // The binary is run from the scratch directory, so a relative path must be made
        // absolute first.
        let binary = if binary.is_relative() && binary.components().count() > 1 {
            std::env::current_dir()?.join(binary)
        } else {
            binary
        };
        // Run a snapshot: the binary may be rebuilt while a long run goes on (cargo replaces
        // the file), and a case must not fail because the file is missing for a moment. A
        // hard link costs nothing; a copy is the fallback across file systems.
        let snapshot = dir.join("ad-under-test");
        let binary = match std::fs::hard_link(&binary, &snapshot)
            .or_else(|_| std::fs::copy(&binary, &snapshot).map(|_| ()))
        {
            Ok(()) => snapshot,
            Err(_) => binary,
        };
        Ok(Runner { binary, dir, limits, counter: AtomicUsize::new(0) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs one case with this runner's limits.
    pub fn run(&self, case: &Case) -> std::io::Result<Outcome> {
        self.run_with(case, self.limits)
    }

    pub fn run_with(&self, case: &Case, limits: Limits) -> std::io::Result<Outcome> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let file = format!("case{n}.ad");
        let stdin_text = if case.target.reads_stdin() {
            Some(case.text.clone())
        } else {
            std::fs::write(self.dir.join(&file), &case.text)?;
            None
        };
        let result = self.spawn_and_wait(&case.target.args(&file), stdin_text, limits);
        if !case.target.reads_stdin() {
            // A leftover file costs only disk space; failing to remove it is not worth
            // failing the run for.
            let _ = std::fs::remove_file(self.dir.join(&file));
        }
        result
    }

    fn spawn_and_wait(
        &self,
        args: &[String],
        stdin_text: Option<Vec<u8>>,
        limits: Limits,
    ) -> std::io::Result<Outcome> {
        // `ulimit -c 0`: an aborting case must not leave a core file behind. `ulimit -t`
        // (CPU seconds, at least twice the wall-clock limit, so the timeout below comes
        // first) is a backstop: if the fuzzer itself is killed, no hung case outlives it by
        // long. Failing to set a limit (a lower hard limit, say) is no reason to skip a case.
        let cpu = 2 * limits.time.as_secs() + 5;
        let script = format!(
            "ulimit -c 0 2>/dev/null; ulimit -t {cpu} 2>/dev/null; ulimit -v {} 2>/dev/null; exec \"$0\" \"$@\"",
            limits.memory_kib
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(&self.binary)
            .args(args)
            .current_dir(&self.dir)
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .env("NO_COLOR", "1")
            .env("AD_HISTORY", "")
            .stdin(if stdin_text.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd.spawn()?;
        // Each stream gets its own thread so that a child filling one pipe never blocks
        // while we wait on another.
        let feeder = match (child.stdin.take(), stdin_text) {
            (Some(mut pipe), Some(text)) => Some(std::thread::spawn(move || {
                // The child may exit without reading everything (a crash): a broken pipe
                // is expected then.
                let _ = pipe.write_all(&text);
            })),
            _ => None,
        };
        let out = child.stdout.take().map(|s| std::thread::spawn(move || drain(s)));
        let err = child.stderr.take().map(|s| std::thread::spawn(move || drain(s)));
        let status = wait_with_deadline(&mut child, limits.time)?;
        let elapsed = start.elapsed();
        if let Some(f) = feeder {
            let _ = f.join();
        }
        let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
        Ok(Outcome { status, stdout, stderr: String::from_utf8_lossy(&stderr).into_owned(), elapsed })
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads a stream to its end, keeping the first [`OUTPUT_CAP`] bytes.
fn drain(mut stream: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    kept
}

/// Waits for the child, killing it once `limit` has passed. Polls with a growing interval:
/// most cases end within milliseconds, and a fixed long sleep would dominate their cost.
fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::io::Result<Status> {
    use std::os::unix::process::ExitStatusExt;
    let start = Instant::now();
    let mut nap = Duration::from_micros(200);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(match (st.code(), st.signal()) {
                (Some(c), _) => Status::Exited(c),
                (None, Some(s)) => Status::Signaled(s),
                (None, None) => Status::Exited(-1),
            });
        }
        if start.elapsed() >= limit {
            // The shell has exec'd the binary, so this kills `ad` itself (and with it its
            // threads). It may have exited in between; then the kill fails harmlessly.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Status::TimedOut);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}
