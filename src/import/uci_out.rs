//! Writing UCI text: sections, options and lists with libuci's quoting.

use std::fmt::Write as _;

/// A UCI document being written.
#[derive(Default)]
pub(super) struct UciOut {
    text: String,
}

/// `'value'`, with `'` written as `'\''` (libuci's way).
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

impl UciOut {
    /// A `# comment` line.
    pub fn comment(&mut self, text: &str) {
        for l in text.lines() {
            let _ = writeln!(self.text, "# {l}");
        }
    }

    /// Starts `config KIND 'NAME'` (after a blank line unless first).
    pub fn section(&mut self, kind: &str, name: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let _ = writeln!(self.text, "config {kind} {}", quote(name));
    }

    /// `option NAME 'VALUE'`.
    pub fn option(&mut self, name: &str, value: &str) {
        let _ = writeln!(self.text, "\toption {name} {}", quote(value));
    }

    /// `list NAME 'VALUE'`, one line per value.
    pub fn list<'a>(&mut self, name: &str, values: impl IntoIterator<Item = &'a str>) {
        for v in values {
            let _ = writeln!(self.text, "\tlist {name} {}", quote(v));
        }
    }

    /// A commented-out option inside a section, with why.
    pub fn hint(&mut self, line: &str) {
        let _ = writeln!(self.text, "\t# {line}");
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_the_parser() {
        let mut o = UciOut::default();
        o.comment("made by a test");
        o.section("postern", "main");
        o.list("device", ["eth0", "it's"]);
        let text = o.finish();
        let s = crate::config::uci::parse("t", &text).unwrap();
        let d = s[0].get("device").unwrap();
        assert_eq!(
            d.value,
            crate::config::uci::Value::List(vec!["eth0".into(), "it's".into()])
        );
    }
}
