#!/usr/bin/env bash
# `npm run test:integration`. The suites on the emulators run in one mocha process that shares one
# pair of emulators (test/integration/support/hooks.ts). Beside it runs the release suite, which
# needs no emulator and spends its time in child processes (bash, gcloud --help, npm): side by
# side, its CPU work fills the emulator suites' waits (pauses, drains, redeliveries) instead of
# adding to them. Its report is kept apart and printed after. Arguments go to both mocha runs.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-clients.sh || exit 1

RELEASE_SUITES=(test/integration/deploy-plan.test.ts)
ignore=()
for suite in "${RELEASE_SUITES[@]}"; do ignore+=(--ignore "$suite"); done
mkdir -p .run
release_log=$(mktemp .run/release-suites.XXXXXX)
npx mocha --timeout 60000 "${RELEASE_SUITES[@]}" "$@" >"$release_log" 2>&1 &
release_pid=$!

npx mocha --require test/integration/support/hooks.ts --timeout 60000 \
  "${ignore[@]}" "test/integration/**/*.test.ts" "$@"
emulator_status=$?
wait "$release_pid"
release_status=$?
echo "--- release suites (${RELEASE_SUITES[*]}), run alongside; exit $release_status"
cat "$release_log"
rm -f "$release_log"
exit $((emulator_status != 0 ? emulator_status : release_status))
