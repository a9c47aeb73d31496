//! The daemon's edge of [`crate::peer`]: one non-blocking UDP socket to the
//! peer routers, polled with the rest; local state changes go out, the
//! peers' come in and are applied to this router's kernel sets with the
//! remaining time they carry.
//!
//! The socket is bound before the daemon drops its privileges (the default
//! port is unprivileged anyway). Datagrams from any address but a
//! configured peer are dropped before any cryptography. What arrives is
//! applied under this router's own configuration: a grant only to a port it
//! guards, a forward only by a name it has, a ban only where its own policy
//! would ban ([`crate::bans::BanTable::impose`]). Nothing received is sent
//! on again (no loops between peers).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};

use log::{debug, error, info, warn};

use super::{DaemonError, Effects};
use crate::config::peer::Peer;
use crate::config::Config;
use crate::engine::Engine;
use crate::firewall::Grant;
use crate::peer::message::name;
use crate::peer::{Item, PeerLink, MAX_DATAGRAM};
use crate::spa::seal::NONCE_LEN;
use crate::status::PeerView;
use crate::time::{Millis, Now};

/// Most datagrams read per wake-up (a flood cannot starve the loop).
const READS_PER_WAKE: usize = 256;

/// Most state changes waiting between a decision and the loop's send.
pub(super) const OUTBOX: usize = 256;

/// State changes made by this router's decisions, to be sent to the peers
/// (the decisions run where the peer socket is not at hand). Fixed capacity;
/// drops counted (and shown as queue drops).
pub(super) struct Outbox {
    items: Vec<Item>,
    enabled: bool,
    dropped: u64,
}

impl Outbox {
    /// An outbox that keeps items only when some peer is configured.
    pub(super) fn new(enabled: bool) -> Outbox {
        Outbox {
            items: Vec::with_capacity(if enabled { OUTBOX } else { 0 }),
            enabled,
            dropped: 0,
        }
    }

    /// Keeps `item` for the peers (no allocation: the capacity is reserved).
    pub(super) fn push(&mut self, item: Item) {
        if !self.enabled {
            return;
        }
        if self.items.len() >= OUTBOX {
            self.dropped += 1;
            return;
        }
        self.items.push(item);
    }
}

/// One configured peer and its link.
struct Remote {
    /// Heard from within the reachability window at the last tick.
    was_reachable: bool,
    name: String,
    address: IpAddr,
    port: u16,
    key: [u8; 32],
    link: PeerLink,
}

/// The peer routers: socket, links, buffers. Empty (no socket) when no
/// peer is configured; every method is then a no-op.
pub(super) struct Peers {
    socket: Option<UdpSocket>,
    /// The socket is IPv6 (IPv4 peers are reached as mapped addresses).
    v6: bool,
    remotes: Vec<Remote>,
    buf: Box<[u8; MAX_DATAGRAM]>,
    scratch: Box<[u8; MAX_DATAGRAM]>,
    /// The items of the datagram being applied (reused).
    inbox: Vec<Item>,
    /// Datagrams from addresses that are no peer (dropped unread).
    strangers: u64,
    /// Outbox items dropped (added to every peer's queue drops).
    outbox_drops: u64,
}

