//! `postern status`: what the running daemon reports, as JSON and as text.
//!
//! The daemon builds a [`Snapshot`] on request (not per packet) and the
//! control socket sends it; the CLI prints it. JSON is written by hand (a
//! few dozen lines, no serde in a router binary). No I/O here.

use core::fmt::Write;

use crate::bans::BanTable;
use crate::capture::Statistics;
use crate::engine::Counters;
use crate::forward_grants::ForwardTable;
use crate::grants::GrantTable;
use crate::spa::Refusal;
use crate::status_view::{human, Table};
use crate::time::Millis;
use crate::wire::Reject;

/// One live grant as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantView {
    /// Allowed address.
    pub addr: String,
    /// `proto:port`.
    pub port: String,
    /// Sequence or client that granted it.
    pub origin: String,
    /// Seconds until the kernel removes it.
    pub expires_in_s: u64,
}

/// One live ban as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanView {
    /// Banned network: an IPv4 address, an IPv6 network of `ban_ipv6_prefix`
    /// bits as `ADDR/LEN` ([`crate::bans::NetText`]); named `addr` in the
    /// JSON, as LuCI reads it.
    pub addr: String,
    /// Seconds until the kernel lifts it.
    pub expires_in_s: u64,
}

/// One live forward grant as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardView {
    /// The address let through.
    pub addr: String,
    /// The forward's name.
    pub forward: String,
    /// `proto:port -> host:port` (IPv4) or `-> [host]:port` (IPv6).
    pub path: String,
    /// The client that asked.
    pub client: String,
    /// Seconds until the kernel removes it.
    pub expires_in_s: u64,
}

/// One peer router as shown to the user (see [`crate::peer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// The `config peer` name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Heard from within [`crate::peer::link::REACHABLE`].
    pub reachable: bool,
    /// Seconds since it last sent state (None: never).
    pub last_sync_s_ago: Option<u64>,
    /// Its link's counters.
    pub counters: crate::peer::PeerCounters,
}

/// One running command as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandView {
    /// The command's name.
    pub name: String,
    /// The client that asked.
    pub client: String,
    /// The packet's source.
    pub source: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds it has been running.
    pub running_s: u64,
}

/// A named group of counters (`knock`, `wire_rejected`, …).
pub type CounterGroup = (&'static str, Vec<(&'static str, u64)>);

/// Everything `postern status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// postern's version.
    pub version: &'static str,
    /// Seconds since the daemon started.
    pub uptime_s: u64,
    /// Firewall backend name.
    pub backend: String,
    /// Capture devices.
    pub devices: Vec<String>,
    /// Knock attempts in progress.
    pub knocks_in_progress: usize,
    /// Live grants, soonest expiry first.
    pub grants: Vec<GrantView>,
    /// Live bans, soonest expiry first (see [`Snapshot::with_bans`]).
    pub bans: Vec<BanView>,
    /// Live forward grants, soonest expiry first (see [`Snapshot::with_forwards`]).
    pub forwards: Vec<ForwardView>,
    /// Commands running now (see [`Snapshot::with_commands`]).
    pub commands: Vec<CommandView>,
    /// Counter groups.
    pub counters: Vec<CounterGroup>,
    /// Peer routers (see [`Snapshot::with_peers`]).
    pub peers: Vec<PeerView>,
    /// Why the last reload was refused, if it was (the running
    /// configuration is then older than the file); see [`Snapshot::with_reload_error`].
    pub last_reload_error: Option<String>,
}

