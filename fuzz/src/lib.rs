//! postern's fuzz harnesses, shared by the `cargo fuzz` targets in
//! `fuzz_targets/` and by the crate's `tests/fuzz_regressions.rs`, which replays
//! the committed corpus and regression inputs under a plain `cargo test`.

pub mod harness;
