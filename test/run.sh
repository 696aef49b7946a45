#!/usr/bin/env bash
# The test command (npm test): set up, build, then every unit and end-to-end test, one file at a
# time (the end-to-end files each run a real daemon with real containers).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash scripts/setup.sh
npx --no-install eslint .
cd dist
mapfile -t files < <(find . -name '*.test.js' -not -path './node_modules/*' | sort)
exec node --test --test-concurrency=1 "$@" "${files[@]}"
