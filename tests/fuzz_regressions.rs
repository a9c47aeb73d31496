//! Replays the fuzz corpora through the fuzz harnesses under a plain `cargo test`
//! (no nightly, no libFuzzer): every file in `fuzz/regressions/<target>/` (inputs
//! that once crashed or broke an invariant, kept after the fix) and in
//! `fuzz/corpus/<target>/` (the committed seeds). A harness panics on any
//! invariant it checks, so a regression fails this test. See fuzz/README.md.

#[path = "../fuzz/src/harness/mod.rs"]
#[allow(dead_code)]
mod harness;

use std::path::Path;

/// Runs `target`'s harness over every file in `dir`; returns how many ran.
fn replay(target: &str, run: fn(&[u8]), dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("readable input");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(
            outcome.is_ok(),
            "fuzz target {target} fails on {} (replay: scripts/fuzz.sh {target} 0 {})",
            f.display(),
            f.display()
        );
    }
    files.len()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn regression_inputs_pass() {
    for (target, run) in harness::TARGETS {
        replay(target, run, &root().join("fuzz/regressions").join(target));
    }
}

#[test]
fn seed_corpora_pass_and_are_small() {
    for (target, run) in harness::TARGETS {
        let n = replay(target, run, &root().join("fuzz/corpus").join(target));
        assert!(n >= 3, "fuzz/corpus/{target} has {n} seeds");
        assert!(
            n <= 100,
            "fuzz/corpus/{target} has {n} seeds: keep it small"
        );
    }
}

/// Rewrites `fuzz/corpus/` from `harness::seeds` (run by hand after changing an
/// input format: `cargo test --test fuzz_regressions -- --ignored write_seed_corpora`).
#[test]
#[ignore = "writes files; run by hand"]
fn write_seed_corpora() {
    for (target, _) in harness::TARGETS {
        let dir = root().join("fuzz/corpus").join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("corpus directory");
    }
    for (target, name, bytes) in harness::seeds::all() {
        let path = root().join("fuzz/corpus").join(target).join(name);
        std::fs::write(path, bytes).expect("seed written");
    }
}

/// The engine seeds reach the grant paths the invariants are about (so a
/// harness that silently stopped granting would not pass unnoticed).
#[test]
fn engine_seeds_reach_grants() {
    let dir = root().join("fuzz/corpus/engine");
    let run = |name: &str| harness::engine::run_counting(&std::fs::read(dir.join(name)).unwrap());
    assert_eq!(run("ssh_observations"), (1, 0));
    assert_eq!(run("ssh_frames"), (1, 0));
    assert_eq!(run("ssh_then_close"), (1, 1));
    assert_eq!(run("ssh_too_slow"), (0, 0));
    assert_eq!(run("prefix"), (1, 0));
    assert_eq!(run("rep"), (1, 0));
    assert_eq!(run("one_step"), (2, 0));
    assert_eq!(run("spa_open"), (1, 0));
    assert_eq!(run("spa_frame_and_replay"), (1, 0));
    assert_eq!(run("locked"), (0, 0));
    let counts =
        |name: &str| harness::engine::run_all_counts(&std::fs::read(dir.join(name)).unwrap());
    // wake and reboot for laptop.
    assert_eq!(counts("spa_command"), [0, 0, 2, 0]);
    // nas for laptop (its replay refused), cam for phone.
    assert_eq!(counts("spa_forward_and_replay"), [0, 0, 0, 2]);
    // phone does not list nas.
    assert_eq!(counts("spa_forward_not_listed"), [0, 0, 0, 0]);
}

/// The fwknop harness seals packets as the real fwknop client does: it
/// reproduces the client's packets byte for byte (so what it fuzzes behind
/// the HMAC is what real packets reach).
#[test]
fn fwknop_sealer_matches_real_client() {
    assert!(harness::fwknop::check_sealer() >= 10);
}

/// The fwknop seeds reach acceptance of every kind (open, command, forward).
#[test]
fn fwknop_seeds_reach_grants() {
    let dir = root().join("fuzz/corpus/fwknop");
    let run = |name: &str| harness::fwknop::run_kind(&std::fs::read(dir.join(name)).unwrap());
    use postern::spa::Kind;
    assert_eq!(run("sealed_access_source_sha256"), Some(Kind::Open));
    assert_eq!(run("fields_wake"), Some(Kind::Command));
    assert_eq!(run("fields_forward_2200"), Some(Kind::Forward));
    assert_eq!(run("fields_forward_timeout"), Some(Kind::Forward));
    assert_eq!(run("fields_reboot_not_listed"), None);
    assert_eq!(run("built_type1"), Some(Kind::Open));
}
