#!/usr/bin/env bash
# bench/lab/postern.sh VERB -- lab plug-in for postern (contract:
# ../shared/lab/README.md, "Plug-in contract"; modelled on anchors/knockd.sh).
#
#   LAB_PLUGINS=$PWD/bench/lab RESULTS_DIR=$PWD/bench/results \
#       ../shared/lab/measure.sh postern fwknop knockd
#
# Daemon set-up: `postern daemon` in pk-router captures on pkbr0 (AF_PACKET,
# in-kernel BPF: only SYNs to the knock ports reach it) with the standalone
# nftables backend: postern owns `table inet postern`, whose input chain
# (priority filter - 5) accepts established traffic and sources in @allow4,
# and drops tcp/$SVC_PORT for everyone else. A correct sequence
# tcp:7000, tcp:8000, tcp:9000 (the knock ports knockd's anchor uses, so the
# floods compare) adds `CLIENT . tcp . $SVC_PORT` to @allow4 over netlink
# with a kernel timeout of $PK_ACCESS_TIMEOUT s. No process is spawned per
# knock.
#
# The lab's own drop rule: an nftables accept is final only for its own
# chain, so postern's accept alone cannot beat the lab's drop, which runs
# later (iptables filter INPUT, or `inet pklab` with FW=nft, both priority
# 0). Like the anchors, `start` therefore puts one rule above the lab's drop
# that hands tcp/$SVC_PORT to postern: with FW=iptables a chain POSTERN_LAB
# jumped to from INPUT position 1 (`-p tcp --dport $SVC_PORT -j ACCEPT`),
# with FW=nft an `accept` inserted at the top of `inet pklab input`. The port
# stays closed because postern's chain drops it first (a drop is final); the
# delegation is added only after postern is ready and removed before it
# stops, so the port is never open without postern guarding it.
#
# SPA mode (POSTERN_MODE=spa, or the plug-in name postern-spa, whose
# bench/lab/postern-spa.sh wraps this file): no knock sequence; one SPA
# client with a fresh key (`postern keygen`) allowed tcp/$SVC_PORT, and
# `knock` sends one native SPA packet (`postern spa -A tcp/$SVC_PORT`) to
# udp/$SPA_PORT. The in-kernel filter then passes only UDP to $SPA_PORT,
# so the lab's udp-spa flood (base64 junk of 150-300 bytes, fwknop-shaped)
# reaches the verifier; `floods` adds junk-spa: random binary junk of the
# native packet sizes (75-296 bytes), which no length check can drop.
# POSTERN_SPA_BUDGET sets `option spa_verify_budget` (default: the config's
# default); POSTERN_SPA_CLIENTS (default 1) adds clients with other keys, so
# that every junk packet meets that many pre-filters; POSTERN_NICE (default 0)
# runs the daemon at another nice value, to tell losses to a busy host's
# scheduler (capture ring overflow) from the daemon's own.
#
# Each `stop` first appends the daemon's `postern status --json` (counters:
# capture drops, SPA refusals by reason...) to $STATE_DIR/NAME-status.log,
# so every phase of a lab run leaves its counters behind.
#
# The binary: $POSTERN_BIN, default $CARGO_TARGET_DIR/release/postern (or
# target/release/postern in this repository), built with
# `cargo build --release --locked` when missing.
set -euo pipefail
LAB_DIR=${LAB_DIR:-$(cd "$(dirname "$0")/../../../shared/lab" 2>/dev/null && pwd)}
. "$LAB_DIR/lib.sh"

MODE=${POSTERN_MODE:-knock}              # knock | spa
case "$MODE" in
    knock) NAME=postern ;;
    spa) NAME=postern-spa ;;
    *) echo "POSTERN_MODE must be knock or spa" >&2; exit 2 ;;
