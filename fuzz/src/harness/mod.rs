//! One harness per fuzz target: `run(&[u8])` feeds the bytes to postern and
//! panics (the fuzzer's "crash") when postern panics or an invariant breaks.
//!
//! Only postern's public API is used, so the same file compiles in the fuzz
//! crate and, through `#[path]`, in postern's own integration tests. Nothing
//! here does I/O.

pub mod bpf;
pub mod engine;
pub mod fwknop;
pub mod input;
pub mod net;
pub mod peer;
pub mod seeds;
pub mod spa;
pub mod uci;
pub mod wire;

/// A harness: one fuzz input in, a panic on any failure.
pub type Harness = fn(&[u8]);

/// Every target by name (the directory names under `fuzz/corpus/` and
/// `fuzz/regressions/`).
pub const TARGETS: [(&str, Harness); 7] = [
    ("wire", wire::run),
    ("uci", uci::run),
    ("spa", spa::run),
    ("engine", engine::run),
    ("bpf", bpf::run),
    ("fwknop", fwknop::run),
    ("peer", peer::run),
];
