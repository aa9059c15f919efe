#!/usr/bin/env bash
# The integration run as three mocha processes side by side, each on emulators of its own, so
# that one suite's waiting overlaps another's work: the chaos suite (it stops and restarts its
# emulators, and mostly waits for outages and redeliveries) with the OpenTelemetry SDK's (export
# delays); the release checks with replay (other processes: bash, gcloud, npm, the operator
# CLIs); and all the other suites. Each group takes four to five minutes here, the run's CPU busy
# throughout. Arguments go to every mocha run (e.g. --bail).
set -uo pipefail
cd "$(dirname "$0")/../../.."
mocha="node_modules/.bin/mocha --require test/integration/support/hooks.ts --timeout 60000"
(($# == 0)) || mocha+=$(printf " %q" "$@")
dir=test/integration
groups=(
  "$dir/chaos.test.ts $dir/clients/otel-sdk.test.ts"
  "$dir/deploy-plan.test.ts $dir/replay.test.ts"
)
runs=()
rest="$mocha"
for group in "${groups[@]}"; do
  runs+=("$mocha $group")
  for file in $group; do rest+=" --ignore=$file"; done
done
exec bash test/side-by-side.sh "${runs[@]}" "$rest '$dir/**/*.test.ts'"
