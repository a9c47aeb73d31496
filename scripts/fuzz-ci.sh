#!/usr/bin/env bash
# CI fuzz step: installs what the fuzz build needs (the pinned nightly Rust, a C++
# compiler for libFuzzer), then runs every fuzz target briefly
# (FUZZ_SECONDS each, default 15) through scripts/fuzz.sh; fails (exit 1) when
# a target crashes or breaks an invariant (the input is in fuzz/artifacts/). The committed corpus
# and regression inputs are also replayed by the stable `cargo test`
# (tests/fuzz_regressions.rs), so this step adds fresh exploration only.
# Measured: see fuzz/README.md ("CI").
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-15}

# The pinned nightly (the router builds' too), not whatever nightly is newest.
NIGHTLY=${POSTERN_NIGHTLY:-$(cat scripts/rust-nightly)}
if ! rustup run "$NIGHTLY" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$NIGHTLY" --profile minimal
fi
if ! command -v c++ >/dev/null && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi
bash scripts/fuzz.sh all "$seconds"
