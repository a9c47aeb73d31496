#!/usr/bin/env bash
# The emulated router, end to end (issue 5): postern's real firewall path on a
# MIPS kernel, which qemu-user cannot give (no NETLINK_NETFILTER, no
# PACKET_AUXDATA there).
#
#   bash scripts/vm/e2e.sh        (root; CI=true makes a missing root fatal)
#
# Builds an initramfs from Debian's mipsel packages — busybox-static and the
# Malta kernel's nf_tables/conntrack/pcnet32 modules, no `nft` binary — plus
# the static mipsel postern (scripts/cross.sh mipsel build) and
# scripts/vm/init; boots it with qemu-system-mipsel -M malta; and from a client
# network namespace holding the VM's tap device proves, for postern's own
# client and for Debian's `knock`: closed → knock → open → expired; then SPA,
# the crypto path on a MIPS CPU under a real kernel: `postern spa` opens
# (and --close closes) the guarded port, SPA packets under a key the router
# does not know ban their (off-link) source, whose valid SPA then opens
# nothing, while Debian's `fwknop` client still opens it for the other address;
# then PPPoE, the most common home WAN (issue 16): Debian's real pppd with its
# rp-pppoe plugin and the kernel's PPPoE bring up `pppoe-wan` in the VM, against
# scripts/vm/pppoe_ac.py on the host (the host kernel has no PPP; the access
# concentrator is user space and bridges the session to a TUN device). The
# daemon, started before the link exists, captures on `pppoe-wan`: a knock and
# SPA over PPPoE open the guarded port; the ISP ends the session (PADT), the
# daemon's CPU over 10 s with the link down is measured in the VM, pppd
# redials, and SPA over the new link opens the port again.
# Nothing prebuilt is committed; everything is fetched with apt-get download.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

