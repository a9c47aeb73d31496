//! Matching packets against knock sequences, per source.
//!
//! Rules (as knockd users expect, and tighter):
//! * a packet to a port that is in no sequence is ignored entirely;
//! * the next expected step advances the source's progress;
//! * a repeat of the step just matched (a TCP SYN retransmit) is ignored;
//! * any other knock port resets the source's progress on that sequence
//!   (restarting it when the port is the sequence's first step);
//! * a sequence must be finished within its timeout from the first knock.

use core::net::IpAddr;
use core::time::Duration;

use heapless::Vec as HVec;

use super::table::{Insert, Key, Progress, ProgressTable};
use crate::config::{MAX_SEQUENCES, MAX_SEQUENCE_STEPS};
use crate::port::PortSpec;
use crate::time::Millis;

static_assertions::const_assert!(MAX_SEQUENCES <= u8::MAX as usize);
static_assertions::const_assert!(MAX_SEQUENCE_STEPS < u8::MAX as usize);

/// The steps of one sequence and the time allowed to knock them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSteps {
    /// The knocks, in order (1..=MAX_SEQUENCE_STEPS).
    pub steps: HVec<PortSpec, MAX_SEQUENCE_STEPS>,
    /// Time from the first to the last knock.
    pub timeout: Duration,
}

/// What the matcher has seen, for `postern status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KnockCounters {
    /// Packets to a port in some sequence.
    pub knocks: u64,
    /// Packets to ports in no sequence (ignored).
    pub not_knock_port: u64,
    /// Steps matched (first steps included).
    pub steps_matched: u64,
    /// Repeats of the step just matched, ignored.
    pub duplicates: u64,
    /// Progress reset by a wrong knock.
    pub resets: u64,
    /// Attempts that ran out of time.
    pub timeouts: u64,
    /// Sequences completed.
    pub completed: u64,
    /// First-step entries evicted to make room.
    pub evictions: u64,
    /// First knocks dropped because the table was full of advanced entries.
    pub dropped_table_full: u64,
}

/// Per-source knock progress over a fixed set of sequences.
pub struct Matcher {
    sequences: Vec<SequenceSteps>,
    knock_ports: Vec<PortSpec>,
    table: Box<ProgressTable>,
    counters: KnockCounters,
}

