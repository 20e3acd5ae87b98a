#!/bin/bash
# The privileged helper's binary hardening, as security.md ("The binary")
# states it: a position-independent executable, every symbol bound at start
# (BIND_NOW) and its relocated tables read-only afterwards (a GNU_RELRO
# segment). Fails naming what is missing.
set -euo pipefail
helper=$1
if ! command -v readelf >/dev/null 2>&1; then
  echo "SKIP: readelf not found (binutils)"
  exit 77
fi
dynamic=$(readelf -d "$helper")
segments=$(readelf -lW "$helper")
header=$(readelf -h "$helper")
fail=0
grep -q 'Type: *DYN' <<<"$header" || { echo "FAIL: $helper is not position-independent (ELF type is not DYN)"; fail=1; }
grep -Eq '\(FLAGS\).*BIND_NOW' <<<"$dynamic" || { echo "FAIL: $helper has no BIND_NOW in its FLAGS (link with -z now)"; fail=1; }
grep -Eq '\(FLAGS_1\).*NOW' <<<"$dynamic" || { echo "FAIL: $helper has no NOW in its FLAGS_1 (link with -z now)"; fail=1; }
grep -Eq '\(FLAGS_1\).*PIE' <<<"$dynamic" || { echo "FAIL: $helper is not marked PIE in its FLAGS_1"; fail=1; }
grep -q 'GNU_RELRO' <<<"$segments" || { echo "FAIL: $helper has no GNU_RELRO segment (link with -z relro)"; fail=1; }
[ "$fail" -eq 0 ] && echo "ok: $helper is PIE, BIND_NOW, with a GNU_RELRO segment (full RELRO)"
exit "$fail"
