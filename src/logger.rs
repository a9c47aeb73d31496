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
            let _ = writeln!(
                std::io::stderr().lock(),
                "postern: {level}: {}",
                record.args()
            );
        }
    }

    fn flush(&self) {}
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