impl Matcher {
    /// Builds a matcher (allocates once). At most [`MAX_SEQUENCES`] sequences are used;
    /// the config layer refuses more.
    pub fn new(sequences: Vec<SequenceSteps>) -> Matcher {
        let mut sequences = sequences;
        sequences.truncate(MAX_SEQUENCES);
        let mut knock_ports: Vec<PortSpec> = sequences
            .iter()
            .flat_map(|s| s.steps.iter().copied())
            .collect();
        knock_ports.sort_unstable();
        knock_ports.dedup();
        Matcher {
            sequences,
            knock_ports,
            table: ProgressTable::boxed(),
            counters: KnockCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> KnockCounters {
        self.counters
    }

    /// True when `port` is a step of some sequence.
    pub fn is_knock_port(&self, port: PortSpec) -> bool {
        self.knock_ports.binary_search(&port).is_ok()
    }

    /// Number of (source, sequence) attempts in progress.
    pub fn in_progress(&self) -> usize {
        self.table.len()
    }

    /// The steps matched so far by `src` on sequence `index`, if it has begun it.
    pub fn progress_of(&self, src: IpAddr, index: usize) -> Option<u8> {
        let key = Key {
            src,
            sequence: u8::try_from(index).ok()?,
        };
        self.table.get(&key).map(|p| p.matched)
    }

    /// Feeds one knock packet; calls `completed(index)` for every sequence it completes.
    pub fn on_knock(
        &mut self,
        now: Millis,
        src: IpAddr,
        port: PortSpec,
        completed: &mut impl FnMut(usize),
    ) {
        if self.knock_ports.binary_search(&port).is_err() {
            self.counters.not_knock_port += 1;
            return;
        }
        self.counters.knocks += 1;
        for index in 0..self.sequences.len() {
            if self.step(now, src, port, index) {
                self.counters.completed += 1;
                completed(index);
            }
        }
    }

    /// Drops attempts that ran out of time.
    pub fn on_tick(&mut self, now: Millis) {
        let sequences = &self.sequences;
        let expired = |k: &Key, p: &Progress| is_expired(sequences, now, k, p);
        let n = self.table.purge_expired(&expired);
        self.counters.timeouts += n as u64;
    }

    /// Applies one knock to one sequence; true when it completes the sequence.
    fn step(&mut self, now: Millis, src: IpAddr, port: PortSpec, index: usize) -> bool {
        let seq = &self.sequences[index];
        let key = Key {
            src,
            sequence: index as u8,
        };
        let len = seq.steps.len();
        let mut current = self.table.get(&key);
        if let Some(p) = current {
            if is_expired(&self.sequences, now, &key, &p) {
                self.table.remove(&key);
                self.counters.timeouts += 1;
                current = None;
            }
        }
        match current {
            Some(p) => {
                let matched = usize::from(p.matched);
                if seq.steps.get(matched) == Some(&port) {
                    self.counters.steps_matched += 1;
                    if matched + 1 == len {
                        self.table.remove(&key);
                        return true;
                    }
                    self.table.advance(&key);
                    false
                } else if seq.steps.get(matched.wrapping_sub(1)) == Some(&port) {
                    self.counters.duplicates += 1;
                    false
                } else {
                    self.counters.resets += 1;
                    self.table.remove(&key);
                    self.start(now, key, port)
                }
            }
            None => self.start(now, key, port),
        }
    }

    /// Begins an attempt if `port` is the sequence's first step.
    fn start(&mut self, now: Millis, key: Key, port: PortSpec) -> bool {
        let seq = &self.sequences[usize::from(key.sequence)];
        if seq.steps.first() != Some(&port) {
            return false;
        }
        self.counters.steps_matched += 1;
        if seq.steps.len() == 1 {
            return true;
        }
        let sequences = &self.sequences;
        let expired = |k: &Key, p: &Progress| is_expired(sequences, now, k, p);
        match self.table.insert_first(key, now, expired) {
            Insert::Stored => {}
            Insert::StoredAfterEviction => self.counters.evictions += 1,
            Insert::DroppedFull => self.counters.dropped_table_full += 1,
        }
        false
    }
}

fn is_expired(sequences: &[SequenceSteps], now: Millis, key: &Key, p: &Progress) -> bool {
    match sequences.get(usize::from(key.sequence)) {
        Some(seq) => u128::from(now.since(p.started)) > seq.timeout.as_millis(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knock::KNOCK_TABLE_CAPACITY;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn seq(steps: &[PortSpec], timeout_s: u64) -> SequenceSteps {
        SequenceSteps {
            steps: steps.iter().copied().collect(),
            timeout: Duration::from_secs(timeout_s),
        }
    }

    fn ssh() -> Vec<SequenceSteps> {
        vec![seq(
            &[
                PortSpec::tcp(7000),
                PortSpec::udp(8000),
                PortSpec::tcp(9000),
            ],
            10,
        )]
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    const ALICE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

    /// Feeds knocks at the given times and returns the completed sequence indices.
    fn run(m: &mut Matcher, src: IpAddr, knocks: &[(u64, PortSpec)]) -> Vec<usize> {
        let mut done = Vec::new();
        for &(t, p) in knocks {
            m.on_knock(Millis(t), src, p, &mut |i| done.push(i));
        }
        done
    }

    #[test]
    fn in_order_sequence_completes_once() {
        let mut m = Matcher::new(ssh());
        let k = [
            (0, PortSpec::tcp(7000)),
            (5, PortSpec::udp(8000)),
            (9, PortSpec::tcp(9000)),
        ];
        assert_eq!(run(&mut m, ALICE, &k), vec![0]);
        assert_eq!(m.in_progress(), 0);
        assert_eq!(m.counters().completed, 1);
        // Last step again alone does nothing.
        assert!(run(&mut m, ALICE, &[(10, PortSpec::tcp(9000))]).is_empty());
    }

    #[test]
    fn timeout_abandons_the_attempt() {
        let mut m = Matcher::new(ssh());
        let k = [
            (0, PortSpec::tcp(7000)),
            (5_000, PortSpec::udp(8000)),
            (10_001, PortSpec::tcp(9000)),
        ];
        assert!(run(&mut m, ALICE, &k).is_empty());
        assert_eq!(m.counters().timeouts, 1);
        // Exactly at the timeout is still in time.
        let k = [
            (20_000, PortSpec::tcp(7000)),
            (25_000, PortSpec::udp(8000)),
            (30_000, PortSpec::tcp(9000)),
        ];
        assert_eq!(run(&mut m, ALICE, &k), vec![0]);
    }

    #[test]
    fn tick_purges_expired_attempts() {
        let mut m = Matcher::new(ssh());
        run(&mut m, ALICE, &[(0, PortSpec::tcp(7000))]);
        m.on_tick(Millis(10_000));
        assert_eq!(m.in_progress(), 1);
        m.on_tick(Millis(10_001));
        assert_eq!(m.in_progress(), 0);
        assert_eq!(m.counters().timeouts, 1);
    }

    #[test]
    fn wrong_knock_resets_progress() {
        let mut m = Matcher::new(ssh());
        let k = [
            (0, PortSpec::tcp(7000)),
            (1, PortSpec::udp(8000)),
            (2, PortSpec::tcp(7000)), // restarts at step 1
            (3, PortSpec::tcp(9000)), // wrong now: resets
            (4, PortSpec::udp(8000)),
        ];
        assert!(run(&mut m, ALICE, &k).is_empty());
        assert_eq!(m.progress_of(ALICE, 0), None);
        assert_eq!(m.counters().resets, 2);
        // The same port under the other protocol is a wrong knock too.
        let k = [(10, PortSpec::tcp(7000)), (11, PortSpec::tcp(8000))];
        run(&mut m, ALICE, &k);
        assert_eq!(
            m.progress_of(ALICE, 0),
            Some(1),
            "tcp:8000 is no knock port: ignored"
        );
        run(&mut m, ALICE, &[(12, PortSpec::udp(9000))]);
        assert_eq!(
            m.progress_of(ALICE, 0),
            Some(1),
            "udp:9000 is no knock port either"
        );
    }

    #[test]
    fn spurious_packets_are_ignored() {
        let mut m = Matcher::new(ssh());
        let k = [
            (0, PortSpec::tcp(7000)),
            (1, PortSpec::tcp(22)),
            (2, PortSpec::udp(53)),
            (3, PortSpec::udp(8000)),
            (4, PortSpec::tcp(443)),
            (5, PortSpec::tcp(9000)),
        ];
        assert_eq!(run(&mut m, ALICE, &k), vec![0]);
        assert_eq!(m.counters().not_knock_port, 3);
    }

    #[test]
    fn duplicate_syn_is_ignored() {
        let mut m = Matcher::new(ssh());
        let k = [
            (0, PortSpec::tcp(7000)),
            (1, PortSpec::tcp(7000)),
            (1_000, PortSpec::tcp(7000)),
            (1_001, PortSpec::udp(8000)),
            (1_002, PortSpec::udp(8000)),
            (1_003, PortSpec::tcp(9000)),
        ];
        assert_eq!(run(&mut m, ALICE, &k), vec![0]);
        assert_eq!(m.counters().duplicates, 3);
    }

    #[test]
    fn single_step_sequence_and_several_sequences() {
        let mut m = Matcher::new(vec![
            seq(&[PortSpec::udp(5000)], 5),
            seq(&[PortSpec::tcp(7000), PortSpec::tcp(7001)], 5),
            seq(&[PortSpec::tcp(6000), PortSpec::tcp(7001)], 5),
        ]);
        assert_eq!(run(&mut m, ALICE, &[(0, PortSpec::udp(5000))]), vec![0]);
        let k = [(1, PortSpec::tcp(6000)), (2, PortSpec::tcp(7001))];
        assert_eq!(run(&mut m, ALICE, &k), vec![2]);
    }

    #[test]
    fn sources_are_kept_apart() {
        let mut m = Matcher::new(ssh());
        let bob = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
        run(&mut m, ALICE, &[(0, PortSpec::tcp(7000))]);
        run(
            &mut m,
            bob,
            &[(1, PortSpec::tcp(7000)), (2, PortSpec::udp(8000))],
        );
        // Alice's third step is wrong for her (she is at step 1).
        assert!(run(&mut m, ALICE, &[(3, PortSpec::tcp(9000))]).is_empty());
        assert_eq!(run(&mut m, bob, &[(4, PortSpec::tcp(9000))]), vec![0]);
    }

    #[test]
    fn thousand_interleaved_sources_all_complete() {
        let mut m = Matcher::new(ssh());
        let steps = [
            PortSpec::tcp(7000),
            PortSpec::udp(8000),
            PortSpec::tcp(9000),
        ];
        let mut done = 0;
        for (t, step) in steps.iter().enumerate() {
            for s in 0..1000u32 {
                m.on_knock(
                    Millis(t as u64 * 100 + u64::from(s)),
                    v4(0x0a00_0000 + s),
                    *step,
                    &mut |i| {
                        assert_eq!(i, 0);
                        done += 1;
                    },
                );
            }
        }
        assert_eq!(done, 1000);
        assert_eq!(m.in_progress(), 0);
    }

    /// Deterministic xorshift so the test is repeatable.
    fn spoofed(state: &mut u32) -> IpAddr {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        v4(*state)
    }

    #[test]
    fn legit_sequence_completes_through_spoofed_first_knock_flood() {
        let mut m = Matcher::new(ssh());
        let mut rng = 0x1234_5678u32;
        let mut flood = |m: &mut Matcher, n: usize, t: u64| {
            for _ in 0..n {
                let src = spoofed(&mut rng);
                m.on_knock(Millis(t), src, PortSpec::tcp(7000), &mut |_| {
                    panic!("spoof completed")
                });
            }
        };
        // The table is already full of spoofed first knocks when Alice starts.
        flood(&mut m, 50_000, 0);
        let mut done = run(&mut m, ALICE, &[(1, PortSpec::tcp(7000))]);
        // Fewer spoofed first knocks than the table holds arrive before her step 2...
        flood(&mut m, KNOCK_TABLE_CAPACITY - 1, 2);
        done.extend(run(&mut m, ALICE, &[(3, PortSpec::udp(8000))]));
        // ...and once she is halfway through, no number of them can evict her.
        flood(&mut m, 100_000, 4);
        done.extend(run(&mut m, ALICE, &[(5, PortSpec::tcp(9000))]));
        assert_eq!(done, vec![0]);
        assert!(m.counters().evictions >= 150_000);
        assert_eq!(
            m.in_progress(),
            KNOCK_TABLE_CAPACITY - 1,
            "hers is gone: done"
        );
    }

    #[test]
    fn first_step_is_evicted_after_a_table_of_newer_first_knocks() {
        // The documented limit: a first step survives KNOCK_TABLE_CAPACITY - 1 newer ones.
        let mut m = Matcher::new(ssh());
        let mut rng = 99u32;
        run(&mut m, ALICE, &[(0, PortSpec::tcp(7000))]);
        for _ in 0..KNOCK_TABLE_CAPACITY {
            let src = spoofed(&mut rng);
            m.on_knock(Millis(1), src, PortSpec::tcp(7000), &mut |_| {});
        }
        assert_eq!(m.progress_of(ALICE, 0), None);
    }
}
