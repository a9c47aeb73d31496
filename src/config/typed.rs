//! Untyped UCI sections into a validated [`Config`].
//!
//! Schema (`/etc/config/postern`):
//!
//! * `config postern` (at most one): `enabled`, `list interface`, `list device`,
//!   `backend` (auto | fw4 | fw3 | nft | dry-run), `spa_port` (1-65535),
//!   `max_skew` (seconds, 1..=86400), `source_skew` (seconds, 1..=86400, default
//!   [`super::DEFAULT_SOURCE_SKEW`]: the window of SPA packets for their source,
//!   when shorter than `max_skew`), `log_level` (error | warn | info | debug | trace);
//! * `config sequence` (at most [`MAX_SEQUENCES`]): `enabled`, `list knock`
//!   (1..=[`MAX_SEQUENCE_STEPS`] `proto:port` steps, no step equal to the one before),
//!   `timeout` (1..=3600 s, default 10), `action` (open | close, default open),
//!   `list open` / `list close` (the ports acted on; the one matching `action`),
//!   `duration` (1..=86400 s, default 30; validated but unused by `close`);
//! * `config client` (at most [`MAX_CLIENTS`] enabled): `enabled`, `key` (base64 of
//!   32 bytes, from `postern keygen`), `list allow` (the `proto:port`s the client may
//!   open, at least one), `max_duration` (1..=86400 s, default
//!   [`DEFAULT_MAX_DURATION`]), `list source` (networks the SPA packet may come
//!   from, `ADDR/LEN`; default anywhere), `allow_other_address` (default 0: a
//!   request opens only for the packet's source), `require_address` (default 0;
//!   1: refuse SPA packets without an explicit address), and the fwknop options
//!   `fwknop_key`, `fwknop_hmac_key` (base64, both or neither), `fwknop_hmac_type`
//!   (sha256 | sha1 | sha384 | sha512) and `fwknop_timeout` (see [`fwknop`]); a
//!   client needs `key`, the fwknop keys, or both;
//! * SPA options of `config postern`: `spa_verify_budget` (verifications per
//!   second for each client's native packets and for the fwknop path,
//!   [`MAX_CLIENTS`]..=1000000, default [`super::DEFAULT_VERIFY_BUDGET`]) and
//!   `state_dir` (an absolute path, default [`super::DEFAULT_STATE_DIR`]).
//! * ban options of `config postern` (see [`crate::bans`]): `ban_threshold`
//!   (1..=100000 failures, default 10), `ban_window` (1..=86400 s, default 60),
//!   `ban_duration` (0..=86400 s, default 300; 0 disables bans),
//!   `ban_ipv6_prefix` (32..=128, default 64: IPv6 failures are counted and
//!   banned per network of this length) and `list trusted` (networks
//!   `ADDR/LEN` never banned; default none).
//!
//! Unknown section types and options are errors: a typo must never silently weaken
//! the configuration. A list-valued name may also be given once with `option`; a
//! single-valued name given as a `list` is an error. Across sections: two enabled
//! sequences may not share their knock steps, no enabled knock step may be a port
//! that an enabled sequence or client guards, two enabled clients may not share a
//! key, and with clients enabled `udp:spa_port` may not be a knock step or a
//! guarded port.

use core::time::Duration;
use std::fmt::Write as _;

use super::uci::{Entry, Section, Value};
use super::{
    Action, BackendKind, Client, Config, ConfigError, Main, Sequence, DEFAULT_MAX_DURATION,
    MAX_CLIENTS, MAX_SEQUENCES, MAX_SEQUENCE_STEPS,
};
use crate::cidr::Cidr;
use crate::port::PortSpec;
use crate::spa::Key;

mod actions;
mod fwknop;
mod hooks;
mod knock_modes;
mod peer;

pub use actions::is_action_name;
pub use fwknop::MIN_KEY_BYTES as MIN_FWKNOP_KEY_BYTES;

/// What is allowed but unwise in `cfg`, one line each (no file:line: each
/// names its section): today fwknop keys shorter than
/// [`MIN_FWKNOP_KEY_BYTES`]. `postern check` prints them, the daemon logs
/// them at start and on reload.
pub fn warnings(cfg: &Config) -> Vec<String> {
    fwknop::weak_keys(cfg)
}

const SECTION_TYPES: &[&str] = &[
    "postern", "sequence", "client", "encoded", "command", "forward", "peer",
];
const MAIN_OPTIONS: &[&str] = &[
    "enabled",
    "interface",
    "device",
    "backend",
    "spa_port",
    "max_skew",
    "source_skew",
    "log_level",
    "spa_verify_budget",
    "state_dir",
    "user",
    "ban_threshold",
    "ban_window",
    "ban_duration",
    "ban_ipv6_prefix",
    "trusted",
];
const CLIENT_OPTIONS: &[&str] = &[
    "enabled",
    "key",
    "allow",
    "max_duration",
    "source",
    "allow_other_address",
    "require_address",
    "fwknop_key",
    "fwknop_hmac_key",
    "fwknop_hmac_type",
    "fwknop_timeout",
    "knock_base",
    "knock_proto",
    "knock_timeout",
    "command",
    "forward",
    "on_open",
    "on_close",
    "default_access",
];
const SEQUENCE_OPTIONS: &[&str] = &[
    "enabled", "knock", "timeout", "action", "open", "close", "duration", "on_open", "on_close",
];
const BACKENDS: &[(&str, BackendKind)] = &[
    ("auto", BackendKind::Auto),
    ("fw4", BackendKind::Fw4),
    ("fw3", BackendKind::Fw3),
    ("nft", BackendKind::Nft),
    ("dry-run", BackendKind::DryRun),
];
const LOG_LEVELS: &[(&str, log::LevelFilter)] = &[
    ("error", log::LevelFilter::Error),
    ("warn", log::LevelFilter::Warn),
    ("info", log::LevelFilter::Info),
    ("debug", log::LevelFilter::Debug),
    ("trace", log::LevelFilter::Trace),
];
const ACTIONS: &[(&str, Action)] = &[("open", Action::Open), ("close", Action::Close)];

/// Every section type with its option names: the one source of truth that
/// `postern schema --json` prints and the LuCI page is checked against.
pub fn schema() -> Vec<(&'static str, Vec<&'static str>)> {
    SECTION_TYPES.iter().map(|&t| (t, options_of(t))).collect()
}

/// The option names a section type knows (empty for an unknown type). A
/// `config sequence` is static (`knock` steps) or time-derived (`key`): both sets.
fn options_of(kind: &str) -> Vec<&'static str> {
    let parts: &[&[&'static str]] = match kind {
        "postern" => &[MAIN_OPTIONS],
        "sequence" => &[SEQUENCE_OPTIONS, knock_modes::TOTP_OPTIONS],
        "client" => &[CLIENT_OPTIONS],
        "encoded" => &[knock_modes::ENCODED_OPTIONS],
        "command" => &[actions::COMMAND_OPTIONS],
        "forward" => &[actions::FORWARD_OPTIONS],
        "peer" => &[peer::PEER_OPTIONS],
        _ => &[],
    };
    let mut names: Vec<&'static str> = Vec::new();
    for name in parts.iter().flat_map(|p| p.iter()) {
        if !names.contains(name) {
            names.push(name);
        }
    }
    names
}

