#!/usr/bin/env bash
# bench/lab/fwknop.sh VERB -- the lab's own fwknopd plug-in
# (../shared/lab/anchors/fwknop.sh), unchanged, plus postern's `junk-spa`
# flood profile (random binary junk of native postern SPA sizes, 75-296
# bytes, to udp/62201), so that the postern-spa and fwknop columns of a lab
# table share every flood. With LAB_PLUGINS=$PWD/bench/lab this file is found
# before the anchor of the same name.
set -euo pipefail
LAB_DIR=${LAB_DIR:-$(cd "$(dirname "$0")/../../../shared/lab" 2>/dev/null && pwd)}
if [ "${1:-}" = floods ]; then
    "$LAB_DIR/anchors/fwknop.sh" floods
    echo "junk-spa udp --dports 62201 --payload rand --len 75-296"
    exit 0
fi
exec "$LAB_DIR/anchors/fwknop.sh" "$@"