impl Snapshot {
    /// Builds a snapshot from the daemon's state at `now`.
    pub fn collect(
        now: Millis,
        started: Millis,
        backend: &str,
        devices: &[String],
        knocks_in_progress: usize,
        grants: &GrantTable,
        counters: &Counters,
    ) -> Snapshot {
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: now.since(started) / 1000,
            backend: backend.to_string(),
            devices: devices.to_vec(),
            knocks_in_progress,
            grants: grants
                .sorted()
                .iter()
                .filter(|g| g.expires > now)
                .map(|g| GrantView {
                    addr: g.addr.to_string(),
                    port: g.port.to_string(),
                    origin: g.origin.to_string(),
                    expires_in_s: ceil_secs(g.remaining(now)),
                })
                .collect(),
            bans: Vec::new(),
            forwards: Vec::new(),
            peers: Vec::new(),
            commands: Vec::new(),
            counters: counter_groups(counters, grants),
            last_reload_error: None,
        }
    }

    /// Adds the live bans of `table` at `now`.
    pub fn with_bans(mut self, now: Millis, table: &BanTable) -> Snapshot {
        let mut bans: Vec<_> = table.active(now).collect();
        bans.sort_unstable_by_key(|b| (b.until, b.net.addr(), b.net.len()));
        self.bans = bans
            .iter()
            .map(|b| BanView {
                addr: crate::bans::NetText(b.net).to_string(),
                expires_in_s: ceil_secs(b.remaining(now)),
            })
            .collect();
        self
    }

    /// Adds the live forward grants of `table` at `now`.
    pub fn with_forwards(mut self, now: Millis, table: &ForwardTable) -> Snapshot {
        self.forwards = table
            .live(now)
            .iter()
            .map(|f| ForwardView {
                addr: f.addr.to_string(),
                forward: f.name.to_string(),
                path: f.forward.path_for(f.addr),
                client: f.client.to_string(),
                expires_in_s: ceil_secs(f.remaining(now)),
            })
            .collect();
        self
    }

    /// Adds why the last reload was refused (None: it succeeded, or none yet).
    pub fn with_reload_error(mut self, error: Option<String>) -> Snapshot {
        self.last_reload_error = error;
        self
    }

    /// Adds the peer routers.
    pub fn with_peers(mut self, peers: Vec<PeerView>) -> Snapshot {
        self.peers = peers;
        self
    }

    /// Adds the running commands.
    pub fn with_commands(mut self, commands: Vec<CommandView>) -> Snapshot {
        self.commands = commands;
        self
    }

    /// The JSON form (`postern status --json`, read by LuCI).
    pub fn to_json(&self) -> String {
        let mut j = String::with_capacity(1024);
        j.push('{');
        let _ = write!(j, "\"version\":{},", quote(self.version));
        let _ = write!(j, "\"uptime_s\":{},", self.uptime_s);
        let _ = write!(j, "\"backend\":{},", quote(&self.backend));
        j.push_str("\"devices\":[");
        join(&mut j, self.devices.iter(), |j, d| j.push_str(&quote(d)));
        let _ = write!(j, "],\"knocks_in_progress\":{},", self.knocks_in_progress);
        let _ = write!(
            j,
            "\"last_reload_error\":{},",
            self.last_reload_error
                .as_deref()
                .map_or("null".to_string(), quote)
        );
        j.push_str("\"grants\":[");
        join(&mut j, self.grants.iter(), |j, g| {
            let _ = write!(
                j,
                "{{\"addr\":{},\"port\":{},\"origin\":{},\"expires_in_s\":{}}}",
                quote(&g.addr),
                quote(&g.port),
                quote(&g.origin),
                g.expires_in_s
            );
        });
        j.push_str("],\"bans\":[");
        join(&mut j, self.bans.iter(), |j, b| {
            let _ = write!(
                j,
                "{{\"addr\":{},\"expires_in_s\":{}}}",
                quote(&b.addr),
                b.expires_in_s
            );
        });
        j.push_str("],\"forwards\":[");
        join(&mut j, self.forwards.iter(), |j, f| {
            let _ = write!(
                j,
                "{{\"addr\":{},\"forward\":{},\"path\":{},\"client\":{},\"expires_in_s\":{}}}",
                quote(&f.addr),
                quote(&f.forward),
                quote(&f.path),
                quote(&f.client),
                f.expires_in_s
            );
        });
        j.push_str("],\"commands\":[");
        join(&mut j, self.commands.iter(), |j, c| {
            let _ = write!(
                j,
                "{{\"name\":{},\"client\":{},\"source\":{},\"pid\":{},\"running_s\":{}}}",
                quote(&c.name),
                quote(&c.client),
                quote(&c.source),
                c.pid,
                c.running_s
            );
        });
        j.push_str("],\"counters\":{");
        join(&mut j, self.counters.iter(), |j, (group, values)| {
            let _ = write!(j, "{}:{{", quote(group));
            join(j, values.iter(), |j, (name, v)| {
                let _ = write!(j, "{}:{v}", quote(name));
            });
            j.push('}');
        });
        j.push_str("},\"peers\":[");
        join(&mut j, self.peers.iter(), |j, p| {
            let c = &p.counters;
            let _ = write!(
                j,
                "{{\"name\":{},\"address\":{},\"reachable\":{},\"last_sync_s_ago\":{},\"sent\":{},\"received\":{},\"items_received\":{},\"queue_drops\":{},\"send_errors\":{},\"forged\":{},\"replayed\":{},\"malformed\":{}}}",
                quote(&p.name),
                quote(&p.address),
                p.reachable,
                p.last_sync_s_ago.map_or("null".to_string(), |s| s.to_string()),
                c.sent,
                c.received,
                c.items_received,
                c.queue_drops,
                c.send_errors,
                c.forged,
                c.replayed,
                c.malformed
            );
        });
        j.push_str("]}\n");
        j
    }

    /// The human form (`postern status`).
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "postern {}, up {}, backend {}, devices {}",
            self.version,
            human(self.uptime_s),
            self.backend,
            if self.devices.is_empty() {
                "-".to_string()
            } else {
                self.devices.join(",")
            }
        );
        if let Some(e) = &self.last_reload_error {
            let _ = writeln!(
                t,
                "LAST RELOAD REFUSED (the running configuration is older than the file):"
            );
            for line in e.lines() {
                let _ = writeln!(t, "  {line}");
            }
        }
        let _ = writeln!(t, "knock attempts in progress: {}", self.knocks_in_progress);
        let _ = writeln!(t, "live grants: {}", self.grants.len());
        let mut table = Table::new("<<><");
        for g in &self.grants {
            table.row(vec![
                g.addr.clone(),
                g.port.clone(),
                human(g.expires_in_s),
                g.origin.clone(),
            ]);
        }
        table.write(&mut t);
        let _ = writeln!(t, "banned sources: {}", self.bans.len());
        let mut table = Table::new("<>");
        for b in &self.bans {
            table.row(vec![b.addr.clone(), human(b.expires_in_s)]);
        }
        table.write(&mut t);
        let _ = writeln!(t, "live forwards: {}", self.forwards.len());
        let mut table = Table::new("<<<><");
        for f in &self.forwards {
            table.row(vec![
                f.addr.clone(),
                f.forward.clone(),
                f.path.clone(),
                human(f.expires_in_s),
                f.client.clone(),
            ]);
        }
        table.write(&mut t);
        let _ = writeln!(t, "running commands: {}", self.commands.len());
        let mut table = Table::new("<>><<");
        for c in &self.commands {
            table.row(vec![
                c.name.clone(),
                c.pid.to_string(),
                human(c.running_s),
                c.client.clone(),
                c.source.clone(),
            ]);
        }
        table.write(&mut t);
        for p in &self.peers {
            let c = &p.counters;
            let _ = writeln!(
                t,
                "peer {} ({}): {}, last sync {}, sent {} received {}, drops {} (queue {}, send {}), refused {} forged {} replayed {} malformed",
                p.name,
                p.address,
                if p.reachable { "reachable" } else { "UNREACHABLE" },
                p.last_sync_s_ago.map_or("never".to_string(), |s| format!("{s} s ago")),
                c.sent,
                c.received,
                c.queue_drops + c.send_errors,
                c.queue_drops,
                c.send_errors,
                c.forged,
                c.replayed,
                c.malformed
            );
        }
        for (group, values) in &self.counters {
            let nonzero: Vec<String> = values
                .iter()
                .filter(|(_, v)| *v > 0)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            let shown = if nonzero.is_empty() {
                "all 0".to_string()
            } else {
                nonzero.join(" ")
            };
            let _ = writeln!(t, "{group}: {shown}");
        }
        t
    }
}