/// The wall clock in unix microseconds.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Peers {
    /// No peers.
    pub(super) fn none() -> Peers {
        Peers {
            socket: None,
            v6: false,
            remotes: Vec::new(),
            buf: Box::new([0; MAX_DATAGRAM]),
            scratch: Box::new([0; MAX_DATAGRAM]),
            inbox: Vec::new(),
            strangers: 0,
            outbox_drops: 0,
        }
    }

    /// Binds the peer socket for `cfg`'s enabled peers (none: no socket).
    pub(super) fn open(cfg: &Config) -> Result<Peers, DaemonError> {
        let mut peers = Peers::none();
        let active: Vec<&Peer> = cfg.active_peers().collect();
        let Some(first) = active.first() else {
            return Ok(peers);
        };
        let v6 = first.source.map_or_else(
            || active.iter().any(|p| p.address.is_ipv6()),
            |s| s.is_ipv6(),
        );
        let local = match first.source {
            Some(s) => SocketAddr::new(s, first.port),
            None if v6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), first.port),
            None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), first.port),
        };
        let socket = UdpSocket::bind(local)
            .map_err(|e| DaemonError(format!("peer socket udp:{local}: {e}")))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| DaemonError(format!("peer socket: {e}")))?;
        if let Some(dev) = &first.interface {
            // Needs CAP_NET_RAW: done before privileges are dropped.
            nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::BindToDevice,
                &std::ffi::OsString::from(dev),
            )
            .map_err(|e| {
                DaemonError(format!(
                    "peer socket: bind to device {dev}: {}",
                    std::io::Error::from(e)
                ))
            })?;
        }
        // Room for bursts (resync answers); the kernel caps it at rmem_max.
        let _ =
            nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBuf, &(1 << 20));
        info!(
            "peers: listening on udp:{local}{} for {}",
            first
                .interface
                .as_ref()
                .map_or(String::new(), |d| format!(" on {d} only")),
            active
                .iter()
                .map(|p| format!("{} ({})", p.name, p.address))
                .collect::<Vec<_>>()
                .join(", ")
        );
        peers.socket = Some(socket);
        peers.v6 = v6;
        peers.inbox = Vec::with_capacity(128);
        peers.set_remotes(cfg);
        Ok(peers)
    }

    /// The links for `cfg`'s enabled peers (a link whose address and key
    /// stay keeps its state; a new key starts a new link and window).
    fn set_remotes(&mut self, cfg: &Config) {
        let start = now_us();
        let mut old = core::mem::take(&mut self.remotes);
        for p in cfg.active_peers() {
            let Some(key) = &p.key else {
                error!("peer {}: no key (key_file not read): not synced", p.name);
                continue;
            };
            let same = |r: &Remote| r.address == p.address && &r.key == key.as_bytes();
            let link = match old.iter().position(same) {
                Some(i) => old.swap_remove(i).link,
                None => PeerLink::new(key, start),
            };
            self.remotes.push(Remote {
                was_reachable: false,
                name: p.name.clone(),
                address: p.address,
                port: p.port,
                key: *key.as_bytes(),
                link,
            });
        }
    }

    /// True when some peer is configured (and the socket is open).
    pub(super) fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// After a reload: the new peers (the socket stays: a changed port or
    /// source, or peers where there were none, take effect at the next restart).
    pub(super) fn reload(&mut self, new: &Config) {
        let socket_of = |p: &Peer| (p.port, p.source);
        let wanted: Vec<_> = new.active_peers().map(socket_of).collect();
        if self.socket.is_none() {
            if !wanted.is_empty() {
                warn!("config peer added: takes effect at the next restart");
            }
            return;
        }
        if wanted.first().is_some_and(|w| {
            self.socket
                .as_ref()
                .and_then(|s| s.local_addr().ok())
                .is_some_and(|l| l.port() != w.0)
        }) {
            warn!("peer port changed: takes effect at the next restart");
        }
        self.set_remotes(new);
    }

    /// Hands the outbox's items to every peer and sends them.
    pub(super) fn send(&mut self, outbox: &mut Outbox) {
        self.outbox_drops += core::mem::take(&mut outbox.dropped);
        if outbox.items.is_empty() {
            return;
        }
        for item in outbox.items.drain(..) {
            for r in &mut self.remotes {
                r.link.push(item.clone());
            }
        }
        self.flush();
    }

    /// The socket to poll, if any.
    pub(super) fn raw_fd(&self) -> Option<RawFd> {
        self.socket.as_ref().map(|s| s.as_raw_fd())
    }

    /// Queues `item` for every peer and sends what is queued.
    pub(super) fn announce(&mut self, item: Item) {
        if self.remotes.is_empty() {
            return;
        }
        for r in &mut self.remotes {
            r.link.push(item.clone());
        }
        self.flush();
    }

    /// Asks every peer for its live state (start, `postern peer-sync`,
    /// keepalived's `NOTIFY_MASTER`).
    pub(super) fn request_resync(&mut self) {
        if !self.remotes.is_empty() {
            info!("peers: asking for the live state");
        }
        self.announce(Item::ResyncRequest);
    }

    /// Housekeeping: keepalives; a peer heard again after silence (it
    /// started, or the link between the routers came back) is asked for
    /// its live state, which may have changed meanwhile.
    pub(super) fn on_tick(&mut self, now: Millis) {
        for r in &mut self.remotes {
            let reachable = r.link.reachable(now);
            if reachable && !r.was_reachable {
                info!("peer {}: reachable; asking for the live state", r.name);
                r.link.push(Item::ResyncRequest);
            } else if !reachable && r.was_reachable {
                warn!(
                    "peer {}: unreachable (nothing heard for {} s)",
                    r.name,
                    crate::peer::link::REACHABLE.as_secs()
                );
            }
            r.was_reachable = reachable;
            r.link.on_tick(now);
        }
        self.flush();
    }

    /// Sends every queued datagram of every peer (a socket that refuses one
    /// loses it, counted: the next resync brings the state back).
    fn flush(&mut self) {
        let Some(socket) = &self.socket else { return };
        let now = Millis::now_monotonic();
        for r in &mut self.remotes {
            flush_one(socket, self.v6, r, now, &mut self.buf);
        }
    }

    /// Reads the datagrams waiting and applies the peers' items.
    pub(super) fn receive(&mut self, engine: &mut Engine, fx: &mut Effects<'_>, cfg: &Config) {
        for _ in 0..READS_PER_WAKE {
            let Some(socket) = &self.socket else { return };
            let (len, from) = match socket.recv_from(&mut self.buf[..]) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!("peer socket: {e}");
                    break;
                }
            };
            let src = from.ip().to_canonical();
            let Some(i) = self.remotes.iter().position(|r| r.address == src) else {
                self.strangers += 1;
                continue;
            };
            let now = Now::read();
            let mut items = core::mem::take(&mut self.inbox);
            let r = &mut self.remotes[i];
            let got = r.link.receive(
                &self.buf[..len],
                now.mono,
                now_us(),
                &mut self.scratch,
                |item| items.push(item),
            );
            if let Err(e) = got {
                debug!("peer {}: refused a datagram: {e:?}", r.name);
            }
            for item in items.drain(..) {
                self.apply(i, item, engine, fx, cfg, now);
            }
            self.inbox = items;
        }
        self.flush();
    }

    /// Applies one item from peer `i`.
    fn apply(
        &mut self,
        i: usize,
        item: Item,
        engine: &mut Engine,
        fx: &mut Effects<'_>,
        cfg: &Config,
        now: Now,
    ) {
        let peer = self.remotes[i].name.clone();
        match item {
            Item::Grant {
                addr,
                port,
                remaining,
                origin,
            } => {
                if remaining.is_zero() || !cfg.guarded_ports().contains(&port) {
                    debug!("peer {peer}: grant of {port} to {addr} not applied (not guarded here)");
                    return;
                }
                let grant = Grant {
                    addr,
                    port,
                    timeout: remaining,
                };
                match fx.backend.grant(&grant) {
                    Ok(()) => {
                        fx.grants.record(now.mono, &grant, &origin);
                        info!(
                            "opened {port} for {addr} for {} ms (from peer {peer}: {origin})",
                            remaining.as_millis() as u64
                        );
                    }
                    Err(e) => warn!("could not open {port} for {addr} (peer {peer}): {e}"),
                }
            }
            Item::Close { addr, port } => {
                if fx.grants.remove(addr, port) {
                    match fx.backend.revoke(addr, port) {
                        Ok(()) => info!("closed {port} for {addr} (peer {peer})"),
                        Err(e) => warn!("could not close {port} for {addr} (peer {peer}): {e}"),
                    }
                }
            }
            Item::Forward {
                addr,
                forward,
                client,
                remaining,
            } => match cfg
                .active_forwards()
                .position(|f| f.name == forward.as_str())
            {
                Some(index) if !remaining.is_zero() => fx
                    .actions
                    .forward(fx.backend, now.mono, addr, index, &client, remaining),
                _ => debug!("peer {peer}: forward {forward} not applied (not configured here)"),
            },
            Item::Ban { net, remaining } => {
                if engine.impose_ban(now.mono, net, remaining) {
                    match fx.backend.ban(net, remaining) {
                        Ok(()) => info!(
                            "banned {} for {} s (peer {peer})",
                            crate::bans::NetText(net),
                            remaining.as_secs()
                        ),
                        Err(e) => warn!(
                            "could not ban {} (peer {peer}): {e}",
                            crate::bans::NetText(net)
                        ),
                    }
                } else {
                    debug!(
                        "peer {peer}: ban of {} not applied (policy)",
                        crate::bans::NetText(net)
                    );
                }
            }
            Item::Unban { net } => {
                let answer = super::control_requests::unban(engine, fx.backend, now.mono, net);
                debug!(
                    "peer {peer}: unban {}: {}",
                    crate::bans::NetText(net),
                    answer.trim()
                );
            }
            Item::Replay { client, entry } => {
                engine.record_peer_replay(client.as_deref(), entry, now);
                if let Some(file) = fx.replay.as_mut() {
                    if let Err(e) =
                        file.record_packet(client.as_deref(), entry, now.unix, fx.max_skew)
                    {
                        warn!("spa: cannot record a peer's packet against replay: {e}");
                    }
                }
            }
            Item::ResyncRequest => self.answer_resync(i, engine, fx, now.mono),
            Item::Keepalive => {}
        }
    }

    /// Queues this router's live state for peer `i`, sending as the queue fills.
    fn answer_resync(&mut self, i: usize, engine: &Engine, fx: &mut Effects<'_>, now: Millis) {
        let mut state: Vec<Item> = Vec::new();
        for (grant, origin) in fx.grants.to_reapply(now) {
            state.push(Item::Grant {
                addr: grant.addr,
                port: grant.port,
                remaining: grant.timeout,
                origin: name(origin),
            });
        }
        for f in fx.actions.live.live(now) {
            state.push(Item::Forward {
                addr: f.addr,
                forward: name(&f.name),
                client: name(&f.client),
                remaining: f.remaining(now),
            });
        }
        for b in engine.bans().active(now) {
            state.push(Item::Ban {
                net: b.net,
                remaining: b.remaining(now),
            });
        }
        for s in engine.replay_record().entries {
            state.push(Item::Replay {
                client: s.client.as_deref().map(name),
                entry: s.entry,
            });
        }
        info!(
            "peer {}: sending the live state ({} item(s))",
            self.remotes[i].name,
            state.len()
        );
        let Some(socket) = &self.socket else { return };
        let r = &mut self.remotes[i];
        for item in state {
            if r.link.room() == 0 {
                flush_one(socket, self.v6, r, now, &mut self.buf);
            }
            r.link.push(item);
            r.link.mark_resync_answer();
        }
        flush_one(socket, self.v6, r, now, &mut self.buf);
    }

    /// What `postern status` shows of each peer.
    pub(super) fn views(&self, now: Millis) -> Vec<PeerView> {
        self.remotes
            .iter()
            .map(|r| PeerView {
                name: r.name.clone(),
                address: r.address.to_string(),
                reachable: r.link.reachable(now),
                last_sync_s_ago: r.link.last_sync().map(|t| now.since(t) / 1000),
                counters: crate::peer::PeerCounters {
                    queue_drops: r.link.counters().queue_drops + self.outbox_drops,
                    ..r.link.counters()
                },
            })
            .collect()
    }

    /// The `peers` counter group of `postern status` (when peers are configured).
    pub(super) fn counters(&self) -> Option<crate::status::CounterGroup> {
        self.enabled().then(|| {
            (
                "peers",
                vec![
                    ("strangers", self.strangers),
                    ("outbox_drops", self.outbox_drops),
                ],
            )
        })
    }
}

