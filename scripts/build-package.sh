#!/usr/bin/env bash
# Builds OpenWrt packages without the SDK, in either package format.
#
#   scripts/build-package.sh --format apk|ipk [build-ipk.sh arguments]
#
#   ipk: OpenWrt 23.05 and 24.10 (opkg); exactly scripts/build-ipk.sh.
#   apk: OpenWrt 25.12 and later (apk-tools v3, the ADB format);
#        NAME-VERSION_ARCH.apk with VERSION = PKG_VERSION-rPKG_RELEASE,
#        e.g. postern-0.1.0-r1_mipsel_24kc.apk, luci-app-postern-0.1.0-r1_noarch.apk.
#        The files, modes, control fields, conffiles and scripts come from the
#        same stage build-ipk.sh assembles (build-ipk.sh --stage-only); the
#        ADB writer is tools/mkapk.py (python3). Unsigned: install with
#        `apk add --allow-untrusted ./FILE.apk`.
#
# Same arguments as build-ipk.sh, plus for apk --compression deflate|none
# (default deflate, what apk mkpkg writes). E.g.
#   scripts/build-package.sh --format apk --arch mipsel_24kc --binary FILE [--out DIR]
#   scripts/build-package.sh --format apk --luci [--out DIR]
# Output is reproducible (SOURCE_DATE_EPOCH, default: the last commit's time,
# or without git the newest source file's: scripts/source-date-epoch.sh).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "build-package: $*" >&2; exit 1; }

format="" out="$top/target/pkg" compression=deflate args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--format) format=${2:?--format needs apk or ipk}; shift 2 ;;
	--out) out=${2:?--out needs a value}; shift 2 ;;
	--compression) compression=${2:?--compression needs deflate or none}; shift 2 ;;
	-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
	*) args+=("$1"); shift ;;
	esac
done

SOURCE_DATE_EPOCH=$(bash "$top/scripts/source-date-epoch.sh")
export SOURCE_DATE_EPOCH

case "$format" in
ipk) exec bash "$top/scripts/build-ipk.sh" ${args[@]+"${args[@]}"} --out "$out" ;;
apk) ;;
*) die "--format apk or --format ipk is required (see --help)" ;;
esac

command -v python3 >/dev/null || die "python3 is needed to write .apk packages"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$top/scripts/build-ipk.sh" ${args[@]+"${args[@]}"} --stage-only "$work/stage" >/dev/null
python3 "$top/tools/mkapk.py" --stage "$work/stage" --out-dir "$out" --compression "$compression"
