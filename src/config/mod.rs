//! Configuration: UCI files (`/etc/config/postern`) into a typed, validated [`Config`].
//!
//! [`uci`] reads libuci's syntax into untyped sections with line numbers;
//! [`typed`] turns those into a [`Config`] and validates it. Every error names
//! `file:line` and what is wrong; a file with errors yields no `Config` at all,
//! so a running daemon keeps its old one. No I/O here but [`load`] reading the file.

use core::fmt;
use core::time::Duration;
use std::path::Path;

use crate::cidr::Cidr;
use crate::knock::encoded::EncodedShape;
use crate::knock::totp::TotpShape;
use crate::port::{L4Proto, PortRange, PortSpec};
use crate::spa::Key;

pub mod actions;
pub mod hooks;
pub mod peer;
pub mod typed;
pub mod uci;

pub use actions::{Command, Forward, NamedForward, MAX_COMMANDS, MAX_FORWARDS};
pub use hooks::Hooks;

/// Most knock steps in one sequence.
pub const MAX_SEQUENCE_STEPS: usize = 32;
/// Most sequences in one configuration.
pub const MAX_SEQUENCES: usize = 64;
/// Most enabled SPA clients: also the most AEAD verifications one packet can cause.
pub const MAX_CLIENTS: usize = 32;
/// Default `option max_duration` of a client, in seconds.
pub const DEFAULT_MAX_DURATION: u64 = 300;
/// Default `option fwknop_timeout` of a client, in seconds (fwknopd's default).
pub const DEFAULT_FWKNOP_TIMEOUT: u64 = 30;
/// Default `option source_skew`: seconds of timestamp window for SPA packets
/// that ask for the packet's source (a stolen one is usable only that long).
pub const DEFAULT_SOURCE_SKEW: u64 = 15;
/// Default `option spa_verify_budget`: verifications per second for each client's
/// native packets (those that passed its pre-filter), and for the fwknop path.
pub const DEFAULT_VERIFY_BUDGET: u32 = 1000;
/// Default `option state_dir`: tmpfs on OpenWrt, so the replay state never wears flash.
pub const DEFAULT_STATE_DIR: &str = "/var/run/postern";

/// A validated postern configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `config postern` section (defaults if absent).
    pub main: Main,
    /// `config sequence` sections in file order (disabled ones included).
    pub sequences: Vec<Sequence>,
    /// `config client` sections (SPA keys) in file order (disabled ones included).
    pub clients: Vec<Client>,
    /// Knocks that carry information: TOTP sequences, encoded profiles,
    /// clients' knock ranges (see `docs/knock-modes.md`).
    pub knock_modes: KnockModes,
    /// `config command` sections in file order (disabled ones included).
    pub commands: Vec<Command>,
    /// `config forward` sections in file order (disabled ones included).
    pub forwards: Vec<NamedForward>,
    /// `config peer` sections in file order (disabled ones included).
    pub peers: Vec<peer::Peer>,
    /// The `on_open`/`on_close` hooks of sequences and clients (those that set any).
    pub hooks: Vec<Hooks>,
}

/// The knock modes beyond static sequences.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KnockModes {
    /// `config sequence` sections with a `key`: time-derived sequences.
    pub totp: Vec<TotpSequence>,
    /// `config encoded` sections.
    pub encoded: Vec<Encoded>,
    /// The knock side of `config client` sections with a `knock_base`.
    pub clients: Vec<ClientKnock>,
}

/// A `config sequence` with `key` + `period`: the knocks change every period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpSequence {
    /// The section name, or `@sequence[N]`.
    pub name: String,
    /// `option enabled` (default true).
    pub enabled: bool,
    /// `option key`: 32 bytes, base64.
    pub key: Key,
    /// `knock_proto`, `knock_base`, `knock_range`, `length`, `period`.
    pub shape: TotpShape,
    /// `option timeout` seconds from first to last knock (default 10).
    pub timeout: Duration,
    /// `option action` open | close (default open).
    pub action: Action,
    /// `list open` / `list close`.
    pub ports: Vec<PortSpec>,
    /// `option duration` seconds (default 30).
    pub duration: Duration,
}

