//! Fuzz target `spa`: see `postern_fuzz::harness::spa`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::harness::spa::run(data));
