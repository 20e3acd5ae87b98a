#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs every test.
# Run as root (integration tests start a real helper and drive it as root
# and as uid 65534; without root they skip and say why).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" ${MESON_ARGS:-}
fi
ninja -C "$build"
meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
