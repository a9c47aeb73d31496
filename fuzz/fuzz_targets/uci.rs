//! Fuzz target `uci`: see `postern_fuzz::harness::uci`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::harness::uci::run(data));
