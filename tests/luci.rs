//! The LuCI page against the daemon: its per-option rules
//! (openwrt/luci-app-postern/.../postern/rules.js, run under node) judge
//! every option of `postern schema` exactly as `postern check` does, on
//! probe values generated here; the placeholders it shows are the daemon's
//! defaults (writing one changes nothing); and the rest of the page's node
//! tests (tests/luci/*.test.js: the view with stubbed LuCI modules, the QR
//! encoder) pass.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const KEY2: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn node_or_skip(test: &str) -> bool {
    if Command::new("node").arg("--version").output().is_ok() {
        return true;
    }
    assert!(!in_ci(), "{test}: node must be installed in CI");
    eprintln!("\n*** SKIPPED {test}: 'node' not installed ***\n");
    false
}

fn json_str(s: &str) -> String {
    postern::status::quote(s)
}

fn b64(len: usize, byte: u8) -> String {
    postern::base64::encode(&vec![byte; len])
}

/// Values every option is probed with (as one value, or a one-item list).
fn probes() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "0",
        "1",
        "2",
        "5",
        "9",
        "10",
        "15",
        "16",
        "31",
        "32",
        "33",
        "64",
        "100",
        "127",
        "128",
        "129",
        "255",
        "256",
        "300",
        "1023",
        "1024",
        "3600",
        "3601",
        "40000",
        "65024",
        "65025",
        "65535",
        "65536",
        "86400",
        "86401",
        "1000000",
        "1000001",
        "99999999999999999999",
        "-1",
        "+1",
        "1.5",
        " 1",
        "01",
        "0x10",
        "abc",
        "yes",
        "No",
        "TRUE",
        "enabled",
        "disabled",
        "tcp",
        "udp",
        "TCP",
        "auto",
        "fw4",
        "fw3",
        "nft",
        "dry-run",
        "Auto",
        "warn",
        "trace",
        "open",
        "close",
        "sha1",
        "sha512",
        "md5",
        "tcp:22",
        "udp:53",
        "TCP:22",
        "tcp:0",
        "tcp:65536",
        "tcp:022",
        "sctp:22",
        "tcp22",
        "tcp:",
        "tcp:143",
        "tcp:99999",
        "192.0.2.1",
        "192.0.2.0/24",
        "192.0.2.1/24",
        "192.0.2.0/33",
        "192.0.2.0/",
        "01.2.3.4",
        "1.2.3",
        "0.0.0.0",
        "127.0.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "192.168.1.10",
        "2001:db8::1",
        "2001:db8::/64",
        "2001:db8::1/64",
        "::",
        "::1",
        "ff02::1",
        "::ffff:192.0.2.1",
        "2001:db8::/129",
        "2001:db8:::1",
        "fe80::1%eth0",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7:8:9",
        "1::2::3",
        "/var/run/x",
        "relative/path",
        "/bin/true",
        "/",
        "wan",
        "lan_2",
        "eth0.1",
        "br-lan",
        "a/b",
        "a:b",
        "abcdefghijklmnop",
        "postern",
        "-root",
        "user.name",
        "_x",
        "wake nas",
        "tilde~",
        "x y",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("u".repeat(32));
    v.push("u".repeat(33));
    v.push("p".repeat(160));
    v.push("p".repeat(161));
    v.push(format!("/{}", "a".repeat(1100)));
    for (len, byte) in [
        (32, 7),
        (32, 9),
        (31, 7),
        (33, 7),
        (16, 5),
        (1, 5),
        (128, 6),
        (129, 6),
    ] {
        v.push(b64(len, byte));
    }
    v.push(KEY.trim_end_matches('=').to_string());
    v.push(KEY.replace("Bwc=", "Bwd="));
    v.push(format!("{KEY} "));
    v
}

