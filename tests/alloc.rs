//! Zero heap allocations per packet in steady state, counted by a global
//! allocator (its own test binary, so the counting allocator touches no other
//! test).
//!
//! Each case of `benches/cases/mod.rs` (the same workloads the benchmark times)
//! is built (set-up may allocate), warmed up, then fed 10,000 packets while
//! this thread's allocations are counted: the count must be zero, and the
//! packets must have taken the path the case is about (`Case::verify`).
//! Counting is per thread, so the test harness's own threads do not
//! interfere and the cases can run in parallel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

#[path = "../benches/cases/mod.rs"]
#[allow(dead_code)]
mod cases;

use cases::Case;

/// Packets counted per case.
const PACKETS: u64 = 10_000;
/// Packets fed before counting (beyond the case's own warm-up pass).
const WARM_UP: u64 = 10_000;

struct Counting;

thread_local! {
    /// Whether this thread is counting now.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// Allocations (alloc, alloc_zeroed, realloc) this thread made while armed.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: thread-locals may be gone while a thread exits.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping only touches const-initialised thread-locals without
// destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.with(|n| n.get())
}

/// Builds `name`, warms it up, counts allocations over [`PACKETS`] packets.
fn assert_no_allocation_per_packet(name: &str) {
    assert_no_allocation_in(name, WARM_UP, PACKETS);
}

/// Builds `name`, feeds `warm_up` packets, counts allocations over `packets`.
/// (The SPA junk cases use fewer: an AEAD verification is slow in the
/// unoptimised test build, and the count is a fact either way.)
fn assert_no_allocation_in(name: &str, warm_up: u64, packets: u64) {
    let mut case = Case::new(name).expect("case exists");
    case.run(warm_up);
    case.mark();
    let n = allocations_during(|| case.run(packets));
    case.verify().expect("packets took the case's path");
    assert_eq!(n, 0, "{name}: {n} heap allocations in {packets} packets");
}

#[test]
fn the_counter_sees_allocations() {
    // Proves the test can fail: a boxed value and a growing vector count.
    let n = allocations_during(|| {
        let b = std::hint::black_box(Box::new(7u64));
        let mut v: Vec<u64> = Vec::new();
        for i in 0..100 {
            v.push(std::hint::black_box(i));
        }
        drop((b, v));
    });
    assert!(n >= 2, "counted {n}");
}

#[test]
fn every_case_is_tested() {
    // A case added to cases.rs must get a test below.
    assert_eq!(cases::NAMES.len(), 14);
    assert_eq!(cases::FIRST_PASS, ["spa_valid", "fwknop_valid"]);
}

#[test]
fn junk_syn_to_another_port_does_not_allocate() {
    assert_no_allocation_per_packet("junk_syn_other_port");
}

#[test]
fn malformed_frame_does_not_allocate() {
    assert_no_allocation_per_packet("malformed_bad_tcp_checksum");
}

#[test]
fn knock_step_does_not_allocate() {
    assert_no_allocation_per_packet("knock_step");
}

#[test]
fn completed_sequence_does_not_allocate() {
    assert_no_allocation_per_packet("sequence_complete");
}

#[test]
fn knocks_over_the_volume_limit_do_not_allocate() {
    assert_no_allocation_per_packet("knock_over_volume_limit");
}

#[test]
fn spoofed_first_knocks_into_a_full_table_do_not_allocate() {
    assert_no_allocation_per_packet("spoofed_first_knock_full_table");
}

#[test]
fn wire_observe_does_not_allocate() {
    assert_no_allocation_per_packet("wire_observe");
}

#[test]
fn valid_spa_packet_does_not_allocate() {
    // Steady state: pre-filter, replay lookup, refused before the AEAD.
    assert_no_allocation_in("spa_valid", 1_000, 1_000);
}

/// A fresh engine: the first half of the pool warms it up (accepted), the
/// second half is counted (accepted too: one Open decision each).
fn assert_no_allocation_accepting(name: &str) {
    let mut case = Case::cold(name).expect("first-pass case");
    let half = (case.cycle_len() / 2) as u64;
    case.run(half);
    case.mark();
    let n = allocations_during(|| case.run(half));
    case.verify().expect("packets were accepted");
    assert_eq!(
        n, 0,
        "{name}: {n} heap allocations in {half} accepted packets"
    );
}

#[test]
fn accepted_spa_packets_do_not_allocate() {
    assert_no_allocation_accepting("spa_valid");
}

#[test]
fn valid_fwknop_packet_does_not_allocate() {
    // Steady state: HMAC, decryption, parse, refused at the replay check.
    assert_no_allocation_in("fwknop_valid", 1_000, 1_000);
}

#[test]
fn accepted_fwknop_packets_do_not_allocate() {
    assert_no_allocation_accepting("fwknop_valid");
}

#[test]
fn fwknop_shaped_junk_does_not_allocate() {
    assert_no_allocation_in("fwknop_junk", 1_000, 1_000);
}

#[test]
fn junk_on_the_spa_port_does_not_allocate() {
    assert_no_allocation_in("spa_junk", 1_000, 1_000);
    assert_no_allocation_in("spa_junk_32_clients", 1_000, 1_000);
}

#[test]
fn filtered_packets_over_the_client_budget_do_not_allocate() {
    assert_no_allocation_per_packet("spa_filtered_over_budget");
}

#[test]
fn the_command_runner_wakes_without_allocating() {
    use postern::runner::{CommandSpec, Requester, Runner};
    use std::time::{Duration, Instant};

    let mut runner = Runner::new();
    let n = allocations_during(|| runner.on_wake(Instant::now()));
    assert_eq!(n, 0, "{n} heap allocations waking an idle runner");

    // A command that prints a line, then runs on: its output is drained,
    // its process polled, its timeout checked, all without allocating.
    let spec = CommandSpec {
        name: "quiet".into(),
        argv: ["/bin/sh", "-c", "echo hi; exec /bin/sleep 30"]
            .map(String::from)
            .to_vec(),
        timeout: Duration::from_secs(600),
        user: None,
    };
    let by = Requester {
        client: "alice",
        source: "192.0.2.9".parse().unwrap(),
        grant: None,
    };
    runner.start(&spec, by, Instant::now()).unwrap();
    let n = allocations_during(|| {
        for _ in 0..200 {
            runner.on_wake(Instant::now());
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    assert_eq!(runner.len(), 1, "the command still runs");
    assert_eq!(n, 0, "{n} heap allocations waking a runner with a command");
    runner.shutdown();
    assert!(runner.is_empty());
}

#[test]
fn spa_junk_into_a_full_ban_table_does_not_allocate() {
    assert_no_allocation_per_packet("spa_junk_bans");
}
