//! A reader for libuci's file syntax (`/etc/config/*`), written from its documented
//! behaviour; it produces untyped [`Section`]s whose every entry remembers its line.
//!
//! Supported, as libuci does:
//!
//! * `config TYPE ['NAME']`, `option NAME VALUE`, `list NAME VALUE`, also spelled
//!   `c`, `o`, `l`; `package NAME` (and `p NAME`) lines are accepted and ignored;
//! * `#` comments, on their own line or after a statement (an unquoted `#` anywhere
//!   starts one); blank lines; `;` between statements on one line;
//! * single quotes: literal, no escapes, may span lines (the newline is kept);
//! * double quotes: `\x` stands for `x`, may span lines (the newline is kept);
//! * outside quotes `\x` stands for `x`; a backslash at the end of a line joins the
//!   next line (inside or outside double quotes);
//! * adjacent pieces form one word: `'it'\''s'` is `it's`, `ab"cd"'ef'` is `abcdef`;
//! * anonymous sections (`config sequence` with no name, or an empty name);
//! * section types, section names and option names are `[A-Za-z0-9_]+` (libuci
//!   allows more characters in types; postern's types are all plain words).
//!
//! Merging, as libuci does when it loads a file:
//!
//! * a second `config TYPE 'NAME'` with the same name reopens the first section
//!   (a different type is an error, as in libuci's strict mode);
//! * a later `option x` replaces an earlier `option x` or `list x`;
//! * `list x` appends to a list; after an `option x` it turns that value into the
//!   first item of the list (libuci's `uci_add_list`).
//!
//! Deliberate differences, all on the side of reporting instead of guessing:
//!
//! * `option x` without any value is an error ("missing value"); libuci silently
//!   deletes `x`. An explicit empty value (`option x ''`) is kept as the empty
//!   string so the typed layer can refuse it instead of falling back to a default;
//! * every error is reported (libuci stops at the first), with its line;
//! * a backslash-newline between words is simply removed, as in a shell;
//! * a NUL byte or invalid UTF-8 refuses the whole file.
//!
//! Line numbers are 1-based; a statement whose words span lines is reported at the
//! line where it starts. Nothing here panics, whatever the input.

use super::ConfigError;

/// One `config` section: its type, optional name and entries in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section type (`config sequence …` → `sequence`).
    pub kind: String,
    /// The section name, `None` for an anonymous section.
    pub name: Option<String>,
    /// Line of the (first) `config` statement.
    pub line: usize,
    /// Options and lists, one entry per name (see the module docs for merging).
    pub options: Vec<Entry>,
}

/// One option or list of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The option name.
    pub name: String,
    /// Its value: one string (`option`) or the items of a `list`.
    pub value: Value,
    /// Line of the statement that set the value (of the first item for a list).
    pub line: usize,
    /// Line of each item: one line for [`Value::Single`], one per item for
    /// [`Value::List`] (same length as the list).
    pub item_lines: Vec<usize>,
}

/// The value of an [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Set by `option NAME VALUE`.
    Single(String),
    /// Built by `list NAME VALUE` statements, in order.
    List(Vec<String>),
}

impl Entry {
    /// The line of item `i` (the entry's line when out of range).
    pub fn item_line(&self, i: usize) -> usize {
        self.item_lines.get(i).copied().unwrap_or(self.line)
    }
}

impl Section {
    /// The entry called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.options.iter().find(|e| e.name == name)
    }
}

/// Whether `s` is a valid UCI name: `[A-Za-z0-9_]+`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses UCI bytes, refusing invalid UTF-8 with the line where it starts.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> Result<Vec<Section>, Vec<ConfigError>> {
    match core::str::from_utf8(bytes) {
        Ok(text) => parse(file, text),
        Err(e) => {
            let good = bytes.get(..e.valid_up_to()).unwrap_or_default();
            let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
            Err(vec![error(
                file,
                line,
                "invalid UTF-8 (is this a text file?)".to_string(),
            )])
        }
    }
}

