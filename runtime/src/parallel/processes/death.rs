//! Why a worker process died, in words: from its exit status and the lines of its stderr
//! that explain a death (an allocation that failed, a panic's message).

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use crate::parallel::TaskErrorKind as Kind;

/// Lines of a worker's stderr that explain its death, picked out as they pass: a fixed tail
/// would lose them behind a backtrace. A worker dies at most once, so none is stale.
#[derive(Default)]
pub(super) struct Said {
    /// The line being read.
    line: Vec<u8>,
    /// The last line that was not blank.
    last: String,
    /// `memory allocation of N bytes failed`, written just before the abort.
    out_of_memory: Option<String>,
    /// The message of the last panic (the line after `panicked at`).
    panic: Option<String>,
    after_panic: bool,
}

impl Said {
    pub(super) fn read(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() < 4096 {
                    self.line.push(b);
                }
                continue;
            }
            let line = String::from_utf8_lossy(&self.line).trim().to_owned();
            self.line.clear();
            if self.after_panic {
                self.after_panic = false;
                self.panic = Some(line.clone());
            }
            if line.starts_with("memory allocation of") && line.ends_with("failed") {
                self.out_of_memory = Some(line.clone());
            }
            if line.starts_with("thread '") && line.contains("panicked at") {
                self.after_panic = true;
            }
            if !line.is_empty() {
                self.last = line;
            }
        }
    }
}

/// Why a worker ended, from its exit status and what its stderr said.
pub(super) fn explain(
    status: io::Result<ExitStatus>,
    said: &Said,
    max_memory: Option<u64>,
) -> (Kind, String) {
    let last = &said.last;
    let with_last = |what: String| {
        if last.is_empty() {
            what
        } else {
            format!("{what}; its last output: {last:?}")
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => return (Kind::Signal(0), format!("its worker was lost: {e}")),
    };
    if let Some(signal) = status.signal() {
        if let (libc::SIGABRT, Some(line)) = (signal, &said.out_of_memory) {
            let cap = match max_memory {
                Some(bytes) => format!("over max_memory = {}", human(bytes)),
                None => "over the memory the system allows".to_owned(),
            };
            return (
                Kind::OutOfMemory,
                format!("{line}, {cap}; its worker was replaced"),
            );
        }
        // Built with `panic = "abort"`, a panic ends the worker, and the message it printed
        // is the task's. (Unwinding, a panic never does.)
        if let (true, libc::SIGABRT, Some(message)) = (cfg!(panic = "abort"), signal, &said.panic) {
            return (Kind::Panicked, message.clone());
        }
        return (
            Kind::Signal(signal),
            with_last(format!(
                "its worker was killed by signal {signal} ({})",
                signal_name(signal)
            )),
        );
    }
    let code = status.code().unwrap_or(-1);
    (
        Kind::Exited(code),
        with_last(format!("its worker exited with code {code}")),
    )
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => {
            "SIGSEGV, segmentation fault: an invalid memory access, or a stack overflow"
        }
        libc::SIGABRT => "SIGABRT, aborted",
        libc::SIGBUS => "SIGBUS, bus error",
        libc::SIGILL => "SIGILL, illegal instruction",
        libc::SIGFPE => "SIGFPE, arithmetic error",
        libc::SIGKILL => "SIGKILL, killed from outside, often by the system when memory runs out",
        libc::SIGTERM => "SIGTERM, terminated",
        libc::SIGINT => "SIGINT, interrupted",
        libc::SIGPIPE => "SIGPIPE, broken pipe",
        libc::SIGXCPU => "SIGXCPU, over its CPU time limit",
        libc::SIGXFSZ => "SIGXFSZ, over its file size limit",
        _ => "a signal",
    }
}

/// Bytes in binary units, as `max_memory` is usually written.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