/// Builds and validates a [`Config`] from parsed sections; `file` is used in error
/// messages only. Returns every error found (sorted by line), not just the first.
pub fn from_sections(file: &str, sections: &[Section]) -> Result<Config, Vec<ConfigError>> {
    let mut cx = Errors::new(file);
    let mut main: Option<(Main, usize)> = None;
    let mut seqs: Vec<Checked> = Vec::new();
    let mut clients: Vec<CheckedClient> = Vec::new();
    let mut totp = Vec::new();
    let mut encoded = Vec::new();
    let mut client_knocks = Vec::new();
    let mut commands = Vec::new();
    let mut forwards = Vec::new();
    let mut peers = Vec::new();
    let mut hooks = Vec::new();
    // Sections seen per type (few types: a list, no hashing machinery).
    let mut type_index: Vec<(&str, usize)> = Vec::new();
    let mut seq_count = 0usize;
    for s in sections {
        let index = match type_index.iter_mut().find(|(k, _)| *k == s.kind) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                type_index.push((s.kind.as_str(), 1));
                0
            }
        };
        match s.kind.as_str() {
            "postern" => main_section(&mut cx, s, &mut main),
            "sequence" => {
                seq_count += 1;
                if seq_count == MAX_SEQUENCES + 1 {
                    let msg = format!("too many sequences: at most {MAX_SEQUENCES} are allowed");
                    cx.push(s.line, msg);
                }
                let origin = s.name.clone().unwrap_or_else(|| anon_name(&s.kind, index));
                hooks.extend(hooks::section(&mut cx, s, origin));
                if s.get("key").is_some() {
                    totp.extend(knock_modes::totp_sequence(&mut cx, s, index));
                } else if let Some(c) = sequence(&mut cx, s, index) {
                    seqs.push(c);
                }
            }
            "client" => {
                let origin = s.name.clone().unwrap_or_else(|| anon_name(&s.kind, index));
                hooks.extend(hooks::section(&mut cx, s, origin));
                if let Some(c) = client(&mut cx, s, index) {
                    client_knocks.extend(knock_modes::client_knock(&mut cx, s, &c.client.name));
                    clients.push(c);
                }
            }
            "encoded" => encoded.extend(knock_modes::encoded(&mut cx, s, index)),
            "command" => {
                commands.extend(actions::command(&mut cx, s, &section_label(s, index)));
            }
            "forward" => {
                let f = actions::forward(&mut cx, s, &section_label(s, index));
                forwards.extend(f.map(|f| (f, s.line)));
            }
            "peer" => peers.extend(peer::peer(&mut cx, s, index)),
            other => {
                let msg = format!(
                    "unknown section type '{other}'{} (known: {})",
                    did_you_mean(other, SECTION_TYPES),
                    SECTION_TYPES.join(", ")
                );
                cx.push(s.line, msg);
            }
        }
    }
    cross_check(&mut cx, &seqs, &clients);
    let main = main.map(|(m, _)| m).unwrap_or_default();
    spa_cross_check(&mut cx, sections, &main, &seqs, &clients);
    knock_modes::cross_check(
        &mut cx,
        &main,
        &seqs,
        &clients,
        &totp,
        &encoded,
        &client_knocks,
    );
    let knock_ports: Vec<PortSpec> = seqs
        .iter()
        .filter(|c| c.seq.enabled)
        .flat_map(|c| c.seq.knocks.iter().copied())
        .collect();
    actions::cross_check(&mut cx, sections, &main, &knock_ports, &commands, &forwards);
    peer::cross_check(&mut cx, &main, &peers);
    hooks::cross_check(&mut cx, &hooks, &commands);
    cx.finish(Config {
        main,
        sequences: seqs.into_iter().map(|c| c.seq).collect(),
        clients: clients.into_iter().map(|c| c.client).collect(),
        knock_modes: crate::config::KnockModes {
            totp: totp.into_iter().map(|t| t.seq).collect(),
            encoded: encoded.into_iter().map(|e| e.enc).collect(),
            clients: client_knocks.into_iter().map(|k| k.knock).collect(),
        },
        commands,
        forwards: forwards.into_iter().map(|(f, _)| f).collect(),
        peers,
        hooks: hooks.into_iter().map(|h| h.hooks).collect(),
    })
}

/// The `config encoded` sections of a file (other sections are skipped), for
/// clients that read profiles from their own config file.
pub fn encoded_profiles(
    file: &str,
    sections: &[Section],
) -> Result<Vec<crate::config::Encoded>, Vec<ConfigError>> {
    let mut cx = Errors::new(file);
    let mut out = Vec::new();
    for (index, s) in sections.iter().filter(|s| s.kind == "encoded").enumerate() {
        out.extend(knock_modes::encoded(&mut cx, s, index).map(|e| e.enc));
    }
    cx.finish(out)
}

/// The knock volume limit, as `postern check` states it.
fn volume_line(m: &Main) -> String {
    use crate::knock::volume::{DEFAULT_KNOCK_LIMIT, DEFAULT_KNOCK_WINDOW};
    format!(
        "knock volume: at most {DEFAULT_KNOCK_LIMIT} knocks per {}s from one source network (IPv4 address, IPv6 /{}), right or wrong; more are ignored",
        DEFAULT_KNOCK_WINDOW.as_secs(),
        m.ban_ipv6_prefix
    )
}

/// A multi-line, human-readable description of `cfg` (for `postern check`).
pub fn summary(cfg: &Config) -> String {
    let m = &cfg.main;
    let mut out = String::new();
    let _ = writeln!(out, "postern: {}", on_off(m.enabled));
    let _ = writeln!(out, "backend: {}", backend_name(m.backend));
    let _ = writeln!(out, "interfaces: {}", names(&m.interfaces));
    let _ = writeln!(out, "devices: {}", names(&m.devices));
    let _ = writeln!(
        out,
        "log level: {}",
        m.log_level.as_str().to_ascii_lowercase()
    );
    let _ = writeln!(
        out,
        "spa port: udp:{} (max clock skew {}s, {}s for the packet's source; at most {} verifications/s per client)",
        m.spa_port,
        m.max_skew.as_secs(),
        m.source_skew.min(m.max_skew).as_secs(),
        m.spa_verify_budget
    );
    let _ = writeln!(out, "state dir: {}", m.state_dir);
    let _ = writeln!(
        out,
        "daemon user: {} (when started as root)",
        m.user.as_deref().unwrap_or(crate::privileges::DEFAULT_USER)
    );
    if m.ban_duration.is_zero() {
        let _ = writeln!(out, "bans: off (ban_duration 0)");
    } else {
        let trusted: Vec<String> = m.trusted.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(
            out,
            "bans: {} failure(s) within {}s ban a source for {}s (IPv4 per address, IPv6 per /{}); trusted: {}",
            m.ban_threshold,
            m.ban_window.as_secs(),
            m.ban_duration.as_secs(),
            m.ban_ipv6_prefix,
            if trusted.is_empty() {
                "none".to_string()
            } else {
                trusted.join(" ")
            }
        );
    }
    let active = cfg.active_sequences().count();
    let _ = writeln!(out, "sequences: {} ({active} enabled)", cfg.sequences.len());
    for s in &cfg.sequences {
        let _ = writeln!(out, "  {}", sequence_line(s));
    }
    let active = cfg.active_clients().count();
    let _ = writeln!(out, "clients: {} ({active} enabled)", cfg.clients.len());
    for c in &cfg.clients {
        let _ = writeln!(out, "  {}", client_line(c));
    }
    actions_summary(&mut out, cfg);
    hooks::summary(&mut out, cfg);
    let _ = writeln!(out, "guarded ports: {}", ports(&cfg.guarded_ports()));
    let _ = writeln!(out, "knock ports: {}", ports(&cfg.knock_ports()));
    let _ = writeln!(out, "{}", volume_line(m));
    if !cfg.peers.is_empty() {
        let active = cfg.active_peers().count();
        let _ = writeln!(out, "peers: {} ({active} enabled)", cfg.peers.len());
        for p in &cfg.peers {
            let _ = writeln!(
                out,
                "  peer {} [{}]: {} udp:{}{}{}",
                p.name,
                on_off(p.enabled),
                p.address,
                p.port,
                p.source.map_or(String::new(), |s| format!(" from {s}")),
                p.interface
                    .as_ref()
                    .map_or(String::new(), |i| format!(" on {i} only"))
            );
        }
    }
    let k = &cfg.knock_modes;
    if !(k.totp.is_empty() && k.encoded.is_empty() && k.clients.is_empty()) {
        let _ = writeln!(
            out,
            "knock modes: {} totp sequence(s), {} encoded profile(s), {} client knock range(s)",
            k.totp.len(),
            k.encoded.len(),
            k.clients.len()
        );
    }
    for t in &k.totp {
        let _ = writeln!(
            out,
            "  totp sequence {} [{}]: {} knocks in {}:{}+{} ({:.1} bits), new every {}s, {} {}",
            t.name,
            on_off(t.enabled),
            t.shape.length,
            t.shape.proto,
            t.shape.base,
            t.shape.range,
            t.shape.strength_bits(),
            t.shape.period,
            match t.action {
                Action::Open => "opens",
                Action::Close => "closes",
            },
            ports(&t.ports)
        );
    }
    for e in &k.encoded {
        let a = e.shape.alphabet;
        let _ = writeln!(
            out,
            "  encoded {} [{}]: {} knocks on ports {}-{}, may open {}",
            e.name,
            on_off(e.enabled),
            e.shape.len(),
            a.base,
            a.last(),
            ports(&e.allow)
        );
    }
    for c in &k.clients {
        let a = crate::knock::authenticated::alphabet(c.base);
        let _ = writeln!(
            out,
            "  client {} knocks: {} authenticated knocks on {}:{}-{}",
            c.client,
            crate::knock::authenticated::SYMBOLS,
            c.proto,
            a.base,
            a.last()
        );
    }
    out
}

/// The configuration word for a backend (`dry-run`, `fw4`, …).
pub fn backend_name(b: BackendKind) -> &'static str {
    BACKENDS
        .iter()
        .find(|(_, k)| *k == b)
        .map_or("auto", |(n, _)| n)
}

fn sequence_line(s: &Sequence) -> String {
    let knocks: Vec<String> = s.knocks.iter().map(|k| k.to_string()).collect();
    let what = match s.action {
        Action::Open => format!("open {} for {}s", ports(&s.ports), s.duration.as_secs()),
        Action::Close => format!("close {}", ports(&s.ports)),
    };
    format!(
        "{} [{}]: knock {} within {}s, then {what}",
        s.name,
        if s.enabled { "enabled" } else { "disabled" },
        knocks.join(" -> "),
        s.timeout.as_secs()
    )
}

