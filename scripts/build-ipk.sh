#!/usr/bin/env bash
# Builds OpenWrt packages without the SDK.
#
#   scripts/build-ipk.sh --arch ARCH --binary FILE [--out DIR]
#       postern_<version>-<release>_<ARCH>.ipk from a (cross-)built binary.
#       ARCH is an OpenWrt package architecture: mipsel_24kc, mips_24kc,
#       arm_cortex-a7_neon-vfpv4, aarch64_cortex-a53, aarch64_generic, x86_64.
#       The binary's ELF machine and byte order must match ARCH, and it must
#       be static (OpenWrt has musl, not glibc): build it with scripts/cross.sh.
#       --firewall fw3: for an image with OpenWrt's fw3 `firewall` package
#       (not firewall4): also depends on ipset and kmod-ipt-ipset, as the
#       SDK's package does there (the feed's +PACKAGE_firewall:... DEPENDS).
#       Default fw4: libc, kmod-nft-core, kmod-nft-nat.
#   scripts/build-ipk.sh --luci [--out DIR]
#       luci-app-postern_<version>-<release>_all.ipk.
#
# An .ipk is a gzip'd tar of ./debian-binary, ./data.tar.gz and
# ./control.tar.gz (what OpenWrt's ipkg-build writes and opkg reads).
# Output is reproducible: fixed owners, modes and mtimes (SOURCE_DATE_EPOCH;
# default: the last commit's time, or without git the newest source file's).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
pkgdir="$top/openwrt/postern"
lucidir="$top/openwrt/luci-app-postern"
version=$(sed -n 's/^PKG_VERSION:=//p' "$pkgdir/Makefile")
release=$(sed -n 's/^PKG_RELEASE:=//p' "$pkgdir/Makefile")
# SOURCE_DATE_EPOCH, else the last commit, else the newest source file.
epoch=$(bash "$top/scripts/source-date-epoch.sh")

die() { echo "build-ipk: $*" >&2; exit 1; }

arch="" binary="" out="$top/target/ipk" luci=0 allow_dynamic=0 stage_only="" firewall=fw4
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) arch=${2:?--arch needs a value}; shift 2 ;;
	--binary) binary=${2:?--binary needs a value}; shift 2 ;;
	--out) out=${2:?--out needs a value}; shift 2 ;;
	--luci) luci=1; shift ;;
	--firewall) firewall=${2:?--firewall needs fw3 or fw4}; shift 2 ;;
	--allow-dynamic) allow_dynamic=1; shift ;; # tests only: a glibc host build
	--stage-only) stage_only=${2:?--stage-only needs a value}; shift 2 ;; # scripts/build-package.sh: leave data/ and control/ in DIR

	-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

# ELF e_machine and byte order (1 = little, 2 = big) each architecture needs.
elf_for_arch() {
	case "$1" in
	mipsel_*) echo "8 1" ;;
	mips_*) echo "8 2" ;;
	arm_*) echo "40 1" ;;
	aarch64_*) echo "183 1" ;;
	x86_64) echo "62 1" ;;
	*) return 1 ;;
	esac
}

check_binary_arch() {
	local file="$1" want machine order
	want=$(elf_for_arch "$arch") || die "unknown OpenWrt architecture '$arch'"
	[ "$(head -c 4 "$file" | od -An -c | tr -d ' \n')" = '177ELF' ] || die "$file is not an ELF binary"
	order=$(od -An -t u1 -j 5 -N 1 "$file" | tr -d ' ')
	if [ "$order" = 1 ]; then
		machine=$(( $(od -An -t u1 -j 18 -N 1 "$file") + 256 * $(od -An -t u1 -j 19 -N 1 "$file") ))
	else
		machine=$(( 256 * $(od -An -t u1 -j 18 -N 1 "$file") + $(od -An -t u1 -j 19 -N 1 "$file") ))
	fi
	[ "$machine $order" = "$want" ] ||
		die "$file is ELF machine $machine, byte order $order; $arch needs '$want' (machine, order)"
}

# Reproducible tar.gz of DIR's contents (paths start with ./).
tgz() {
	local dir="$1" dest="$2"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
		-C "$dir" -cf - . | gzip -n9 >"$dest"
}

# assemble NAME ARCH STAGE: STAGE holds data/ and control/ trees.
assemble() {
	local name="$1" pkgarch="$2" stage="$3" size ipk
	size=$(du -sb "$stage/data" | cut -f1)
	sed -i "s/^Installed-Size: .*/Installed-Size: $size/" "$stage/control/control"
	find "$stage" -exec touch -h -d "@$epoch" {} +
	if [ -n "$stage_only" ]; then
		mkdir -p "$stage_only" && cp -a "$stage/data" "$stage/control" "$stage_only/" && echo "$stage_only"
		return
	fi
	tgz "$stage/data" "$stage/pkg/data.tar.gz"
	tgz "$stage/control" "$stage/pkg/control.tar.gz"
	echo "2.0" >"$stage/pkg/debian-binary"
	mkdir -p "$out"
	ipk="$out/${name}_${version}-${release}_${pkgarch}.ipk"
	tar --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$stage/pkg" \
		-cf - ./debian-binary ./data.tar.gz ./control.tar.gz | gzip -n9 >"$ipk"
	echo "$ipk"
}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/data" "$stage/control" "$stage/pkg"

install_file() { # MODE SRC DEST(relative to data/)
	install -D -m "$1" "$2" "$stage/data/$3"
}

