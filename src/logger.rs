//! A minimal `log` backend writing one line per record to stderr.
//!
//! procd forwards a service's stderr to syslog, so no timestamps are added:
//! `postern: info: opened tcp:22 for 192.0.2.9 (sequence ssh, 30 s)`.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            // A static name: no allocation per log line.
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warn",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            // One write per line (stderr is unbuffered: formatting straight
            // into it costs a syscall per piece); a longer line goes piecewise.
            let mut line = Line::default();
            let mut err = std::io::stderr().lock();
            if core::fmt::write(
                &mut line,
                format_args!("postern: {level}: {}\n", record.args()),
            )
            .is_ok()
            {
                let _ = err.write_all(line.as_bytes());
            } else {
                let _ = writeln!(err, "postern: {level}: {}", record.args());
            }
        }
    }

    fn flush(&self) {}
}

/// A log line formatted on the stack (no allocation); formatting fails
/// when it does not fit.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Default for Line {
    fn default() -> Line {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }
}

impl Line {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Installs the stderr logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Parses `error|warn|info|debug|trace|off`.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write as _;

    #[test]
    fn lines_fit_or_fail_whole() {
        let mut l = Line::default();
        let (port, src) = ("tcp:22", "192.0.2.9");
        write!(l, "postern: info: opened {port} for {src}").unwrap();
        assert_eq!(l.as_bytes(), b"postern: info: opened tcp:22 for 192.0.2.9");
        let mut l = Line::default();
        assert!(write!(l, "{}", "x".repeat(600)).is_err());
    }
}
