#!/usr/bin/env bash
# A benchmark ended by a signal (run-on-device.sh runs each step under
# `timeout`) must not leave the root helper it started running: that helper
# and its warm inits would share the machine with the next step. Starts
# bench_startup, sends it SIGTERM once its helper serves, and checks that
# the helper is gone (or a zombie its new parent has yet to reap). Exits 77 (skip) where the benchmark itself cannot run.
set -uo pipefail
bench=$1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$bench" --throughput-only --no-gpu --concurrency 2 --runs-per-client 100000 2>"$log" >/dev/null &
bench_pid=$!
helper=
for _ in $(seq 300); do
  helper=$(sed -n 's/.*helper pid \([0-9][0-9]*\).*/\1/p' "$log" | head -1)
  [[ -n $helper ]] && break
  if ! kill -0 "$bench_pid" 2>/dev/null; then
    wait "$bench_pid"
    rc=$?
    cat "$log"
    ((rc == 77)) && exit 77
    echo "FAIL: bench_startup ended (exit $rc) before starting its helper"
    exit 1
  fi
  sleep 0.1
done
[[ -n $helper ]] || { echo "FAIL: no 'helper pid' line within 30 s"; cat "$log"; exit 1; }
sleep 1  # into the throughput level: clients running
kill -TERM "$bench_pid"
wait "$bench_pid"
echo "bench_startup: exit $? after SIGTERM"
# Gone, or a zombie its new parent has not reaped yet: either way stopped.
for _ in $(seq 100); do
  state=$(awk '{ print $3 }' "/proc/$helper/stat" 2>/dev/null)
  [[ -z $state || $state == Z ]] && { echo "ok: helper $helper stopped with the benchmark"; exit 0; }
  sleep 0.1
done
echo "FAIL: helper $helper still runs 10 s after its benchmark ended:"
cat "/proc/$helper/cmdline" | tr '\0' ' '
echo
kill -KILL "$helper"
exit 1