/// A `config encoded` section: sequences that spell the port to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The section name, or `@encoded[N]`.
    pub name: String,
    /// `option enabled` (default true).
    pub enabled: bool,
    /// `knock_base`, `width`, `list header`, `list footer`, `port_digits`, `duration_digits`.
    pub shape: EncodedShape,
    /// `list allow`: the ports a sequence may ask for.
    pub allow: Vec<PortSpec>,
    /// `option duration` seconds when none is asked for (default 30).
    pub duration: Duration,
    /// `option max_duration` seconds (default 3600).
    pub max_duration: Duration,
    /// `option timeout`: most seconds between two knocks (default 10).
    pub timeout: Duration,
}

/// A client's authenticated knock range (`option knock_base` in `config client`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKnock {
    /// The client's name (its key, allowed ports, sources and max_duration apply).
    pub client: String,
    /// `option knock_base`: first of the 512 ports.
    pub base: u16,
    /// `option knock_proto` (default tcp).
    pub proto: L4Proto,
    /// `option knock_timeout`: most seconds between two knocks (default 10).
    pub timeout: Duration,
}

/// A `config client` section: one SPA key and what it may open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The section name (`config client 'laptop'`), or `@client[N]` when anonymous.
    pub name: String,
    /// `option enabled` (default true).
    pub enabled: bool,
    /// `option key`: 32 bytes, base64 (native packets). A client has this key,
    /// fwknop keys, or both.
    pub key: Option<Key>,
    /// The `fwknop_*` options: this client's fwknop keys (fwknop packets).
    pub fwknop: Option<FwknopClient>,
    /// `list allow`: the ports this client may open or close (a client needs
    /// at least one of `allow`, `command` or `forward`).
    pub allow: Vec<PortSpec>,
    /// `option max_duration` seconds (default [`DEFAULT_MAX_DURATION`]).
    pub max_duration: Duration,
    /// `list source`: networks the packet may come from (empty: anywhere).
    pub sources: Vec<Cidr>,
    /// `option allow_other_address` (default false): whether a request may
    /// name an address other than the packet's source (`-a`); when false only
    /// the source itself (`-s`, or `-a` with the source's own address) is opened.
    pub allow_other_address: bool,
    /// `option require_address` (default false): refuse packets that do not
    /// name an explicit address (native `-s`, fwknop's `0.0.0.0`), so a
    /// captured packet re-sent from another address is worth nothing.
    pub require_address: bool,
    /// `list command`: the `config command` names this client may run.
    pub commands: Vec<String>,
    /// `list forward`: the `config forward` names this client may open.
    pub forwards: Vec<String>,
    /// `list default_access`: what a request without ports opens (or
    /// closes): server-chosen ports, a subset of `allow` (empty: such a
    /// request is refused).
    pub default_access: Vec<PortSpec>,
}

/// A client's fwknop settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwknopClient {
    /// `fwknop_key`, `fwknop_hmac_key` (base64) and `fwknop_hmac_type`
    /// (sha256 | sha1 | sha384 | sha512, default sha256).
    pub keys: crate::spa::fwknop::Keys,
    /// `option fwknop_timeout` seconds (default [`DEFAULT_FWKNOP_TIMEOUT`], at
    /// most `max_duration`): how long a request without a client timeout
    /// (`fwknop -f`) opens, like fwknopd's `FW_ACCESS_TIMEOUT`.
    pub timeout: Duration,
}

/// Firewall backend choice (`option backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// fw4 when `fw4` is installed, else standalone nft.
    Auto,
    /// Sets `postern_allow4/6` inside OpenWrt's `table inet fw4`.
    Fw4,
    /// OpenWrt <= 21.02 (iptables + ipset); not built yet.
    Fw3,
    /// postern's own `table inet postern`.
    Nft,
    /// Log decisions, touch nothing.
    DryRun,
}