/// Parses UCI text into sections; `file` is used in error messages only.
/// Returns every error found, not just the first.
pub fn parse(file: &str, text: &str) -> Result<Vec<Section>, Vec<ConfigError>> {
    if let Some(pos) = text.find('\0') {
        let line = 1 + text.get(..pos).unwrap_or("").matches('\n').count();
        let msg = "NUL byte in the file (is this a text file?)".to_string();
        return Err(vec![error(file, line, msg)]);
    }
    let mut builder = Builder::new(file);
    let mut lexer = Lexer::new(text);
    loop {
        match lexer.statement() {
            Ok(Some(stmt)) => builder.statement(&stmt),
            Ok(None) => break,
            Err((line, msg)) => {
                builder.err(line, msg);
                break;
            }
        }
    }
    builder.finish()
}

/// Writes sections as canonical UCI: `config TYPE 'NAME'`, tab-indented
/// `option NAME 'VALUE'` / `list NAME 'ITEM'`, single quotes (`'\''` inside),
/// a blank line between sections.
pub fn render(sections: &[Section]) -> String {
    let mut out = String::new();
    for (i, s) in sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("config ");
        out.push_str(&word(&s.kind));
        if let Some(name) = &s.name {
            out.push(' ');
            out.push_str(&quote(name));
        }
        out.push('\n');
        for e in &s.options {
            render_entry(&mut out, e);
        }
    }
    out
}

fn render_entry(out: &mut String, e: &Entry) {
    let mut line = |kw: &str, v: &str| {
        out.push('\t');
        out.push_str(kw);
        out.push(' ');
        out.push_str(&word(&e.name));
        out.push(' ');
        out.push_str(&quote(v));
        out.push('\n');
    };
    match &e.value {
        Value::Single(v) => line("option", v),
        Value::List(items) => items.iter().for_each(|v| line("list", v)),
    }
}

/// `s` in single quotes, embedded quotes written `'\''`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `s` bare when it is a plain name, quoted otherwise.
fn word(s: &str) -> String {
    if is_name(s) {
        s.to_string()
    } else {
        quote(s)
    }
}

fn error(file: &str, line: usize, message: String) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line,
        message,
    }
}

// ---------------------------------------------------------------------------
// Lexer: text → statements (lists of words).

/// One word of a statement after quote and escape processing.
#[derive(Debug)]
struct Word {
    text: String,
    /// No quotes or backslashes were involved.
    plain: bool,
}

/// One statement: its words and the line of its first word.
#[derive(Debug)]
struct Statement {
    line: usize,
    words: Vec<Word>,
}

/// An error position and message.
type LexError = (usize, String);

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

