//! The SPA replay state file: recorded packets survive a daemon restart.
//!
//! An edge owned by the daemon: the engine's replay record is plain data
//! ([`crate::engine::Engine::replay_record`]); this module keeps a copy on
//! disk, `STATE_DIR/spa-replay` (default `/var/run/postern`, tmpfs on OpenWrt,
//! so no flash wear). The daemon records each accepted packet here *before*
//! it grants anything, and each authenticated packet refused after the replay
//! cache recorded it (a port, address or command the client may not ask for)
//! right after, and loads the file at start.
//!
//! Written atomically: a temporary `spa-replay.tmp` created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC` and mode 0600 (a stale one, or a
//! symlink planted in its place, is unlinked first, never followed), synced,
//! then renamed over the file. The state directory must be owned by root or
//! the daemon's effective uid and not be writable by group or others
//! ([`check_dir`]); otherwise the daemon refuses to use it.
//!
//! The file names the kernel's boot id (`/proc/sys/kernel/random/boot_id`):
//! entries of another boot are ignored (packets from before this boot are
//! refused by the engine's replay guard instead). It keeps the record's floor
//! (packets stamped below it may have been forgotten: see
//! [`crate::spa::replay`]) so that raising `max_skew` and restarting does not
//! reopen the gap. Format, one item a line:
//!
//! ```text
//! postern-spa-replay 2
//! boot 5f1c…-…
//! floor 1799999881
//! 1800000000 0a1b…(48 hex digits: the packet's replay id) laptop
//! ```
//!
//! (the client name is `-` when unknown). Version 1 files (no floor, no
//! client) are still read, with floor 0. [`render`] and [`parse`] are pure
//! and tested as text.

use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::spa::seal::NONCE_LEN;
use crate::spa::{ReplayEntry, ReplayRecord, SavedEntry};
use crate::time::Millis;

/// The file's name inside the state directory.
pub const FILE_NAME: &str = "spa-replay";
/// The temporary's name inside the state directory.
pub const TEMP_NAME: &str = "spa-replay.tmp";
const MAGIC_V1: &str = "postern-spa-replay 1";
const MAGIC: &str = "postern-spa-replay 2";
/// Largest state file read: far more than any cache's entries (2,304 lines
/// of under 100 bytes with common client names); a longer file reads as
/// malformed (history unknown), never as a shorter history.
const MAX_FILE_LEN: u64 = 1024 * 1024;

/// What [`ReplayFile::load`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No file: nothing was recorded yet in this boot (the directory is tmpfs).
    Missing,
    /// Entries of this boot.
    Restored(usize),
    /// A file of an earlier boot: ignored.
    OtherBoot,
    /// Unreadable or malformed (or the boot id is unknown): the history of
    /// this boot is unknown, with the reason.
    Bad(String),
}

impl Loaded {
    /// The replay guard this outcome calls for: the instant of `boot` when the
    /// file tells this boot's history (or that there is none), `now` when it
    /// cannot: then every packet stamped before now + `max_skew` is refused,
    /// since any of them may have been accepted and the record is lost.
    pub fn guard(&self, boot: Millis, now: Millis) -> Millis {
        match self {
            Loaded::Bad(_) => now,
            Loaded::Missing | Loaded::Restored(_) | Loaded::OtherBoot => boot,
        }
    }
}

/// The on-disk copy of the replay record.
#[derive(Debug)]
pub struct ReplayFile {
    dir: PathBuf,
    path: PathBuf,
    boot_id: String,
    record: ReplayRecord,
}

