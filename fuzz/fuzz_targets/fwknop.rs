//! Fuzz target `fwknop`: see `postern_fuzz::harness::fwknop`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::harness::fwknop::run(data));