fn client_line(c: &Client) -> String {
    let from = if c.sources.is_empty() {
        "anywhere".to_string()
    } else {
        let v: Vec<String> = c.sources.iter().map(|n| n.to_string()).collect();
        v.join(", ")
    };
    let mut line = format!(
        "{} [{}]: may open {} for up to {}s, from {from}",
        c.name,
        if c.enabled { "enabled" } else { "disabled" },
        ports(&c.allow),
        c.max_duration.as_secs()
    );
    if c.allow_other_address {
        line.push_str(", also for other addresses");
    }
    if c.require_address {
        line.push_str(", only with an explicit address");
    }
    if !c.commands.is_empty() {
        let _ = write!(line, "; may run {}", c.commands.join(", "));
    }
    if !c.forwards.is_empty() {
        let _ = write!(line, "; may open forward {}", c.forwards.join(", "));
    }
    if !c.default_access.is_empty() {
        let _ = write!(
            line,
            "; a request without ports opens {}",
            ports(&c.default_access)
        );
    }
    if let Some(f) = &c.fwknop {
        let only = if c.key.is_none() { " only" } else { "" };
        let _ = write!(
            line,
            "; fwknop keys{only} (hmac {}, {}s without -f)",
            f.keys.hmac_type.name(),
            f.timeout.as_secs()
        );
    }
    line
}

/// The `config command` and `config forward` lines of the summary.
fn actions_summary(out: &mut String, cfg: &Config) {
    if !cfg.commands.is_empty() {
        let active = cfg.active_commands().count();
        let _ = writeln!(out, "commands: {} ({active} enabled)", cfg.commands.len());
    }
    for c in &cfg.commands {
        let _ = write!(
            out,
            "  {} [{}]: runs {:?} for up to {}s",
            c.name,
            on_off(c.enabled),
            c.argv,
            c.timeout.as_secs()
        );
        if let Some(u) = &c.user {
            let _ = write!(out, " as {u}");
        }
        if let Some(m) = &c.fwknop_match {
            let _ = write!(out, "; fwknop -C {m:?}");
        }
        out.push('\n');
    }
    if !cfg.forwards.is_empty() {
        let active = cfg.active_forwards().count();
        let _ = writeln!(out, "forwards: {} ({active} enabled)", cfg.forwards.len());
    }
    for f in &cfg.forwards {
        let w = &f.forward;
        let mut to = Vec::new();
        if let Some(a) = w.to4 {
            to.push(format!("{a}:{}", w.to_port));
        }
        if let Some(a) = w.to6 {
            to.push(format!("[{a}]:{} (IPv6, no NAT)", w.to_port));
        }
        let _ = writeln!(
            out,
            "  {} [{}]: {}:{} -> {}",
            f.name,
            on_off(w.enabled),
            w.proto,
            w.port,
            to.join(", ")
        );
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "enabled"
    } else {
        "disabled"
    }
}

fn names(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}

fn ports(v: &[PortSpec]) -> String {
    if v.is_empty() {
        return "(none)".to_string();
    }
    let v: Vec<String> = v.iter().map(|p| p.to_string()).collect();
    v.join(", ")
}

// ---------------------------------------------------------------------------
// Error collection.

struct Errors<'f> {
    file: &'f str,
    list: Vec<ConfigError>,
}

impl<'f> Errors<'f> {
    fn new(file: &'f str) -> Errors<'f> {
        Errors {
            file,
            list: Vec::new(),
        }
    }

    fn push(&mut self, line: usize, message: String) {
        self.list.push(ConfigError {
            file: self.file.to_string(),
            line,
            message,
        });
    }

    fn count(&self) -> usize {
        self.list.len()
    }

    fn finish<T>(mut self, value: T) -> Result<T, Vec<ConfigError>> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            self.list.sort_by_key(|e| e.line);
            Err(self.list)
        }
    }
}

/// ` (did you mean 'x'?)` when `word` is close to one of `known`.
fn did_you_mean(word: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (distance(word, k), k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(" (did you mean '{k}'?)"))
        .unwrap_or_default()
}

/// Levenshtein distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Value readers. Each reports its own error and returns None on failure.

/// How a section is named in messages: `sequence 'ssh'` or `sequence @sequence[1]`.
fn section_label(s: &Section, index: usize) -> String {
    format!("{} {}", s.kind, quoted_name(s, index))
}

fn quoted_name(s: &Section, index: usize) -> String {
    match &s.name {
        Some(n) => format!("'{n}'"),
        None => anon_name(&s.kind, index),
    }
}

/// `@type[N]`, the name `uci show` gives the N-th section of a type.
fn anon_name(kind: &str, index: usize) -> String {
    format!("@{kind}[{index}]")
}

/// Reports options not in `known`.
fn check_names(cx: &mut Errors, s: &Section, label: &str, known: &[&str]) {
    for e in s
        .options
        .iter()
        .filter(|e| !known.contains(&e.name.as_str()))
    {
        let msg = format!(
            "unknown option '{}' in {label}{} (known: {})",
            e.name,
            did_you_mean(&e.name, known),
            known.join(", ")
        );
        cx.push(e.line, msg);
    }
}

/// The single, non-empty value of an `option`.
fn single<'a>(cx: &mut Errors, e: &'a Entry) -> Option<&'a str> {
    match &e.value {
        Value::Single(v) if v.is_empty() => {
            cx.push(e.line, format!("option '{}' is empty", e.name));
            None
        }
        Value::Single(v) => Some(v),
        Value::List(_) => {
            let msg = format!(
                "'{0}' takes one value: write option {0} '…', not list {0}",
                e.name
            );
            cx.push(e.line, msg);
            None
        }
    }
}

/// The non-empty items of a list (an `option` counts as a one-item list), with lines.
fn items<'a>(cx: &mut Errors, e: &'a Entry) -> Vec<(&'a str, usize)> {
    let all: Vec<(&str, usize)> = match &e.value {
        Value::Single(v) => {
            if v.split_whitespace().nth(1).is_some() {
                let msg = format!(
                    "'{0}' holds several values in one option: write one 'list {0}' line per value",
                    e.name
                );
                cx.push(e.line, msg);
                return Vec::new();
            }
            vec![(v.as_str(), e.line)]
        }
        Value::List(v) => v
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), e.item_line(i)))
            .collect(),
    };
    let mut out = Vec::with_capacity(all.len());
    for (v, line) in all {
        if v.is_empty() {
            cx.push(line, format!("empty value in list '{}'", e.name));
        } else {
            out.push((v, line));
        }
    }
    out
}

fn get_bool(cx: &mut Errors, e: &Entry) -> Option<bool> {
    let v = single(cx, e)?;
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" | "enabled" => Some(true),
        "0" | "no" | "off" | "false" | "disabled" => Some(false),
        _ => {
            let msg = format!(
                "{} '{v}' is not a boolean (use 1/0, yes/no, on/off, true/false)",
                e.name
            );
            cx.push(e.line, msg);
            None
        }
    }
}

/// A decimal number of seconds in `min..=max`.
fn get_secs(cx: &mut Errors, e: &Entry, min: u64, max: u64) -> Option<Duration> {
    let v = single(cx, e)?;
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        let msg = format!("{} '{v}' is not a number of seconds", e.name);
        cx.push(e.line, msg);
        return None;
    }
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Some(Duration::from_secs(n)),
        _ => {
            let msg = format!("{} '{v}' is out of range ({min} to {max} seconds)", e.name);
            cx.push(e.line, msg);
            None
        }
    }
}

/// A decimal number in `min..=max`.
fn get_number(cx: &mut Errors, e: &Entry, min: u64, max: u64) -> Option<u64> {
    let v = single(cx, e)?;
    match v.parse::<u64>() {
        Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) && (min..=max).contains(&n) => Some(n),
        _ => {
            let msg = format!("{} '{v}' is not a number from {min} to {max}", e.name);
            cx.push(e.line, msg);
            None
        }
    }
}

/// An absolute path without control characters.
fn get_abs_path(cx: &mut Errors, e: &Entry) -> Option<String> {
    let v = single(cx, e)?;
    if v.starts_with('/') && !v.chars().any(char::is_control) {
        return Some(v.to_string());
    }
    let msg = format!("{} '{v}' is not an absolute path", e.name);
    cx.push(e.line, msg);
    None
}

/// A user name (`option user`): letters, digits, `_.-`, at most 32, not
/// starting with `-`.
fn get_user_name(cx: &mut Errors, e: &Entry) -> Option<String> {
    let v = single(cx, e)?;
    let ok = v.len() <= 32
        && !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !v.starts_with('-');
    if !ok {
        cx.push(e.line, format!("user '{v}' is not a user name"));
    }
    ok.then(|| v.to_string())
}

/// One of `choices` by its word.
fn get_choice<T: Copy>(cx: &mut Errors, e: &Entry, choices: &[(&str, T)]) -> Option<T> {
    let v = single(cx, e)?;
    if let Some((_, t)) = choices.iter().find(|(n, _)| *n == v) {
        return Some(*t);
    }
    let words: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    let msg = format!(
        "{} '{v}' is not valid{} (expected one of: {})",
        e.name,
        did_you_mean(v, &words),
        words.join(", ")
    );
    cx.push(e.line, msg);
    None
}

