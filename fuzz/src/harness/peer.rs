//! Target `peer`: the sealed messages between router pairs (`postern::peer`).
//!
//! Modes (first byte % 3): 0 raw datagram from the peer's address — never
//! opens (the fuzzer cannot forge the tag), changes no counter but `forged`,
//! the link stays unreachable; 1 fuzz item bytes sealed under the peer key
//! with a fresh stamp — accepted; every item read re-encodes to exactly the
//! bytes it was read from, reading stops at the first malformed item (counted
//! once), and the same datagram again is refused as replayed; 2 a sealed
//! datagram with one byte changed — never opens.

use postern::peer::link::{PeerLink, Refusal, Stale};
use postern::peer::message::Items;
use postern::peer::seal::{PeerCipher, MAX_DATAGRAM, MAX_ITEMS_LEN};
use postern::spa::Key;
use postern::time::Millis;

use super::input::Input;

/// The harness's peer key.
pub const KEY: u8 = 0x55;
/// The receiver's start (unix microseconds).
pub const START_US: u64 = 1_800_000_000_000_000;

fn link() -> PeerLink {
    PeerLink::new(&Key::from_bytes([KEY; 32]), START_US)
}

/// Seals `items` under the harness key, stamped `START_US + 1000`.
pub fn seal(nonce: u8, items: &[u8]) -> Vec<u8> {
    let mut out = [0u8; MAX_DATAGRAM];
    let cipher = PeerCipher::new(&Key::from_bytes([KEY; 32]));
    let len = cipher
        .seal([nonce; 24], START_US + 1000, 0, items, &mut out)
        .expect("items fit");
    out[..len].to_vec()
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8() % 3;
    let now = START_US + 2000;
    let mut scratch = [0u8; MAX_DATAGRAM];
    match mode {
        0 => {
            let raw = input.rest();
            let mut l = link();
            let r = l.receive(raw, Millis(1), now, &mut scratch, |_| {
                panic!("an item from a datagram the harness did not seal")
            });
            assert!(matches!(r, Err(Refusal::Forged(_))), "{r:?}");
            let c = l.counters();
            assert_eq!((c.forged, c.received, c.replayed), (1, 0, 0));
            assert!(!l.reachable(Millis(1)));
        }
        1 => {
            let n = input.u8();
            let rest = input.rest();
            let items = &rest[..rest.len().min(MAX_ITEMS_LEN)];
            let d = seal(n, items);
            let mut l = link();
            let mut got = Vec::new();
            let r = l.receive(&d, Millis(1), now, &mut scratch, |i| got.push(i));
            assert_eq!(r, Ok(()));
            // The items read are exactly a prefix of the bytes, re-encoded.
            let mut reading = Items::new(items);
            let mut used = 0;
            let mut buf = [0u8; MAX_ITEMS_LEN];
            for item in reading.by_ref() {
                let len = item.encode(&mut buf).expect("an item read fits");
                assert_eq!(&buf[..len], &items[used..used + len], "{item:?}");
                used += len;
            }
            assert_eq!(reading.malformed(), used < items.len());
            assert_eq!(l.counters().malformed, u64::from(used < items.len()));
            assert_eq!(Items::new(items).count(), got.len());
            let again = l.receive(&d, Millis(2), now + 1, &mut scratch, |_| {
                panic!("a replayed datagram was read")
            });
            assert_eq!(again, Err(Refusal::Stale(Stale::Replayed)));
        }
        _ => {
            let at = usize::from(input.u16());
            let flip = input.u8() | 1;
            let rest = input.rest();
            let mut d = seal(1, &rest[..rest.len().min(MAX_ITEMS_LEN)]);
            let i = at % d.len();
            d[i] ^= flip;
            let mut l = link();
            let r = l.receive(&d, Millis(1), now, &mut scratch, |_| {
                panic!("a changed datagram was read")
            });
            assert!(matches!(r, Err(Refusal::Forged(_))), "{r:?}");
        }
    }
}
