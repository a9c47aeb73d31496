//! Fuzz target `engine`: see `postern_fuzz::harness::engine`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::harness::engine::run(data));
