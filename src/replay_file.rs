//! The SPA replay state file: accepted packets survive a daemon restart.
//!
//! An edge owned by the daemon: the engine's replay cache is plain data
//! ([`crate::engine::Engine::replay_entries`]); this module keeps a copy on
//! disk, `STATE_DIR/spa-replay` (default `/var/run/postern`, tmpfs on OpenWrt,
//! so no flash wear). The daemon records each accepted packet here *before*
//! it grants anything, written atomically (temporary file, then `rename`), and
//! loads the file at start.
//!
//! The file names the kernel's boot id (`/proc/sys/kernel/random/boot_id`):
//! entries of another boot are ignored (packets from before this boot are
//! refused by the engine's replay guard instead). Format, one item a line:
//!
//! ```text
//! postern-spa-replay 1
//! boot 5f1c…-…
//! 1800000000 0a1b…(48 hex digits: the packet's nonce)
//! ```
//!
//! [`render`] and [`parse`] are pure and tested as text.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::spa::seal::NONCE_LEN;
use crate::spa::ReplayEntry;

/// The file's name inside the state directory.
pub const FILE_NAME: &str = "spa-replay";
const MAGIC: &str = "postern-spa-replay 1";

/// What [`ReplayFile::load`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No file: nothing was accepted yet in this boot (or it was deleted).
    Missing,
    /// Entries of this boot.
    Restored(usize),
    /// A file of an earlier boot: ignored.
    OtherBoot,
    /// Unreadable or malformed: ignored, with the reason.
    Bad(String),
}

/// The on-disk copy of the replay cache.
#[derive(Debug)]
pub struct ReplayFile {
    path: PathBuf,
    boot_id: String,
    entries: Vec<ReplayEntry>,
}

impl ReplayFile {
    /// Reads `dir/spa-replay` (creating `dir` if needed) for the current boot.
    pub fn load(dir: &Path) -> io::Result<(ReplayFile, Loaded)> {
        std::fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let boot_id = read_boot_id();
        let path = dir.join(FILE_NAME);
        let (entries, loaded) = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), Loaded::Missing),
            Err(e) => (Vec::new(), Loaded::Bad(e.to_string())),
            Ok(text) => match parse(&text, &boot_id) {
                Ok(Some(v)) => {
                    let n = v.len();
                    (v, Loaded::Restored(n))
                }
                Ok(None) => (Vec::new(), Loaded::OtherBoot),
                Err(msg) => (Vec::new(), Loaded::Bad(msg)),
            },
        };
        Ok((
            ReplayFile {
                path,
                boot_id,
                entries,
            },
            loaded,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries held.
    pub fn entries(&self) -> &[ReplayEntry] {
        &self.entries
    }

    /// Replaces the held entries with `entries` and writes the file.
    pub fn save(&mut self, entries: &[ReplayEntry]) -> io::Result<()> {
        self.entries.clear();
        self.entries.extend_from_slice(entries);
        self.write()
    }

    /// Adds one accepted packet, drops entries expired at `now_unix`, writes the file.
    pub fn record(&mut self, entry: ReplayEntry, now_unix: u64, max_skew: u64) -> io::Result<()> {
        self.entries
            .retain(|e| e.timestamp.saturating_add(max_skew) >= now_unix);
        if !self.entries.iter().any(|e| e.nonce == entry.nonce) {
            self.entries.push(entry);
        }
        self.write()
    }

    fn write(&self) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let text = render(&self.boot_id, &self.entries);
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_data()?;
            std::fs::rename(&tmp, &self.path)
        })();
        result.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }
}

/// The running kernel's boot id (empty if unreadable: then no file ever matches
/// an earlier one by accident, because an empty id is never written by a kernel).
pub fn read_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The file's text.
pub fn render(boot_id: &str, entries: &[ReplayEntry]) -> String {
    let mut out = format!("{MAGIC}\nboot {boot_id}\n");
    for e in entries {
        let _ = write!(out, "{} ", e.timestamp);
        for b in e.nonce {
            let _ = write!(out, "{b:02x}");
        }
        out.push('\n');
    }
    out
}

/// Parses the file's text: `Ok(None)` if it belongs to another boot.
pub fn parse(text: &str, boot_id: &str) -> Result<Option<Vec<ReplayEntry>>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!("first line is not '{MAGIC}'"));
    }
    let boot = lines
        .next()
        .and_then(|l| l.strip_prefix("boot "))
        .ok_or("second line is not 'boot ID'")?;
    if boot != boot_id || boot_id.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let bad = || format!("line {}: expected 'TIMESTAMP NONCE'", i + 3);
        let (ts, hex) = line.split_once(' ').ok_or_else(bad)?;
        let timestamp = ts.parse::<u64>().map_err(|_| bad())?;
        if hex.len() != 2 * NONCE_LEN || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut nonce = [0u8; NONCE_LEN];
        for (j, n) in nonce.iter_mut().enumerate() {
            *n = u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).map_err(|_| bad())?;
        }
        out.push(ReplayEntry { nonce, timestamp });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: u8, timestamp: u64) -> ReplayEntry {
        ReplayEntry {
            nonce: [n; NONCE_LEN],
            timestamp,
        }
    }

    #[test]
    fn text_round_trip() {
        let text = render("b-1", &[e(0xab, 1_800_000_000), e(1, 7)]);
        assert_eq!(
            text,
            "postern-spa-replay 1\nboot b-1\n\
             1800000000 abababababababababababababababababababababababab\n\
             7 010101010101010101010101010101010101010101010101\n"
        );
        assert_eq!(
            parse(&text, "b-1"),
            Ok(Some(vec![e(0xab, 1_800_000_000), e(1, 7)]))
        );
        assert_eq!(parse(&text, "b-2"), Ok(None), "another boot");
        assert_eq!(parse(&text, ""), Ok(None));
    }

    #[test]
    fn malformed_text_is_an_error() {
        assert!(parse("", "b").is_err());
        assert!(parse("postern-spa-replay 1\n", "b").is_err());
        assert!(parse("postern-spa-replay 1\nboot b\n12 abc\n", "b").is_err());
        assert!(parse("postern-spa-replay 1\nboot b\nx 00\n", "b").is_err());
        let zz = format!("postern-spa-replay 1\nboot b\n1 {}\n", "zz".repeat(24));
        assert!(parse(&zz, "b").is_err());
    }

    #[test]
    fn file_survives_a_reload_and_drops_expired_entries() {
        let dir = std::env::temp_dir().join(format!("postern-replay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut f, loaded) = ReplayFile::load(&dir).unwrap();
        assert_eq!(loaded, Loaded::Missing);
        f.record(e(1, 1000), 1000, 120).unwrap();
        f.record(e(2, 1100), 1100, 120).unwrap();
        f.record(e(2, 1100), 1100, 120).unwrap();
        f.record(e(3, 1200), 1200, 120).unwrap(); // e(1) expired: 1000 + 120 < 1200
        let (g, loaded) = ReplayFile::load(&dir).unwrap();
        if read_boot_id().is_empty() {
            assert_eq!(loaded, Loaded::OtherBoot);
        } else {
            assert_eq!(loaded, Loaded::Restored(2));
            assert_eq!(g.entries(), &[e(2, 1100), e(3, 1200)]);
        }
        assert!(!dir.join("spa-replay.tmp").exists());
        std::fs::write(dir.join(FILE_NAME), "junk").unwrap();
        let (_, loaded) = ReplayFile::load(&dir).unwrap();
        assert!(matches!(loaded, Loaded::Bad(_)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
