//! Fuzz target `bpf`: see `postern_fuzz::harness::bpf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::harness::bpf::run(data));
