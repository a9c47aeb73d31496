#!/usr/bin/env bash
# Runs postern's fuzz targets (fuzz/README.md) with libFuzzer for a bounded time.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS] [INPUT...]
#
# TARGET: wire, uci, spa, engine, bpf, fwknop, peer or all (default all); SECONDS per target
# (default 60). With INPUT files, runs the target once over them instead
# (reproducing a crash). Needs the pinned nightly toolchain of
# scripts/rust-nightly (POSTERN_NIGHTLY overrides it; scripts/fuzz-ci.sh
# installs it) and a C++ compiler for libFuzzer; not cargo-fuzz
# (the fuzz crate is laid out for `cargo fuzz` too, which builds the same way).
#
# New interesting inputs go to fuzz/target/work/<target>/ (not committed);
# the committed seeds in fuzz/corpus/<target>/ are read only. Crashes are
# written to fuzz/artifacts/<target>/ and the script fails: fix the bug, then
# move the input to fuzz/regressions/<target>/ (replayed by `cargo test`).
# A summary line per target (executions, exec/s, coverage) is printed at the end
# and appended to fuzz/target/runs.log.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TARGETS=(wire uci spa engine bpf fwknop peer)
which=${1:-all}
seconds=${2:-60}
shift $(($# > 2 ? 2 : $#))
if [ "$which" = all ]; then
    run=("${TARGETS[@]}")
else
    printf '%s\n' "${TARGETS[@]}" | grep -qx "$which" || { echo "unknown target '$which' (${TARGETS[*]} all)" >&2; exit 2; }
    run=("$which")
fi

# The instrumentation cargo-fuzz applies (sanitizer "none": the code under
# test is safe Rust), plus debug assertions and overflow checks.
NIGHTLY=${POSTERN_NIGHTLY:-$(cat ../scripts/rust-nightly)}
host=$(rustc +"$NIGHTLY" -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="$PWD/target"
echo "== building fuzz targets ($NIGHTLY, $host)"
cargo +"$NIGHTLY" build --locked --release --target "$host" --bins
bin="$CARGO_TARGET_DIR/$host/release"

if [ $# -gt 0 ]; then
    for t in "${run[@]}"; do "$bin/$t" "$@"; done
    exit 0
fi

status=0
summary=()
for t in "${run[@]}"; do
    mkdir -p "target/work/$t" "artifacts/$t"
    log="target/work/$t.log"
    # Engine inputs are op lists: longer ones mostly repeat AEAD work; fwknop
    # packets end at 1500 bytes (a 1100-byte plaintext seals to about that).
    max_len=4096
    [ "$t" = engine ] && max_len=512
    [ "$t" = fwknop ] && max_len=1600
    echo "== fuzzing $t for ${seconds}s"
    set +e
    "$bin/$t" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        -max_len=$max_len -timeout=10 "target/work/$t" "corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    line="$t: ${execs:-?} execs, ${rate:-?} exec/s, cov ${cov:-?}, ${seconds}s, exit $rc"
    echo "$line"
    summary+=("$line")
    echo "$(date -u +%FT%TZ) $line" >>target/runs.log
    if [ $rc -ne 0 ]; then
        status=1
        grep -E 'panicked|ERROR|Test unit written' "$log" | head -5 >&2
    fi
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