log() { echo "== vm: $*"; }
fail() { echo "vm e2e: FAILED: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
    [ "${CI:-}" != true ] || fail "needs root (network namespaces, tap), and CI=true forbids skipping"
    echo "*** SKIPPED scripts/vm/e2e.sh: needs root (network namespace + tap device) ***" >&2
    exit 0
fi

GUEST=10.213.50.2
CLIENT=10.213.50.1
# The host side's second address: off-link from the VM (reached via $CLIENT),
# so that postern may ban it (it never bans its on-link subnets).
REMOTE=10.213.60.1
SERVICE=8080
GRANT=5 # seconds (the config's duration)
NS=pvm$$
# SPA keys (test keys, nothing secret): the router's native client, a native
# key the router does not know, and fwknop's Rijndael and HMAC keys.
SPA_KEY=cG9zdGVybi1jb250cm9sLXRlc3QtY2xpZW50LWszMiE=
STRANGER_KEY=bm90LXRoZS1yb3V0ZXJzLWtleS1hdC1hbGwtMzJieXQ=
FWKNOP_KEY=DyXRecbCiglrL5bp+oK2zB0ErwCQ/1GIU2EkP6N9Y70=
FWKNOP_HMAC=dUuyo02GNrV4WraUMCVPwiERqhS0ROLV2upc4DQbTNePa498Yy7qQxrsK+cJVrv1elzJnBQS7lyy5zhL8BUHDA==
TAP=pvmtap0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-vm.XXXXXX")
QEMU_PID=

cleanup() {
    [ -z "$QEMU_PID" ] || kill "$QEMU_PID" 2>/dev/null || true
    [ -z "$QEMU_PID" ] || wait "$QEMU_PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    if [ "${KEEP_VM_WORK:-}" = 1 ]; then echo "vm: work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- tools and packages ------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
want=()
for c in qemu-system-mipsel:qemu-system-mips cpio:cpio ip:iproute2 knock:knockd strings:binutils fwknop:fwknop-client; do
    command -v "${c%%:*}" >/dev/null || want+=("${c#*:}")
done
if ! dpkg --print-foreign-architectures | grep -cx mipsel >/dev/null; then
    log "dpkg --add-architecture mipsel"
    dpkg --add-architecture mipsel
    apt-get update -qq
fi
if [ ${#want[@]} -gt 0 ]; then
    log "apt-get install ${want[*]}"
    apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi
kernel_pkg=$(apt-cache depends linux-image-4kc-malta:mipsel | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$kernel_pkg" ]; then
    apt-get update -qq
    kernel_pkg=$(apt-cache depends linux-image-4kc-malta:mipsel | awk '/Depends: linux-image-/ {print $2; exit}')
fi
[ -n "$kernel_pkg" ] || fail "cannot resolve linux-image-4kc-malta:mipsel"
# No nftables package: postern builds its table over netlink itself, and the
# VM proves that a router without the `nft` binary works.
pkgs=("$kernel_pkg" busybox-static:mipsel)
# pppd (dynamically linked) and the libraries it needs; only pppd, its
# rp-pppoe plugin and their shared objects go into the initramfs.
ppp_pkgs=(ppp libc6 libssl3 libcrypt1 libpam0g libsystemd0 libpcap0.8 libcap2 libgcrypt20
    liblz4-1 liblzma5 libzstd1 libgpg-error0 libdbus-1-3 libaudit1 libcap-ng0 libatomic1)
for p in "${ppp_pkgs[@]}"; do pkgs+=("$p:mipsel"); done
log "apt-get download ${pkgs[*]}"
mkdir -p "$WORK/debs" "$WORK/root" "$WORK/kernel"
chmod 777 "$WORK/debs" # apt's _apt user writes there
(cd "$WORK/debs" && apt-get download "${pkgs[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
[ "$(ls "$WORK/debs" | wc -l)" -ge "${#pkgs[@]}" ] || fail "apt-get download fetched $(ls "$WORK/debs" | wc -l) of ${#pkgs[@]} packages"

# --- binaries --------------------------------------------------------------
log "building the static mipsel postern (scripts/cross.sh) and the host client"
bash scripts/cross.sh mipsel build >"$WORK/cross.log" 2>&1 || { tail -30 "$WORK/cross.log"; fail "mipsel build"; }
GUEST_BIN=${CARGO_TARGET_DIR:-target}/mipsel-unknown-linux-musl/release/postern
cargo build --locked --quiet
HOST_BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/postern
[ -x "$HOST_BIN" ] || fail "no host postern at $HOST_BIN"

# --- initramfs -----------------------------------------------------------
R=$WORK/root
dpkg-deb -x "$WORK/debs/"linux-image-*.deb "$WORK/kernel"
mkdir -p "$WORK/ppp"
for d in "$WORK/debs/"*.deb; do
    case "$d" in
    */linux-image-*) ;;
    */busybox-static_*) dpkg-deb -x "$d" "$R" ;;
    *) dpkg-deb -x "$d" "$WORK/ppp" ;;
    esac
done
# pppd, the plugin and the closure of their DT_NEEDED, symlinks kept.
P=$WORK/ppp
copy_into_root() { # path relative to $P
    local rel=$1
    [ -e "$R/$rel" ] && return 0
    mkdir -p "$R/$(dirname "$rel")"
    cp -a "$P/$rel" "$R/$rel"
    if [ -L "$P/$rel" ]; then copy_into_root "$(dirname "$rel")/$(readlink "$P/$rel")"; fi
}
find_lib() { find "$P/lib" "$P/usr/lib" -name "$1" \( -type f -o -type l \) -print -quit | sed "s|^$P/||"; }
plugin=$(cd "$P" && ls -d usr/lib/pppd/*/rp-pppoe.so) || fail "no rp-pppoe.so in the ppp package"
todo=(usr/sbin/pppd "$plugin" lib/ld.so.1)
declare -A copied=()
while [ ${#todo[@]} -gt 0 ]; do
    f=${todo[0]}
    todo=("${todo[@]:1}")
    [ -z "${copied[$f]:-}" ] || continue
    copied[$f]=1
    copy_into_root "$f"
    real=$(realpath --relative-to="$P" "$P/$f")
    for n in $(readelf -d "$P/$real" 2>/dev/null | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
        lib=$(find_lib "$n")
        [ -n "$lib" ] || fail "pppd needs $n, in none of ${ppp_pkgs[*]}"
        todo+=("$lib")
    done
done
log "pppd: ${#copied[@]} files (pppd, rp-pppoe.so, shared objects)"
rm -rf "$R/usr/share" # docs, man pages
mkdir -p "$R/bin" "$R/lib/modules" "$R/etc/config" "$R/proc" "$R/sys" "$R/dev"
ln -sf busybox "$R/bin/sh"
install -m 755 "$GUEST_BIN" "$R/bin/postern"
install -m 755 scripts/vm/init "$R/init"

# Modules: each wanted one after its depends= (read from the .ko's modinfo).
kdir=$(echo "$WORK/kernel/lib/modules/"*)
declare -A seen=()
order=()
add_module() {
    local m=$1 f deps d
    [ -z "${seen[$m]:-}" ] || return 0
    seen[$m]=1
    f=$(find "$kdir" -name "$m.ko" -print -quit)
    [ -n "$f" ] || fail "module $m not in $kernel_pkg"
    deps=$(strings -a "$f" | sed -n 's/^depends=//p' | tr ',' ' ')
    for d in $deps; do add_module "$d"; done
    cp "$f" "$R/lib/modules/$m.ko"
    order+=("$m")
}
# crc32c_generic: libcrc32c asks the crypto API for crc32c at load time.
# nft_reject_inet: the standalone table answers a guarded port like a closed
# one (`reject`, `reject with tcp reset`; pulls in nf_reject_ipv4/6).
# ppp_generic, pppox, pppoe (with slhc): the kernel side of pppd's PPPoE link.
for m in crc32c_generic nf_tables nft_ct nft_reject_inet pcnet32 ppp_generic pppox pppoe; do add_module "$m"; done
printf '%s\n' "${order[@]}" >"$R/etc/modules-order"
log "modules: ${order[*]}"

cat >"$R/etc/config/postern" <<EOF
config postern 'main'
	list device 'eth0'
	# Does not exist at start: pppd brings it up later (and again after a redial).
	list device 'pppoe-wan'
	option backend 'nft'
	option log_level 'debug'
	# SPA from 10 s after boot (the replay guard), and a ban after 3 failures.
	option max_skew '10'
	option ban_threshold '3'
	option ban_window '60'
	option ban_duration '300'

config client 'laptop'
	option key '$SPA_KEY'
	list allow 'tcp:$SERVICE'

config client 'phone'
	option fwknop_key '$FWKNOP_KEY'
	option fwknop_hmac_key '$FWKNOP_HMAC'
	list allow 'tcp:$SERVICE'

config sequence 'web'
	list knock 'tcp:7000'
	list knock 'udp:8000'
	list knock 'tcp:9000'
	list open 'tcp:$SERVICE'
	option duration '$GRANT'
EOF
chmod 600 "$R/etc/config/postern" # it holds keys
echo nft >"$R/etc/postern-backend"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"
log "initramfs: $(du -h "$WORK/initrd.gz" | cut -f1), kernel $(basename "$kdir")"

# --- the network and the VM ----------------------------------------------
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev "$TAP" mode tap
ip -n "$NS" addr add "$CLIENT/24" dev "$TAP"
ip -n "$NS" addr add "$REMOTE/32" dev "$TAP"
ip -n "$NS" link set "$TAP" up
CONSOLE=$WORK/console.log
log "booting qemu-system-mipsel -M malta (console: $CONSOLE)"
ip netns exec "$NS" qemu-system-mipsel -M malta -m 256 \
    -kernel "$WORK/kernel/boot/"vmlinuz-* -initrd "$WORK/initrd.gz" \
    -append "console=ttyS0 rdinit=/init panic=-1 quiet" \
    -vga none -display none -monitor none -serial "file:$CONSOLE" -no-reboot \
    -netdev "tap,id=wan,ifname=$TAP,script=no,downscript=no" \
    -device pcnet,netdev=wan,romfile= </dev/null & # romfile=: no PXE ROM (ipxe-qemu) needed
QEMU_PID=$!

t0=$SECONDS
until grep -q 'ready:' "$CONSOLE" 2>/dev/null; do
    kill -0 "$QEMU_PID" 2>/dev/null || { cat "$CONSOLE"; fail "qemu exited before postern was ready"; }
    [ $((SECONDS - t0)) -lt 120 ] || { cat "$CONSOLE"; fail "postern not ready after 120 s"; }
    grep -q 'VM: postern exited' "$CONSOLE" 2>/dev/null && { cat "$CONSOLE"; fail "postern exited in the VM"; }
    sleep 1
done
log "guest ready after $((SECONDS - t0)) s: $(grep -m1 'VM: kernel' "$CONSOLE")"
grep 'insmod .* FAILED' "$CONSOLE" && fail "a module did not load"
grep -q 'VM: no nft binary' "$CONSOLE" || fail "the guest has an nft binary: the test must run without one"
guest_clock=$(sed -n 's/^VM: clock \([0-9]*\).*/\1/p' "$CONSOLE")
[ -n "$guest_clock" ] || fail "the guest did not print its clock"
log "guest clock $((guest_clock - $(date +%s))) s from the host's at boot (SPA allows 10 s)"

in_ns() { ip netns exec "$NS" "$@"; }
# True when a TCP handshake with the guarded service completes within 2 s.
is_open() { in_ns timeout 2 bash -c "exec 3<>/dev/tcp/$GUEST/$SERVICE" 2>/dev/null; }

# closed → KNOCK → open → expired. $1 names the client; the rest is the command.
prove() {
    local who=$1
    shift
    if is_open; then fail "$who: tcp:$SERVICE is open before the knock"; fi
    log "$who: closed before the knock"
    "$@" || fail "$who: knock command failed"
    local t=$SECONDS opened=
    while [ $((SECONDS - t)) -lt 15 ]; do
        if is_open; then opened=$SECONDS; break; fi
        sleep 0.5
    done
    [ -n "$opened" ] || { tail -20 "$CONSOLE"; fail "$who: tcp:$SERVICE did not open after the knock"; }
    log "$who: open $((opened - t)) s after the knock"
    while [ $((SECONDS - opened)) -lt $((GRANT + 20)) ]; do
        if ! is_open; then
            log "$who: closed again $((SECONDS - t)) s after the knock (grant ${GRANT} s)"
            [ $((SECONDS - t)) -ge $((GRANT - 1)) ] || fail "$who: closed before the grant ran out"
            return 0
        fi
        sleep 1
    done
    fail "$who: the grant did not expire"
}

prove "postern knock" in_ns "$HOST_BIN" knock "$GUEST" tcp:7000 udp:8000 tcp:9000
prove "Debian knock" in_ns knock "$GUEST" 7000 8000:udp 9000
grep -c 'opened tcp:8080' "$CONSOLE" | grep -qx 2 || { cat "$CONSOLE"; fail "the daemon did not log two grants"; }

# --- SPA ---------------------------------------------------------------------
# Waits up to $2 s (default 15) for the daemon to log a line matching $1.
guest_logs() {
    local t=$SECONDS
    until grep -q "$1" "$CONSOLE"; do
        [ $((SECONDS - t)) -lt "${2:-15}" ] || { tail -20 "$CONSOLE"; fail "the daemon did not log: $1"; }
        sleep 0.5
    done
}
# Packets to the guest leave from $1 (REMOTE or CLIENT): a host route's src.
from() { ip -n "$NS" route replace "$GUEST/32" dev "$TAP" src "$1"; }
postern_spa() { in_ns "$HOST_BIN" spa "$GUEST" -A "tcp/$SERVICE" "$@" >/dev/null || fail "postern spa $*"; }

# 1. Native SPA (XChaCha20-Poly1305 on the MIPS CPU), from the off-link address.
from "$REMOTE"
if is_open; then fail "native SPA: tcp:$SERVICE is open for $REMOTE before the packet"; fi
postern_spa --key "$SPA_KEY"
guest_logs "opened tcp:$SERVICE for $REMOTE .*spa client laptop"
is_open || fail "native SPA: tcp:$SERVICE did not open for $REMOTE"
log "postern spa: closed before, open after (from $REMOTE)"
postern_spa --key "$SPA_KEY" --close
guest_logs "closed tcp:$SERVICE for $REMOTE"
if is_open; then fail "native SPA: --close left tcp:$SERVICE open"; fi
log "postern spa --close: closed again"

# 2. The ban: SPA packets under a key the router does not know.
for _ in 1 2 3; do postern_spa --key "$STRANGER_KEY"; done
guest_logs "banned $REMOTE for 300 s"
postern_spa --key "$SPA_KEY"
sleep 1
if is_open; then fail "ban: tcp:$SERVICE opened for the banned $REMOTE"; fi
[ "$(grep -c "opened tcp:$SERVICE for $REMOTE" "$CONSOLE")" = 1 ] || fail "ban: the daemon granted the banned $REMOTE"
log "ban: $REMOTE banned after 3 packets under an unknown key; its valid SPA opens nothing"

# 3. The real fwknop client, from the other address: the ban is not its.
from "$CLIENT"
if is_open; then fail "fwknop: tcp:$SERVICE is open for $CLIENT before the packet"; fi
in_ns env HOME="$WORK" fwknop --no-rc-file --no-save-args -A "tcp/$SERVICE" -a "$CLIENT" \
    --use-hmac --key-base64-rijndael "$FWKNOP_KEY" --key-base64-hmac "$FWKNOP_HMAC" \
    -D "$GUEST" >"$WORK/fwknop.log" 2>&1 || { cat "$WORK/fwknop.log"; fail "fwknop client"; }
guest_logs "opened tcp:$SERVICE for $CLIENT .*spa client phone"
is_open || fail "fwknop: tcp:$SERVICE did not open for $CLIENT"
from "$REMOTE"
if is_open; then fail "ban: tcp:$SERVICE open for the banned $REMOTE"; fi
log "fwknop: closed before, open after for $CLIENT; still closed for the banned $REMOTE"

# --- PPPoE --------------------------------------------------------------------
# The ISP's side: a TUN device (10.213.70.1, peer = the router's PPP address)
# bridged by scripts/vm/pppoe_ac.py to the PPPoE session on the tap.
PPP_HOST=10.213.70.1
PPP_ROUTER=10.213.70.2
AC_PID=
start_ac() {
    ip netns exec "$NS" python3 "$REPO/scripts/vm/pppoe_ac.py" "$TAP" pppac0 "$PPP_HOST" "$PPP_ROUTER" \
        >>"$WORK/pppoe-ac.log" 2>&1 &
    AC_PID=$!
}
stop_ac() { [ -z "$AC_PID" ] || { kill "$AC_PID" 2>/dev/null || true; wait "$AC_PID" 2>/dev/null || true; AC_PID=; }; }
trap 'stop_ac; cleanup' EXIT
ip -n "$NS" tuntap add dev pppac0 mode tun
ip -n "$NS" addr add "$PPP_HOST" peer "$PPP_ROUTER/32" dev pppac0
ip -n "$NS" link set pppac0 up
grep -q 'capture pppoe-wan: no such interface yet; waiting for it to appear' "$CONSOLE" ||
    { tail -30 "$CONSOLE"; fail "pppoe: the daemon did not start waiting for pppoe-wan"; }
log "pppoe: the daemon started without pppoe-wan and waits for it"
start_ac
# pppd retries discovery with PADI timeouts of 5, 10 and 20 s, then again
# after its holdoff: the next PADI can be 20 s away.
guest_logs "capture pppoe-wan: interface appeared; capture started" 60
grep -q 'IPCP opened' "$WORK/pppoe-ac.log" || { sleep 2; grep -q 'IPCP opened' "$WORK/pppoe-ac.log"; } ||
    { cat "$WORK/pppoe-ac.log"; tail -30 "$CONSOLE"; fail "pppoe: IPCP did not open"; }
log "pppoe: pppd brought pppoe-wan up; the daemon captures on it"
GUEST=$PPP_ROUTER
# 4. A knock over PPPoE (postern's client), then native SPA over PPPoE.
prove "postern knock over PPPoE" in_ns "$HOST_BIN" knock "$GUEST" tcp:7000 udp:8000 tcp:9000
if is_open; then fail "pppoe SPA: tcp:$SERVICE is open for $PPP_HOST before the packet"; fi
postern_spa --key "$SPA_KEY"
guest_logs "opened tcp:$SERVICE for $PPP_HOST .*spa client laptop"
is_open || fail "pppoe SPA: tcp:$SERVICE did not open for $PPP_HOST"
# The daemon captures on eth0 too (for the steps above), and finds PPPoE
# session frames there as well (README: capture on one of the two, not both):
# each packet is seen twice, the second sighting is refused as a replay. That
# second sighting proves that the capture on pppoe-wan delivers packets.
guest_logs "refused packet from $PPP_HOST (client laptop): replay of a packet accepted before"
postern_spa --key "$SPA_KEY" --close
guest_logs "closed tcp:$SERVICE for $PPP_HOST"
log "pppoe: postern spa over PPPoE opens (and --close closes) the guarded port; both captures (pppoe-wan, and eth0's PPPoE session frames) saw it"

# 5. The line drops (the ISP sends PADT), the router redials.
opened_before=$(grep -c "opened tcp:$SERVICE for $PPP_HOST" "$CONSOLE")
stop_ac
guest_logs "capture pppoe-wan: interface gone; waiting for it to come back"
t=$SECONDS
until grep -q 'VM: pppoe-wan down: postern used' "$CONSOLE"; do
    [ $((SECONDS - t)) -lt 40 ] || { tail -20 "$CONSOLE"; fail "pppoe: no CPU measurement from the VM"; }
    sleep 1
done
line=$(grep -m1 'VM: pppoe-wan down: postern used' "$CONSOLE")
ticks=$(echo "$line" | sed -n 's/.*postern used \([0-9]*\) clock ticks.*/\1/p')
echo "$line" | grep -q 'link now down' || fail "pppoe: the link came back during the measurement: $line"
log "pppoe: link down for 10 s: the daemon used $ticks clock ticks of CPU (a busy loop: ~1000)"
[ "$ticks" -le 50 ] || fail "pppoe: the daemon used $ticks ticks in 10 s with its device down (busy loop?)"
start_ac
guest_logs "capture pppoe-wan: interface re-created; capture resumed" 60
sleep 1
if is_open; then fail "pppoe redial: tcp:$SERVICE open before the packet"; fi
postern_spa --key "$SPA_KEY"
t=$SECONDS
until [ "$(grep -c "opened tcp:$SERVICE for $PPP_HOST" "$CONSOLE")" -gt "$opened_before" ]; do
    [ $((SECONDS - t)) -lt 15 ] || { tail -20 "$CONSOLE"; fail "pppoe redial: SPA over the new link opened nothing"; }
    sleep 0.5
done
is_open || fail "pppoe redial: tcp:$SERVICE did not open over the new link"
log "pppoe: after the redial, SPA over the new pppoe-wan opens the port again"
stop_ac

log "guest log:"
grep -E 'postern|nft|VM:|pppd|PPP|pppoe' "$CONSOLE" | sed 's/^/    /'
echo "e2e: 8 passed, 0 failed"
