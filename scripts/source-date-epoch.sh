#!/usr/bin/env bash
# Prints the SOURCE_DATE_EPOCH the package builders stamp every file with:
# $SOURCE_DATE_EPOCH when set; else the last commit's time (git); else —
# no git, or no checkout (a release tarball, a copied tree) — the newest
# modification time among the sources that go into the packages (a tarball
# keeps its commit's times, so the packages stay reproducible). Never 0.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	echo "$SOURCE_DATE_EPOCH"
	exit 0
fi
if t=$(git -C "$top" log -1 --format=%ct 2>/dev/null) && [ -n "$t" ]; then
	echo "$t"
	exit 0
fi
t=$(find "$top/Cargo.toml" "$top/Cargo.lock" "$top/src" "$top/openwrt" "$top/scripts" "$top/tools" \
	-type f -printf '%T@\n' 2>/dev/null | sort -n | tail -n 1)
t=${t%%.*}
if [ -z "$t" ] || [ "$t" -le 0 ]; then
	echo "source-date-epoch: no git and no dated sources in $top" >&2
	exit 1
fi
echo "$t"
