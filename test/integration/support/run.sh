#!/usr/bin/env bash
# The integration run as three mocha processes side by side, each on emulators of its own, so
# that one suite's waiting overlaps another's work on these two-core machines: the chaos suite
# (it stops and restarts its emulators, and mostly waits for outages and redeliveries) with the
# OpenTelemetry SDK's (export delays); the suites that mostly wait for other processes to start
# (gcloud and bash for the release checks, the operator CLIs); and all the other suites, in
# groups of about equal length here. The first two print when they end, so no outputs
# interleave. Arguments go to every mocha run (e.g. --bail).
set -uo pipefail
cd "$(dirname "$0")/../../.."
mocha=(npx mocha --require test/integration/support/hooks.ts --timeout 60000 "$@")
dir=test/integration
groups=(
  "$dir/chaos.test.ts $dir/clients/otel-sdk.test.ts"
  "$dir/deploy-plan.test.ts $dir/purge.test.ts $dir/replay.test.ts"
)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

pids=()
ignored=()
for index in "${!groups[@]}"; do
  read -r -a files <<< "${groups[$index]}"
  "${mocha[@]}" "${files[@]}" > "$logs/$index" 2>&1 &
  pids+=($!)
  ignored+=("${files[@]/#/--ignore=}")
done
"${mocha[@]}" "${ignored[@]}" "$dir/**/*.test.ts"
failed=$?
for index in "${!pids[@]}"; do
  wait "${pids[$index]}" || failed=1
  cat "$logs/$index"
done
exit "$failed"
