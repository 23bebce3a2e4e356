//! A running `capture` for end-to-end tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use needle_common::schema::Event;

use crate::{binary, read_trace};

/// A running capture; killed on drop if the test fails midway.
pub struct Capture {
    child: Option<Child>,
    stderr_lines: std::sync::mpsc::Receiver<String>,
}

/// Every program of the object must load on the machines the tests run on (a program the
/// verifier refuses is skipped by capture, by design for other kernels, and its events would
/// silently be missing here). `NEEDLE_ALLOW_PARTIAL_LOAD=1` accepts a partial load on a
/// kernel that lacks a program type.
fn every_program_loaded(line: &str, warnings: &str) -> Result<(), String> {
    let counts = line
        .split_whitespace()
        .find_map(|w| w.split_once('/'))
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    match counts {
        Some((loaded, total)) if loaded < total => {
            if std::env::var_os("NEEDLE_ALLOW_PARTIAL_LOAD").is_some_and(|v| v == "1") {
                eprintln!("capture loaded {loaded}/{total} programs (NEEDLE_ALLOW_PARTIAL_LOAD=1)");
                return Ok(());
            }
            Err(format!(
                "capture loaded only {loaded}/{total} programs:\n{warnings}\
                 (set NEEDLE_ALLOW_PARTIAL_LOAD=1 on a kernel that lacks a program type)"
            ))
        }
        Some(_) => Ok(()),
        None => Err(format!("unexpected start line: {line:?}")),
    }
}

