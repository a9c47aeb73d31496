//! One peer: the outgoing queue, the replay window of what it sent, and the
//! counters `postern status` shows. Sans-IO: datagrams in and out as bytes,
//! times as arguments.

use core::time::Duration;

use heapless::Deque;

use super::message::{Item, Items};
use super::seal::{OpenError, PeerCipher, Stamps, FLAG_RESYNC, MAX_DATAGRAM, MAX_ITEMS_LEN};
use crate::spa::seal::NONCE_LEN;
use crate::spa::Key;
use crate::time::Millis;

/// Items waiting to be sent to one peer; more are dropped (and counted).
pub const QUEUE: usize = 256;
/// How far a datagram's stamp may be from the receiver's wall clock, either way.
pub const SKEW: Duration = Duration::from_secs(10);
/// A keepalive goes out when nothing else was sent for this long.
pub const KEEPALIVE: Duration = Duration::from_secs(2);
/// The peer is reachable while it was last heard from within this.
pub const REACHABLE: Duration = Duration::from_secs(7);

static_assertions::const_assert!(QUEUE * core::mem::size_of::<Item>() <= 64 * 1024);

/// The receiver's replay window for one sender: a datagram is accepted only
/// if its stamp is later than every stamp accepted before and within
/// [`SKEW`] of the receiver's clock. At start the floor is the start time
/// minus [`SKEW`], so what was sent before that is refused.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    highest: u64,
}

/// Why a datagram's stamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Not later than a stamp already accepted (a replay, or reordered).
    Replayed,
    /// Further than [`SKEW`] from the receiver's clock.
    OutOfWindow,
}

impl Freshness {
    /// The window of a receiver that starts at `now_us` (unix microseconds).
    pub fn starting_at(now_us: u64) -> Freshness {
        Freshness {
            highest: now_us.saturating_sub(skew_us()),
        }
    }

    /// Checks `stamp` at `now_us` without accepting it.
    pub fn check(&self, stamp: u64, now_us: u64) -> Result<(), Stale> {
        if stamp.abs_diff(now_us) > skew_us() {
            return Err(Stale::OutOfWindow);
        }
        if stamp <= self.highest {
            return Err(Stale::Replayed);
        }
        Ok(())
    }

    /// Records `stamp` as accepted.
    pub fn accept(&mut self, stamp: u64) {
        self.highest = self.highest.max(stamp);
    }
}

fn skew_us() -> u64 {
    SKEW.as_micros() as u64
}

/// What one peer link counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// Datagrams sent.
    pub sent: u64,
    /// Authenticated, fresh datagrams received.
    pub received: u64,
    /// State items applied from the peer (grants, bans, ...).
    pub items_received: u64,
    /// Items dropped because the outgoing queue was full.
    pub queue_drops: u64,
    /// Datagrams that failed authentication (or had a bad length or version).
    pub forged: u64,
    /// Authenticated datagrams refused as replayed, reordered or stale.
    pub replayed: u64,
    /// Authenticated datagrams with a malformed item (the rest was dropped).
    pub malformed: u64,
    /// Datagrams the socket refused to send.
    pub send_errors: u64,
}

/// Why a datagram from the peer's address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not sealed under the peer key (or bad length/version).
    Forged(OpenError),
    /// Sealed, but replayed or stale.
    Stale(Stale),
}

/// One peer link's state.
pub struct PeerLink {
    cipher: PeerCipher,
    stamps: Stamps,
    freshness: Freshness,
    queue: Deque<Item, QUEUE>,
    /// The queue holds the answer to a resync request.
    resync_answer: bool,
    counters: PeerCounters,
    last_heard: Option<Millis>,
    last_sync: Option<Millis>,
    last_sent: Option<Millis>,
}

