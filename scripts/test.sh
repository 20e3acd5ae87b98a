#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs every test.
# Run as root (integration tests start a real helper and drive it as root
# and as uid 65534; without root they skip and say why). The integration and
# escape suites run twice: as configured, then with GPUBOX_TEST_USER_NAMESPACE
# =never (sandboxes without a user namespace of their own) and
# GPUBOX_TEST_RPC_THREADS=2 (connections served on two RPC threads, where the
# first pass, on a small machine, serves them on the helper's main loop).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" ${MESON_ARGS:-}
fi
ninja -C "$build"
meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
# Second pass: the integration and escape tests again, every helper they
# start building sandboxes without a user namespace (--user-namespace never,
# the mode of hosts that forbid them) and serving its connections on RPC
# threads (the default from 8 CPUs), so that no mode rots. Test names given
# on the command line narrow this pass too.
if (($# == 0)); then
  set -- --suite integration --suite escape
fi
GPUBOX_TEST_USER_NAMESPACE=never GPUBOX_TEST_RPC_THREADS=2 \
  meson test -C "$build" --no-rebuild --print-errorlogs --num-processes 2 "$@"
