#!/usr/bin/env bash
# The systemd unit as built: `systemd-analyze verify` passes (with ExecStart= pointed at the
# build's meshcryptd, which is not installed here) and the offline security exposure is at most
# 3.0 (docs/operations.md, "Under systemd").
# Usage: systemd-unit.sh UNIT MESHCRYPTD
set -euo pipefail
unit=$1 daemon=$2
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|^ExecStart=[^ ]*|ExecStart=$daemon|" "$unit" >"$tmp/meshcryptd.service"
systemd-analyze verify --man=no "$tmp/meshcryptd.service"
echo "systemd-analyze verify: passed"
exposure=$(systemd-analyze security --offline=yes --no-pager "$tmp/meshcryptd.service" |
	sed -n 's/.*Overall exposure level for meshcryptd.service: \([0-9.]*\).*/\1/p')
[[ -n $exposure ]] || { echo "FAIL: no exposure level"; exit 1; }
awk -v e="$exposure" 'BEGIN { exit !(e <= 3.0) }' || { echo "FAIL: exposure $exposure > 3.0"; exit 1; }
echo "systemd-analyze security --offline=yes: exposure $exposure (at most 3.0)"
