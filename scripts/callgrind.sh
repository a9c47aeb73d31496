#!/usr/bin/env bash
# Instructions per packet for each case of benches/packets.rs, counted by
# valgrind's callgrind: repeatable on a busy machine, unlike ns/packet.
#
#   scripts/callgrind.sh [N] [CASE...]     (default N=20000, every case)
#
# For each case the bench binary runs twice under callgrind: set-up plus N
# packets, and set-up plus 0 packets; (Ir(N) - Ir(0)) / N is the cost of one
# packet in steady state. Cases with a bounded first pass (`spa_valid`: every
# packet accepted on a fresh engine) get a second line, "(first pass)": run
# with --cold and N = its pool size. The binary is the `bench` profile (= release: what
# ships). Needs valgrind (installed with apt-get when missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-20000}
shift || true

if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    else
        echo "callgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
        exit 1
    fi
fi

# Build the bench binary and find its path (cargo prints it as JSON).
BIN=$(cargo bench --bench packets --no-run --message-format=json 2>/dev/null |
      grep '"kind":\["bench"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$BIN" ] || { echo "callgrind.sh: could not build the bench binary" >&2; exit 1; }

CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || mapfile -t CASES < <("$BIN" --list)

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# Total instructions (Ir) of one run: callgrind writes "summary: N" (older
# versions "totals: N") into its output file.
instructions() {
    local file=$OUT/cg.$1.$2${3:-}
    valgrind --tool=callgrind --callgrind-out-file="$file" "$BIN" --callgrind "$1" "$2" ${3:-} \
        >/dev/null 2>"$file.log" || { cat "$file.log" >&2; return 1; }
    sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$file" | head -1
}

printf '%-32s %14s\n' case "instr/packet"
for c in "${CASES[@]}"; do
    base=$(instructions "$c" 0)
    full=$(instructions "$c" "$N")
    printf '%-32s %14s\n' "$c" "$(( (full - base) / N ))"
done
mapfile -t FIRST < <("$BIN" --list-first-pass)
for c in "${FIRST[@]}"; do
    [[ " ${CASES[*]} " == *" $c "* ]] || continue
    n=64   # the pool (cases/mod.rs SPA_POOL); --cold refuses more
    base=$(instructions "$c" 0 --cold)
    full=$(instructions "$c" "$n" --cold)
    printf '%-32s %14s\n' "$c (first pass)" "$(( (full - base) / n ))"
done
echo "(N=$N packets per case; valgrind $(valgrind --version | sed 's/valgrind-//'))"
