#!/bin/sh
# postern's firewall includes: never leave the router without a firewall.
#
#   firewall-includes.sh check    (install, upgrade, first boot: uci-defaults)
#   firewall-includes.sh remove   (package removal: postrm)
#
# fw4 loads its ruleset all or nothing: one broken include and `fw4 start`
# loads no table at all, leaving the router open. `check` runs `fw4 check`
# (fw3: `sh -n` on postern's include and `fw3 print`) with postern's includes
# in place; if that fails and succeeds without them, they are moved aside to
# $DISABLED, the failure goes to syslog (logger -p daemon.err) and to
# $ERRFILE, which `postern status` and `postern check` show; then the
# firewall is reloaded. A later successful check removes $ERRFILE.
# ROOT (tests only) prefixes every path; IPKG_INSTROOT (image build) skips all.

# shellcheck shell=dash
ROOT=${POSTERN_ROOT:-}
NFT_D="$ROOT/usr/share/nftables.d"
DISABLED="$ROOT/usr/share/postern/includes.disabled"
ERRFILE="$ROOT/var/run/postern/firewall-include.err"
INCLUDES="table-pre/20-postern.nft chain-pre/input/20-postern.nft chain-pre/forward/20-postern.nft"
# Names used by postern 0.1 before the any-zone includes (removed on sight).
OLD_INCLUDES="chain-pre/input_wan/20-postern.nft chain-pre/forward_wan/20-postern.nft"

[ -n "${IPKG_INSTROOT}" ] && exit 0

say() {
	logger -p daemon.err -t postern "$*" 2>/dev/null
	echo "postern: $*" >&2
}

have() { [ -x "$ROOT/sbin/$1" ] || [ -x "$ROOT/usr/sbin/$1" ]; }

# The firewall's own check, output on stdout.
fw_check() {
	if have fw4; then
		fw4 check 2>&1
	elif have fw3; then
		sh -n "$ROOT/usr/share/postern/fw3.include" 2>&1 && fw3 print >/dev/null 2>&1
	fi
}

move_aside() {
	local f
	for f in $INCLUDES; do
		[ -f "$NFT_D/$f" ] || continue
		mkdir -p "$DISABLED/$(dirname "$f")"
		mv -f "$NFT_D/$f" "$DISABLED/$f"
	done
}

put_back() {
	local f
	for f in $INCLUDES; do
		[ -f "$DISABLED/$f" ] || continue
		mkdir -p "$NFT_D/$(dirname "$f")"
		mv -f "$DISABLED/$f" "$NFT_D/$f"
	done
}

reload_firewall() {
	[ -x "$ROOT/etc/init.d/firewall" ] || return 0
	"$ROOT/etc/init.d/firewall" reload >/dev/null 2>&1 ||
		say "firewall reload failed: run 'fw4 check' (or 'fw3 print') to see why"
}

check() {
	local out f
	for f in $OLD_INCLUDES; do
		rm -f "$NFT_D/$f"
		rmdir "$NFT_D/$(dirname "$f")" 2>/dev/null
	done
	have fw4 || have fw3 || return 0
	if out=$(fw_check); then
		rm -f "$ERRFILE"
		reload_firewall
		return 0
	fi
	move_aside
	if fw_check >/dev/null; then
		mkdir -p "$(dirname "$ERRFILE")"
		printf '%s\n' "postern's firewall includes broke the firewall check and were moved to /usr/share/postern/includes.disabled: postern guards nothing until they are fixed and reinstalled. $(echo "$out" | tr '\n' ' ' | cut -c1-600)" >"$ERRFILE"
		say "FIREWALL CHECK FAILED with postern's includes; they were moved aside, the firewall keeps working without postern: $(cat "$ERRFILE")"
		reload_firewall
		return 1
	fi
	# The firewall is broken without postern too: not ours to hide.
	put_back
	say "the firewall check fails even without postern's includes (postern's includes kept): $(echo "$out" | tr '\n' ' ' | cut -c1-600)"
	return 1
}

remove() {
	local f
	for f in $INCLUDES $OLD_INCLUDES; do
		rm -f "$NFT_D/$f"
	done
	rm -rf "$DISABLED" "$ERRFILE"
	if [ -x "$ROOT/sbin/uci" ] || command -v uci >/dev/null 2>&1; then
		if uci -q get firewall.postern >/dev/null; then
			uci -q delete firewall.postern && uci -q commit firewall
		fi
	fi
	reload_firewall
	return 0
}

case "$1" in
check) check ;;
remove) remove ;;
*) echo "usage: $0 check|remove" >&2; exit 2 ;;
esac
