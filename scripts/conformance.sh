#!/usr/bin/env bash
# npm run conformance: the upstream CRI validation suite (stock critest v1.26.1, the Go client code
# of kubelet 1.26) against a podchartd of this checkout, offline.
#
# It uses the conformance kit in ../shared/critest (see its README): a loopback docker-registry with
# look-alikes of every image critest pulls, then a podchartd on a temp socket and root whose config
# mirrors registry.k8s.io and gcr.io to that registry, with the node's CNI config (scripts/setup.sh
# installs podchart's bridge config when there is none). It prints critest's summary and fails on
# any spec that fails outside the kit's env-failures.txt.
#
# Env: PODCHART_KIT (the folder holding critest/ and cri-tools/; default ../shared beside the repo,
#      then /work/shared; without a kit the run is skipped, saying so),
#      RESULTS_DIR (default a temp dir, printed), FOCUS / SKIP (ginkgo regexes, passed on).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
repo="$PWD"
log() { printf '[conformance %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# The kit: $PODCHART_KIT, else ../shared beside the repository, else the workplace's /work/shared.
kit_root=""
for d in "${PODCHART_KIT:-}" "$repo/../shared" /work/shared; do
  if [ -n "$d" ] && [ -x "$d/critest/critest.sh" ] && [ -x "$d/cri-tools/critest" ]; then kit_root="$(readlink -f "$d")"; break; fi
done
if [ -z "$kit_root" ]; then
  log "SKIPPED: no conformance kit (critest/critest.sh and cri-tools/critest) in \$PODCHART_KIT, $repo/../shared or /work/shared"
  exit 0
fi
kit="$kit_root/critest"

bash scripts/setup.sh
# What the kit needs (its README), installed only when missing.
source scripts/apt-ensure.sh
apt_ensure "conformance" docker-registry skopeo umoci jq gcc libc6-dev curl iproute2 util-linux

bash "$kit/registry/start.sh"
bash "$kit/images/build-and-push.sh" >/dev/null

work="$(mktemp -d /tmp/pc-conf.XXXXXX)"
RESULTS_DIR="${RESULTS_DIR:-$work/results}"
export RESULTS_DIR
mkdir -p "$RESULTS_DIR"
socket="$work/run/cri.sock"
cat > "$work/config.json" <<EOF
{
  "socket": "$socket",
  "rootDir": "$work/root",
  "runDir": "$work/run",
  "inspectorAddress": "",
  "registries": {
    "hosts": {
      "registry.k8s.io": { "mirrors": ["http://127.0.0.1:5000"] },
      "gcr.io": { "mirrors": ["http://127.0.0.1:5000"] }
    }
  }
}
EOF

daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    # critest removes what it made; anything a failed spec left is removed here, then the daemon stops.
    "$kit_root/cri-tools/crictl" --runtime-endpoint "unix://$socket" --timeout 60s rmp -af >/dev/null 2>&1 || true
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  bash "$kit/registry/stop.sh" >/dev/null 2>&1 || true
  # Keep the results and the daemon log; the state goes.
  rm -rf "$work/root" "$work/run"
}
trap cleanup EXIT

log "podchartd on $socket (log $work/daemon.log)"
bin/podchartd --config "$work/config.json" > "$work/daemon.log" 2>&1 &
daemon_pid=$!
deadline=$((SECONDS + 60))
until grep -q 'podchartd serving CRI v1' "$work/daemon.log"; do
  if ! kill -0 "$daemon_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    tail -20 "$work/daemon.log" >&2
    log "podchartd did not come up"
    exit 1
  fi
  sleep 0.2 # polling a log file; the deadline above bounds it
done

set +e
bash "$kit/critest.sh" "unix://$socket" podchart
set -e

summary="$RESULTS_DIR/podchart-critest-summary.txt"
[ -s "$summary" ] || { log "critest wrote no summary (see $RESULTS_DIR)"; exit 1; }
unexpected=0
# Every spec must pass but those the kit's env-failures.txt names (critest.sh marks those [ENV]).
while IFS= read -r line; do
  log "FAILED: ${line#\[RUNTIME\] }"
  unexpected=$((unexpected + 1))
done < <(grep '^\[RUNTIME\] ' "$summary")

log "results in $RESULTS_DIR, daemon log $work/daemon.log"
if [ "$unexpected" -gt 0 ]; then
  log "$unexpected spec(s) failed that must pass"
  exit 1
fi
log "conformance: every spec that can pass here passed"