impl Capture {
    /// Starts capture and waits until its programs are attached.
    pub fn start(out: &Path, extra: &[&str]) -> Capture {
        Capture::spawn(&binary("capture"), out, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the capture binary at `bin` and waits (at most 30 s) until it reports that it is
    /// recording; an error says why not (spawn failure, or exit/silence with its last words).
    pub fn spawn(bin: &Path, out: &Path, extra: &[&str]) -> Result<Capture, String> {
        Capture::spawn_env(bin, out, extra, &[])
    }

    /// [`Capture::spawn`] with extra environment variables.
    pub fn spawn_env(
        bin: &Path,
        out: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Capture, String> {
        let mut child = Command::new(bin)
            .envs(env.iter().copied())
            .arg("--output")
            .arg(out)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().ok_or("capture stderr not piped")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[capture] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let cap = Capture {
            child: Some(child),
            stderr_lines: rx,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        let mut warnings = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match cap.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains("capture: recording with") => {
                    return every_program_loaded(&line, &warnings).map(|()| cap);
                }
                Ok(line) => {
                    if line.starts_with("capture: warning:") {
                        // The verifier's log follows on the same line: its start says enough.
                        warnings.extend(line.chars().take(400));
                        warnings.push('\n');
                    }
                    last = line;
                }
                Err(_) => {
                    return Err(format!(
                        "{} did not report that it is recording within 30 s (last line: {last:?})",
                        bin.display()
                    ));
                }
            }
        }
    }

    /// True once capture has exited (without reaping it; [`Capture::wait`] still works).
    pub fn exited(&mut self) -> bool {
        let pid = self.child.as_ref().map_or(0, |c| c.id() as i32);
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: WNOWAIT leaves the child waitable; `info` is a valid out-parameter.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid to read after waitid filled the struct.
        r == 0 && unsafe { info.si_pid() } == pid
    }

    /// Everything capture printed on stderr after it reported that it was recording.
    pub fn stderr_so_far(&mut self) -> String {
        let mut text = String::new();
        while let Ok(line) = self.stderr_lines.try_recv() {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    pub fn signal(&mut self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(pid, sig) };
    }

    /// Waits for exit (bounded) and returns (status code, stdout).
    pub fn wait(self) -> (Option<i32>, String) {
        self.wait_for(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for exit at most `timeout` (then kills it) and returns (status code, stdout).
    pub fn wait_for(mut self, timeout: Duration) -> Result<(Option<i32>, String), String> {
        let mut child = self.child.take().ok_or("capture already reaped")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| format!("wait for capture: {e}"))?
            {
                let mut out = String::new();
                use std::io::Read;
                if let Some(mut stdout) = child.stdout.take() {
                    stdout.read_to_string(&mut out).ok();
                }
                return Ok((status.code(), out));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("capture did not exit within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every finalized trace file in `dir`, sorted by name.
pub fn trace_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "parquet"));
    v.sort();
    v
}

/// Ends captures the way the tests end them: a short pause so the last events reach the ring
/// buffer, SIGINT to every one (they finalize in parallel), then each must exit 0. Returns what
/// each recorded (read from its directory) with its summary, in the order given.
pub fn stop_and_read(caps: Vec<(Capture, &Path)>) -> Vec<(Recorded, String)> {
    std::thread::sleep(Duration::from_millis(300));
    let mut caps = caps;
    for (cap, _) in caps.iter_mut() {
        cap.signal(libc::SIGINT);
    }
    caps.into_iter()
        .map(|(cap, dir)| {
            let (code, summary) = cap.wait();
            assert_eq!(code, Some(0), "{summary}");
            (Recorded::read(dir), summary)
        })
        .collect()
}

/// Everything a capture run recorded: the rows of all its trace files, and the kernel counters
/// and losses summed over them.
pub struct Recorded {
    /// All rows, in file order.
    pub events: Vec<Event>,
    /// `needle.*` counters (`file_filtered`, `bpf_read_filtered`, …), summed.
    pub counters: std::collections::BTreeMap<String, u64>,
    /// Events lost in the kernel, by kind, summed.
    pub lost_by_kind: std::collections::BTreeMap<String, u64>,
}

impl Recorded {
    /// Reads every finalized trace in `dir`; panics (naming the file) when one cannot be read.
    pub fn read(dir: &Path) -> Recorded {
        let mut r = Recorded {
            events: Vec::new(),
            counters: Default::default(),
            lost_by_kind: Default::default(),
        };
        let files = trace_files(dir);
        assert!(!files.is_empty(), "no trace file in {}", dir.display());
        for f in files {
            let t = read_trace(&f).unwrap_or_else(|e| panic!("{e}"));
            for (k, v) in t.metadata.counters {
                *r.counters.entry(k).or_default() += v;
            }
            for (k, v) in t.metadata.events_lost_by_kind {
                *r.lost_by_kind.entry(k).or_default() += v;
            }
            r.events.extend(t.events);
        }
        r
    }

    /// A counter's total (0 when absent).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// The rows of thread `tid`, in order.
    pub fn of_thread(&self, tid: u32) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.process.pid == tid)
    }
}

/// Writes `events` as a trace file of their own (sorted by time), for a tool that reads a file —
/// `analyze features`, the DuckDB SQL — to see only the rows a test picked out of a capture
/// that recorded the whole host.
pub fn write_events(path: &Path, events: &[&Event]) -> Result<(), String> {
    use needle_common::schema::{
        SCHEMA_VERSION, TraceBatchBuilder, TraceMetadata, WriteOptions, arrow_schema,
        writer_properties,
    };
    let meta = TraceMetadata {
        schema_version: SCHEMA_VERSION,
        host: "node-1".into(),
        writer: "test".into(),
        ..Default::default()
    };
    let props = writer_properties(&WriteOptions::default(), meta.to_key_values())
        .map_err(|e| format!("writer properties: {e}"))?;
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|e| e.time_ns);
    let mut b = TraceBatchBuilder::new(&meta.host);
    sorted.iter().for_each(|e| b.push(e));
    let file =
        std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, arrow_schema(), Some(props))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    w.write(&b.finish())
        .and_then(|_| w.close().map(|_| ()))
        .map_err(|e| format!("write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::every_program_loaded;

    #[test]
    fn a_partial_load_is_an_error_naming_the_refused_program() {
        let full =
            "capture: recording with 16/16 programs into /tmp/x/traces (ring buffer 8192 KiB)";
        assert_eq!(every_program_loaded(full, ""), Ok(()));
        let partial =
            "capture: recording with 14/15 programs into /tmp/x/traces (ring buffer 8192 KiB)";
        let warning =
            "capture: warning: sys_exit_security (sys_exit tail call) skipped: load: E2BIG\n";
        let err = every_program_loaded(partial, warning).unwrap_err();
        assert!(
            err.contains("14/15") && err.contains("sys_exit_security"),
            "{err}"
        );
        assert!(every_program_loaded("capture: recording", "").is_err());
    }
}
