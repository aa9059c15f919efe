#!/usr/bin/env bash
# Installs the real log clients the integration tests drive (test/integration/clients/) from
# Debian's packages where they are missing: syslog-ng and its http() destination (a package of
# its own). Runs as root with no stdin (CI); elsewhere it says what to run instead.
set -euo pipefail
PACKAGES=(syslog-ng-core syslog-ng-mod-http)

statuses=$(dpkg-query -W -f='${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
if [ "$(grep -c "install ok installed" <<<"$statuses")" -eq "${#PACKAGES[@]}" ]; then
  echo "test clients present: ${PACKAGES[*]}"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing test clients (of ${PACKAGES[*]}); run this script as root (apt-get needs it)" >&2
  exit 1
fi
echo "installing test clients: ${PACKAGES[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null
# The package starts no daemon in a container without an init system; the tests run their own.
# Without the manual pages, man-db has nothing to index: a few seconds less on every fresh machine.
apt-get install -y -qq --no-install-recommends -o 'DPkg::Options::=--path-exclude=/usr/share/man/*' \
  "${PACKAGES[@]}" </dev/null
syslog-ng --version | head -n 1
