#!/usr/bin/env bash
# The integration run as two mocha processes side by side, each on emulators of its own: the
# chaos suite (it stops and restarts its emulators, and mostly waits for outages and
# redeliveries) with the release suite (mostly gcloud's own start-up), and all the other suites.
# The first group prints when it ends, so the two outputs never interleave. Arguments go to both.
set -uo pipefail
cd "$(dirname "$0")/../../.."
mocha=(npx mocha --require test/integration/support/hooks.ts --timeout 60000 "$@")
beside=(test/integration/chaos.test.ts test/integration/deploy-plan.test.ts)
beside_log=$(mktemp)
trap 'rm -f "$beside_log"' EXIT

"${mocha[@]}" "${beside[@]}" > "$beside_log" 2>&1 &
beside_pid=$!
"${mocha[@]}" "${beside[@]/#/--ignore=}" "test/integration/**/*.test.ts"
others=$?
wait "$beside_pid"
beside_status=$?
cat "$beside_log"
echo "integration: chaos and release exit ${beside_status}, the other suites exit ${others}"
exit $((others != 0 || beside_status != 0))
