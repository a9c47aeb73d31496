//! Fuzz target `wire`: see `postern_fuzz::harness::wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::harness::wire::run(data));