esac
REPO=$(cd "$(dirname "$0")/../.." && pwd)
D="$STATE_DIR/$NAME"
PIDF="$STATE_DIR/$NAME.pid"
BIN=${POSTERN_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/postern}
SEQ=${POSTERN_SEQ:-7000,8000,9000}      # TCP knock ports, in order
ACCESS_TIMEOUT=${PK_ACCESS_TIMEOUT:-3}  # grant lifetime (measure.sh sets 60)
SPA_PORT=62201                          # the config's spa_port (fwknop's too)
SPA_BUDGET=${POSTERN_SPA_BUDGET:-}      # option spa_verify_budget ('' = default)
SPA_CLIENTS=${POSTERN_SPA_CLIENTS:-1}    # SPA clients configured (the lab's key is the first)
NICE=${POSTERN_NICE:-0}                 # the daemon's nice value (a diagnostic on a busy host)
# The SPA replay state file is synced before each grant; on OpenWrt its
# directory (/var/run/postern) is tmpfs, so keep it on tmpfs here too (on
# this host's ext4 /tmp the sync alone cost ~30 ms per grant).
STATE_TMPFS=/dev/shm/pklab-$NAME
CHAIN=POSTERN_LAB                       # FW=iptables delegation chain
MARK=postern-lab-delegation             # FW=nft delegation rule comment

fw_mode() { cat "$STATE_DIR/fw" 2>/dev/null || echo iptables; }

ensure_binary() {
    [ -x "$BIN" ] && return 0
    log "building $BIN (cargo build --release --locked)"
    (cd "$REPO" && cargo build --release --locked >&2)
    [ -x "$BIN" ] || die "no postern binary at $BIN (set POSTERN_BIN)"
}

delegate() {
    case "$(fw_mode)" in
    iptables)
        in_r iptables -N "$CHAIN"
        in_r iptables -A "$CHAIN" -p tcp --dport "$SVC_PORT" -j ACCEPT
        in_r iptables -I INPUT 1 -j "$CHAIN" ;;
    nft)
        in_r nft insert rule inet pklab input tcp dport "$SVC_PORT" accept comment "\"$MARK\"" ;;
    esac
}

undelegate() {
    in_r iptables -D INPUT -j "$CHAIN" 2>/dev/null || true
    in_r iptables -F "$CHAIN" 2>/dev/null || true
    in_r iptables -X "$CHAIN" 2>/dev/null || true
    local h
    for h in $(in_r nft -a list chain inet pklab input 2>/dev/null |
               sed -n "s/.*\"$MARK\".*# handle \([0-9]*\).*/\1/p"); do
        in_r nft delete rule inet pklab input handle "$h" || true
    done
}

