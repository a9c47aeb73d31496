//! The replay cache: refusals, quotas, the floor, the hashed index.

use super::*;
use crate::test_rng::Rng;

fn e(n: u16, timestamp: u64) -> ReplayEntry {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..2].copy_from_slice(&n.to_be_bytes());
    ReplayEntry { nonce, timestamp }
}

#[test]
fn refuses_a_known_nonce() {
    let mut c = ReplayCache::new(2);
    assert_eq!(c.insert(0, e(1, 100), 100, 120), Ok(()));
    assert_eq!(
        c.insert(0, e(1, 100), 101, 120),
        Err(InsertError::Replayed(Replayed))
    );
    assert_eq!(
        c.insert(1, e(1, 999), 101, 120),
        Err(InsertError::Replayed(Replayed)),
        "a nonce is refused whichever client presents it"
    );
    assert_eq!(c.insert(0, e(2, 100), 101, 120), Ok(()));
    assert_eq!(c.len(), 2);
}

#[test]
fn a_full_quota_refuses_until_an_entry_expires() {
    let mut c = ReplayCache::new(1);
    for i in 0..QUOTA as u16 {
        c.insert(0, e(i, 1000), 1000, 120).unwrap();
    }
    let new = e(60000, 1000);
    assert_eq!(
        c.insert(0, new, 1120, 120),
        Err(InsertError::Full(CacheFull)),
        "all entries live: refuse, never forget a live one"
    );
    assert!(c.contains(&e(5, 0).nonce));
    assert_eq!(c.floor(), 0);
    assert_eq!(c.insert(0, new, 1121, 120), Ok(()), "expired slot reused");
    assert_eq!(c.len(), QUOTA);
    assert_eq!(
        c.floor(),
        1001,
        "the forgotten entry's timestamp is below the floor"
    );
}

/// The attack: one client (or a leaked key) fills the cache; before the
/// quotas every other client was locked out too.
#[test]
fn one_client_cannot_fill_another_clients_quota() {
    let mut c = ReplayCache::new(3);
    let mut refused = 0;
    for i in 0..4000u16 {
        if c.insert(0, e(i, 1000), 1000, 120).is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 4000 - QUOTA);
    assert_eq!(c.owned(0), QUOTA);
    for (owner, n) in [(1, 50_000u16), (2, 50_001)] {
        assert_eq!(c.insert(owner, e(n, 1000), 1000, 120), Ok(()));
        assert_eq!(c.owned(owner), 1);
    }
}

#[test]
fn restore_keeps_live_entries_per_client_and_raises_the_floor_for_expired_ones() {
    let mut c = ReplayCache::new(2);
    c.insert(0, e(1, 500), 500, 120).unwrap();
    c.restore(Some(0), e(1, 500), 500, 120);
    c.restore(Some(1), e(2, 300), 500, 120);
    c.restore(Some(1), e(3, 450), 500, 120);
    c.restore(None, e(4, 460), 500, 120);
    c.restore(Some(7), e(5, 470), 500, 120);
    let mut got: Vec<_> = c.iter().collect();
    got.sort_by_key(|(_, e)| e.timestamp);
    assert_eq!(
        got,
        [
            (Some(1), e(3, 450)),
            (None, e(4, 460)),
            (None, e(5, 470)),
            (Some(0), e(1, 500))
        ]
    );
    assert_eq!(
        c.floor(),
        301,
        "e(2, 300) expired: forgotten under the floor"
    );
}

#[test]
fn restore_overflow_goes_to_the_orphans_and_then_raises_the_floor() {
    let mut c = ReplayCache::new(1);
    let n = (QUOTA + ORPHANS) as u16;
    for i in 0..n {
        c.restore(Some(0), e(i, 1000 + u64::from(i)), 1000, 120);
    }
    assert_eq!(c.len(), usize::from(n));
    assert_eq!(c.floor(), 0);
    c.restore(Some(0), e(n, 1000 + u64::from(n)), 1000, 120);
    assert_eq!(
        c.len(),
        usize::from(n),
        "no slot left: an orphan was forgotten"
    );
    assert!(c.contains(&e(n, 0).nonce));
    // The oldest orphan was e(QUOTA, 1000 + QUOTA).
    assert!(!c.contains(&e(QUOTA as u16, 0).nonce));
    assert_eq!(c.floor(), 1000 + QUOTA as u64 + 1);
    // An entry older than every orphan is the one forgotten.
    c.restore(None, e(9999, 1001), 1000, 120);
    assert!(!c.contains(&e(9999, 0).nonce));
    assert_eq!(c.len(), usize::from(n));
    assert_eq!(c.floor(), 1000 + QUOTA as u64 + 1, "the floor only rises");
    c.restore(None, e(9998, 900), 1000, 120);
    assert_eq!(c.floor(), 1000 + QUOTA as u64 + 1);
}

#[test]
fn record_drops_expired_entries_and_raises_its_floor() {
    let mut r = ReplayRecord::default();
    r.record(Some("a"), e(1, 1000), 1000, 120);
    r.record(Some("a"), e(2, 1100), 1100, 120);
    r.record(None, e(2, 1100), 1100, 120);
    r.record(Some("b"), e(3, 1200), 1200, 120);
    assert_eq!(r.floor, 1001);
    let held: Vec<_> = r.entries.iter().map(|s| s.entry).collect();
    assert_eq!(held, [e(2, 1100), e(3, 1200)]);
    assert_eq!(r.entries[1].client.as_deref(), Some("b"));
}

/// Property: the hashed index agrees with a plain set under random inserts,
/// expiries (slot reuse, backward-shift deletion) and restores.
#[test]
fn the_index_matches_a_plain_set_under_random_operations() {
    let mut c = ReplayCache::new(2);
    let mut model: Vec<(usize, ReplayEntry)> = Vec::new();
    let mut rng = Rng(0x5eed_1234);
    let mut now = 10_000u64;
    for _ in 0..50_000 {
        now += rng.below(3) as u64;
        let owner = rng.below(2);
        let entry = e(rng.below(600) as u16, now - rng.below(100) as u64);
        let known = model.iter().any(|(_, m)| m.nonce == entry.nonce);
        let result = c.insert(owner, entry, now, 60);
        match result {
            Ok(()) => {
                assert!(!known);
                // A reused slot forgot one expired entry of this owner.
                let mine = model.iter().filter(|(o, _)| *o == owner).count();
                if mine == QUOTA {
                    let pos = model
                        .iter()
                        .position(|(o, m)| *o == owner && !c.contains(&m.nonce))
                        .expect("one entry forgotten");
                    model.remove(pos);
                }
                model.push((owner, entry));
            }
            Err(InsertError::Replayed(_)) => assert!(known),
            Err(InsertError::Full(_)) => assert!(!known),
        }
        assert_eq!(c.len(), model.len());
        for (_, m) in &model {
            assert!(c.contains(&m.nonce));
        }
    }
}
