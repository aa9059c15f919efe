#!/usr/bin/env bash
# The integration run: the chaos suite beside all the others, each group on emulators of its own
# (chaos stops and restarts its emulators, and most of its time is spent waiting for outages and
# redeliveries, not on the CPU). Chaos prints when it ends, so the two outputs never interleave.
# Arguments go to both mocha runs (e.g. --bail).
set -uo pipefail
cd "$(dirname "$0")/../../.."
mocha=(npx mocha --require test/integration/support/hooks.ts --timeout 60000 "$@")
chaos_log=$(mktemp)
trap 'rm -f "$chaos_log"' EXIT

"${mocha[@]}" test/integration/chaos.test.ts > "$chaos_log" 2>&1 &
chaos=$!
"${mocha[@]}" --ignore test/integration/chaos.test.ts "test/integration/**/*.test.ts"
others=$?
wait "$chaos"
chaos_status=$?
cat "$chaos_log"
echo "integration: other suites exit ${others}, chaos exit ${chaos_status}"
exit $((others != 0 || chaos_status != 0))
