//! Migration: fwknopd and knockd configurations into a postern UCI config.
//!
//! Owns the conversions behind `postern import`: [`fwknopd()`] reads
//! fwknopd's `access.conf` (and optionally `fwknopd.conf`), or OpenWrt's
//! `/etc/config/fwknopd` UCI layout; [`knockd()`] reads `knockd.conf`. Each
//! is a pure function from text to a [`Converted`]: the postern config text
//! (for stdout) and one warning per option that has no postern equivalent
//! (for stderr), each naming `file:line`. No I/O here (`main.rs` reads the
//! files), and nothing is validated twice: the output is meant to pass
//! `postern check`, which the tests prove on sample files.

pub mod fwknopd;
pub mod knockd;
mod uci_out;

pub use fwknopd::fwknopd;
pub use knockd::knockd;

/// The result of a conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The postern UCI config.
    pub uci: String,
    /// Options with no equivalent, and other things the user must know, as `file:line: …`.
    pub warnings: Vec<String>,
}

/// Warnings with their file name.
struct Warnings<'f> {
    file: &'f str,
    list: Vec<String>,
}

impl<'f> Warnings<'f> {
    fn new(file: &'f str) -> Warnings<'f> {
        Warnings {
            file,
            list: Vec::new(),
        }
    }

    fn push(&mut self, line: usize, message: impl core::fmt::Display) {
        self.list.push(format!("{}:{line}: {message}", self.file));
    }
}

/// A section name made of `[A-Za-z0-9_]` from any text (`open-SSH` → `open_SSH`).
fn section_name(text: &str, fallback: &str) -> String {
    let n: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if n.trim_matches('_').is_empty() {
        fallback.to_string()
    } else {
        n
    }
}