/// The `config postern` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Main {
    /// `option enabled` (default true).
    pub enabled: bool,
    /// `list interface`: UCI network names, resolved to devices by the init script.
    pub interfaces: Vec<String>,
    /// `list device`: capture devices used when `-i` is not given.
    pub devices: Vec<String>,
    /// `option backend` (default auto).
    pub backend: BackendKind,
    /// `option spa_port` (default 62201; used by SPA).
    pub spa_port: u16,
    /// `option max_skew` seconds (default 120; used by SPA).
    pub max_skew: Duration,
    /// `option source_skew` seconds (default [`DEFAULT_SOURCE_SKEW`]): the
    /// timestamp window of SPA packets that ask for the packet's source
    /// (no address sealed in them), when shorter than `max_skew`.
    pub source_skew: Duration,
    /// `option log_level`: error | warn | info | debug | trace (default info).
    pub log_level: log::LevelFilter,
    /// `option spa_verify_budget`: verifications per second, for each client's
    /// native packets (AEADs of packets that passed its pre-filter) and,
    /// separately, for all fwknop packets (HMACs); packets beyond it are
    /// dropped and counted (default 1000). Junk never reaches a native budget.
    pub spa_verify_budget: u32,
    /// `option state_dir`: where the daemon keeps the SPA replay state
    /// (default `/var/run/postern`, tmpfs).
    pub state_dir: String,
    /// `option user`: the user a daemon started as root runs as (default
    /// [`crate::privileges::DEFAULT_USER`] when it exists; `root` keeps uid 0).
    pub user: Option<String>,
    /// The line of `option user` (0 when not set), for errors.
    pub user_line: usize,
    /// `option ban_threshold`: failures within `ban_window` that ban a source
    /// (1..=100000, default [`crate::bans::DEFAULT_BAN_THRESHOLD`]).
    pub ban_threshold: u32,
    /// `option ban_window` seconds over which failures are counted (1..=86400, default 60).
    pub ban_window: Duration,
    /// `option ban_duration` seconds a ban lasts (0..=86400, default 300; 0 disables bans).
    pub ban_duration: Duration,
    /// `option ban_ipv6_prefix`: IPv6 failures are counted and banned per
    /// network of this prefix length (32..=128, default
    /// [`crate::bans::DEFAULT_BAN_IPV6_PREFIX`]); IPv4 always per address.
    pub ban_ipv6_prefix: u8,
    /// `list trusted`: networks never banned (default none).
    pub trusted: Vec<Cidr>,
}

impl Default for Main {
    fn default() -> Main {
        Main {
            enabled: true,
            interfaces: Vec::new(),
            devices: Vec::new(),
            backend: BackendKind::Auto,
            spa_port: 62201,
            max_skew: Duration::from_secs(120),
            source_skew: Duration::from_secs(DEFAULT_SOURCE_SKEW),
            log_level: log::LevelFilter::Info,
            spa_verify_budget: DEFAULT_VERIFY_BUDGET,
            state_dir: DEFAULT_STATE_DIR.to_string(),
            user: None,
            user_line: 0,
            ban_threshold: crate::bans::DEFAULT_BAN_THRESHOLD,
            ban_window: crate::bans::DEFAULT_BAN_WINDOW,
            ban_duration: crate::bans::DEFAULT_BAN_DURATION,
            ban_ipv6_prefix: crate::bans::DEFAULT_BAN_IPV6_PREFIX,
            trusted: Vec::new(),
        }
    }
}

/// What a completed sequence does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Allow the knocking source to the sequence's ports for `duration`.
    Open,
    /// Remove the knocking source's grant on the sequence's ports now.
    Close,
}