fn join<T>(out: &mut String, items: impl Iterator<Item = T>, mut each: impl FnMut(&mut String, T)) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item);
    }
}

/// A JSON string literal.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The capture sockets' counters as a group: frames that passed the kernel
/// filter, frames the kernel dropped because the daemon did not read in time
/// (lost knocks under a flood show here), and how many sockets read through a
/// receive ring or with `recvmsg`.
pub fn capture_group(stats: Statistics, ring: usize, recvmsg: usize) -> CounterGroup {
    (
        "capture",
        vec![
            ("frames", stats.frames),
            ("drops", stats.drops),
            ("other_host", stats.other_host),
            ("ring", ring as u64),
            ("recvmsg", recvmsg as u64),
        ],
    )
}

/// The engine's counters as named groups.
pub fn counter_groups(c: &Counters, grants: &GrantTable) -> Vec<CounterGroup> {
    let k = &c.knock;
    vec![
        (
            "packets",
            vec![
                ("frames", c.frames),
                ("rejected", c.rejected.total()),
                ("tcp_not_syn", c.tcp_not_syn),
            ],
        ),
        (
            "wire_rejected",
            Reject::ALL
                .iter()
                .map(|r| (r.name(), c.rejected.get(*r)))
                .collect(),
        ),
        (
            "knock",
            vec![
                ("knocks", k.knocks),
                ("not_knock_port", k.not_knock_port),
                ("steps_matched", k.steps_matched),
                ("duplicates", k.duplicates),
                ("resets", k.resets),
                ("timeouts", k.timeouts),
                ("completed", k.completed),
                ("evictions", k.evictions),
                ("dropped_table_full", k.dropped_table_full),
            ],
        ),
        (
            "totp",
            vec![
                ("knocks", c.totp.knocks),
                ("steps_matched", c.totp.steps_matched),
                ("duplicates", c.totp.duplicates),
                ("wrong", c.totp.wrong),
                ("timeouts", c.totp.timeouts),
                ("completed", c.totp.completed),
                ("replays", c.totp.replays),
                ("evictions", c.totp.evictions),
                ("dropped_table_full", c.totp.dropped_table_full),
            ],
        ),
        (
            "encoded",
            vec![
                ("knocks", c.encoded.knocks),
                ("checked", c.encoded.checked),
                ("invalid", c.encoded.invalid),
                ("not_allowed", c.encoded.not_allowed),
                ("granted", c.encoded.granted),
            ],
        ),
        (
            "auth_knock",
            vec![
                ("knocks", c.auth.knocks),
                ("wrong_source", c.auth.wrong_source),
                ("checked", c.auth.checked),
                ("over_budget", c.auth.over_budget),
                ("bad_tag", c.auth.bad_tag),
                ("refused", c.auth.refused),
                ("replays", c.auth.replays),
                ("cache_full", c.auth.cache_full),
                ("granted", c.auth.granted),
            ],
        ),
        (
            "knock_volume",
            vec![
                ("knocks", c.volume.knocks),
                ("limited", c.volume.limited),
                ("networks_limited", c.volume.networks_limited),
                ("evictions", c.volume.evictions),
                ("table_full", c.volume.table_full),
            ],
        ),
        (
            "spa",
            vec![
                ("packets", c.spa.packets),
                ("filter_passes", c.spa.filter_passes),
                ("aead_attempts", c.spa.aead_attempts),
                ("hmac_attempts", c.spa.hmac_attempts),
                ("accepted", c.spa.accepted),
            ],
        ),
        (
            "spa_refused",
            Refusal::ALL
                .iter()
                .map(|r| (r.name(), c.spa.refused(*r)))
                .collect(),
        ),
        (
            "decisions",
            vec![
                ("opened", c.opened),
                ("closed", c.closed),
                ("commands", c.commands),
                ("forwards", c.forwards),
                ("grants_forgotten", grants.forgotten()),
            ],
        ),
        (
            "bans",
            vec![
                ("failures", c.bans.failures),
                ("trusted_failures", c.bans.trusted_failures),
                ("protected_failures", c.bans.protected_failures),
                ("bans", c.bans.bans),
                ("from_banned", c.bans.from_banned),
                ("evicted", c.bans.evicted),
                ("untracked", c.bans.untracked),
            ],
        ),
    ]
}

