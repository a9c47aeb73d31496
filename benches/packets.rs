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
//!   Cases with a bounded first pass (`spa_valid`: every packet accepted,
//!   see `cases/mod.rs`) get a second line, timed over many fresh passes.
//! * `--callgrind CASE N [--cold]`: builds CASE (setup and one warm-up pass
//!   over its frame pool; with `--cold` no warm-up, and N at most the pool),
//!   feeds N more packets, exits. `scripts/callgrind.sh` runs it under
//!   callgrind with N and with 0 and divides the difference by N.
//! * `--list`, `--list-first-pass`: the case names.
//! * no `--bench` (`cargo test --all-targets`): a smoke run: every case feeds a
//!   few thousand packets and checks they took the intended path. No timing.
//!
//! The cases live in `cases/mod.rs` (shared with `tests/alloc.rs`).

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod cases;

use cases::{Case, DESCRIPTIONS, FIRST_PASS, NAMES};

/// Timed rounds per case.
const ROUNDS: usize = 7;
/// Target length of one round.
const ROUND: Duration = Duration::from_millis(100);
/// Warm-up before timing.
const WARM_UP: Duration = Duration::from_millis(200);
/// Fresh first passes timed per first-pass case.
const FIRST_PASSES: usize = 200;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--callgrind") {
        let cold = args.iter().any(|a| a == "--cold");
        return callgrind(args.get(i + 1), args.get(i + 2), cold);
    }
    if args.iter().any(|a| a == "--list") {
        for n in NAMES {
            println!("{n}");
        }
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--list-first-pass") {
        for n in FIRST_PASS {
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
        if FIRST_PASS.contains(name) {
            if let Err(e) = bench_first_pass(name) {
                eprintln!("case took the wrong path: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Times [`FIRST_PASSES`] fresh first passes of `name` (set-up untimed).
fn bench_first_pass(name: &str) -> Result<(), String> {
    let mut rounds = Vec::with_capacity(FIRST_PASSES);
    let mut len = 0;
    for _ in 0..FIRST_PASSES {
        let mut c = Case::cold(name).expect("listed first-pass case");
        len = c.cycle_len() as u64;
        let t = Instant::now();
        black_box(&mut c).run(len);
        rounds.push(t.elapsed().as_nanos() as f64 / len as f64);
        c.verify()?;
    }
    rounds.sort_by(f64::total_cmp);
    let label = format!("{name} (first pass)");
    println!(
        "{label:<32} {:>10.1} {:>10.1} {len:>12}   the same packets on a fresh engine: each accepted (Open)",
        rounds[FIRST_PASSES / 2],
        rounds[0]
    );
    Ok(())
}

fn callgrind(name: Option<&String>, n: Option<&String>, cold: bool) -> ExitCode {
    let (Some(name), Some(n)) = (name, n.and_then(|n| n.parse::<u64>().ok())) else {
        eprintln!(
            "usage: packets --callgrind CASE N [--cold]   (cases: {})",
            NAMES.join(" ")
        );
        return ExitCode::from(2);
    };
    let built = if cold {
        Case::cold(name)
    } else {
        Case::new(name)
    };
    let Some(mut c) = built else {
        eprintln!(
            "no case '{name}' (cases: {}; with --cold: {})",
            NAMES.join(" "),
            FIRST_PASS.join(" ")
        );
        return ExitCode::from(2);
    };
    if cold && n > c.cycle_len() as u64 {
        eprintln!("--cold: at most {} packets for {name}", c.cycle_len());
        return ExitCode::from(2);
    }
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
        c.run(2 * c.cycle_len().max(100) as u64);
        if let Err(e) = c.verify() {
            eprintln!("case took the wrong path: {e}");
            return ExitCode::FAILURE;
        }
    }
    for name in FIRST_PASS {
        let mut c = Case::cold(name).expect("listed first-pass case");
        c.run(c.cycle_len() as u64);
        if let Err(e) = c.verify() {
            eprintln!("case took the wrong path (first pass): {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "packets: {} cases ok (smoke run; `cargo bench --bench packets` times them)",
        NAMES.len()
    );
    ExitCode::SUCCESS
}
