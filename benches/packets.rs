//! Per-packet cost of postern's hot path, with a plain std timing loop.
//!
//! ```text
//! cargo bench --bench packets                 # every case: ns/packet
//! cargo bench --bench packets -- knock        # cases whose name contains "knock"
//! scripts/callgrind.sh                        # instructions/packet (repeatable)
//! ```
//!
//! Modes of the binary (cargo passes `--bench` to `cargo bench` runs only):
//! * `--bench [FILTER]`: warm-up, then 7 timed rounds of ~100 ms per case;
//!   prints the median and the best round in ns/packet.
//! * `--callgrind CASE N`: builds CASE (setup and one warm-up pass over its
//!   frame pool), feeds N more packets, exits. `scripts/callgrind.sh` runs it
//!   under callgrind with N and with 0 and divides the difference by N.
//! * no `--bench` (`cargo test --all-targets`): a smoke run: every case feeds a
//!   few thousand packets and checks they took the intended path. No timing.
//!
//! The cases live in `cases/mod.rs` (shared with `tests/alloc.rs`).

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod cases;

use cases::{Case, DESCRIPTIONS, NAMES};

/// Timed rounds per case.
const ROUNDS: usize = 7;
/// Target length of one round.
const ROUND: Duration = Duration::from_millis(100);
/// Warm-up before timing.
const WARM_UP: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--callgrind") {
        return callgrind(args.get(i + 1), args.get(i + 2));
    }
    if args.iter().any(|a| a == "--list") {
        for n in NAMES {
            println!("{n}");
        }
        return ExitCode::SUCCESS;
    }
    let filter = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    if args.iter().any(|a| a == "--bench") {
        bench(filter.unwrap_or(""))
    } else {
        smoke()
    }
}

/// Builds a case by name; every name in [`NAMES`] exists.
fn case(name: &str) -> Case {
    Case::new(name).expect("every listed case exists")
}

fn bench(filter: &str) -> ExitCode {
    println!(
        "{:<32} {:>10} {:>10} {:>12}   what",
        "case", "ns/packet", "best", "packets/rnd"
    );
    for (name, what) in NAMES.iter().zip(DESCRIPTIONS) {
        if !name.contains(filter) {
            continue;
        }
        let mut c = case(name);
        // Warm-up, and a first estimate of the speed.
        let t = Instant::now();
        let mut warm = 0u64;
        while t.elapsed() < WARM_UP {
            c.run(1000);
            warm += 1000;
        }
        let per_packet = t.elapsed().as_secs_f64() / warm as f64;
        let n = ((ROUND.as_secs_f64() / per_packet) as u64).max(1000);
        let mut rounds: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                black_box(&mut c).run(n);
                t.elapsed().as_nanos() as f64 / n as f64
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        c.mark();
        c.run(c.cycle_len() as u64);
        if let Err(e) = c.verify() {
            eprintln!("case took the wrong path: {e}");
            return ExitCode::FAILURE;
        }
        println!(
            "{name:<32} {:>10.1} {:>10.1} {n:>12}   {what}",
            rounds[ROUNDS / 2],
            rounds[0]
        );
    }
    ExitCode::SUCCESS
}

fn callgrind(name: Option<&String>, n: Option<&String>) -> ExitCode {
    let (Some(name), Some(n)) = (name, n.and_then(|n| n.parse::<u64>().ok())) else {
        eprintln!(
            "usage: packets --callgrind CASE N   (cases: {})",
            NAMES.join(" ")
        );
        return ExitCode::from(2);
    };
    let Some(mut c) = Case::new(name) else {
        eprintln!("no case '{name}' (cases: {})", NAMES.join(" "));
        return ExitCode::from(2);
    };
    black_box(&mut c).run(n);
    if n > 0 {
        if let Err(e) = c.verify() {
            eprintln!("case took the wrong path: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn smoke() -> ExitCode {
    for name in NAMES {
        let mut c = case(name);
        c.run(3 * c.cycle_len().max(1000) as u64);
        if let Err(e) = c.verify() {
            eprintln!("case took the wrong path: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "packets: {} cases ok (smoke run; `cargo bench --bench packets` times them)",
        NAMES.len()
    );
    ExitCode::SUCCESS
}
