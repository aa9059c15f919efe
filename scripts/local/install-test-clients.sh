#!/usr/bin/env bash
# Installs the real log clients the integration tests drive (test/integration/clients/), from
# Debian's packages, where they are missing. Idempotent: a machine that has them is left alone.
# Runs as root with no stdin (CI); elsewhere it says what to run instead of failing obscurely.
set -euo pipefail

# syslog-ng with its http() destination (the module is a separate package).
PACKAGES=(syslog-ng-core syslog-ng-mod-http)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "test clients present: ${PACKAGES[*]}"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "missing test clients: ${missing[*]}; run this script as root (apt-get needs it)" >&2
  exit 1
fi

echo "installing test clients: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null
# The package starts no daemon in a container without an init system; the tests run their own.
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
syslog-ng --version | head -n 1