impl PeerLink {
    /// A link under `key` for a process started at `now_us` (unix microseconds).
    pub fn new(key: &Key, now_us: u64) -> PeerLink {
        PeerLink {
            cipher: PeerCipher::new(key),
            stamps: Stamps::default(),
            freshness: Freshness::starting_at(now_us),
            queue: Deque::new(),
            resync_answer: false,
            counters: PeerCounters::default(),
            last_heard: None,
            last_sync: None,
            last_sent: None,
        }
    }

    /// Queues `item`; false (and counted) when the queue is full.
    pub fn push(&mut self, item: Item) -> bool {
        if self.queue.push_back(item).is_err() {
            self.counters.queue_drops += 1;
            return false;
        }
        true
    }

    /// Marks what is queued now as (part of) a resync answer.
    pub fn mark_resync_answer(&mut self) {
        self.resync_answer = true;
    }

    /// Items waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Room left in the queue.
    pub fn room(&self) -> usize {
        QUEUE - self.queue.len()
    }

    /// Queues a keepalive when nothing was sent for [`KEEPALIVE`].
    pub fn on_tick(&mut self, now: Millis) {
        let due = self
            .last_sent
            .is_none_or(|t| now.since(t) >= KEEPALIVE.as_millis() as u64);
        if due && self.queue.is_empty() {
            self.push(Item::Keepalive);
        }
    }

    /// Seals as many queued items as fit into one datagram in `out`; its
    /// length, or `None` when nothing is queued. The items leave the queue.
    pub fn next_datagram(
        &mut self,
        now: Millis,
        now_us: u64,
        nonce: [u8; NONCE_LEN],
        out: &mut [u8; MAX_DATAGRAM],
    ) -> Option<usize> {
        if self.queue.is_empty() {
            return None;
        }
        let mut items = [0u8; MAX_ITEMS_LEN];
        let mut len = 0;
        while let Some(item) = self.queue.front() {
            let Some(n) = item.encode(&mut items[len..]) else {
                break;
            };
            len += n;
            self.queue.pop_front();
        }
        let flags = if self.resync_answer { FLAG_RESYNC } else { 0 };
        if self.queue.is_empty() {
            self.resync_answer = false;
        }
        let stamp = self.stamps.next(now_us);
        let sealed = self.cipher.seal(nonce, stamp, flags, &items[..len], out)?;
        self.last_sent = Some(now);
        Some(sealed)
    }

    /// Counts a datagram the socket refused (it is lost; the items are not
    /// queued again: a resync brings the state back).
    pub fn on_send_error(&mut self) {
        self.counters.send_errors += 1;
    }

    /// Counts a datagram sent.
    pub fn on_sent(&mut self) {
        self.counters.sent += 1;
    }

    /// Opens a datagram from the peer's address at `now` / `now_us` and
    /// hands each item to `on_item`. A forged, replayed or stale datagram
    /// changes nothing but a counter; a malformed item ends the datagram
    /// (the items before it were handed on).
    pub fn receive(
        &mut self,
        datagram: &[u8],
        now: Millis,
        now_us: u64,
        scratch: &mut [u8; MAX_DATAGRAM],
        mut on_item: impl FnMut(Item),
    ) -> Result<(), Refusal> {
        let opened = match self.cipher.open(datagram, scratch) {
            Ok(o) => o,
            Err(e) => {
                self.counters.forged += 1;
                return Err(Refusal::Forged(e));
            }
        };
        if let Err(s) = self.freshness.check(opened.stamp, now_us) {
            self.counters.replayed += 1;
            return Err(Refusal::Stale(s));
        }
        self.freshness.accept(opened.stamp);
        self.counters.received += 1;
        self.last_heard = Some(now);
        let mut items = Items::new(opened.items);
        for item in items.by_ref() {
            if item != Item::Keepalive {
                self.counters.items_received += 1;
                self.last_sync = Some(now);
            }
            on_item(item);
        }
        if items.malformed() {
            self.counters.malformed += 1;
        }
        Ok(())
    }

