#!/usr/bin/env bash
# The test command (README): formatting, lints, then every test.
# As root the network-namespace end-to-end tests run; otherwise they print
# SKIPPED — except under CI=true, where they must run.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_BACKTRACE=0

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo clippy -D warnings, router build (--no-default-features)"
cargo clippy --lib --bins --locked --no-default-features -- -D warnings
echo "== cargo test"
cargo test --locked --all-targets
