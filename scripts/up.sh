#!/usr/bin/env bash
# Quick start: install what is missing, build, and run podchartd in the foreground with its
# embedded defaults (state under /var/lib/podchart and /run/podchart, socket
# /run/podchart/podchart.sock). Extra arguments go to podchartd (see README.md).
set -euo pipefail
here="$(dirname "$(readlink -f "$0")")"
"$here/setup.sh"
exec "$here/../bin/podchartd" "$@"