/// List-valued probes beyond single items.
fn list_probes(option: &str) -> Vec<Vec<String>> {
    let l = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut v = vec![
        l(&["tcp:7000", "udp:8000", "tcp:7000"]),
        l(&["tcp:7000", "tcp:7000"]),
        l(&["tcp:7000", "TCP:7000"]),
        l(&["tcp:22", "tcp:22"]),
        l(&["/bin/x", "x", "x"]),
        l(&["x", "/bin/x"]),
        l(&["192.0.2.0/24", "bad"]),
        l(&["1", "2", "3", "4", "5", "6", "7", "8", "9"]),
        l(&["1", "2", "3"]),
    ];
    if option == "knock" {
        v.push((0..33).map(|i| format!("tcp:{}", 7000 + i)).collect());
        v.push((0..32).map(|i| format!("tcp:{}", 7000 + i)).collect());
    }
    if option == "exec" {
        v.push(std::iter::repeat_n("/bin/x".to_string(), 33).collect());
        v.push(std::iter::repeat_n("/bin/x".to_string(), 32).collect());
    }
    v
}

/// A base section of `kind` in which `option` is probed: (the section's
/// other options, extra sections). Valid by itself.
fn base(kind: &str, option: &str, values: &[String]) -> (Vec<(&'static str, String)>, String) {
    let o = |pairs: &[(&'static str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect::<Vec<_>>()
    };
    if matches!(option, "on_open" | "on_close") {
        // Each name the probe gives exists (hooks name config command sections).
        let (b, mut extra) = base(kind, "", values);
        for name in values.iter().filter(|v| postern::config::uci::is_name(v)) {
            extra.push_str(&format!(
                "config command '{name}'\n\tlist exec '/bin/true'\n"
            ));
        }
        return (b, extra);
    }
    let totp = [
        "key",
        "period",
        "length",
        "knock_base",
        "knock_range",
        "knock_proto",
    ];
    match kind {
        "postern" => (vec![], String::new()),
        "sequence" if totp.contains(&option) => (
            o(&[("key", KEY), ("knock_base", "40000"), ("open", "tcp:22")]),
            String::new(),
        ),
        "sequence" if option == "close" => (
            o(&[
                ("knock", "tcp:7000"),
                ("knock", "udp:8000"),
                ("action", "close"),
            ]),
            String::new(),
        ),
        "sequence" => (
            o(&[
                ("knock", "tcp:7000"),
                ("knock", "udp:8000"),
                ("open", "tcp:22"),
            ]),
            String::new(),
        ),
        "client" => {
            let mut b = o(&[("key", KEY), ("allow", "tcp:22")]);
            let mut extra = String::new();
            match option {
                "fwknop_key" => b.push(("fwknop_hmac_key", KEY2.to_string())),
                "fwknop_hmac_key" => b.push(("fwknop_key", KEY2.to_string())),
                "fwknop_hmac_type" | "fwknop_timeout" => {
                    b.push(("fwknop_key", KEY2.to_string()));
                    b.push(("fwknop_hmac_key", b64(64, 3)));
                }
                "knock_proto" | "knock_timeout" => b.push(("knock_base", "40000".to_string())),
                "command" | "forward" => {
                    // Each name the probe lists exists (references are checked across sections).
                    for name in values.iter().filter(|v| postern::config::uci::is_name(v)) {
                        extra.push_str(&if option == "command" {
                            format!("config command '{name}'\n\tlist exec '/bin/true'\n")
                        } else {
                            format!(
                                "config forward '{name}'\n\toption proto 'tcp'\n\toption port '2222'\n\toption to '192.168.1.10'\n"
                            )
                        });
                    }
                }
                _ => {}
            }
            (b, extra)
        }
        "encoded" => (
            o(&[("knock_base", "45000"), ("allow", "tcp:143")]),
            String::new(),
        ),
        "command" => (o(&[("exec", "/bin/true")]), String::new()),
        "forward" => (
            o(&[("proto", "tcp"), ("port", "2222"), ("to", "192.168.1.10")]),
            String::new(),
        ),
        "peer" => (o(&[("address", "10.0.0.2"), ("key", KEY)]), String::new()),
        other => panic!("no base section for config {other}"),
    }
}

/// Option names given as `list` (the view's DynamicLists and the daemon's lists).
fn is_list(kind: &str, option: &str) -> bool {
    matches!(
        (kind, option),
        ("postern", "interface" | "device" | "trusted")
            | ("sequence", "knock" | "open" | "close")
            | (
                "client",
                "allow" | "source" | "command" | "forward" | "default_access"
            )
            | ("encoded", "header" | "footer" | "allow")
            | ("command", "exec")
    )
}

struct Case {
    kind: String,
    option: String,
    values: Vec<String>,
    siblings: Vec<(&'static str, String)>,
    /// `postern check`'s verdict on the probed lines: None = accepted.
    daemon: Option<String>,
}

fn uci_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

/// Builds the file and judges it; `None` when the value cannot be written as UCI.
fn judge(kind: &str, option: &str, values: &[String]) -> Option<Case> {
    if values.iter().any(|v| v.contains('\'') || v.contains('\n')) {
        return None;
    }
    let (mut siblings, extra) = base(kind, option, values);
    siblings.retain(|(k, _)| *k != option);
    let mut text = String::new();
    if kind != "postern" {
        text.push_str("config postern 'main'\n\n");
    }
    text.push_str(&extra);
    let name = match kind {
        "postern" => "main",
        "command" => "c",
        "forward" => "f",
        _ => "s",
    };
    text.push_str(&format!("config {kind} '{name}'\n"));
    for (k, v) in &siblings {
        let word = if is_list(kind, k) { "list" } else { "option" };
        text.push_str(&format!("\t{word} {k} {}\n", uci_quote(v)));
    }
    let first_line = text.lines().count() + 1;
    let word = if is_list(kind, option) {
        "list"
    } else {
        "option"
    };
    for v in values {
        text.push_str(&format!("\t{word} {option} {}\n", uci_quote(v)));
    }
    let probed = first_line..first_line + values.len();
    let daemon = match postern::config::parse_str("probe", &text) {
        Ok(_) => None,
        Err(errs) => {
            let on_probe: Vec<String> = errs
                .iter()
                .filter(|e| probed.contains(&e.line))
                .map(|e| e.message.clone())
                .collect();
            (!on_probe.is_empty()).then(|| on_probe.join("; "))
        }
    };
    Some(Case {
        kind: kind.to_string(),
        option: option.to_string(),
        values: values.to_vec(),
        siblings,
        daemon,
    })
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (kind, options) in postern::config::typed::schema() {
        for option in options {
            for p in probes() {
                out.extend(judge(kind, option, &[p]));
            }
            if is_list(kind, option) {
                for l in list_probes(option) {
                    out.extend(judge(kind, option, &l));
                }
            }
        }
    }
    out
}

/// Runs tests/luci/rules_cases.js on `cases`: (verdicts, defaults, rule names).
fn view_verdicts(
    cases: &[Case],
) -> (
    Vec<Option<String>>,
    BTreeMap<String, Option<String>>,
    String,
) {
    let mut input = String::from("[");
    for (i, c) in cases.iter().enumerate() {
        if i > 0 {
            input.push(',');
        }
        let values: Vec<String> = c.values.iter().map(|v| json_str(v)).collect();
        // Siblings as the page reads them: a string, or an array for a list.
        let mut sib: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (k, v) in &c.siblings {
            sib.entry(k).or_default().push(json_str(v));
        }
        let sib: Vec<String> = sib
            .iter()
            .map(|(k, v)| {
                let value = if is_list(&c.kind, k) {
                    format!("[{}]", v.join(","))
                } else {
                    v[0].clone()
                };
                format!("{}:{}", json_str(k), value)
            })
            .collect();
        input.push_str(&format!(
            "{{\"type\":{},\"option\":{},\"values\":[{}],\"siblings\":{{{}}}}}",
            json_str(&c.kind),
            json_str(&c.option),
            values.join(","),
            sib.join(",")
        ));
    }
    input.push(']');
    let mut child = Command::new("node")
        .arg(repo().join("tests/luci/rules_cases.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // {"verdicts":[true|"msg",...],"defaults":{"t.o":null|"v",...},"rules":...}
    let v: serde_like::Value = serde_like::parse(&text);
    let verdicts = v
        .get("verdicts")
        .as_array()
        .iter()
        .map(|x| match x {
            serde_like::Value::Bool(true) => None,
            serde_like::Value::Str(s) => Some(s.clone()),
            other => Some(format!("{other:?}")),
        })
        .collect();
    let defaults = v
        .get("defaults")
        .as_object()
        .iter()
        .map(|(k, x)| {
            (
                k.clone(),
                match x {
                    serde_like::Value::Str(s) => Some(s.clone()),
                    _ => None,
                },
            )
        })
        .collect();
    (verdicts, defaults, text)
}

#[test]
fn view_rules_agree_with_postern_check_on_every_option() {
    if !node_or_skip("view_rules_agree_with_postern_check_on_every_option") {
        return;
    }
    let cases = cases();
    assert!(cases.len() > 5000, "{} cases", cases.len());
    let (verdicts, defaults, _) = view_verdicts(&cases);
    assert_eq!(verdicts.len(), cases.len());
    // Every option of the schema has a rule in the page, and no other.
    let schema: Vec<String> = postern::config::typed::schema()
        .iter()
        .flat_map(|(k, os)| os.iter().map(move |o| format!("{k}.{o}")))
        .collect();
    let mut a = schema.clone();
    a.sort();
    let mut b: Vec<String> = defaults.keys().cloned().collect();
    b.sort();
    assert_eq!(a, b, "rules.js and `postern schema` name different options");
    let mut wrong = Vec::new();
    for (c, view) in cases.iter().zip(&verdicts) {
        if c.daemon.is_some() != view.is_some() {
            wrong.push(format!(
                "config {} option {} = {:?}: daemon {:?}, page {:?}",
                c.kind, c.option, c.values, c.daemon, view
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} probes judged differently:\n{}",
        wrong.len(),
        cases.len(),
        wrong[..wrong.len().min(60)].join("\n")
    );
}

#[test]
fn placeholders_are_the_daemons_defaults() {
    if !node_or_skip("placeholders_are_the_daemons_defaults") {
        return;
    }
    let (_, defaults, _) = view_verdicts(&[]);
    let mut checked = 0;
    for (name, dflt) in &defaults {
        let Some(dflt) = dflt else { continue };
        let (kind, option) = name.split_once('.').unwrap();
        // The base section alone, and with the default written out.
        let render = |with: bool| {
            let mut text = String::new();
            if kind != "postern" {
                text.push_str("config postern 'main'\n\n");
            }
            let (siblings, extra) = base(kind, option, std::slice::from_ref(dflt));
            text.push_str(&extra);
            let n = match kind {
                "postern" => "main",
                "command" => "c",
                "forward" => "f",
                _ => "s",
            };
            text.push_str(&format!("config {kind} '{n}'\n"));
            for (k, v) in siblings.iter().filter(|(k, _)| *k != option) {
                let word = if is_list(kind, k) { "list" } else { "option" };
                text.push_str(&format!("\t{word} {k} {}\n", uci_quote(v)));
            }
            if with {
                text.push_str(&format!("\toption {option} {}\n", uci_quote(dflt)));
            }
            text
        };
        let a = postern::config::parse_str("a", &render(false))
            .unwrap_or_else(|e| panic!("{name}: base refused: {e:?}"));
        let b = postern::config::parse_str("b", &render(true))
            .unwrap_or_else(|e| panic!("{name} = {dflt}: refused: {e:?}"));
        assert_eq!(
            a, b,
            "the page shows {dflt:?} as the default of {name}, but writing it changes the configuration"
        );
        checked += 1;
    }
    assert!(checked >= 30, "{checked} defaults checked");
}

#[test]
fn page_node_tests_pass() {
    if !node_or_skip("page_node_tests_pass") {
        return;
    }
    let dir = repo().join("tests/luci");
    let mut tests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.js"))
        .collect();
    tests.sort();
    assert!(!tests.is_empty());
    for t in tests {
        let out = Command::new("node")
            .arg(&t)
            .env("POSTERN", env!("CARGO_BIN_EXE_postern"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}:\n{}{}",
            t.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A small JSON reader for the node harness's answers (no crate for tests).
mod serde_like {
    #[derive(Debug, Clone)]
    pub enum Value {
        Null,
        Bool(bool),
        Num(#[allow(dead_code)] f64),
        Str(String),
        Arr(Vec<Value>),
        Obj(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> &Value {
            match self {
                Value::Obj(v) => &v.iter().find(|(k, _)| k == key).expect(key).1,
                _ => panic!("not an object"),
            }
        }
        pub fn as_array(&self) -> &[Value] {
            match self {
                Value::Arr(v) => v,
                _ => panic!("not an array"),
            }
        }
        pub fn as_object(&self) -> &[(String, Value)] {
            match self {
                Value::Obj(v) => v,
                _ => panic!("not an object"),
            }
        }
    }

    pub fn parse(text: &str) -> Value {
        let b: Vec<char> = text.chars().collect();
        let mut i = 0;
        value(&b, &mut i)
    }

    fn ws(b: &[char], i: &mut usize) {
        while *i < b.len() && b[*i].is_whitespace() {
            *i += 1;
        }
    }

    fn value(b: &[char], i: &mut usize) -> Value {
        ws(b, i);
        match b[*i] {
            '{' => {
                *i += 1;
                let mut out = Vec::new();
                loop {
                    ws(b, i);
                    if b[*i] == '}' {
                        *i += 1;
                        return Value::Obj(out);
                    }
                    let Value::Str(k) = value(b, i) else {
                        panic!("key")
                    };
                    ws(b, i);
                    assert_eq!(b[*i], ':');
                    *i += 1;
                    out.push((k, value(b, i)));
                    ws(b, i);
                    if b[*i] == ',' {
                        *i += 1;
                    }
                }
            }
            '[' => {
                *i += 1;
                let mut out = Vec::new();
                loop {
                    ws(b, i);
                    if b[*i] == ']' {
                        *i += 1;
                        return Value::Arr(out);
                    }
                    out.push(value(b, i));
                    ws(b, i);
                    if b[*i] == ',' {
                        *i += 1;
                    }
                }
            }
            '"' => {
                *i += 1;
                let mut s = String::new();
                while b[*i] != '"' {
                    if b[*i] == '\\' {
                        *i += 1;
                        match b[*i] {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            'u' => {
                                let hex: String = b[*i + 1..*i + 5].iter().collect();
                                s.push(
                                    char::from_u32(u32::from_str_radix(&hex, 16).unwrap())
                                        .unwrap_or('?'),
                                );
                                *i += 4;
                            }
                            c => s.push(c),
                        }
                    } else {
                        s.push(b[*i]);
                    }
                    *i += 1;
                }
                *i += 1;
                Value::Str(s)
            }
            't' => {
                *i += 4;
                Value::Bool(true)
            }
            'f' => {
                *i += 5;
                Value::Bool(false)
            }
            'n' => {
                *i += 4;
                Value::Null
            }
            _ => {
                let start = *i;
                while *i < b.len() && (b[*i].is_ascii_digit() || "+-.eE".contains(b[*i])) {
                    *i += 1;
                }
                Value::Num(b[start..*i].iter().collect::<String>().parse().unwrap())
            }
        }
    }
}

#[test]
fn translation_template_is_current() {
    let out = Command::new("bash")
        .arg(repo().join("scripts/luci-pot.sh"))
        .arg("--check")
        .output()
        .unwrap();
    if !out.status.success() && !in_ci() && Command::new("python3").arg("-V").output().is_err() {
        eprintln!("\n*** SKIPPED translation_template_is_current: python3 not installed ***\n");
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pot =
        std::fs::read_to_string(repo().join("openwrt/luci-app-postern/po/templates/postern.pot"))
            .unwrap();
    for msg in [
        "msgid \"Show QR code\"",
        "msgid \"Revoke\"",
        "msgid \"Lift ban\"",
        "msgid \"postern would refuse this configuration; nothing was saved:\"",
    ] {
        assert!(pot.contains(msg), "{msg}");
    }
}

/// uci rewrites the file on LuCI's first save, so comments would be lost:
/// the shipped file has none, and the examples (in docs/luci.md) are valid.
#[test]
fn shipped_config_has_no_comments_and_the_documented_examples_check() {
    let shipped =
        std::fs::read_to_string(repo().join("openwrt/postern/files/postern.config")).unwrap();
    assert!(
        !shipped.lines().any(|l| l.trim_start().starts_with('#')),
        "{shipped}"
    );
    let doc = std::fs::read_to_string(repo().join("docs/luci.md")).unwrap();
    let start = doc.find("## Example configuration").unwrap();
    let block = &doc[start..];
    let block = &block[block.find("```\n").unwrap() + 4..];
    let block = &block[..block.find("```").unwrap()];
    let text = format!("{shipped}\n{}", block.replace("'...'", &format!("'{KEY}'")));
    postern::config::parse_str("docs/luci.md", &text).unwrap_or_else(|e| panic!("{e:?}"));
}

/// The ucode rpcd plugin itself, run by a ucode interpreter when one is
/// given (UCODE=/path/to/ucode, UCODE_LIB=dir of fs.so): its methods, the
/// daemon's check verdicts passed through, arguments shell-quoted. No
/// package registry ships ucode, so CI skips this (loudly); the browser
/// test's backend runs the same postern commands.
#[test]
fn ucode_plugin_runs_postern() {
    let Ok(ucode) = std::env::var("UCODE") else {
        eprintln!("\n*** SKIPPED ucode_plugin_runs_postern: set UCODE=/path/to/ucode (no registry ships it) ***\n");
        return;
    };
    let dir = std::env::temp_dir().join(format!("postern-ucode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = std::fs::read_to_string(
        repo().join("openwrt/luci-app-postern/root/usr/share/rpcd/ucode/luci.postern"),
    )
    .unwrap()
    .replace("/usr/sbin/postern", env!("CARGO_BIN_EXE_postern"));
    let file = dir.join("plugin.uc");
    std::fs::write(&file, plugin).unwrap();
    let pwned = dir.join("pwned");
    let mut cmd = Command::new(ucode);
    if let Ok(lib) = std::env::var("UCODE_LIB") {
        cmd.arg("-L").arg(lib);
    }
    let out = cmd
        .arg(repo().join("tests/luci/plugin_harness.uc"))
        .arg(&file)
        .arg(&pwned)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], r#"[ "check", "revoke", "status", "unban" ]"#);
    assert!(
        lines[1].contains("\"error\": \"postern: cannot reach the daemon"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("\"ok\": false")
            && lines[2].contains("\"line\": 1")
            && lines[2].contains("has no key"),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains("\"ok\": true"), "{}", lines[3]);
    assert!(
        lines[4].contains("config: UCI text expected"),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].contains("\"ok\": false") && lines[5].contains("unknown request"),
        "{}",
        lines[5]
    );
    assert!(!pwned.exists(), "an argument reached the shell");
    assert!(lines[6].contains("\"ok\": false"), "{}", lines[6]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_json_gives_lines_and_messages() {
    let dir = std::env::temp_dir().join(format!("postern-checkjson-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("postern");
    let run = |text: &str| {
        std::fs::write(&file, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_postern"))
            .args(["check", "--json", "-c"])
            .arg(&file)
            .output()
            .unwrap()
    };
    let bad = run("config postern 'main'\n\toption max_skew '0'\n\nconfig client 'x'\n\tlist allow 'tcp:22'\n");
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8(bad.stdout).unwrap();
    assert!(
        text.starts_with(
            "{\"ok\":false,\"errors\":[{\"line\":2,\"message\":\"max_skew '0' is out of range"
        ),
        "{text}"
    );
    assert!(
        text.contains("{\"line\":4,\"message\":\"client 'x' has no key"),
        "{text}"
    );
    let good = run(&format!(
        "config client 'x'\n\toption key '{KEY}'\n\tlist allow 'tcp:22'\n"
    ));
    assert!(good.status.success());
    assert_eq!(
        String::from_utf8(good.stdout).unwrap(),
        "{\"ok\":true,\"errors\":[],\"warnings\":[]}\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
