//! A running `capture` for end-to-end tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::binary;

/// A running capture; killed on drop if the test fails midway.
pub struct Capture {
    child: Option<Child>,
    stderr_lines: std::sync::mpsc::Receiver<String>,
}

impl Capture {
    /// Starts capture and waits until its programs are attached.
    pub fn start(out: &Path, extra: &[&str]) -> Capture {
        let mut child = Command::new(binary("capture"))
            .arg("--output")
            .arg(out)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn capture");
        let stderr = child.stderr.take().expect("stderr");
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
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match cap.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains("capture: recording with") => break,
                Ok(_) => continue,
                Err(_) => panic!("capture did not report that it is recording within 30 s"),
            }
        }
        cap
    }

    /// True once capture has exited (without reaping it; [`Capture::wait`] still works).
    pub fn exited(&mut self) -> bool {
        let pid = self.child.as_ref().map_or(0, |c| c.id() as i32);
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: WNOWAIT leaves the child waitable; `info` is a valid out-parameter.
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
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
    pub fn wait(mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let mut out = String::new();
                use std::io::Read;
                child
                    .stdout
                    .take()
                    .expect("stdout")
                    .read_to_string(&mut out)
                    .ok();
                return (status.code(), out);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("capture did not exit within 30 s");
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