/// Sends every queued datagram of one peer.
fn flush_one(
    socket: &UdpSocket,
    v6: bool,
    r: &mut Remote,
    now: Millis,
    buf: &mut [u8; MAX_DATAGRAM],
) {
    let to = match (r.address, v6) {
        (IpAddr::V4(a), true) => SocketAddr::new(IpAddr::V6(a.to_ipv6_mapped()), r.port),
        (a, _) => SocketAddr::new(a, r.port),
    };
    loop {
        let mut nonce = [0u8; NONCE_LEN];
        if crate::random::fill(&mut nonce).is_err() {
            // No randomness, no datagram (a repeated nonce would be worse).
            r.link.on_send_error();
            return;
        }
        let Some(len) = r.link.next_datagram(now, now_us(), nonce, buf) else {
            return;
        };
        match socket.send_to(&buf[..len], to) {
            Ok(_) => r.link.on_sent(),
            Err(e) => {
                debug!("peer {}: send: {e}", r.name);
                r.link.on_send_error();
            }
        }
    }
}

/// The item announcing a grant this router made.
pub(super) fn grant_item(grant: &Grant, origin: &str) -> Item {
    Item::Grant {
        addr: grant.addr,
        port: grant.port,
        remaining: grant.timeout,
        origin: name(origin),
    }
}

/// The item announcing a forward this router opened.
pub(super) fn forward_item(addr: IpAddr, forward: &str, client: &str, d: Duration) -> Item {
    Item::Forward {
        addr,
        forward: name(forward),
        client: name(client),
        remaining: d,
    }
}

/// The item announcing an SPA packet this router recorded against replay.
pub(super) fn replay_item(client: Option<&str>, entry: crate::spa::ReplayEntry) -> Item {
    Item::Replay {
        client: client.map(name),
        entry,
    }
}