if [ "$luci" = 1 ]; then
	[ -d "$lucidir" ] || die "no $lucidir"
	(cd "$lucidir/htdocs" && find . -type f) | while read -r f; do
		install_file 0644 "$lucidir/htdocs/$f" "www/$f"
	done
	(cd "$lucidir/root" && find . -type f) | while read -r f; do
		case "$f" in
		./usr/libexec/rpcd/*) install_file 0755 "$lucidir/root/$f" "$f" ;;
		*) install_file 0644 "$lucidir/root/$f" "$f" ;;
		esac
	done
	cat >"$stage/control/control" <<CONTROL
Package: luci-app-postern
Version: $version-$release
Depends: libc, luci-base, rpcd-mod-ucode, postern
Source: openwrt/luci-app-postern
SourceName: luci-app-postern
License: Apache-2.0 OR MIT
Section: luci
Architecture: all
Installed-Size: 0
Description: LuCI page for postern: settings checked by postern itself before saving, clients with keys,
 stanzas and QR codes, live grants and bans (revoke, lift) and counters.
CONTROL
	cat >"$stage/control/postinst" <<'POSTINST'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] && exit 0
rm -f /tmp/luci-indexcache /tmp/luci-modulecache/* 2>/dev/null
/etc/init.d/rpcd reload 2>/dev/null
exit 0
POSTINST
	chmod 0755 "$stage/control/postinst"
	assemble luci-app-postern all "$stage"
	exit 0
fi

[ -n "$arch" ] || die "--arch ARCH is required (e.g. mipsel_24kc)"
[ -n "$binary" ] || die "--binary FILE is required"
[ -f "$binary" ] || die "no binary at $binary"
check_binary_arch "$binary"
if [ "$allow_dynamic" = 0 ] && LC_ALL=C grep -qa 'ld-linux' "$binary"; then
	die "$binary is linked against glibc (ld-linux); OpenWrt needs a static musl build (scripts/cross.sh TARGET build)"
fi

# What the SDK writes for openwrt/postern/Makefile's DEPENDS (libc first; the
# +PACKAGE_firewall:... entries only where the image has fw3's `firewall`);
# tests/openwrt_feed.rs compares the two.
case "$firewall" in
fw4) depends="libc, kmod-nft-core, kmod-nft-nat" ;;
fw3) depends="libc, kmod-nft-core, kmod-nft-nat, ipset, kmod-ipt-ipset" ;;
*) die "--firewall fw3 or fw4, not '$firewall'" ;;
esac

f="$pkgdir/files"
install_file 0755 "$binary" usr/sbin/postern
install_file 0755 "$f/postern.init" etc/init.d/postern
install_file 0600 "$f/postern.config" etc/config/postern
install_file 0755 "$f/postern.uci-defaults" etc/uci-defaults/90-postern
install_file 0644 "$f/fw4-table-pre.nft" usr/share/nftables.d/table-pre/20-postern.nft
install_file 0644 "$f/fw4-chain-pre-input.nft" usr/share/nftables.d/chain-pre/input/20-postern.nft
install_file 0644 "$f/fw4-chain-pre-forward.nft" usr/share/nftables.d/chain-pre/forward/20-postern.nft
install_file 0755 "$f/fw3.include" usr/share/postern/fw3.include
install_file 0755 "$f/firewall-includes.sh" usr/share/postern/firewall-includes.sh
install_file 0755 "$f/postern.keepalived-hotplug" etc/hotplug.d/keepalived/600-postern

cat >"$stage/control/control" <<CONTROL
Package: postern
Version: $version-$release
Depends: $depends
Require-User: postern=370:postern=370
Source: openwrt/postern
SourceName: postern
License: Apache-2.0 OR MIT
Section: net
Architecture: $arch
Installed-Size: 0
Description: Port knocking and single packet authorization daemon. Keeps
 protected ports closed and opens one for a trusted client's own address,
 for a short time, after a secret knock or one encrypted packet.
CONTROL
echo "/etc/config/postern" >"$stage/control/conffiles"
# default_postinst creates the Require-User user and group (OpenWrt's
# add_group_and_user, as for a package built with USERID in the SDK); the
# explicit fallback covers a functions.sh without it.
cat >"$stage/control/postinst" <<'POSTINST'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_postinst "$0" "$@"
ret=$?
if ! grep -q '^postern:' "${IPKG_INSTROOT}/etc/passwd" 2>/dev/null; then
	grep -q '^postern:' "${IPKG_INSTROOT}/etc/group" 2>/dev/null ||
		echo 'postern:x:370:' >>"${IPKG_INSTROOT}/etc/group"
	echo 'postern:x:370:370:postern:/var/run/postern:/bin/false' >>"${IPKG_INSTROOT}/etc/passwd"
	grep -q '^postern:' "${IPKG_INSTROOT}/etc/shadow" 2>/dev/null ||
		echo 'postern:*:0:0:99999:7:::' >>"${IPKG_INSTROOT}/etc/shadow"
fi
exit $ret
POSTINST
cat >"$stage/control/prerm" <<'PRERM'
#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_prerm "$0" "$@"
PRERM
# After removal (the package's files are gone): the fw3 include section,
# includes moved aside by a failed check and the error file go too, and the
# firewall is reloaded without postern (the fw4 includes left with the files).
cat >"$stage/control/postrm" <<'POSTRM'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] && exit 0
rm -rf /usr/share/postern/includes.disabled /var/run/postern/firewall-include.err
rm -f /usr/share/nftables.d/chain-pre/input_wan/20-postern.nft /usr/share/nftables.d/chain-pre/forward_wan/20-postern.nft
if uci -q get firewall.postern >/dev/null; then
	uci -q delete firewall.postern && uci -q commit firewall
fi
[ -x /etc/init.d/firewall ] && /etc/init.d/firewall reload >/dev/null 2>&1
exit 0
POSTRM
chmod 0755 "$stage/control/postinst" "$stage/control/prerm" "$stage/control/postrm"
assemble postern "$arch" "$stage"
