#!/usr/bin/env bash
# bench/lab/postern-spa.sh VERB -- postern in SPA mode for the lab: the
# plug-in bench/lab/postern.sh with POSTERN_MODE=spa (one client key, native
# SPA packets to udp/62201; see the SPA paragraph at the top of postern.sh).
#
#   LAB_PLUGINS=$PWD/bench/lab ../shared/lab/measure.sh postern-spa fwknop
exec env POSTERN_MODE=spa "$(dirname "$0")/postern.sh" "$@"