fn get_port(cx: &mut Errors, e: &Entry) -> Option<u16> {
    let v = single(cx, e)?;
    let port = crate::port::parse_port(v);
    if port.is_none() {
        let msg = format!("{} '{v}' is not a port number (1-65535)", e.name);
        cx.push(e.line, msg);
    }
    port
}

/// `proto:port` items with their lines; `None` if any is invalid.
fn get_ports(cx: &mut Errors, e: &Entry) -> Option<Vec<(PortSpec, usize)>> {
    let before = cx.count();
    let mut out = Vec::new();
    for (v, line) in items(cx, e) {
        match v.parse::<PortSpec>() {
            Ok(p) => out.push((p, line)),
            Err(err) => cx.push(line, format!("{} '{v}': {err}", e.name)),
        }
    }
    (cx.count() == before).then_some(out)
}

/// Names checked by `valid`; `None` if any is invalid.
fn get_names(
    cx: &mut Errors,
    e: &Entry,
    valid: fn(&str) -> bool,
    rule: &str,
) -> Option<Vec<String>> {
    let before = cx.count();
    let mut out = Vec::new();
    for (v, line) in items(cx, e) {
        if valid(v) {
            out.push(v.to_string());
        } else {
            cx.push(line, format!("{} '{v}' is not valid: {rule}", e.name));
        }
    }
    (cx.count() == before).then_some(out)
}

/// A Linux interface name: 1-15 bytes, no whitespace, `/` or `:`, not `.`/`..`.
fn is_device_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

// ---------------------------------------------------------------------------
// config postern

fn main_section(cx: &mut Errors, s: &Section, main: &mut Option<(Main, usize)>) {
    if let Some((_, first)) = main {
        let msg = format!(
            "second 'config postern' section (the first is on line {first}): keep only one"
        );
        cx.push(s.line, msg);
        return;
    }
    check_names(cx, s, "config postern", MAIN_OPTIONS);
    let mut m = Main::default();
    for e in &s.options {
        main_option(cx, e, &mut m);
    }
    *main = Some((m, s.line));
}