impl ReplayFile {
    /// Reads `dir/spa-replay` (creating `dir`, mode 0700, if needed) for the
    /// current boot; fails if `dir` is not safe to keep it in ([`check_dir`]).
    pub fn load(dir: &Path) -> io::Result<(ReplayFile, Loaded)> {
        let with_dir = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(with_dir)?;
        // SAFETY: geteuid cannot fail.
        check_dir(dir, unsafe { libc::geteuid() })?;
        let boot_id = read_boot_id();
        let path = dir.join(FILE_NAME);
        let (record, loaded) = match read_nofollow(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (ReplayRecord::default(), Loaded::Missing)
            }
            Err(e) => (ReplayRecord::default(), Loaded::Bad(e.to_string())),
            Ok(_) if boot_id.is_empty() => (
                ReplayRecord::default(),
                Loaded::Bad("the kernel's boot id is unreadable".into()),
            ),
            Ok(text) => match parse(&text, &boot_id) {
                Ok(Some(r)) => {
                    let n = r.entries.len();
                    (r, Loaded::Restored(n))
                }
                Ok(None) => (ReplayRecord::default(), Loaded::OtherBoot),
                Err(msg) => (ReplayRecord::default(), Loaded::Bad(msg)),
            },
        };
        Ok((
            ReplayFile {
                dir: dir.to_path_buf(),
                path,
                boot_id,
                record,
            },
            loaded,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record held.
    pub fn record(&self) -> &ReplayRecord {
        &self.record
    }

    /// Writes the record held (at start: a directory that cannot be written
    /// stops the start, not the first grant).
    pub fn save(&mut self) -> io::Result<()> {
        self.write()
    }

    /// Adds one recorded packet of `client`, drops entries expired at
    /// `now_unix` (raising the floor above them), writes the file.
    pub fn record_packet(
        &mut self,
        client: Option<&str>,
        entry: ReplayEntry,
        now_unix: u64,
        max_skew: u64,
    ) -> io::Result<()> {
        self.record.record(client, entry, now_unix, max_skew);
        self.write()
    }

    fn write(&self) -> io::Result<()> {
        let text = render(&self.boot_id, &self.record);
        write_atomically(&self.dir, &self.path, text.as_bytes())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }
}

/// Refuses a state directory that others could tamper with: it must be a
/// directory owned by root or `euid` (the daemon's effective uid at check
/// time), not writable by group or others.
pub fn check_dir(dir: &Path, euid: u32) -> io::Result<()> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{}: {why}", dir.display()),
        ))
    };
    if !meta.is_dir() {
        return refuse("not a directory".into());
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return refuse(format!(
            "owned by uid {}, not root or the daemon (uid {euid}): run 'chown {euid} {}'",
            meta.uid(),
            dir.display()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return refuse(format!(
            "writable by group or others (mode {mode:04o}): run 'chmod 700 {}'",
            dir.display()
        ));
    }
    Ok(())
}

/// Reads `path` without following a symlink in its last component.
fn read_nofollow(path: &Path) -> io::Result<String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let mut text = String::new();
    f.take(MAX_FILE_LEN + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("longer than {MAX_FILE_LEN} bytes"),
        ));
    }
    Ok(text)
}

/// Writes `bytes` to `path` through `dir/spa-replay.tmp` (exclusive, no
/// symlinks, mode 0600, synced) and a rename.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(TEMP_NAME);
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
    };
    let mut f = match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // A stale temporary (a crash mid-write) or something planted:
            // unlink removes the name itself, never what a symlink points to.
            std::fs::remove_file(&tmp)?;
            open()?
        }
        other => other?,
    };
    let written = f.write_all(bytes).and_then(|()| f.sync_data());
    drop(f);
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The running kernel's boot id (empty if unreadable: then the history is
/// unknown, see [`Loaded::Bad`]).
pub fn read_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The file's text.
pub fn render(boot_id: &str, record: &ReplayRecord) -> String {
    let mut out = format!("{MAGIC}\nboot {boot_id}\nfloor {}\n", record.floor);
    for s in &record.entries {
        let _ = write!(out, "{} ", s.entry.timestamp);
        for b in s.entry.nonce {
            let _ = write!(out, "{b:02x}");
        }
        let _ = writeln!(out, " {}", s.client.as_deref().unwrap_or("-"));
    }
    out
}

/// Parses the file's text: `Ok(None)` if it belongs to another boot.
pub fn parse(text: &str, boot_id: &str) -> Result<Option<ReplayRecord>, String> {
    let mut lines = text.lines();
    let v2 = match lines.next() {
        Some(MAGIC) => true,
        Some(MAGIC_V1) => false,
        _ => return Err(format!("first line is not '{MAGIC}'")),
    };
    let boot = lines
        .next()
        .and_then(|l| l.strip_prefix("boot "))
        .ok_or("second line is not 'boot ID'")?;
    if boot != boot_id || boot_id.is_empty() {
        return Ok(None);
    }
    let mut record = ReplayRecord::default();
    let mut first = 3;
    if v2 {
        record.floor = lines
            .next()
            .and_then(|l| l.strip_prefix("floor "))
            .and_then(|f| f.parse().ok())
            .ok_or("third line is not 'floor UNIX_SECONDS'")?;
        first = 4;
    }
    for (i, line) in lines.enumerate() {
        let bad = || {
            let want = if v2 {
                "TIMESTAMP ID CLIENT"
            } else {
                "TIMESTAMP ID"
            };
            format!("line {}: expected '{want}'", i + first)
        };
        let mut words = line.split(' ');
        let (Some(ts), Some(hex)) = (words.next(), words.next()) else {
            return Err(bad());
        };
        let client = if v2 {
            words.next().ok_or_else(bad)?
        } else {
            "-"
        };
        if words.next().is_some() || client.is_empty() {
            return Err(bad());
        }
        let timestamp = ts.parse::<u64>().map_err(|_| bad())?;
        if hex.len() != 2 * NONCE_LEN || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut nonce = [0u8; NONCE_LEN];
        for (j, n) in nonce.iter_mut().enumerate() {
            *n = u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).map_err(|_| bad())?;
        }
        record.entries.push(SavedEntry {
            client: (client != "-").then(|| client.to_string()),
            entry: ReplayEntry { nonce, timestamp },
        });
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests;
