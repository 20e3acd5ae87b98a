#!/usr/bin/env bash
# Runs `systemd-analyze verify` on the built units, with ExecStart pointed at
# the freshly built helper (the installed path does not exist in a build
# tree). Man pages are not installed here, so their check is off.
# Usage: verify-units.sh SERVICE_FILE SOCKET_FILE HELPER_BINARY
set -euo pipefail
service=$1 socket=$2 helper=$3
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze is not installed"; exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|^ExecStart=[^ ]*|ExecStart=$helper|" "$service" >"$dir/gpubox.service"
cp "$socket" "$dir/gpubox.socket"
out=$(systemd-analyze verify --man=no "$dir/gpubox.socket" "$dir/gpubox.service" 2>&1) || {
  echo "$out"; exit 1; }
# verify exits 0 on some warnings; treat any output about our units as failure.
if echo "$out" | grep -q "gpubox"; then echo "$out"; exit 1; fi
grep -q '^NoNewPrivileges=yes' "$service"
grep -q '^CapabilityBoundingSet=' "$service"
# A record per sandbox: journald's default burst would drop them on a busy host.
grep -q '^LogRateLimitBurst=100000$' "$service"
echo "units verified"
