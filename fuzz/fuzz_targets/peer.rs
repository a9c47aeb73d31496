//! Fuzz target `peer`: see `postern_fuzz::harness::peer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::harness::peer::run(data));
