//! The record of a finished command run, and how it is logged.
//!
//! Owns [`Finished`] and [`Status`] and their log lines; runs nothing and
//! touches no process.

use core::fmt;
use core::time::Duration;
use std::net::IpAddr;

use log::{info, warn};

/// How a command's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It exited with this status code.
    Exited(i32),
    /// A signal (this number) killed it.
    Signaled(i32),
    /// It was reaped by someone else (should not happen: the daemon reaps
    /// only its own children, by pid).
    Unknown,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Status::Exited(code) => write!(f, "exited with status {code}"),
            Status::Signaled(sig) => match nix::sys::signal::Signal::try_from(sig) {
                Ok(name) => write!(f, "killed by {name}"),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            Status::Unknown => f.write_str("ended (status unknown: reaped elsewhere)"),
        }
    }
}

/// One finished command run: who asked, how it ended, what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The command's name.
    pub name: String,
    /// The SPA client that asked for it.
    pub client: String,
    /// The address the request came from.
    pub source: IpAddr,
    /// The process id it ran as.
    pub pid: u32,
    /// How it ended.
    pub status: Status,
    /// From start to reaping.
    pub run_time: Duration,
    /// Its stdout and stderr, interleaved, at most [`super::MAX_OUTPUT`] bytes.
    pub output: Vec<u8>,
    /// Output bytes read beyond [`super::MAX_OUTPUT`] and dropped.
    pub dropped: u64,
    /// It ran past its timeout and its process group was sent SIGTERM.
    pub timed_out: bool,
    /// It outlived the grace after SIGTERM (timeout or shutdown) and its
    /// group was sent SIGKILL.
    pub killed: bool,
    /// [`super::Runner::shutdown`] stopped it (daemon exit).
    pub stopped: bool,
    /// Why the program was never exec'd (no such file, not executable, no
    /// such user…); it then exits 127.
    pub exec_error: Option<String>,
}

impl Finished {
    /// Exited with status 0 within its timeout, without being stopped.
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
            && !self.timed_out
            && !self.stopped
            && self.exec_error.is_none()
    }

    /// The output's lines, without their line ends (`\n`, `\r\n`).
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let body = self.output.strip_suffix(b"\n").unwrap_or(&self.output);
        let empty = self.output.is_empty();
        body.split(|&b| b == b'\n')
            .filter(move |_| !empty)
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// The one-line summary logged when the run ends.
    pub fn summary(&self) -> impl fmt::Display + '_ {
        Summary(self)
    }

    /// Logs the run: the summary (info on success, warn otherwise), each
    /// output line at info prefixed with the command's name, and how much
    /// output was dropped.
    pub fn log(&self) {
        if let Some(e) = &self.exec_error {
            warn!(
                "command {} for client {} from {} (pid {}) could not start: {e}",
                self.name, self.client, self.source, self.pid
            );
            return;
        }
        if self.success() {
            info!("{}", self.summary());
        } else {
            warn!("{}", self.summary());
        }
        for line in self.lines() {
            info!("command {}: {}", self.name, Escaped(line));
        }
        if self.dropped > 0 {
            info!(
                "command {}: {} more bytes of output dropped (kept {})",
                self.name,
                self.dropped,
                self.output.len()
            );
        }
    }
}

struct Summary<'a>(&'a Finished);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(
            f,
            "command {} for client {} from {} (pid {}) {} after {}.{:03} s",
            r.name,
            r.client,
            r.source,
            r.pid,
            r.status,
            r.run_time.as_secs(),
            r.run_time.subsec_millis()
        )?;
        match (r.stopped, r.timed_out, r.killed) {
            (true, _, true) => f.write_str(" (stopped on shutdown, SIGKILLed)")?,
            (true, _, false) => f.write_str(" (stopped on shutdown)")?,
            (false, true, true) => f.write_str(" (timed out, SIGKILLed)")?,
            (false, true, false) => f.write_str(" (timed out, SIGTERMed)")?,
            (false, false, _) => {}
        }
        write!(f, ", {} bytes of output", r.output.len() as u64 + r.dropped)
    }
}

/// Output bytes made safe for a log line: invalid UTF-8 and control
/// characters (but tab) shown as `\xNN`.
struct Escaped<'a>(&'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() && c != '\t' {
                    // Control characters are all below U+00A0: one byte's worth.
                    write!(f, "\\x{:02x}", c as u32)?;
                } else {
                    fmt::Write::write_char(f, c)?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(output: &[u8], status: Status) -> Finished {
        Finished {
            name: "wake".into(),
            client: "alice".into(),
            source: "192.0.2.9".parse().unwrap(),
            pid: 42,
            status,
            run_time: Duration::from_millis(1234),
            output: output.to_vec(),
            dropped: 0,
            timed_out: false,
            killed: false,
            stopped: false,
            exec_error: None,
        }
    }

    #[test]
    fn lines_split_on_newlines() {
        let lines = |out: &[u8]| -> Vec<Vec<u8>> {
            finished(out, Status::Exited(0))
                .lines()
                .map(<[u8]>::to_vec)
                .collect()
        };
        assert!(lines(b"").is_empty());
        assert_eq!(lines(b"a\n"), [b"a".to_vec()]);
        assert_eq!(lines(b"a\r\nb"), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(lines(b"a\n\nb\n"), [b"a".to_vec(), vec![], b"b".to_vec()]);
    }

    #[test]
    fn summaries_say_who_and_how() {
        let ok = finished(b"hi\n", Status::Exited(0));
        assert!(ok.success());
        assert_eq!(
            ok.summary().to_string(),
            "command wake for client alice from 192.0.2.9 (pid 42) exited with status 0 \
             after 1.234 s, 3 bytes of output"
        );
        let mut killed = finished(b"", Status::Signaled(9));
        killed.timed_out = true;
        killed.killed = true;
        killed.dropped = 7;
        assert!(!killed.success());
        let s = killed.summary().to_string();
        assert!(s.contains("killed by SIGKILL"), "{s}");
        assert!(s.contains("(timed out, SIGKILLed), 7 bytes"), "{s}");
        assert!(!finished(b"", Status::Exited(1)).success());
        let mut stopped = finished(b"", Status::Signaled(15));
        stopped.stopped = true;
        let s = stopped.summary().to_string();
        assert!(
            s.contains("killed by SIGTERM after 1.234 s (stopped on shutdown)"),
            "{s}"
        );
        assert_eq!(
            Status::Signaled(40).to_string(),
            "killed by signal 40",
            "realtime signals have no name"
        );
    }

    #[test]
    fn output_is_escaped_for_the_log() {
        assert_eq!(
            Escaped(b"ok\tsp\x1b[31m\xff\xc3\xa9").to_string(),
            "ok\tsp\\x1b[31m\\xffé"
        );
    }
}
