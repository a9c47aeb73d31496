//! How `postern status` reads in a terminal: human times ("2m 05s"),
//! tables with aligned columns, and `--watch` (the view redrawn every
//! second). Pure formatting plus the watch loop, which only queries the
//! control socket and prints.

use core::fmt::Write as _;
use core::time::Duration;
use std::io::{self, Write as _};
use std::path::Path;

use crate::control::{self, Request};

/// `45s`, `2m 05s`, `1h 02m 05s`, `3d 04h 05m`.
pub fn human(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}h {m:02}m")
    } else if secs >= 3600 {
        format!("{h}h {m:02}m {s:02}s")
    } else if secs >= 60 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Rows of cells printed with every column as wide as its widest cell
/// (the last column unpadded), each line indented by two spaces. No
/// heading row: the line above the table names what it lists.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    /// A table of columns described by `align`: `>` right-aligned, `<` left.
    pub fn new(align: &str) -> Table {
        Table {
            right: align.chars().map(|c| c == '>').collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether it has no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Appends the table to `out` (nothing when it has no row).
    pub fn write(&self, out: &mut String) {
        if self.is_empty() {
            return;
        }
        let columns = self.right.len();
        let width = |c: usize| {
            self.rows
                .iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        for row in &self.rows {
            let mut line = String::from(" ");
            for (c, w) in widths.iter().enumerate() {
                let cell = row.get(c).map_or("", String::as_str);
                line.push(' ');
                if self.right[c] {
                    let _ = write!(line, "{cell:>w$}");
                } else if c + 1 < columns {
                    let _ = write!(line, "{cell:<w$}");
                } else {
                    line.push_str(cell);
                }
                if c + 1 < columns {
                    line.push(' ');
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// Redraws the daemon's status every `every` until interrupted (or until
/// the daemon cannot be reached: that ends it with the error).
pub fn watch(socket: &Path, every: Duration, show: impl Fn(&str) -> String) -> io::Result<()> {
    let mut out = io::stdout();
    loop {
        let answer = control::query(socket, Request::Text)?;
        // Home, clear the screen, then the view: no flicker of a scroll.
        write!(out, "\x1b[H\x1b[2J{}", show(&answer))?;
        writeln!(out, "(every {} s; Ctrl-C ends)", every.as_secs().max(1))?;
        out.flush()?;
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_times() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(45), "45s");
        assert_eq!(human(125), "2m 05s");
        assert_eq!(human(3600), "1h 00m 00s");
        assert_eq!(human(3725), "1h 02m 05s");
        assert_eq!(human(86_400 * 3 + 4 * 3600 + 5 * 60 + 9), "3d 04h 05m");
    }

    #[test]
    fn columns_align() {
        let mut t = Table::new("<<><");
        t.row(vec![
            "192.0.2.7".into(),
            "tcp:22".into(),
            "28s".into(),
            "ssh".into(),
        ]);
        t.row(vec![
            "2001:db8::1".into(),
            "udp:53".into(),
            "2m 05s".into(),
            "laptop".into(),
        ]);
        let mut out = String::new();
        t.write(&mut out);
        assert_eq!(
            out,
            "  192.0.2.7    tcp:22     28s  ssh\n  \
             2001:db8::1  udp:53  2m 05s  laptop\n"
        );
        let mut none = String::new();
        Table::new("<").write(&mut none);
        assert!(none.is_empty());
    }
}