fn is_blank(c: char) -> bool {
    (c != '\n' && c.is_ascii_whitespace()) || c == '\x0b'
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Lexer<'a> {
        Lexer {
            text,
            pos: 0,
            line: 1,
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// The next statement with at least one word; `None` at the end of the text.
    fn statement(&mut self) -> Result<Option<Statement>, LexError> {
        loop {
            if self.peek().is_none() {
                return Ok(None);
            }
            let stmt = self.words()?;
            if !stmt.words.is_empty() {
                return Ok(Some(stmt));
            }
        }
    }

    /// Words up to and including the end of the statement (newline, `;`, end).
    fn words(&mut self) -> Result<Statement, LexError> {
        let mut stmt = Statement {
            line: self.line,
            words: Vec::new(),
        };
        loop {
            let line = self.line;
            match self.peek() {
                None => break,
                Some('\n') | Some(';') => {
                    self.bump();
                    break;
                }
                Some('#') => self.skip_comment(),
                Some(c) if is_blank(c) => {
                    self.bump();
                }
                Some(_) => {
                    if let Some(w) = self.word()? {
                        if stmt.words.is_empty() {
                            stmt.line = line;
                        }
                        stmt.words.push(w);
                    }
                }
            }
        }
        Ok(stmt)
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    /// One word; `None` when it was only a line continuation.
    fn word(&mut self) -> Result<Option<Word>, LexError> {
        let mut w = Word {
            text: String::new(),
            plain: true,
        };
        let mut any = false;
        while let Some(c) = self.peek() {
            match c {
                '\n' | ';' | '#' => break,
                c if is_blank(c) => break,
                '\'' => {
                    self.single_quoted(&mut w.text)?;
                    (any, w.plain) = (true, false);
                }
                '"' => {
                    self.double_quoted(&mut w.text)?;
                    (any, w.plain) = (true, false);
                }
                '\\' => {
                    self.bump();
                    any |= self.escape(&mut w.text);
                    w.plain = false;
                }
                c => {
                    self.bump();
                    w.text.push(c);
                    any = true;
                }
            }
        }
        Ok(any.then_some(w))
    }

    /// After a backslash: joins the next line, or adds the next character.
    /// Returns whether a character was added.
    fn escape(&mut self, out: &mut String) -> bool {
        if self.rest().starts_with("\r\n") {
            self.bump();
        }
        match self.bump() {
            None | Some('\n') => false,
            Some(c) => {
                out.push(c);
                true
            }
        }
    }

    fn single_quoted(&mut self, out: &mut String) -> Result<(), LexError> {
        let opened = self.line;
        self.bump();
        loop {
            match self.bump() {
                Some('\'') => return Ok(()),
                Some(c) => out.push(c),
                None => return Err(unterminated("single", opened)),
            }
        }
    }

    fn double_quoted(&mut self, out: &mut String) -> Result<(), LexError> {
        let opened = self.line;
        self.bump();
        loop {
            match self.bump() {
                Some('"') => return Ok(()),
                Some('\\') => {
                    self.escape(out);
                }
                Some(c) => out.push(c),
                None => return Err(unterminated("double", opened)),
            }
        }
    }
}

fn unterminated(kind: &str, opened: usize) -> LexError {
    (
        opened,
        format!("unterminated {kind} quote (opened on line {opened})"),
    )
}

// ---------------------------------------------------------------------------
// Builder: statements → sections.

struct Builder<'f> {
    file: &'f str,
    sections: Vec<Section>,
    /// Index of the section options go to.
    current: Option<usize>,
    /// Named sections by name, sorted by name (a sorted Vec: no hashing
    /// machinery in the router binary).
    named: Vec<(String, usize)>,
    errors: Vec<ConfigError>,
}

impl<'f> Builder<'f> {
    fn new(file: &'f str) -> Builder<'f> {
        Builder {
            file,
            sections: Vec::new(),
            current: None,
            named: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn err(&mut self, line: usize, message: String) {
        self.errors.push(error(self.file, line, message));
    }

    fn finish(self) -> Result<Vec<Section>, Vec<ConfigError>> {
        if self.errors.is_empty() {
            Ok(self.sections)
        } else {
            Err(self.errors)
        }
    }

    fn statement(&mut self, stmt: &Statement) {
        let Some((cmd, args)) = stmt.words.split_first() else {
            return;
        };
        let keyword = if cmd.plain { cmd.text.as_str() } else { "" };
        match keyword {
            "config" | "c" => self.config(stmt.line, args),
            "option" | "o" => self.option(stmt.line, "option", args),
            "list" | "l" => self.option(stmt.line, "list", args),
            "package" | "p" => self.package(stmt.line, args),
            _ => self.err(
                stmt.line,
                format!(
                    "unknown command '{}' (expected config, option, list or package)",
                    cmd.text
                ),
            ),
        }
    }

    fn package(&mut self, line: usize, args: &[Word]) {
        match args {
            [] => self.err(line, "missing name after 'package'".to_string()),
            [_] => {}
            _ => self.err(line, "too many arguments for 'package'".to_string()),
        }
    }

    fn config(&mut self, line: usize, args: &[Word]) {
        let Some(kind) = args.first() else {
            self.err(line, "missing section type after 'config'".to_string());
            self.current = None;
            return;
        };
        if !is_name(&kind.text) {
            let msg = format!(
                "invalid section type '{}': use letters, digits and _",
                kind.text
            );
            self.err(line, msg);
        }
        if args.len() > 2 {
            let msg = "too many arguments: expected config TYPE ['NAME']".to_string();
            self.err(line, msg);
        }
        let name = args
            .get(1)
            .map(|w| w.text.as_str())
            .filter(|n| !n.is_empty());
        match name {
            Some(name) => self.open_named(line, &kind.text, name),
            None => self.open(line, &kind.text, None),
        }
    }

    fn open(&mut self, line: usize, kind: &str, name: Option<&str>) {
        self.sections.push(Section {
            kind: kind.to_string(),
            name: name.map(str::to_string),
            line,
            options: Vec::new(),
        });
        self.current = Some(self.sections.len() - 1);
    }

    fn open_named(&mut self, line: usize, kind: &str, name: &str) {
        if !is_name(name) {
            let msg = format!("invalid section name '{name}': use letters, digits and _");
            self.err(line, msg);
        }
        let idx = match self.named.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(found) => self.named[found].1,
            Err(at) => {
                self.open(line, kind, Some(name));
                self.named
                    .insert(at, (name.to_string(), self.sections.len() - 1));
                return;
            }
        };
        self.current = Some(idx);
        let Some(prev) = self.sections.get(idx) else {
            return;
        };
        if prev.kind != kind {
            let msg = format!(
                "section '{name}' of type '{kind}' reuses the name of the '{}' section on line {}",
                prev.kind, prev.line
            );
            self.err(line, msg);
        }
    }

    fn option(&mut self, line: usize, kw: &str, args: &[Word]) {
        let Some(name) = args.first() else {
            self.err(line, format!("missing name after '{kw}'"));
            return;
        };
        let Some(idx) = self.current else {
            let msg = format!(
                "{kw} '{}' outside of a section (add a 'config TYPE NAME' line above it)",
                name.text
            );
            self.err(line, msg);
            return;
        };
        if !is_name(&name.text) {
            let msg = format!(
                "invalid {kw} name '{}': use letters, digits and _",
                name.text
            );
            self.err(line, msg);
            return;
        }
        let value = match args {
            [_] => {
                let msg = format!("missing value for {kw} '{}'", name.text);
                return self.err(line, msg);
            }
            [_, v] => v.text.clone(),
            _ => {
                let msg = format!(
                    "too many values for {kw} '{0}': quote a value that contains spaces, e.g. {kw} {0} 'a b'",
                    name.text
                );
                return self.err(line, msg);
            }
        };
        if let Some(section) = self.sections.get_mut(idx) {
            if kw == "list" {
                add_list(section, &name.text, value, line);
            } else {
                set_option(section, &name.text, value, line);
            }
        }
    }
}

/// `option`: replaces any earlier option or list of that name (moved to the end).
fn set_option(section: &mut Section, name: &str, value: String, line: usize) {
    section.options.retain(|e| e.name != name);
    section.options.push(Entry {
        name: name.to_string(),
        value: Value::Single(value),
        line,
        item_lines: vec![line],
    });
}

/// `list`: appends an item; an earlier `option` becomes the list's first item and,
/// as in libuci, the new list moves to the end of the section.
fn add_list(section: &mut Section, name: &str, value: String, line: usize) {
    let pos = section.options.iter().position(|e| e.name == name);
    if let Some(e) = pos.and_then(|p| section.options.get_mut(p)) {
        if let Value::List(items) = &mut e.value {
            items.push(value);
            e.item_lines.push(line);
            return;
        }
    }
    let (items, item_lines) = match pos.map(|p| section.options.remove(p)) {
        Some(Entry {
            value: Value::Single(old),
            line: old_line,
            ..
        }) => (vec![old, value], vec![old_line, line]),
        _ => (vec![value], vec![line]),
    };
    section.options.push(Entry {
        name: name.to_string(),
        value: Value::List(items),
        line: item_lines.first().copied().unwrap_or(line),
        item_lines,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn ok(text: &str) -> Vec<Section> {
        match parse("t", text) {
            Ok(s) => s,
            Err(e) => panic!("unexpected errors: {e:?}"),
        }
    }

    fn errs(text: &str) -> Vec<(usize, String)> {
        match parse("t", text) {
            Ok(s) => panic!("expected errors, got {s:?}"),
            Err(e) => e.into_iter().map(|e| (e.line, e.message)).collect(),
        }
    }

    /// Sections without line numbers: (type, name, [(option, value)]).
    type Shape = Vec<(String, Option<String>, Vec<(String, Value)>)>;

    fn shape(sections: &[Section]) -> Shape {
        sections
            .iter()
            .map(|s| {
                let opts = s
                    .options
                    .iter()
                    .map(|e| (e.name.clone(), e.value.clone()))
                    .collect();
                (s.kind.clone(), s.name.clone(), opts)
            })
            .collect()
    }

    fn single(s: &Section, name: &str) -> String {
        match s.get(name).map(|e| &e.value) {
            Some(Value::Single(v)) => v.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    fn list(s: &Section, name: &str) -> Vec<String> {
        match s.get(name).map(|e| &e.value) {
            Some(Value::List(v)) => v.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    /// One section, one option `v`: the parsed value of `text` written after `option v `.
    fn value_of(text: &str) -> String {
        let s = ok(&format!("config t\n\toption v {text}\n"));
        single(&s[0], "v")
    }

    const POSTERN: &str = "\
config postern 'main'
\toption enabled '1'
\tlist   interface 'wan'        # UCI networks
\toption backend 'auto'         # auto | fw4 | fw3 | nft | dry-run
\toption spa_port '62201'
\toption max_skew '120'         # seconds
\toption log_level 'info'

config sequence 'ssh'
\tlist   knock 'tcp:7000'
\tlist   knock 'udp:8000'
\tlist   knock 'tcp:9000'
\toption timeout '10'
\toption action 'open'
\tlist   open 'tcp:22'
\toption duration '30'

config client 'laptop'
\toption key 'base64…'
\tlist   allow 'tcp:22'
\toption max_duration '3600'
";

    const FIREWALL: &str = r#"
config defaults
	option syn_flood	1
	option input		REJECT
	option output		ACCEPT
	option forward		REJECT
# Uncomment this line to disable ipv6 rules
#	option disable_ipv6	1

config zone
	option name		lan
	list   network		'lan'
	option input		ACCEPT
	option output		ACCEPT
	option forward		ACCEPT

config zone
	option name		wan
	list   network		'wan'
	list   network		'wan6'
	option input		REJECT
	option output		ACCEPT
	option forward		REJECT
	option masq		1
	option mtu_fix		1

config forwarding
	option src		lan
	option dest		wan

# We need to accept udp packets on port 68,
# see https://dev.openwrt.org/ticket/4108
config rule
	option name		Allow-DHCP-Renew
	option src		wan
	option proto		udp
	option dest_port	68
	option target		ACCEPT
	option family		ipv4

config rule
	option name		Allow-ICMPv6-Input
	option src		wan
	option proto	icmp
	list icmp_type		echo-request
	list icmp_type		echo-reply
	list icmp_type		destination-unreachable
	option limit		1000/sec
	option family		ipv6
	option target		ACCEPT

config redirect 'web'
	option name 'It'\''s "web"'
	option src wan ; option src_dport 8080
	option dest_ip "192.168.1.10"
	option dest_port '80'

config include
	option path /etc/firewall.user
"#;

    #[test]
    fn parses_the_design_sample() {
        let s = ok(POSTERN);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].kind, "postern");
        assert_eq!(s[0].name.as_deref(), Some("main"));
        assert_eq!(s[0].line, 1);
        assert_eq!(list(&s[0], "interface"), ["wan"]);
        assert_eq!(single(&s[0], "backend"), "auto");
        assert_eq!(s[0].get("backend").map(|e| e.line), Some(4));
        assert_eq!(s[1].line, 9);
        assert_eq!(list(&s[1], "knock"), ["tcp:7000", "udp:8000", "tcp:9000"]);
        assert_eq!(
            s[1].get("knock").map(|e| e.item_lines.clone()),
            Some(vec![10, 11, 12])
        );
        assert_eq!(single(&s[2], "key"), "base64…");
    }

    #[test]
    fn parses_a_firewall_file() {
        let s = ok(FIREWALL);
        let kinds: Vec<&str> = s.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "defaults",
                "zone",
                "zone",
                "forwarding",
                "rule",
                "rule",
                "redirect",
                "include"
            ]
        );
        assert_eq!(s[0].options.len(), 4, "commented option is not read");
        assert_eq!(single(&s[0], "input"), "REJECT");
        assert_eq!(list(&s[2], "network"), ["wan", "wan6"]);
        assert_eq!(
            list(&s[5], "icmp_type"),
            ["echo-request", "echo-reply", "destination-unreachable"]
        );
        assert_eq!(s[6].name.as_deref(), Some("web"));
        assert_eq!(single(&s[6], "name"), "It's \"web\"");
        assert_eq!(single(&s[6], "src_dport"), "8080");
        assert_eq!(single(&s[6], "dest_ip"), "192.168.1.10");
        assert_eq!(single(&s[7], "path"), "/etc/firewall.user");
        assert!(s[1].name.is_none());
    }

    #[test]
    fn short_keywords_and_package() {
        let s = ok("package postern\np other\nc sequence x\n o timeout 5\n l knock tcp:1\n");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name.as_deref(), Some("x"));
        assert_eq!(single(&s[0], "timeout"), "5");
        assert_eq!(list(&s[0], "knock"), ["tcp:1"]);
    }

    #[test]
    fn comments_and_blank_lines() {
        let text = "# head\n\n   # indented\nconfig t 'n' # trailing\n\toption a 'b#c' # x\n\toption d e#f\n\toption g \"h#i\"#j\n#option z 1\n";
        let s = ok(text);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].line, 4);
        assert_eq!(single(&s[0], "a"), "b#c");
        assert_eq!(single(&s[0], "d"), "e");
        assert_eq!(single(&s[0], "g"), "h#i");
        assert!(s[0].get("z").is_none());
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(value_of(r"'a\b'"), r"a\b");
        assert_eq!(value_of(r#"'say "hi"'"#), r#"say "hi""#);
        assert_eq!(value_of("'a b\tc'"), "a b\tc");
        assert_eq!(value_of("'; # x'"), "; # x");
        assert_eq!(value_of("''"), "");
    }

    #[test]
    fn double_quotes_take_escapes() {
        assert_eq!(value_of(r#""a\"b\\c""#), r#"a"b\c"#);
        assert_eq!(value_of(r#""a\nb""#), "anb", "\\n is just n, as in libuci");
        assert_eq!(value_of(r#""it's""#), "it's");
        assert_eq!(value_of("\"a;b#c\""), "a;b#c");
    }

    #[test]
    fn backslashes_outside_quotes() {
        assert_eq!(value_of(r"a\ b"), "a b");
        assert_eq!(value_of(r"a\'b"), "a'b");
        assert_eq!(value_of(r"a\;b\#c"), "a;b#c");
        assert_eq!(value_of(r"a\\b"), r"a\b");
    }

    #[test]
    fn adjacent_pieces_concatenate() {
        assert_eq!(value_of(r"'it'\''s'"), "it's");
        assert_eq!(value_of(r#"ab"cd"'ef'"#), "abcdef");
        assert_eq!(value_of(r#"'a'"b"c"#), "abc");
    }

    #[test]
    fn quotes_span_lines_and_keep_newlines() {
        let s = ok("config t\n\toption a 'one\ntwo'\n\toption b \"three\nfour\"\n\toption c x\n");
        assert_eq!(single(&s[0], "a"), "one\ntwo");
        assert_eq!(single(&s[0], "b"), "three\nfour");
        assert_eq!(s[0].get("a").map(|e| e.line), Some(2));
        assert_eq!(s[0].get("b").map(|e| e.line), Some(4));
        assert_eq!(s[0].get("c").map(|e| e.line), Some(6));
    }

    #[test]
    fn backslash_newline_continues() {
        let s = ok("config t\n\toption a \\\n\t'v'\n\toption b ab\\\ncd\n\toption c \"x\\\ny\"\n\toption d z\n");
        assert_eq!(single(&s[0], "a"), "v");
        assert_eq!(s[0].get("a").map(|e| e.line), Some(2));
        assert_eq!(single(&s[0], "b"), "abcd");
        assert_eq!(single(&s[0], "c"), "xy");
        assert_eq!(s[0].get("d").map(|e| e.line), Some(8));
    }

    #[test]
    fn crlf_line_endings() {
        let s = ok("config t 'n'\r\n\toption a 'b'\r\n\toption c d\\\r\ne\r\n");
        assert_eq!(s[0].name.as_deref(), Some("n"));
        assert_eq!(single(&s[0], "a"), "b");
        assert_eq!(single(&s[0], "c"), "de");
    }

    #[test]
    fn semicolons_separate_statements() {
        let s = ok("config t 'x'; option a 1;option b '2' ; list c 3;;\nconfig u;o d 4");
        assert_eq!(s.len(), 2);
        assert_eq!(single(&s[0], "a"), "1");
        assert_eq!(single(&s[0], "b"), "2");
        assert_eq!(list(&s[0], "c"), ["3"]);
        assert_eq!(s[1].kind, "u");
        assert_eq!(s[1].line, 2);
        assert_eq!(single(&s[1], "d"), "4");
    }

    #[test]
    fn anonymous_sections() {
        let s = ok("config sequence\nconfig sequence ''\nconfig sequence \"\"\n");
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|s| s.name.is_none()));
    }

    #[test]
    fn option_and_list_merging_like_libuci() {
        let s = ok("config t\n\
                    \toption a 1\n\toption a 2\n\
                    \tlist b x\n\toption b y\n\
                    \toption c p\n\tlist c q\n\tlist c r\n\
                    \tlist d 1\n\toption e 0\n\tlist d 2\n");
        assert_eq!(single(&s[0], "a"), "2");
        assert_eq!(s[0].get("a").map(|e| e.line), Some(3));
        assert_eq!(single(&s[0], "b"), "y");
        assert_eq!(list(&s[0], "c"), ["p", "q", "r"]);
        assert_eq!(
            s[0].get("c").map(|e| e.item_lines.clone()),
            Some(vec![6, 7, 8])
        );
        assert_eq!(list(&s[0], "d"), ["1", "2"]);
        assert_eq!(s[0].get("d").map(|e| e.item_line(1)), Some(11));
        let order: Vec<&str> = s[0].options.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn named_sections_reopen() {
        let s = ok("config t 'x'\n\toption a 1\nconfig t 'y'\nconfig t 'x'\n\toption b 2\n");
        assert_eq!(s.len(), 2);
        assert_eq!(single(&s[0], "a"), "1");
        assert_eq!(single(&s[0], "b"), "2");
        assert_eq!(s[0].line, 1);
        // Names opened out of order and reopened in another order.
        let s = ok("config t 'm'\nconfig t 'z'\nconfig t 'a'\nconfig t 'z'\n\toption q 1\nconfig t 'a'\n\toption r 2\nconfig t 'm'\n\toption s 3\n");
        assert_eq!(s.len(), 3);
        assert_eq!(single(&s[0], "s"), "3");
        assert_eq!(single(&s[1], "q"), "1");
        assert_eq!(single(&s[2], "r"), "2");
        let e = errs("config t 'x'\nconfig u 'x'\n");
        assert_eq!(
            e,
            [(
                2,
                "section 'x' of type 'u' reuses the name of the 't' section on line 1".to_string()
            )]
        );
    }

    #[test]
    fn error_messages_and_lines() {
        let cases: &[(&str, usize, &str)] = &[
            ("option port 22\n", 1, "option 'port' outside of a section (add a 'config TYPE NAME' line above it)"),
            ("\n\nconfig t\n\toption a 'x\n\n", 4, "unterminated single quote (opened on line 4)"),
            ("config t\n\toption a \"x\n", 2, "unterminated double quote (opened on line 2)"),
            ("config t 'a-b'\n", 1, "invalid section name 'a-b': use letters, digits and _"),
            ("config a.b\n", 1, "invalid section type 'a.b': use letters, digits and _"),
            ("config t\n\toption a-b 1\n", 2, "invalid option name 'a-b': use letters, digits and _"),
            ("config t\n\toption port\n", 2, "missing value for option 'port'"),
            ("config t\n\tlist knock # none\n", 2, "missing value for list 'knock'"),
            ("config t\n\toption\n", 2, "missing name after 'option'"),
            ("config\n", 1, "missing section type after 'config'"),
            ("config t x y\n", 1, "too many arguments: expected config TYPE ['NAME']"),
            ("config t\n\toption a b c\n", 2, "too many values for option 'a': quote a value that contains spaces, e.g. option a 'a b'"),
            ("config t\n\topt a b\n", 2, "unknown command 'opt' (expected config, option, list or package)"),
            ("'config' t\n", 1, "unknown command 'config' (expected config, option, list or package)"),
            ("package\n", 1, "missing name after 'package'"),
            ("config t\n\toption a\tb\0\n", 2, "NUL byte in the file (is this a text file?)"),
        ];
        for (text, line, msg) in cases {
            assert_eq!(errs(text), [(*line, msg.to_string())], "{text:?}");
        }
    }

    #[test]
    fn collects_all_errors() {
        let text = "option a 1\nconfig t 'x-y'\n\toption b\n\toption c 1\n\tbogus\nconfig u\n\tlist d 'x\n";
        let lines: Vec<usize> = errs(text).into_iter().map(|(l, _)| l).collect();
        assert_eq!(lines, [1, 2, 3, 5, 7]);
    }

    #[test]
    fn statement_line_is_where_it_starts() {
        let e = errs("config t\n\toption a 'multi\nline' extra\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, 2);
    }

    #[test]
    fn refuses_invalid_utf8() {
        let bytes = b"config t\n\toption a 'ok'\n\toption b '\xff'\n";
        let e = match parse_bytes("f", bytes) {
            Err(e) => e,
            Ok(s) => panic!("{s:?}"),
        };
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 3);
        assert_eq!(
            e[0].to_string(),
            "f:3: invalid UTF-8 (is this a text file?)"
        );
        assert!(parse_bytes("f", b"config t\n").is_ok());
    }

    #[test]
    fn renders_canonical_uci() {
        let s = ok("c t x; o a \"it's\"; l b 1; l b 2\nconfig u\n o c ''\n");
        assert_eq!(
            render(&s),
            "config t 'x'\n\toption a 'it'\\''s'\n\tlist b '1'\n\tlist b '2'\n\nconfig u\n\toption c ''\n"
        );
    }

    #[test]
    fn round_trips() {
        let samples = [
            POSTERN,
            FIREWALL,
            "config t 'n'\n\toption a 'multi\nline'\n\toption b \"q'q\\\"q\"\n\toption c '\\\\'\n",
            "config t\n\toption a 'tab\there'\n\toption b ' lead'\n\tlist c '#'\n\tlist c ';'\n",
        ];
        for text in samples {
            let first = ok(text);
            let again = ok(&render(&first));
            assert_eq!(shape(&again), shape(&first), "{text}");
            assert_eq!(render(&again), render(&first));
        }
    }

    const PIECES: &[&str] = &[
        "config",
        "option",
        "list",
        "package",
        "c",
        "o",
        "l",
        "p",
        " ",
        "\t",
        "\n",
        "\r\n",
        "'",
        "\"",
        "\\",
        ";",
        "#",
        "a",
        "b_1",
        "-",
        "é",
        "€",
        "tcp:22",
        "\u{1F600}",
        "''",
        "\\\n",
        "\0",
        "\x0b",
        "sequence",
        "knock",
        "=",
        "@",
    ];

    /// Parses `text`; when it is valid, checks the round trip. Returns whether it was.
    fn check(text: &str) -> bool {
        let Ok(sections) = parse("fuzz", text) else {
            return false;
        };
        {
            let again = parse("fuzz", &render(&sections));
            match again {
                Ok(again) => assert_eq!(shape(&again), shape(&sections), "{text:?}"),
                Err(e) => panic!("render of {text:?} does not parse: {e:?}"),
            }
            let _ = crate::config::typed::from_sections("fuzz", &sections);
        }
        true
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..4000 {
            let n = rng.below(40);
            let text: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
            check(&text);
            let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let _ = parse_bytes("fuzz", &bytes);
        }
    }

    #[test]
    fn never_panics_on_mutated_files() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let mut valid = 0;
        for base in [POSTERN, FIREWALL] {
            let chars: Vec<char> = base.chars().collect();
            for _ in 0..1500 {
                let mut c = chars.clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(c.len());
                    let piece: Vec<char> = PIECES[rng.below(PIECES.len())].chars().collect();
                    match rng.below(3) {
                        0 => {
                            c.remove(at.min(c.len().saturating_sub(1)));
                        }
                        1 => c.splice(at..at, piece).for_each(drop),
                        _ => c.splice(at..(at + 1).min(c.len()), piece).for_each(drop),
                    }
                }
                let text: String = c.into_iter().collect();
                valid += usize::from(check(&text));
                let mut bytes = text.into_bytes();
                let at = rng.below(bytes.len());
                if let Some(b) = bytes.get_mut(at) {
                    *b = rng.next() as u8;
                }
                let _ = parse_bytes("fuzz", &bytes);
            }
        }
        assert!(valid > 300, "only {valid} mutated files parsed");
    }
}