/// Where the package scripts record that postern's firewall includes were
/// refused by `fw4 check` (or failed under fw3) and moved aside; `postern
/// status` shows it while it exists (see README, "Firewall includes").
pub const INCLUDE_ERROR_FILE: &str = "/var/run/postern/firewall-include.err";

/// The recorded include failure at `path` (first 1 KiB, trimmed), if any.
pub fn include_error_at(path: &std::path::Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// `answer` (`postern status` output, text or JSON) with the include failure
/// `error` shown first: a leading line, or a leading `firewall_include_error`
/// member of the JSON object.
pub fn with_include_error(answer: &str, error: &str, json: bool) -> String {
    if !json {
        return format!(
            "firewall include FAILED (postern's includes are moved aside): {error}\n{answer}"
        );
    }
    let member = format!("\"firewall_include_error\":{}", quote(error));
    match answer.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{{member}}}\n"),
        Some(rest) => format!("{{{member},{rest}"),
        None => format!("{{{member}}}\n"),
    }
}

/// Whole seconds, rounded up (a grant with 0.2 s left shows 1 s).
fn ceil_secs(d: core::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Grant;
    use crate::port::PortSpec;
    use core::time::Duration;

    fn snapshot() -> Snapshot {
        let mut grants = GrantTable::new();
        let g = |a: &str, p, s| Grant {
            addr: a.parse().unwrap(),
            port: PortSpec::tcp(p),
            timeout: Duration::from_secs(s),
        };
        grants.record(Millis(1_000), &g("192.0.2.7", 22, 30), "ssh");
        grants.record(Millis(1_000), &g("2001:db8::9", 443, 5), "la\"p\\top");
        grants.record(Millis(1_000), &g("192.0.2.8", 22, 1), "gone");
        let mut counters = Counters {
            frames: 12,
            opened: 2,
            ..Counters::default()
        };
        counters.knock.knocks = 6;
        counters.bans = bans().counters();
        Snapshot::collect(
            Millis(3_500),
            Millis(0),
            "nft",
            &["eth1".into()],
            1,
            &grants,
            &counters,
        )
        .with_bans(Millis(3_500), &bans())
    }

    fn bans() -> BanTable {
        let mut t = BanTable::new(crate::bans::BanPolicy {
            threshold: 1,
            ..Default::default()
        });
        t.on_failure(Millis(500), "198.51.100.4".parse().unwrap());
        t
    }

    #[test]
    fn json_is_exact_and_escaped() {
        let j = snapshot().to_json();
        assert!(j.starts_with(&format!(
            "{{\"version\":\"{}\",\"uptime_s\":3,\"backend\":\"nft\",\"devices\":[\"eth1\"],\"knocks_in_progress\":1,\"last_reload_error\":null,\"grants\":[{{\"addr\":\"2001:db8::9\",\"port\":\"tcp:443\",\"origin\":\"la\\\"p\\\\top\",\"expires_in_s\":3}},{{\"addr\":\"192.0.2.7\",\"port\":\"tcp:22\",\"origin\":\"ssh\",\"expires_in_s\":28}}],\"bans\":[{{\"addr\":\"198.51.100.4\",\"expires_in_s\":297}}],\"forwards\":[],\"commands\":[],\"counters\":{{\"packets\":{{\"frames\":12,\"rejected\":0,\"tcp_not_syn\":0}},",
            env!("CARGO_PKG_VERSION")
        )), "{j}");
        assert!(j.contains("\"knock\":{\"knocks\":6,"), "{j}");
        assert!(
            j.contains("\"decisions\":{\"opened\":2,\"closed\":0,\"commands\":0,\"forwards\":0,\"grants_forgotten\":0}"),
            "{j}"
        );
        assert!(j.ends_with("}},\"peers\":[]}\n"), "{j}");
        // Balanced braces and brackets outside strings: a cheap well-formedness check.
        let (mut depth, mut in_str, mut esc) = (0i32, false, false);
        for c in j.chars() {
            match (in_str, esc, c) {
                (true, true, _) => esc = false,
                (true, false, '\\') => esc = true,
                (_, false, '"') => in_str = !in_str,
                (false, _, '{' | '[') => depth += 1,
                (false, _, '}' | ']') => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0);
        }
        assert_eq!((depth, in_str), (0, false));
    }

    #[test]
    fn the_last_reload_error_is_shown_in_json_and_text() {
        let err = "postern.conf:7: client 'x' has no key\npostern.conf:9: bad";
        let s = snapshot().with_reload_error(Some(err.to_string()));
        let j = s.to_json();
        assert!(
            j.contains("\"last_reload_error\":\"postern.conf:7: client 'x' has no key\\npostern.conf:9: bad\","),
            "{j}"
        );
        let t = s.to_text();
        assert!(t.contains("LAST RELOAD REFUSED"), "{t}");
        assert!(t.contains("\n  postern.conf:9: bad\n"), "{t}");
        assert!(!snapshot().to_text().contains("RELOAD"));
    }

    #[test]
    fn text_lists_grants_and_nonzero_counters() {
        let t = snapshot().to_text();
        assert!(t.contains("backend nft, devices eth1"), "{t}");
        assert!(t.contains("live grants: 2"), "{t}");
        assert!(
            t.contains("live grants: 2\n  2001:db8::9 ") && t.contains("  28s  ssh\n"),
            "{t}"
        );
        assert!(t.contains("knock: knocks=6"), "{t}");
        assert!(
            t.contains("banned sources: 1\n  198.51.100.4  4m 57s\n"),
            "{t}"
        );
        assert!(t.contains("bans: failures=1 bans=1\n"), "{t}");
        assert!(t.contains("wire_rejected: all 0"), "{t}");
    }

    #[test]
    fn ipv6_bans_show_their_network() {
        let mut t = bans();
        t.on_failure(Millis(900), "2001:db8:1:2::77".parse().unwrap());
        let s = Snapshot::collect(
            Millis(1_000),
            Millis(0),
            "nft",
            &[],
            0,
            &GrantTable::new(),
            &Counters::default(),
        )
        .with_bans(Millis(1_000), &t);
        let text = s.to_text();
        assert!(
            text.contains("banned sources: 2\n  198.51.100.4 ")
                && text.contains("\n  2001:db8:1:2::/64  5m 00s\n"),
            "{text}"
        );
        let j = s.to_json();
        assert!(
            j.contains("\"bans\":[{\"addr\":\"198.51.100.4\",\"expires_in_s\":300},{\"addr\":\"2001:db8:1:2::/64\",\"expires_in_s\":300}]"),
            "{j}"
        );
    }

    #[test]
    fn capture_group_shows_drops() {
        let mut s = snapshot();
        let stats = Statistics {
            frames: 700,
            drops: 88,
            other_host: 0,
        };
        s.counters.insert(0, capture_group(stats, 1, 0));
        let t = s.to_text();
        assert!(t.contains("capture: frames=700 drops=88 ring=1\n"), "{t}");
        let j = s.to_json();
        assert!(
            j.contains("\"counters\":{\"capture\":{\"frames\":700,\"drops\":88,\"other_host\":0,\"ring\":1,\"recvmsg\":0},\"packets\":"),
            "{j}"
        );
    }

    #[test]
    fn forwards_and_commands_in_json_and_text() {
        use crate::config::Forward;
        use crate::port::L4Proto;
        let mut table = ForwardTable::new();
        let f = Forward {
            enabled: true,
            proto: L4Proto::Tcp,
            port: 2222,
            to4: Some("10.213.2.2".parse().unwrap()),
            to6: Some("fd00:213:2::2".parse().unwrap()),
            to_port: 22,
        };
        let secs = Duration::from_secs;
        table.record(
            Millis(0),
            "203.0.113.5".parse().unwrap(),
            "nas",
            f,
            secs(60),
            "phone",
        );
        table.record(
            Millis(0),
            "2001:db8::5".parse().unwrap(),
            "nas",
            f,
            secs(30),
            "phone",
        );
        let s = snapshot()
            .with_forwards(Millis(10_000), &table)
            .with_commands(vec![CommandView {
                name: "wake".into(),
                client: "phone".into(),
                source: "203.0.113.5".into(),
                pid: 4242,
                running_s: 3,
            }]);
        let j = s.to_json();
        assert!(j.contains("\"forwards\":[{\"addr\":\"2001:db8::5\",\"forward\":\"nas\",\"path\":\"tcp:22 -> [fd00:213:2::2]:22\",\"client\":\"phone\",\"expires_in_s\":20},{\"addr\":\"203.0.113.5\",\"forward\":\"nas\",\"path\":\"tcp:2222 -> 10.213.2.2:22\",\"client\":\"phone\",\"expires_in_s\":50}],\"commands\":[{\"name\":\"wake\",\"client\":\"phone\",\"source\":\"203.0.113.5\",\"pid\":4242,\"running_s\":3}]"), "{j}");
        let t = s.to_text();
        assert!(t.contains("live forwards: 2\n"), "{t}");
        assert!(
            t.contains("  203.0.113.5  nas  tcp:2222 -> 10.213.2.2:22     50s  phone\n"),
            "{t}"
        );
        assert!(
            t.contains("running commands: 1\n  wake  4242  3s  phone  203.0.113.5\n"),
            "{t}"
        );
    }

    #[test]
    fn quote_escapes_controls() {
        assert_eq!(quote("a\u{1}b\n"), "\"a\\u0001b\\n\"");
    }

    #[test]
    fn include_error_shows_first() {
        assert_eq!(
            with_include_error("{\"version\":\"1\"}\n", "fw4 check: \"x\"", true),
            "{\"firewall_include_error\":\"fw4 check: \\\"x\\\"\",\"version\":\"1\"}\n"
        );
        assert_eq!(
            with_include_error("", "e", true),
            "{\"firewall_include_error\":\"e\"}\n"
        );
        assert!(
            with_include_error("postern 0.1\n", "e", false).starts_with("firewall include FAILED")
        );
        let p = std::env::temp_dir().join(format!("postern-inc-err-{}", std::process::id()));
        assert_eq!(include_error_at(&p), None);
        std::fs::write(&p, "  broken\n").unwrap();
        assert_eq!(include_error_at(&p).as_deref(), Some("broken"));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn peers_in_json_and_text() {
        let counters = crate::peer::PeerCounters {
            sent: 5,
            queue_drops: 2,
            send_errors: 1,
            forged: 7,
            ..Default::default()
        };
        let s = Snapshot::collect(
            Millis(0),
            Millis(0),
            "nft",
            &[],
            0,
            &GrantTable::new(),
            &Counters::default(),
        )
        .with_peers(vec![PeerView {
            name: "twin".into(),
            address: "10.99.0.2".into(),
            reachable: false,
            last_sync_s_ago: Some(3),
            counters,
        }]);
        let j = s.to_json();
        assert!(j.ends_with("\"peers\":[{\"name\":\"twin\",\"address\":\"10.99.0.2\",\"reachable\":false,\"last_sync_s_ago\":3,\"sent\":5,\"received\":0,\"items_received\":0,\"queue_drops\":2,\"send_errors\":1,\"forged\":7,\"replayed\":0,\"malformed\":0}]}\n"), "{j}");
        let t = s.to_text();
        assert!(t.contains("peer twin (10.99.0.2): UNREACHABLE, last sync 3 s ago, sent 5 received 0, drops 3 (queue 2, send 1), refused 7 forged 0 replayed 0 malformed"), "{t}");
    }
}