start() {
    [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null && die "$NAME already running"
    ensure_binary
    rm -rf "$D" "$STATE_TMPFS"; mkdir -p "$D" "$STATE_TMPFS"; chmod 700 "$D" "$STATE_TMPFS"
    {
        printf "config postern 'main'\n\toption backend 'nft'\n\tlist device '%s'\n" "$BR"
        printf "\toption log_level 'info'\n"
        if [ "$MODE" = spa ]; then
            printf "\toption spa_port '%s'\n\toption state_dir '%s'\n" "$SPA_PORT" "$STATE_TMPFS"
            [ -z "$SPA_BUDGET" ] || printf "\toption spa_verify_budget '%s'\n" "$SPA_BUDGET"
            "$BIN" keygen > "$D/keygen.txt"
            head -1 "$D/keygen.txt" > "$D/key"
            printf "\nconfig client 'lab'\n\toption key '%s'\n" "$(cat "$D/key")"
            printf "\tlist allow 'tcp:%s'\n\toption max_duration '%s'\n" "$SVC_PORT" "$ACCESS_TIMEOUT"
            # More clients (other keys): each costs the pre-filter of every junk packet.
            local i
            for i in $(seq 2 "$SPA_CLIENTS"); do
                printf "\nconfig client 'other%s'\n\toption key '%s'\n" "$i" "$("$BIN" keygen | head -1)"
                printf "\tlist allow 'tcp:%s'\n" "$SVC_PORT"
            done
        else
            printf "\nconfig sequence 'lab'\n"
            local p
            for p in ${SEQ//,/ }; do printf "\tlist knock 'tcp:%s'\n" "$p"; done
            printf "\toption timeout '5'\n\tlist open 'tcp:%s'\n" "$SVC_PORT"
            printf "\toption duration '%s'\n" "$ACCESS_TIMEOUT"
        fi
    } > "$D/postern.conf"
    "$BIN" check -c "$D/postern.conf" >/dev/null || die "postern refuses $D/postern.conf"
    # ip netns exec and taskset exec, so $! is the daemon itself
    ip netns exec "$NS_R" taskset -c "$DAEMON_CPU" nice -n "$NICE" "$BIN" daemon -c "$D/postern.conf" \
        --control "$D/postern.sock" </dev/null >"$D/postern.log" 2>&1 &
    echo $! > "$PIDF"
    for _ in $(seq 50); do
        grep -q "ready:" "$D/postern.log" 2>/dev/null && break
        kill -0 "$(cat "$PIDF")" 2>/dev/null || { cat "$D/postern.log" >&2; die "postern died"; }
        sleep 0.1
    done
    grep -q "ready:" "$D/postern.log" || die "postern did not start"
    delegate
    cat "$PIDF"
}

# the daemon's counters, as JSON
status() { "$BIN" status --json -s "$D/postern.sock"; }

stop() {
    if [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; then
        { date -u +%FT%TZ; status 2>&1 || true; } >> "$STATE_DIR/$NAME-status.log"
    fi
    undelegate                       # first: the port must not open when postern's table goes
    kill_pidfile "$PIDF"             # SIGTERM: postern deletes table inet postern
    in_r nft delete table inet postern 2>/dev/null || true
    rm -rf "$STATE_TMPFS"
}

# runs INSIDE pk-client (the caller wraps it in ip netns exec)
knock() {
    if [ "$MODE" = spa ]; then
        exec "$BIN" spa "$ROUTER_IP" -A "tcp/$SVC_PORT" -s --key "$(cat "$D/key")" \
            -p "$SPA_PORT" --duration "$ACCESS_TIMEOUT" >/dev/null
    fi
    local k=() p
    for p in ${SEQ//,/ }; do k+=("tcp:$p"); done
    exec "$BIN" knock "$ROUTER_IP" "${k[@]}" >/dev/null
}

# revoke every grant now (the kernel set, not the daemon's knock progress)
reset() { in_r nft flush set inet postern allow4 2>/dev/null || true; }

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    pid) cat "$PIDF" ;;
    knock) knock ;;
    reset) reset ;;
    access-timeout) echo "$ACCESS_TIMEOUT" ;;
    # the packet that completes a knock: the SYN to the last port, or the SPA packet
    knock-filter)
        if [ "$MODE" = spa ]; then echo "src host $CLIENT_IP and udp dst port $SPA_PORT"
        else echo "src host $CLIENT_IP and tcp dst port ${SEQ##*,} and tcp[13] & 2 != 0"; fi ;;
    # postern-specific floods from random spoofed sources. Knock mode (same
    # as knockd's, so the rows line up): SYNs cycling over the sequence
    # ports, and SYNs to the first port only (each one a new first-step
    # attempt: the eviction path of the fixed knock table). SPA mode: random
    # binary junk of every native packet length (the lab's udp-spa is
    # base64 of 150-300 bytes; the few longer than 296 are dropped unopened).
    floods)
        if [ "$MODE" = spa ]; then echo "junk-spa udp --dports $SPA_PORT --payload rand --len 75-296"
        else echo "syn-knock syn --dports $SEQ"
             echo "syn-knock1 syn --dports ${SEQ%%,*}"; fi ;;
    binaries) ensure_binary >&2; echo "$BIN" ;;
    log) cat "$D/postern.log" ;;
    status) status ;;
    demo) exec "$LAB_DIR/prove.sh" "$NAME" ;;
    *) echo "usage: $0 start|stop|pid|knock|reset|access-timeout|knock-filter|floods|binaries|log|status|demo" >&2
       exit 2 ;;
esac