fn main_option(cx: &mut Errors, e: &Entry, m: &mut Main) {
    const IFACE_RULE: &str = "UCI network names use letters, digits and _";
    const DEVICE_RULE: &str = "device names are 1-15 characters without spaces, '/' or ':'";
    match e.name.as_str() {
        "enabled" => set(&mut m.enabled, get_bool(cx, e)),
        "interface" => set(
            &mut m.interfaces,
            get_names(cx, e, super::uci::is_name, IFACE_RULE),
        ),
        "device" => set(
            &mut m.devices,
            get_names(cx, e, is_device_name, DEVICE_RULE),
        ),
        "backend" => set(&mut m.backend, get_choice(cx, e, BACKENDS)),
        "spa_port" => set(&mut m.spa_port, get_port(cx, e)),
        "max_skew" => set(&mut m.max_skew, get_secs(cx, e, 1, 86_400)),
        "source_skew" => set(&mut m.source_skew, get_secs(cx, e, 1, 86_400)),
        "log_level" => set(&mut m.log_level, get_choice(cx, e, LOG_LEVELS)),
        "spa_verify_budget" => set(
            &mut m.spa_verify_budget,
            get_number(cx, e, MAX_CLIENTS as u64, 1_000_000).map(|n| n as u32),
        ),
        "state_dir" => set(&mut m.state_dir, get_abs_path(cx, e)),
        "user" => {
            m.user = get_user_name(cx, e);
            m.user_line = e.line;
        }
        "ban_threshold" => set(
            &mut m.ban_threshold,
            get_number(cx, e, 1, 100_000).map(|n| n as u32),
        ),
        "ban_window" => set(&mut m.ban_window, get_secs(cx, e, 1, 86_400)),
        "ban_duration" => set(&mut m.ban_duration, get_secs(cx, e, 0, 86_400)),
        "ban_ipv6_prefix" => set(
            &mut m.ban_ipv6_prefix,
            get_number(
                cx,
                e,
                u64::from(crate::bans::MIN_BAN_IPV6_PREFIX),
                u64::from(crate::bans::MAX_BAN_IPV6_PREFIX),
            )
            .map(|n| n as u8),
        ),
        "trusted" => set(&mut m.trusted, get_networks(cx, e)),
        _ => {}
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

// ---------------------------------------------------------------------------
// config sequence

/// A parsed sequence with the lines cross-checks need.
struct Checked {
    seq: Sequence,
    /// Line of the first knock step, else of the section.
    knock_line: usize,
    /// Line of each knock step.
    knock_lines: Vec<usize>,
}

fn sequence(cx: &mut Errors, s: &Section, index: usize) -> Option<Checked> {
    let label = section_label(s, index);
    let before = cx.count();
    check_names(cx, s, &label, SEQUENCE_OPTIONS);
    let opt = |name: &str| s.get(name);

    let enabled = opt("enabled").and_then(|e| get_bool(cx, e)).unwrap_or(true);
    let timeout =
        opt("timeout").map_or(Some(Duration::from_secs(10)), |e| get_secs(cx, e, 1, 3600));
    let duration = opt("duration").map_or(Some(Duration::from_secs(30)), |e| {
        get_secs(cx, e, 1, 86_400)
    });
    let action = opt("action").map_or(Some(Action::Open), |e| get_choice(cx, e, ACTIONS));
    let knocks = knock_steps(cx, s, &label);
    let ports = action.and_then(|a| acted_ports(cx, s, &label, a));

    if cx.count() != before {
        return None;
    }
    let (knocks, knock_lines): (Vec<PortSpec>, Vec<usize>) = knocks?.into_iter().unzip();
    Some(Checked {
        knock_line: knock_lines.first().copied().unwrap_or(s.line),
        knock_lines,
        seq: Sequence {
            name: s.name.clone().unwrap_or_else(|| anon_name(&s.kind, index)),
            enabled,
            knocks,
            timeout: timeout?,
            action: action?,
            ports: ports?,
            duration: duration?,
        },
    })
}

/// The `list knock` steps: present, not too many, no step equal to the one before.
fn knock_steps(cx: &mut Errors, s: &Section, label: &str) -> Option<Vec<(PortSpec, usize)>> {
    let Some(e) = s.get("knock") else {
        let msg = format!("{label} has no knock steps: add lines such as list knock 'tcp:7000'");
        cx.push(s.line, msg);
        return None;
    };
    let steps = get_ports(cx, e)?;
    if steps.len() > MAX_SEQUENCE_STEPS {
        let msg = format!(
            "{label} has {} knock steps; at most {MAX_SEQUENCE_STEPS} are allowed",
            steps.len()
        );
        cx.push(e.line, msg);
        return None;
    }
    let mut ok = true;
    for (i, pair) in steps.windows(2).enumerate() {
        if let [(a, _), (b, line)] = pair {
            if a == b {
                let msg = format!(
                    "knock step {} '{b}' repeats step {}: a TCP SYN retransmit (or any \
                     duplicated packet) would count as the next knock; put a different \
                     port in between",
                    i + 2,
                    i + 1
                );
                cx.push(*line, msg);
                ok = false;
            }
        }
    }
    ok.then_some(steps)
}

/// The `list open` or `list close` ports matching the action.
fn acted_ports(cx: &mut Errors, s: &Section, label: &str, action: Action) -> Option<Vec<PortSpec>> {
    let (want, other, other_action) = match action {
        Action::Open => ("open", "close", "close"),
        Action::Close => ("close", "open", "open"),
    };
    if let Some(e) = s.get(other) {
        let msg = format!(
            "'{other}' ports in {label}, whose action is '{want}': list the ports with \
             'list {want}' (or set option action '{other_action}')"
        );
        cx.push(e.line, msg);
    }
    let Some(e) = s.get(want) else {
        let msg = format!("{label} has no ports to {want}: add lines such as list {want} 'tcp:22'");
        cx.push(s.line, msg);
        return None;
    };
    let ports = get_ports(cx, e)?;
    Some(ports.into_iter().map(|(p, _)| p).collect())
}

// ---------------------------------------------------------------------------
// config client

/// A parsed client with the lines cross-checks need.
struct CheckedClient {
    client: Client,
    line: usize,
    key_line: usize,
    fwknop_line: usize,
}

fn client(cx: &mut Errors, s: &Section, index: usize) -> Option<CheckedClient> {
    let label = section_label(s, index);
    let before = cx.count();
    check_names(cx, s, &label, CLIENT_OPTIONS);
    let opt = |name: &str| s.get(name);
    let enabled = opt("enabled").and_then(|e| get_bool(cx, e)).unwrap_or(true);
    let max_duration = opt("max_duration")
        .map_or(Some(Duration::from_secs(DEFAULT_MAX_DURATION)), |e| {
            get_secs(cx, e, 1, 86_400)
        });
    let key = opt("key").map(|e| get_key(cx, e));
    let fwknop = fwknop::options(cx, s, max_duration);
    if key.is_none() && matches!(fwknop, Some(None)) {
        let msg = format!(
            "{label} has no key: add option key '…' (make one with 'postern keygen'), \
             or fwknop_key and fwknop_hmac_key for fwknop clients"
        );
        cx.push(s.line, msg);
    }
    let commands = opt("command").map_or(Some(Vec::new()), |e| actions::client_names(cx, e));
    let forwards = opt("forward").map_or(Some(Vec::new()), |e| actions::client_names(cx, e));
    let allow = match opt("allow") {
        Some(e) => get_ports(cx, e).map(|v| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>()),
        None if opt("command").is_some() || opt("forward").is_some() => Some(Vec::new()),
        None => {
            let msg = format!(
                "{label} may do nothing: add lines such as list allow 'tcp:22' (or list command / list forward)"
            );
            cx.push(s.line, msg);
            None
        }
    };
    let sources = match opt("source") {
        Some(e) => get_networks(cx, e),
        None => Some(Vec::new()),
    };
    let default_access = match (opt("default_access"), &allow) {
        (Some(e), Some(allow)) => default_access(cx, e, allow),
        (Some(_), None) => None,
        (None, _) => Some(Vec::new()),
    };
    let allow_other_address = opt("allow_other_address").map_or(Some(false), |e| get_bool(cx, e));
    let require_address = opt("require_address").map_or(Some(false), |e| get_bool(cx, e));
    if cx.count() != before {
        return None;
    }
    Some(CheckedClient {
        line: s.line,
        key_line: opt("key").map_or(s.line, |e| e.line),
        fwknop_line: opt("fwknop_hmac_key").map_or(s.line, |e| e.line),
        client: Client {
            name: s.name.clone().unwrap_or_else(|| anon_name(&s.kind, index)),
            enabled,
            key: match key {
                Some(k) => Some(k?),
                None => None,
            },
            fwknop: fwknop?,
            allow: allow?,
            max_duration: max_duration?,
            sources: sources?,
            allow_other_address: allow_other_address?,
            require_address: require_address?,
            commands: commands?,
            forwards: forwards?,
            default_access: default_access?,
        },
    })
}

/// `list default_access`: at most [`crate::spa::request::MAX_PORTS`] ports,
/// each in the client's `allow` list.
fn default_access(cx: &mut Errors, e: &Entry, allow: &[PortSpec]) -> Option<Vec<PortSpec>> {
    let ports = get_ports(cx, e)?;
    let max = crate::spa::request::MAX_PORTS;
    if ports.len() > max {
        let msg = format!(
            "default_access has {} ports; at most {max} are allowed",
            ports.len()
        );
        cx.push(e.line, msg);
        return None;
    }
    let mut ok = true;
    for (p, line) in &ports {
        if !allow.contains(p) {
            let msg = format!(
                "default_access {p} is not in the client's allow list: add list allow '{p}' or remove it"
            );
            cx.push(*line, msg);
            ok = false;
        }
    }
    ok.then(|| ports.into_iter().map(|(p, _)| p).collect())
}

fn get_key(cx: &mut Errors, e: &Entry) -> Option<Key> {
    let v = single(cx, e)?;
    match Key::from_base64(v) {
        Ok(k) => Some(k),
        Err(err) => {
            // Never echo the value: it is (nearly) a secret.
            cx.push(e.line, format!("key is not valid: {err}"));
            None
        }
    }
}

fn get_networks(cx: &mut Errors, e: &Entry) -> Option<Vec<Cidr>> {
    let before = cx.count();
    let mut out = Vec::new();
    for (v, line) in items(cx, e) {
        match v.parse::<Cidr>() {
            Ok(n) => out.push(n),
            Err(err) => cx.push(line, format!("{} '{v}': {err}", e.name)),
        }
    }
    (cx.count() == before).then_some(out)
}

/// Client count, shared keys, and the SPA port against knock and guarded ports.
fn spa_cross_check(
    cx: &mut Errors,
    sections: &[Section],
    main: &Main,
    seqs: &[Checked],
    clients: &[CheckedClient],
) {
    let active: Vec<&CheckedClient> = clients.iter().filter(|c| c.client.enabled).collect();
    if let Some(c) = active.get(MAX_CLIENTS) {
        let msg = format!(
            "too many enabled clients: at most {MAX_CLIENTS} (each costs one pre-filter check per packet)"
        );
        cx.push(c.line, msg);
    }
    for (i, c) in active.iter().enumerate() {
        let same_key = |d: &&&CheckedClient| c.client.key.is_some() && d.client.key == c.client.key;
        if let Some(d) = active[..i].iter().find(same_key) {
            let msg = format!(
                "client '{}' has the same key as client '{}' (line {}): give each client its own key",
                c.client.name, d.client.name, d.key_line
            );
            cx.push(c.key_line, msg);
        }
        fwknop::same_hmac_key(cx, c, &active[..i]);
    }
    if active.is_empty() {
        return;
    }
    let spa = PortSpec::udp(main.spa_port);
    let line = sections
        .iter()
        .filter(|s| s.kind == "postern")
        .find_map(|s| s.get("spa_port").map(|e| e.line))
        .unwrap_or(active[0].line);
    let enabled = seqs.iter().filter(|c| c.seq.enabled);
    if let Some(q) = enabled.clone().find(|q| q.seq.knocks.contains(&spa)) {
        let msg = format!(
            "spa_port {} is a knock step of sequence '{}': pick another port for one of them",
            main.spa_port, q.seq.name
        );
        cx.push(line, msg);
    }
    let guarded = enabled
        .map(|q| (&q.seq.name, &q.seq.ports))
        .chain(active.iter().map(|c| (&c.client.name, &c.client.allow)))
        .find(|(_, ports)| ports.contains(&spa));
    if let Some((name, _)) = guarded {
        let msg = format!(
            "spa_port {} is a port that '{name}' guards: SPA packets would be dropped by the firewall's guard; pick another spa_port",
            main.spa_port
        );
        cx.push(line, msg);
    }
}

// ---------------------------------------------------------------------------
// Checks across sequences.

fn cross_check(cx: &mut Errors, seqs: &[Checked], clients: &[CheckedClient]) {
    let active: Vec<&Checked> = seqs.iter().filter(|c| c.seq.enabled).collect();
    for (i, c) in active.iter().enumerate() {
        let earlier = active.iter().take(i);
        if let Some(d) = earlier.into_iter().find(|d| d.seq.knocks == c.seq.knocks) {
            let msg = format!(
                "sequence '{}' has the same knock steps as sequence '{}' (line {}): \
                 the daemon could not tell them apart",
                c.seq.name, d.seq.name, d.knock_line
            );
            cx.push(c.knock_line, msg);
        }
    }
    let guards: Vec<(String, &[PortSpec])> = active
        .iter()
        .map(|g| (format!("sequence '{}'", g.seq.name), g.seq.ports.as_slice()))
        .chain(clients.iter().filter(|c| c.client.enabled).map(|c| {
            (
                format!("client '{}'", c.client.name),
                c.client.allow.as_slice(),
            )
        }))
        .collect();
    for c in &active {
        knocks_on_guarded(cx, c, &guards);
    }
}

/// A knock step on a port that an enabled sequence or client guards.
fn knocks_on_guarded(cx: &mut Errors, c: &Checked, guards: &[(String, &[PortSpec])]) {
    for (i, k) in c.seq.knocks.iter().enumerate() {
        let Some((who, _)) = guards.iter().find(|(_, ports)| ports.contains(k)) else {
            continue;
        };
        let msg = format!(
            "knock step {} '{k}' of sequence '{}' is a port that {who} guards: \
             knocking on the protected port itself makes no sense; pick another port",
            i + 1,
            c.seq.name,
        );
        let line = c.knock_lines.get(i).copied().unwrap_or(c.knock_line);
        cx.push(line, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn ok(text: &str) -> Config {
        match parse_str("t", text) {
            Ok(c) => c,
            Err(e) => panic!("unexpected errors: {e:#?}"),
        }
    }

    fn errs(text: &str) -> Vec<(usize, String)> {
        match parse_str("t", text) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.into_iter().map(|e| (e.line, e.message)).collect(),
        }
    }

    /// The only error of `text`.
    fn err1(text: &str) -> (usize, String) {
        let mut e = errs(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        e.remove(0)
    }

    /// A sequence section with extra lines appended.
    fn seq(extra: &str) -> String {
        format!("config sequence 's'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\tlist open 'tcp:22'\n{extra}")
    }

    const DESIGN: &str = "\
config postern 'main'
\toption enabled '1'
\tlist   interface 'wan'        # UCI networks; the init script resolves devices
\toption backend 'auto'         # auto | fw4 | fw3 | nft | dry-run
\toption spa_port '62201'
\toption max_skew '120'         # seconds
\toption log_level 'info'

config sequence 'ssh'
\tlist   knock 'tcp:7000'
\tlist   knock 'udp:8000'
\tlist   knock 'tcp:9000'
\toption timeout '10'           # seconds to finish the sequence
\toption action 'open'
\tlist   open 'tcp:22'
\toption duration '30'

config client 'laptop'
\toption key 'BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc='
\tlist   allow 'tcp:22'
\toption max_duration '3600'
";

    const KEY7: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    const KEY8: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";

    #[test]
    fn reads_the_design_sample() {
        let c = ok(DESIGN);
        assert_eq!(
            c.main,
            Main {
                enabled: true,
                interfaces: vec!["wan".to_string()],
                devices: vec![],
                backend: BackendKind::Auto,
                spa_port: 62201,
                max_skew: Duration::from_secs(120),
                log_level: log::LevelFilter::Info,
                spa_verify_budget: 1000,
                state_dir: "/var/run/postern".to_string(),
                user: None,
                user_line: 0,
                ..Main::default()
            }
        );
        assert_eq!(
            c.sequences,
            [Sequence {
                name: "ssh".to_string(),
                enabled: true,
                knocks: vec![
                    PortSpec::tcp(7000),
                    PortSpec::udp(8000),
                    PortSpec::tcp(9000)
                ],
                timeout: Duration::from_secs(10),
                action: Action::Open,
                ports: vec![PortSpec::tcp(22)],
                duration: Duration::from_secs(30),
            }]
        );
    }

    #[test]
    fn defaults() {
        let c = ok("");
        assert_eq!(c.main, Main::default());
        assert!(c.sequences.is_empty());
        let c = ok("config sequence\n\tlist knock tcp:1\n\tlist open tcp:2\n");
        let s = &c.sequences[0];
        assert!(s.enabled);
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.action, Action::Open);
        assert_eq!(s.duration, Duration::from_secs(30));
        assert_eq!(s.name, "@sequence[0]");
    }

    #[test]
    fn main_options() {
        let c = ok("config postern\n\toption enabled off\n\tlist interface wan\n\tlist interface lan_2\n\tlist device eth0.2\n\tlist device br-lan\n\toption backend dry-run\n\toption spa_port 4000\n\toption max_skew 1\n\toption log_level trace\n");
        let m = &c.main;
        assert!(!m.enabled);
        assert_eq!(m.interfaces, ["wan", "lan_2"]);
        assert_eq!(m.devices, ["eth0.2", "br-lan"]);
        assert_eq!(m.backend, BackendKind::DryRun);
        assert_eq!(m.spa_port, 4000);
        assert_eq!(m.max_skew, Duration::from_secs(1));
        assert_eq!(m.log_level, log::LevelFilter::Trace);
        let one = ok("config postern\n\toption interface wan\n");
        assert_eq!(one.main.interfaces, ["wan"], "an option is a one-item list");
    }

    #[test]
    fn booleans_like_uci() {
        for (word, want) in [
            ("1", true),
            ("yes", true),
            ("on", true),
            ("true", true),
            ("enabled", true),
            ("0", false),
            ("no", false),
            ("off", false),
            ("false", false),
            ("disabled", false),
        ] {
            let c = ok(&format!("config postern\n\toption enabled '{word}'\n"));
            assert_eq!(c.main.enabled, want, "{word}");
        }
        assert_eq!(
            err1("config postern\n\toption enabled 2\n"),
            (
                2,
                "enabled '2' is not a boolean (use 1/0, yes/no, on/off, true/false)".to_string()
            )
        );
    }

    #[test]
    fn backends_and_levels() {
        for (word, want) in BACKENDS {
            let c = ok(&format!("config postern\n\toption backend {word}\n"));
            assert_eq!(c.main.backend, *want);
            assert_eq!(backend_name(*want), *word);
        }
        assert_eq!(
            err1("config postern\n\toption backend fw5\n"),
            (2, "backend 'fw5' is not valid (did you mean 'fw4'?) (expected one of: auto, fw4, fw3, nft, dry-run)".to_string())
        );
        assert_eq!(err1("config postern\n\n\toption log_level verbose\n").0, 3);
    }

    #[test]
    fn numbers() {
        assert_eq!(
            err1(&seq("\toption timeout '10s'\n")),
            (5, "timeout '10s' is not a number of seconds".to_string())
        );
        assert_eq!(
            err1(&seq("\toption timeout 3601\n")),
            (
                5,
                "timeout '3601' is out of range (1 to 3600 seconds)".to_string()
            )
        );
        assert_eq!(err1(&seq("\toption timeout 0\n")).0, 5);
        assert_eq!(err1(&seq("\toption timeout -1\n")).0, 5);
        assert_eq!(err1(&seq("\toption timeout 0x10\n")).0, 5);
        assert_eq!(err1(&seq("\toption duration 86401\n")).0, 5);
        assert_eq!(
            err1(&seq("\toption duration 99999999999999999999999\n")).0,
            5
        );
        let c = ok(&seq("\toption timeout 3600\n\toption duration 86400\n"));
        assert_eq!(c.sequences[0].timeout, Duration::from_secs(3600));
        assert_eq!(c.sequences[0].duration, Duration::from_secs(86400));
        assert_eq!(
            err1("config postern\n\toption spa_port 0\n"),
            (2, "spa_port '0' is not a port number (1-65535)".to_string())
        );
        assert_eq!(err1("config postern\n\toption max_skew 0\n").0, 2);
        assert_eq!(
            err1("config postern\n\toption spa_port ''\n"),
            (2, "option 'spa_port' is empty".to_string())
        );
    }

    #[test]
    fn knock_steps() {
        assert_eq!(
            err1("config sequence s\n\tlist knock tcp:1\n\tlist knock tcp:70000\n\tlist open tcp:22\n"),
            (3, "knock 'tcp:70000': bad port '70000' (expected 1-65535)".to_string())
        );
        let (line, msg) = err1("config sequence s\n\tlist knock tcp:1\n\tlist knock udp:2\n\tlist knock udp:2\n\tlist open tcp:22\n");
        assert_eq!(line, 4);
        assert!(
            msg.starts_with("knock step 3 'udp:2' repeats step 2: a TCP SYN retransmit"),
            "{msg}"
        );
        assert_eq!(
            err1("config sequence s\n\tlist open tcp:22\n"),
            (
                1,
                "sequence 's' has no knock steps: add lines such as list knock 'tcp:7000'"
                    .to_string()
            )
        );
        let mut text = "config sequence s\n\tlist open tcp:22\n".to_string();
        for p in 1..=33 {
            text.push_str(&format!("\tlist knock tcp:{}\n", 1000 + p));
        }
        assert_eq!(
            err1(&text),
            (
                3,
                "sequence 's' has 33 knock steps; at most 32 are allowed".to_string()
            )
        );
        text.truncate(text.rfind("\tlist knock").unwrap_or(0));
        assert_eq!(ok(&text).sequences[0].knocks.len(), 32);
        // Equal but not consecutive is fine.
        let c = ok("config sequence s\n\tlist knock tcp:1\n\tlist knock tcp:2\n\tlist knock tcp:1\n\tlist open tcp:22\n");
        assert_eq!(
            c.sequences[0].knocks,
            [PortSpec::tcp(1), PortSpec::tcp(2), PortSpec::tcp(1)]
        );
        assert_eq!(
            err1("config sequence s\n\toption knock 'tcp:1 tcp:2'\n\tlist open tcp:22\n"),
            (
                2,
                "'knock' holds several values in one option: write one 'list knock' line per value"
                    .to_string()
            )
        );
    }

    #[test]
    fn actions_and_ports() {
        let c = ok("config sequence s\n\tlist knock tcp:1\n\toption action close\n\tlist close tcp:22\n\tlist close udp:53\n\toption duration 5\n");
        let s = &c.sequences[0];
        assert_eq!(s.action, Action::Close);
        assert_eq!(s.ports, [PortSpec::tcp(22), PortSpec::udp(53)]);
        assert_eq!(
            err1(&seq("\tlist close tcp:23\n")),
            (5, "'close' ports in sequence 's', whose action is 'open': list the ports with 'list open' (or set option action 'close')".to_string())
        );
        let e = errs(
            "config sequence s\n\tlist knock tcp:1\n\toption action close\n\tlist open tcp:22\n",
        );
        assert_eq!(
            e,
            [
                (1, "sequence 's' has no ports to close: add lines such as list close 'tcp:22'".to_string()),
                (4, "'open' ports in sequence 's', whose action is 'close': list the ports with 'list close' (or set option action 'open')".to_string()),
            ]
        );
        assert_eq!(
            err1("config sequence s\n\tlist knock tcp:1\n"),
            (
                1,
                "sequence 's' has no ports to open: add lines such as list open 'tcp:22'"
                    .to_string()
            )
        );
        assert_eq!(err1(&seq("\toption action ban\n")).0, 5);
        assert_eq!(err1(&seq("\tlist open 'tcp'\n")).0, 5);
    }

    #[test]
    fn identical_knocks_in_two_enabled_sequences() {
        let two = "config sequence a\n\tlist knock tcp:1\n\tlist knock tcp:2\n\tlist open tcp:22\n\
                   config sequence b\n\tlist knock tcp:1\n\tlist knock tcp:2\n\tlist open tcp:80\n";
        let (line, msg) = err1(two);
        assert_eq!(line, 6);
        assert_eq!(msg, "sequence 'b' has the same knock steps as sequence 'a' (line 2): the daemon could not tell them apart");
        let c = ok(&format!("{two}\toption enabled 0\n"));
        assert_eq!(c.active_sequences().count(), 1);
    }

    #[test]
    fn knock_on_a_guarded_port() {
        let text = "config sequence a\n\tlist knock tcp:1\n\tlist open tcp:22\n\
                    config sequence b\n\tlist knock tcp:5\n\tlist knock tcp:22\n\tlist open tcp:80\n";
        let (line, msg) = err1(text);
        assert_eq!(line, 6);
        assert!(
            msg.starts_with(
                "knock step 2 'tcp:22' of sequence 'b' is a port that sequence 'a' guards"
            ),
            "{msg}"
        );
        // Only the same protocol counts, and disabled sequences guard nothing.
        ok(&text.replace("knock tcp:22", "knock udp:22"));
        ok(&format!("{text}\toption enabled 0\n"));
        let own =
            "config sequence a\n\tlist knock tcp:22\n\tlist knock tcp:1\n\tlist open tcp:22\n";
        assert_eq!(err1(own).0, 2);
    }

    #[test]
    fn too_many_sequences() {
        let mut text = String::new();
        for i in 0..=MAX_SEQUENCES {
            text.push_str(&format!(
                "config sequence\n\tlist knock tcp:{}\n\tlist open tcp:22\n",
                1000 + i
            ));
        }
        assert_eq!(
            err1(&text),
            (
                3 * MAX_SEQUENCES + 1,
                format!("too many sequences: at most {MAX_SEQUENCES} are allowed")
            )
        );
        let last = text.rfind("config sequence").unwrap_or(0);
        text.truncate(last);
        assert_eq!(ok(&text).sequences.len(), MAX_SEQUENCES);
    }

    #[test]
    fn unknown_sections_and_options() {
        assert_eq!(
            err1("config sequense x\n"),
            (1, "unknown section type 'sequense' (did you mean 'sequence'?) (known: postern, sequence, client, encoded, command, forward, peer)".to_string())
        );
        assert_eq!(
            err1(&seq("\toption timout 5\n")),
            (5, "unknown option 'timout' in sequence 's' (did you mean 'timeout'?) (known: enabled, knock, timeout, action, open, close, duration, on_open, on_close)".to_string())
        );
        assert_eq!(
            err1("config postern\n\toption zzz 1\n").1,
            "unknown option 'zzz' in config postern (known: enabled, interface, device, backend, spa_port, max_skew, source_skew, log_level, spa_verify_budget, state_dir, user, ban_threshold, ban_window, ban_duration, ban_ipv6_prefix, trusted)"
        );
        assert_eq!(
            err1(&format!("config client 'x'\n\toption key '{KEY7}'\n\tlist allow tcp:22\n\toption max_duraton 5\n")),
            (4, "unknown option 'max_duraton' in client 'x' (did you mean 'max_duration'?) (known: enabled, key, allow, max_duration, source, allow_other_address, require_address, fwknop_key, fwknop_hmac_key, fwknop_hmac_type, fwknop_timeout, knock_base, knock_proto, knock_timeout, command, forward, on_open, on_close, default_access)".to_string())
        );
    }

    #[test]
    fn one_postern_section() {
        assert_eq!(
            err1("config postern a\nconfig postern b\n"),
            (
                2,
                "second 'config postern' section (the first is on line 1): keep only one"
                    .to_string()
            )
        );
        // The same name twice is one section (uci merges them).
        let c = ok("config postern main\n\toption backend nft\nconfig postern main\n\toption log_level warn\n");
        assert_eq!(c.main.backend, BackendKind::Nft);
        assert_eq!(c.main.log_level, log::LevelFilter::Warn);
    }

    #[test]
    fn anonymous_names_count_all_sections_of_the_type() {
        let c = ok(
            "config sequence named\n\tlist knock tcp:1\n\tlist open tcp:22\n\
                    config client\n\toption key 'BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc='\n\tlist allow tcp:23\n\
                    config sequence\n\tlist knock tcp:2\n\tlist open tcp:22\n",
        );
        let names: Vec<&str> = c.sequences.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["named", "@sequence[1]"]);
        let (_, msg) = err1("config sequence\n\tlist knock tcp:1\n");
        assert!(
            msg.starts_with("sequence @sequence[0] has no ports"),
            "{msg}"
        );
    }

    #[test]
    fn list_for_a_single_option() {
        assert_eq!(
            err1(&seq("\tlist timeout 5\n")),
            (
                5,
                "'timeout' takes one value: write option timeout '…', not list timeout".to_string()
            )
        );
    }

    #[test]
    fn names_of_interfaces_and_devices() {
        assert_eq!(
            err1("config postern\n\tlist interface 'wan-1'\n"),
            (
                2,
                "interface 'wan-1' is not valid: UCI network names use letters, digits and _"
                    .to_string()
            )
        );
        assert_eq!(err1("config postern\n\tlist device 'a/b'\n").0, 2);
        assert_eq!(
            err1("config postern\n\tlist device 'abcdefghijklmnop'\n").0,
            2
        );
        assert_eq!(
            err1("config postern\n\tlist device ''\n"),
            (2, "empty value in list 'device'".to_string())
        );
    }

    #[test]
    fn collects_errors_from_all_sections_sorted() {
        let text = "config sequence a\n\tlist knock tcp:0\n\toption timeout x\n\
                    config postern\n\toption backend iptables\n\
                    config bogus\n\
                    config sequence b\n\tlist knock tcp:1\n\tlist open tcp:22\n\toption durration 3\n";
        let lines: Vec<usize> = errs(text).into_iter().map(|(l, _)| l).collect();
        assert_eq!(lines, [1, 2, 3, 5, 6, 10]);
        let e = parse_str("/etc/config/postern", text)
            .err()
            .unwrap_or_default();
        assert_eq!(
            e.get(1).map(|e| e.to_string()).unwrap_or_default(),
            "/etc/config/postern:2: knock 'tcp:0': bad port '0' (expected 1-65535)"
        );
    }

    #[test]
    fn schema_covers_every_section_type() {
        let schema = schema();
        assert_eq!(schema.len(), SECTION_TYPES.len());
        for (kind, options) in schema {
            assert!(
                !options.is_empty(),
                "section type {kind} has no options in options_of()"
            );
            assert!(options.contains(&"enabled"), "{kind}");
        }
    }

    #[test]
    fn summary_describes_everything() {
        let mut text = DESIGN.to_string();
        text.push_str("config sequence 'lock'\n\tlist knock udp:9\n\toption action close\n\tlist close tcp:22\n\toption enabled 0\n");
        let s = summary(&ok(&text));
        let want = "\
postern: enabled
backend: auto
interfaces: wan
devices: (none)
log level: info
spa port: udp:62201 (max clock skew 120s, 15s for the packet's source; at most 1000 verifications/s per client)
state dir: /var/run/postern
daemon user: postern (when started as root)
bans: 10 failure(s) within 60s ban a source for 300s (IPv4 per address, IPv6 per /64); trusted: none
sequences: 2 (1 enabled)
  ssh [enabled]: knock tcp:7000 -> udp:8000 -> tcp:9000 within 10s, then open tcp:22 for 30s
  lock [disabled]: knock udp:9 within 10s, then close tcp:22
clients: 1 (1 enabled)
  laptop [enabled]: may open tcp:22 for up to 3600s, from anywhere
guarded ports: tcp:22
knock ports: tcp:7000, tcp:9000, udp:8000
knock volume: at most 240 knocks per 60s from one source network (IPv4 address, IPv6 /64), right or wrong; more are ignored
";
        assert_eq!(s, want);
    }

    fn client_text(extra: &str) -> String {
        format!("config client 'laptop'\n\toption key '{KEY7}'\n\tlist allow 'tcp:22'\n{extra}")
    }

    #[test]
    fn clients() {
        let c = ok(&client_text(
            "\tlist allow udp:53\n\toption max_duration 60\n\tlist source 192.0.2.0/24\n\tlist source 2001:db8::/32\n",
        ));
        let cl = &c.clients[0];
        assert_eq!(cl.name, "laptop");
        assert!(cl.enabled);
        assert_eq!(cl.key, Some(crate::spa::Key::from_bytes([7; 32])));
        assert_eq!(cl.fwknop, None);
        assert!(!cl.allow_other_address, "default: only the source");
        assert_eq!(cl.allow, [PortSpec::tcp(22), PortSpec::udp(53)]);
        assert_eq!(cl.max_duration, Duration::from_secs(60));
        assert_eq!(cl.sources.len(), 2);
        assert_eq!(c.guarded_ports(), [PortSpec::tcp(22), PortSpec::udp(53)]);
        assert_eq!(c.spa_port(), Some(62201));
        assert_eq!(c.capture_ports(), [PortSpec::udp(62201)]);
        let d = ok(&client_text(""));
        assert_eq!(
            d.clients[0].max_duration,
            Duration::from_secs(300),
            "default"
        );
        assert!(d.clients[0].sources.is_empty());
        let off = ok(&client_text("\toption enabled 0\n"));
        assert_eq!(off.spa_port(), None, "no enabled client: SPA is off");
        assert!(off.guarded_ports().is_empty());
        assert!(off.capture_ports().is_empty());
    }

    #[test]
    fn client_errors() {
        assert_eq!(
            err1("config client 'a'\n\tlist allow tcp:22\n"),
            (
                1,
                "client 'a' has no key: add option key '…' (make one with 'postern keygen'), \
                 or fwknop_key and fwknop_hmac_key for fwknop clients"
                    .to_string()
            )
        );
        assert_eq!(
            err1(&format!("config client 'a'\n\toption key '{KEY7}'\n")),
            (
                1,
                "client 'a' may do nothing: add lines such as list allow 'tcp:22' (or list command / list forward)".to_string()
            )
        );
        assert_eq!(
            err1("config client 'a'\n\toption key 'c2VjcmV0'\n\tlist allow tcp:22\n"),
            (2, "key is not valid: decodes to 6 bytes, a key has 32 (make one with 'postern keygen')".to_string())
        );
        let (line, msg) = err1("config client 'a'\n\toption key 'secret!'\n\tlist allow tcp:22\n");
        assert_eq!(line, 2);
        assert!(!msg.contains("secret"), "the key is never echoed: {msg}");
        assert_eq!(
            err1(&client_text("\tlist allow tcp:0\n")),
            (
                4,
                "allow 'tcp:0': bad port '0' (expected 1-65535)".to_string()
            )
        );
        assert_eq!(
            err1(&client_text("\tlist source 192.0.2.1/24\n")),
            (
                4,
                "source '192.0.2.1/24': host bits set past the prefix; did you mean 192.0.2.0/24?"
                    .to_string()
            )
        );
        assert_eq!(err1(&client_text("\toption max_duration 0\n")).0, 4);
        assert_eq!(err1(&client_text("\toption max_duration 86401\n")).0, 4);
    }

    #[test]
    fn clients_across_sections() {
        let two = format!(
            "{}config client 'b'\n\toption key '{KEY7}'\n\tlist allow tcp:80\n",
            client_text("")
        );
        assert_eq!(
            err1(&two),
            (5, "client 'b' has the same key as client 'laptop' (line 2): give each client its own key".to_string())
        );
        ok(&two.replacen(KEY7, KEY8, 2).replacen(KEY8, KEY7, 1));
        ok(&format!("{two}\toption enabled 0\n"));
        let knock = format!(
            "{}config sequence s\n\tlist knock tcp:22\n\tlist knock tcp:1\n\tlist open tcp:80\n",
            client_text("")
        );
        let (line, msg) = err1(&knock);
        assert_eq!(line, 5);
        assert!(
            msg.starts_with(
                "knock step 1 'tcp:22' of sequence 's' is a port that client 'laptop' guards"
            ),
            "{msg}"
        );
        let spa_knock = format!("config postern\n\toption spa_port 8000\n{}config sequence s\n\tlist knock udp:8000\n\tlist open tcp:80\n", client_text(""));
        assert_eq!(
            err1(&spa_knock),
            (
                2,
                "spa_port 8000 is a knock step of sequence 's': pick another port for one of them"
                    .to_string()
            )
        );
        let spa_guarded = client_text("\tlist allow udp:62201\n");
        let (line, msg) = err1(&spa_guarded);
        assert_eq!(line, 1);
        assert!(
            msg.starts_with("spa_port 62201 is a port that 'laptop' guards"),
            "{msg}"
        );
        let mut many = String::new();
        for i in 0..=MAX_CLIENTS {
            let key = crate::spa::Key::from_bytes([i as u8; 32]).to_base64();
            many.push_str(&format!(
                "config client\n\toption key '{key}'\n\tlist allow tcp:22\n"
            ));
        }
        assert_eq!(
            err1(&many),
            (3 * MAX_CLIENTS + 1, format!("too many enabled clients: at most {MAX_CLIENTS} (each costs one pre-filter check per packet)"))
        );
    }

    #[test]
    fn source_skew_and_require_address() {
        let c = ok("config postern\n\toption source_skew 5\n");
        assert_eq!(c.main.source_skew, Duration::from_secs(5));
        assert_eq!(
            ok("").main.source_skew,
            Duration::from_secs(crate::config::DEFAULT_SOURCE_SKEW)
        );
        assert_eq!(
            err1("config postern\n\toption source_skew 0\n").0,
            2,
            "1 to 86400 s"
        );
        let text = format!(
            "config client 'laptop'\n\toption key '{}'\n\tlist allow tcp:22\n\toption require_address 1\n",
            crate::spa::Key::from_bytes([9; 32]).to_base64()
        );
        let c = ok(&text);
        assert!(c.clients[0].require_address);
        assert!(summary(&c).contains("laptop [enabled]: may open tcp:22 for up to 300s, from anywhere, only with an explicit address"), "{}", summary(&c));
        let bad = text.replace("require_address 1", "require_address maybe");
        assert_eq!(err1(&bad).0, 4, "file:line of the option");
    }

    #[test]
    fn spa_main_options() {
        let c = ok("config postern\n\toption spa_verify_budget 32\n\toption state_dir '/tmp/p'\n");
        assert_eq!(c.main.spa_verify_budget, 32);
        assert_eq!(c.main.state_dir, "/tmp/p");
        assert_eq!(c.main.user, None);
        let c = ok("config postern\n\toption user 'postern'\n");
        assert_eq!(c.main.user.as_deref(), Some("postern"));
        assert_eq!(
            err1("config postern\n\toption user '../root'\n"),
            (2, "user '../root' is not a user name".to_string())
        );
        assert_eq!(
            err1("config postern\n\toption spa_verify_budget 31\n"),
            (
                2,
                "spa_verify_budget '31' is not a number from 32 to 1000000".to_string()
            )
        );
        assert_eq!(
            err1("config postern\n\toption state_dir 'var/run'\n"),
            (2, "state_dir 'var/run' is not an absolute path".to_string())
        );
    }

    #[test]
    fn ban_options() {
        let c = ok("config postern\n\toption ban_threshold 3\n\toption ban_window 10\n\toption ban_duration 0\n\tlist trusted 192.0.2.0/24\n\tlist trusted 2001:db8::/32\n");
        let m = &c.main;
        assert_eq!(m.ban_threshold, 3);
        assert_eq!(m.ban_window, Duration::from_secs(10));
        assert_eq!(m.ban_duration, Duration::ZERO);
        assert_eq!(m.trusted.len(), 2);
        assert!(summary(&c).contains("bans: off (ban_duration 0)"));
        assert_eq!(m.ban_ipv6_prefix, 64);
        let p = ok("config postern\n\toption ban_ipv6_prefix 56\n");
        assert_eq!(p.main.ban_ipv6_prefix, 56);
        assert!(summary(&p).contains("IPv6 per /56"));
        for bad in ["31", "129", "64x", "-1"] {
            assert_eq!(
                err1(&format!(
                    "config postern\n\toption ban_ipv6_prefix '{bad}'\n"
                )),
                (
                    2,
                    format!("ban_ipv6_prefix '{bad}' is not a number from 32 to 128")
                )
            );
        }
        let d = ok("");
        assert_eq!(d.main.ban_threshold, 10);
        assert_eq!(d.main.ban_duration, Duration::from_secs(300));
        assert!(summary(&d)
            .contains("bans: 10 failure(s) within 60s ban a source for 300s (IPv4 per address, IPv6 per /64); trusted: none"));
        assert_eq!(
            errs("config postern\n\toption ban_threshold 0\n\toption ban_window 0\n\toption ban_duration 86401\n\tlist trusted 10.0.0.1/8\n"),
            [
                (2, "ban_threshold '0' is not a number from 1 to 100000".to_string()),
                (3, "ban_window '0' is out of range (1 to 86400 seconds)".to_string()),
                (4, "ban_duration '86401' is out of range (0 to 86400 seconds)".to_string()),
                (5, "trusted '10.0.0.1/8': host bits set past the prefix; did you mean 10.0.0.0/8?".to_string()),
            ]
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(distance("timout", "timeout"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(did_you_mean("xyz", SEQUENCE_OPTIONS), "");
        assert_eq!(
            did_you_mean("knocks", SEQUENCE_OPTIONS),
            " (did you mean 'knock'?)"
        );
    }

    #[test]
    fn default_access_is_a_subset_of_allow_and_refused_with_its_line() {
        let c = ok(&client_text(
            "\tlist allow 'udp:53'\n\tlist default_access 'tcp:22'\n",
        ));
        assert_eq!(c.clients[0].default_access, [PortSpec::tcp(22)]);
        assert!(ok(&client_text("")).clients[0].default_access.is_empty());
        assert_eq!(
            err1(&client_text("\tlist default_access 'tcp:22'\n\tlist default_access 'tcp:80'\n")),
            (
                5,
                "default_access tcp:80 is not in the client's allow list: add list allow 'tcp:80' or remove it"
                    .to_string()
            )
        );
        assert_eq!(err1(&client_text("\tlist default_access 'tcp:0'\n")).0, 4);
    }
}