/// A `config sequence` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// The section name (`config sequence 'ssh'`), or `@sequence[N]` when anonymous.
    pub name: String,
    /// `option enabled` (default true).
    pub enabled: bool,
    /// `list knock`: 1..=32 steps, no two consecutive steps equal.
    pub knocks: Vec<PortSpec>,
    /// `option timeout` seconds from first to last knock (default 10).
    pub timeout: Duration,
    /// `option action` open | close (default open).
    pub action: Action,
    /// `list open` (action open) or `list close` (action close): the ports acted on.
    pub ports: Vec<PortSpec>,
    /// `option duration` seconds a grant stays open for new connections (default 30).
    pub duration: Duration,
}

impl Config {
    /// Whether the file holds secrets: every client has a key (native or
    /// fwknop), every time-derived sequence too.
    pub fn has_secrets(&self) -> bool {
        !self.clients.is_empty() || !self.knock_modes.totp.is_empty() || !self.peers.is_empty()
    }

    /// The enabled sequences.
    pub fn active_sequences(&self) -> impl Iterator<Item = &Sequence> {
        self.sequences.iter().filter(|s| s.enabled)
    }

    /// The enabled SPA clients.
    pub fn active_clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.iter().filter(|c| c.enabled)
    }

    /// The enabled commands, in file order (the order SPA decisions index).
    pub fn active_commands(&self) -> impl Iterator<Item = &Command> {
        self.commands.iter().filter(|c| c.enabled)
    }

    /// The enabled forwards, in file order (the order SPA decisions index).
    pub fn active_forwards(&self) -> impl Iterator<Item = &NamedForward> {
        self.forwards.iter().filter(|f| f.forward.enabled)
    }

    /// The enabled peers (the other routers of a VRRP pair).
    pub fn active_peers(&self) -> impl Iterator<Item = &peer::Peer> {
        self.peers.iter().filter(|p| p.enabled)
    }

    /// The enabled TOTP sequences.
    pub fn active_totp(&self) -> impl Iterator<Item = &TotpSequence> {
        self.knock_modes.totp.iter().filter(|s| s.enabled)
    }

    /// The enabled encoded profiles.
    pub fn active_encoded(&self) -> impl Iterator<Item = &Encoded> {
        self.knock_modes.encoded.iter().filter(|s| s.enabled)
    }

    /// Enabled clients with a knock range, with their knock settings.
    pub fn active_client_knocks(&self) -> impl Iterator<Item = (&Client, &ClientKnock)> {
        self.knock_modes.clients.iter().filter_map(|k| {
            self.active_clients()
                .find(|c| c.name == k.client)
                .map(|c| (c, k))
        })
    }

    /// Port ranges the knock modes listen on (TOTP, encoded, client knock ranges).
    pub fn knock_ranges(&self) -> Vec<PortRange> {
        let mut v = Vec::new();
        for s in self.active_totp() {
            v.push(PortRange {
                proto: s.shape.proto,
                first: s.shape.base,
                last: (u32::from(s.shape.base) + u32::from(s.shape.range) - 1) as u16,
            });
        }
        for e in self.active_encoded() {
            let mut protos: Vec<L4Proto> = e.allow.iter().map(|p| p.proto).collect();
            protos.sort();
            protos.dedup();
            for proto in protos {
                v.push(PortRange {
                    proto,
                    first: e.shape.alphabet.base,
                    last: e.shape.alphabet.last() as u16,
                });
            }
        }
        for (_, k) in self.active_client_knocks() {
            let a = crate::knock::authenticated::alphabet(k.base);
            v.push(PortRange {
                proto: k.proto,
                first: k.base,
                last: a.last() as u16,
            });
        }
        v.sort();
        v
    }

    /// What the capture filter passes: [`Self::capture_ports`] and [`Self::knock_ranges`].
    pub fn capture_ranges(&self) -> Vec<PortRange> {
        let mut v: Vec<PortRange> = self
            .capture_ports()
            .into_iter()
            .map(PortRange::single)
            .collect();
        v.extend(self.knock_ranges());
        v.sort();
        v.dedup();
        v
    }

    /// The SPA port when at least one client is enabled.
    pub fn spa_port(&self) -> Option<u16> {
        self.active_clients().next().map(|_| self.main.spa_port)
    }

    /// Ports the firewall must keep closed: every port an enabled sequence (static
    /// or TOTP) opens or closes, every port an enabled client or encoded profile
    /// may open, sorted and without duplicates.
    pub fn guarded_ports(&self) -> Vec<PortSpec> {
        let mut v: Vec<PortSpec> = self
            .active_sequences()
            .flat_map(|s| s.ports.iter().copied())
            .chain(self.active_clients().flat_map(|c| c.allow.iter().copied()))
            .chain(self.active_totp().flat_map(|s| s.ports.iter().copied()))
            .chain(self.active_encoded().flat_map(|e| e.allow.iter().copied()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Ports the capture filter passes: the knock ports and, with SPA clients,
    /// `udp:spa_port`; sorted, deduplicated.
    pub fn capture_ports(&self) -> Vec<PortSpec> {
        let mut v = self.knock_ports();
        if let Some(p) = self.spa_port() {
            v.push(PortSpec {
                proto: L4Proto::Udp,
                port: p,
            });
        }
        v.sort();
        v.dedup();
        v
    }

    /// Ports a knock can arrive on (every step of every enabled sequence), sorted, deduplicated.
    pub fn knock_ports(&self) -> Vec<PortSpec> {
        let mut v: Vec<PortSpec> = self
            .active_sequences()
            .flat_map(|s| s.knocks.iter().copied())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The warning for a config file holding secrets that group or others may
/// read (`mode` is its `st_mode`); `None` when it is private enough (0600, 0400…)
/// or holds no secret.
pub fn permission_warning(path: &str, mode: u32, has_secrets: bool) -> Option<String> {
    if !has_secrets || mode & 0o077 == 0 {
        return None;
    }
    Some(format!(
        "{path} holds keys but is readable or writable by group or others (mode {:04o}): run 'chmod 600 {path}'",
        mode & 0o7777
    ))
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given.
    pub file: String,
    /// 1-based line number (0 when the error is about the whole file).
    pub line: usize,
    /// What is wrong, in words a router owner understands.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// Parses and validates UCI text; `file` is used in error messages only.
/// Returns every error found, not just the first.
pub fn parse_str(file: &str, text: &str) -> Result<Config, Vec<ConfigError>> {
    let sections = uci::parse(file, text)?;
    typed::from_sections(file, &sections)
}

/// Reads and validates a UCI file (invalid UTF-8 is refused with its line).
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        vec![ConfigError {
            file: file.clone(),
            line: 0,
            message: format!("cannot read: {e}"),
        }]
    })?;
    let mut cfg = parse_bytes(&file, &bytes)?;
    peer::read_key_files(&file, &mut cfg)?;
    Ok(cfg)
}

/// Parses and validates UCI bytes as read from `file` (invalid UTF-8 is
/// refused with its line); `file` is used in error messages only.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> Result<Config, Vec<ConfigError>> {
    let sections = uci::parse_bytes(file, bytes)?;
    typed::from_sections(file, &sections)
}

#[cfg(test)]
mod permission_tests {
    use super::*;

    #[test]
    fn warns_only_for_exposed_secrets() {
        assert_eq!(
            permission_warning("/etc/config/postern", 0o100600, true),
            None
        );
        assert_eq!(
            permission_warning("/etc/config/postern", 0o100400, true),
            None
        );
        assert_eq!(
            permission_warning("/etc/config/postern", 0o100644, false),
            None
        );
        assert_eq!(
            permission_warning("/etc/config/postern", 0o100644, true).unwrap(),
            "/etc/config/postern holds keys but is readable or writable by group or others (mode 0644): run 'chmod 600 /etc/config/postern'"
        );
        assert!(permission_warning("p", 0o100620, true).is_some());
        let with_client = parse_str(
            "t",
            "config client 'c'\n\toption key 'BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc='\n\tlist allow 'tcp:22'\n",
        )
        .unwrap();
        assert!(with_client.has_secrets());
        assert!(!parse_str("t", "").unwrap().has_secrets());
    }
}