    /// The counters.
    pub fn counters(&self) -> PeerCounters {
        self.counters
    }

    /// True when an authenticated datagram arrived within [`REACHABLE`].
    pub fn reachable(&self, now: Millis) -> bool {
        self.last_heard
            .is_some_and(|t| now.since(t) < REACHABLE.as_millis() as u64)
    }

    /// When the peer was last heard from.
    pub fn last_heard(&self) -> Option<Millis> {
        self.last_heard
    }

    /// When the peer last sent state.
    pub fn last_sync(&self) -> Option<Millis> {
        self.last_sync
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cidr::Cidr;
    use crate::peer::message::name;
    use crate::port::{L4Proto, PortSpec};

    const T0: u64 = 1_790_000_000_000_000;

    fn key() -> Key {
        Key::from_bytes([5; 32])
    }

    fn grant() -> Item {
        Item::Grant {
            addr: "192.0.2.7".parse().unwrap(),
            port: PortSpec {
                proto: L4Proto::Tcp,
                port: 22,
            },
            remaining: Duration::from_secs(30),
            origin: name("alice"),
        }
    }

    /// Sends everything queued on `a` as datagrams.
    fn datagrams(a: &mut PeerLink, now_us: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut n = 0u8;
        while let Some(len) = a.next_datagram(Millis(1), now_us, [n; NONCE_LEN], &mut buf) {
            out.push(buf[..len].to_vec());
            n += 1;
        }
        out
    }

    fn receive(b: &mut PeerLink, d: &[u8], now_us: u64) -> (Result<(), Refusal>, Vec<Item>) {
        let mut scratch = [0u8; MAX_DATAGRAM];
        let mut got = Vec::new();
        let r = b.receive(d, Millis(2), now_us, &mut scratch, |i| got.push(i));
        (r, got)
    }

    #[test]
    fn a_grant_reaches_the_peer_once() {
        let (mut a, mut b) = (PeerLink::new(&key(), T0), PeerLink::new(&key(), T0));
        a.push(grant());
        let d = datagrams(&mut a, T0 + 1);
        assert_eq!(d.len(), 1);
        let (r, got) = receive(&mut b, &d[0], T0 + 2);
        assert_eq!(r, Ok(()));
        assert_eq!(got, vec![grant()]);
        assert!(b.reachable(Millis(3)));
        assert_eq!(b.last_sync(), Some(Millis(2)));
        // The attack: the same datagram again.
        let (r, got) = receive(&mut b, &d[0], T0 + 3);
        assert_eq!(r, Err(Refusal::Stale(Stale::Replayed)));
        assert!(got.is_empty());
        assert_eq!(b.counters().replayed, 1);
    }

    #[test]
    fn a_datagram_sent_before_the_receiver_started_is_refused() {
        // Captured a minute before the receiver (re)started, replayed after.
        let mut a = PeerLink::new(&key(), T0);
        a.push(grant());
        let d = datagrams(&mut a, T0);
        let later = T0 + 60_000_000;
        let mut b = PeerLink::new(&key(), later);
        let (r, got) = receive(&mut b, &d[0], later + 1);
        assert_eq!(r, Err(Refusal::Stale(Stale::OutOfWindow)));
        assert!(got.is_empty());
        // Within the skew but stamped before the receiver's floor.
        let mut b = PeerLink::new(&key(), T0 + SKEW.as_micros() as u64 + 1);
        let (r, _) = receive(&mut b, &d[0], T0 + 1);
        assert_eq!(r, Err(Refusal::Stale(Stale::Replayed)));
    }

    #[test]
    fn a_stamp_from_the_future_is_refused() {
        let mut a = PeerLink::new(&key(), T0);
        a.push(grant());
        let d = datagrams(&mut a, T0 + 3_600_000_000);
        let mut b = PeerLink::new(&key(), T0);
        let (r, _) = receive(&mut b, &d[0], T0);
        assert_eq!(r, Err(Refusal::Stale(Stale::OutOfWindow)));
        // And it did not move the window: a fresh datagram still passes.
        a = PeerLink::new(&key(), T0);
        a.push(grant());
        let d = datagrams(&mut a, T0 + 5);
        assert_eq!(receive(&mut b, &d[0], T0 + 6).0, Ok(()));
    }

    #[test]
    fn forged_and_truncated_datagrams_change_nothing() {
        let mut a = PeerLink::new(&Key::from_bytes([6; 32]), T0);
        a.push(grant());
        let d = datagrams(&mut a, T0 + 1);
        let mut b = PeerLink::new(&key(), T0);
        let (r, got) = receive(&mut b, &d[0], T0 + 2);
        assert!(matches!(r, Err(Refusal::Forged(OpenError::Auth))));
        assert!(got.is_empty());
        for cut in 0..d[0].len() {
            assert!(receive(&mut b, &d[0][..cut], T0 + 2).0.is_err());
        }
        assert!(!b.reachable(Millis(3)));
        assert_eq!(b.last_heard(), None);
        // The forgeries did not move the window: the real one passes.
        let mut a = PeerLink::new(&key(), T0);
        a.push(grant());
        let d = datagrams(&mut a, T0 + 1);
        assert_eq!(receive(&mut b, &d[0], T0 + 2).0, Ok(()));
    }

    #[test]
    fn the_queue_is_bounded_and_counts_drops() {
        let mut a = PeerLink::new(&key(), T0);
        for _ in 0..QUEUE {
            assert!(a.push(grant()));
        }
        assert!(!a.push(grant()));
        assert_eq!(a.counters().queue_drops, 1);
        assert_eq!(a.room(), 0);
    }

    #[test]
    fn a_full_queue_goes_out_in_several_datagrams_in_order() {
        let mut a = PeerLink::new(&key(), T0);
        let mut b = PeerLink::new(&key(), T0);
        let items: Vec<Item> = (0..QUEUE)
            .map(|i| Item::Ban {
                net: Cidr::host(core::net::IpAddr::V4((0x0a00_0000 + i as u32).into())),
                remaining: Duration::from_secs(60),
            })
            .collect();
        for i in &items {
            a.push(i.clone());
        }
        a.mark_resync_answer();
        let ds = datagrams(&mut a, T0 + 1);
        assert!(ds.len() > 1);
        let mut got = Vec::new();
        for d in &ds {
            assert!(d.len() <= MAX_DATAGRAM);
            let mut scratch = [0u8; MAX_DATAGRAM];
            b.receive(d, Millis(2), T0 + 2, &mut scratch, |i| got.push(i))
                .unwrap();
        }
        assert_eq!(got, items);
    }

    #[test]
    fn a_keepalive_goes_out_when_idle() {
        let mut a = PeerLink::new(&key(), T0);
        a.on_tick(Millis(0));
        assert_eq!(a.queued(), 1);
        let _ = datagrams(&mut a, T0);
        a.on_tick(Millis(1000));
        assert_eq!(a.queued(), 0);
        a.on_tick(Millis(1 + KEEPALIVE.as_millis() as u64));
        assert_eq!(a.queued(), 1);
    }

    #[test]
    fn a_malformed_item_is_counted_and_ends_the_datagram() {
        let cipher = PeerCipher::new(&key());
        let mut out = [0u8; MAX_DATAGRAM];
        let len = cipher
            .seal([1; NONCE_LEN], T0 + 1, 0, &[8, 99, 8], &mut out)
            .unwrap();
        let mut b = PeerLink::new(&key(), T0);
        let (r, got) = receive(&mut b, &out[..len], T0 + 2);
        assert_eq!(r, Ok(()));
        assert_eq!(got, vec![Item::Keepalive]);
        assert_eq!(b.counters().malformed, 1);
    }
}
