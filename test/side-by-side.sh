#!/usr/bin/env bash
# Runs each argument as a command, all at once: the last one in the foreground, the others with
# their output held back and printed whole when the last ends, so no outputs interleave. Exits
# non-zero if any of them failed, naming it. npm test runs its checks this way, and the
# integration run its mocha groups: each job is mostly one process, and these machines have two
# cores.
set -uo pipefail
held=$(mktemp -d)
trap 'rm -rf "$held"' EXIT

commands=("$@")
last=$((${#commands[@]} - 1))
pids=()
for index in $(seq 0 $((last - 1))); do
  bash -c "${commands[$index]}" >"$held/$index" 2>&1 &
  pids+=($!)
done
bash -c "${commands[$last]}"
status=$?
failed=()
((status == 0)) || failed+=("${commands[$last]}")
for index in "${!pids[@]}"; do
  wait "${pids[$index]}" || failed+=("${commands[$index]}")
  cat "$held/$index"
done
for command in "${failed[@]}"; do
  echo "FAILED: $command" >&2
done
((${#failed[@]} == 0))
