#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ (a separate build directory:
# the main build is g++) and runs each for SECONDS on a copy of its seed
# corpus, so the repository is never modified. Fails when any target finds
# a crash, a sanitizer report, a broken invariant, a leak or a timeout; the
# input that did it is kept under BUILD/artifacts/ and named in the output.
#
#   tests/fuzz/run-fuzzers.sh SECONDS [TARGET...]     (default: every target)
#
# Environment: FUZZ_BUILD_DIR (default: build-fuzz at the repository root),
# FUZZ_CXX (default: clang++), FUZZ_KEEP_CORPUS=DIR (keep the grown corpora
# there instead of deleting them), FUZZ_UNIT_TIMEOUT=SECONDS (default 10: one
# input running longer is a finding; raise it when the fuzzers run at low
# priority on a busy machine, where a starved process trips it: every
# "timeout" of the first one-hour runs here executed in milliseconds). Exits 77 (meson's "skipped") with the
# reason when clang++ or its libFuzzer runtime is missing.
set -euo pipefail

seconds=${1:?usage: run-fuzzers.sh SECONDS [TARGET...]}
shift
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$src/build-fuzz}
cxx=${FUZZ_CXX:-clang++}
all_targets=(spec_wire policy cdi_json cdi_yaml proc_info ld_cache mountinfo)
targets=("${@:-${all_targets[@]}}")

if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "SKIP: $cxx not found; scripts/install-deps.sh installs clang and libclang-rt-dev"
  exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
  >"$probe/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" \
  >"$probe/log" 2>&1; then
  echo "SKIP: $cxx cannot link -fsanitize=fuzzer (libFuzzer runtime missing: libclang-rt-dev):"
  cat "$probe/log"
  exit 77
fi

start=$(date +%s)
if [ ! -f "$build/build.ninja" ]; then
  CXX="$cxx" meson setup "$build" "$src" -Dfuzzing=true --buildtype=debugoptimized >/dev/null
fi
ninja -C "$build" >/dev/null
echo "clang fuzzing build ready in $build ($(($(date +%s) - start)) s)"

work=$(mktemp -d)
trap 'rm -rf "$probe" "$work"' EXIT
artifacts="$build/artifacts"
mkdir -p "$artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "unknown target $t"; exit 2; }
  corpus="$work/$t"
  mkdir -p "$corpus"
  cp -r "$src/tests/fuzz/corpus/$t/." "$corpus/"
  if [ "$t" = spec_wire ]; then "$build/tests/fuzz/make_wire_seeds" "$corpus"; fi
  seeds=$(find "$corpus" -type f | wc -l)
  log="$work/$t.log"
  rc=0
  t0=$(date +%s)
  "$bin" -max_total_time="$seconds" -timeout="${FUZZ_UNIT_TIMEOUT:-10}" -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "$corpus" >"$log" 2>&1 || rc=$?
  took=$(($(date +%s) - t0))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then
    verdict=ok
  else
    verdict="FAILED (exit $rc)"
    failed+=("$t")
  fi
  printf '%-10s %5s s  %10s execs  %7s exec/s  cov %5s  ft %6s  corpus %5s -> %5s  %s\n' \
    "$t" "$took" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$seeds" "${corp:-?}" "$verdict"
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$log"
    ls -1 "$artifacts"/"$t"-* 2>/dev/null | sed 's/^/  input: /' || true
  fi
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$t"
    cp -r "$corpus/." "$FUZZ_KEEP_CORPUS/$t/"
  fi
done
echo "total $(($(date +%s) - start)) s"
if ((${#failed[@]})); then
  echo "fuzzing found problems in: ${failed[*]}"
  exit 1
fi
