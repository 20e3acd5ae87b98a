#!/usr/bin/env bash
# Every measurement that needs the GPU host, in one call that fits its
# budget (about 6 minutes on 16 cores): the real-GPU checks, the whole
# benchmark, and the throughput rows under other helper settings. Run as
# root from the repository root there, with the kit that
# scripts/device-kit.sh made here carried along:
#
#   tests/bench/run-on-device.sh            # KIT=build-device-kit OUT=$OUT
#
# Writes machine.txt, gpu.txt, bench.txt, one throughput-*.txt per helper
# setting and task-states.txt into OUT (9 files: what one call brings
# back), and prints them. Timings never fail it; a
# FAIL of run-on-gpu.sh is reported and the benchmarks still run.
set -uo pipefail

KIT=${KIT:-build-device-kit}
OUT=${OUT:-device-out}
[[ $EUID -eq 0 ]] || { echo "run-on-device: run as root" >&2; exit 2; }
[[ -x $KIT/build/helper/gpubox-helper ]] || {
  echo "run-on-device: no kit at $KIT (scripts/device-kit.sh, then carry it)" >&2
  exit 2
}
mkdir -p "$OUT"
repo=$PWD

# A copy that uid 65534 can reach (the checkout may sit in a 0700 home), its
# libraries found through LD_LIBRARY_PATH by every carried program.
kit=/tmp/gpubox-device-kit
rm -rf "$kit" && cp -a "$KIT" "$kit" && chmod -R a+rX "$kit"
export LD_LIBRARY_PATH=$kit/lib
bin=$kit/build

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "kit: $(cat "$kit/COMMIT" 2>/dev/null || echo '?')"
  echo "cpus: $(nproc); memory: $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "kernel: $(uname -r); os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "cgroup: $(stat -fc %T /sys/fs/cgroup)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,pci.bus_id --format=csv,noheader 2>&1
} | tee "$OUT/machine.txt"

# bwrap as uid 65534 (the baseline) needs unprivileged user namespaces,
# which Ubuntu's AppArmor restricts by default.
if [[ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]]; then
  echo 0 >/proc/sys/kernel/apparmor_restrict_unprivileged_userns
fi

# On a pure cgroup v2 host whose own cgroup delegates nothing, the helper's
# sandboxes go under a parent of their own with the controllers enabled.
helper_args=()
if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
  mkdir -p /sys/fs/cgroup/gpuboxdev
  for c in memory cpu pids; do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
    echo "+$c" >/sys/fs/cgroup/gpuboxdev/cgroup.subtree_control 2>/dev/null
  done
  helper_args=(--cgroup-parent /gpuboxdev)
fi
bench_helper_args=()
for a in "${helper_args[@]}"; do bench_helper_args+=("--helper-arg=$a"); done

echo "--- run-on-gpu.sh"
BUILD=$bin HELPER_ARGS="${helper_args[*]}" STARTUP_RUNS=100 \
  timeout 240 "$repo/tests/gpu/run-on-gpu.sh" >"$OUT/gpu.txt" 2>&1
echo "run-on-gpu.sh: exit $?"
grep -E '^(FAIL|host:)|start-up median|throughput|ratio' "$OUT/gpu.txt" | head -30

bench() {
  timeout 200 "$bin/tests/bench/bench_startup" --bwrap "$kit/bin/bwrap" "${bench_helper_args[@]}" "$@"
}
echo "--- bench_startup (the helper's defaults)"
bench --runs 200 --spans --concurrency 1,8,16,32 --runs-per-client 40 --rss-runs 1000 --idle-sessions 20 \
  >"$OUT/bench.txt" 2>/tmp/gpubox-bench.err
rc=$?
echo "bench_startup: exit $rc"
((rc == 0)) || tail -20 /tmp/gpubox-bench.err
cat "$OUT/bench.txt"

# The throughput rows under other settings of the helper: its RPC threads
# and its pool's spawners (each by default one per 8 CPUs), and the warm
# pool's ceiling before the ninth slice (16; now 64: the rows' "pool miss"
# column says whether it keeps up).
for setting in "--rpc-threads 0" "--rpc-threads 4" "--pool-spawners 1" "--pool-spawners 4" \
  "--warm-inits-max 16"; do
  read -ra words <<<"$setting"
  args=() name=throughput
  for w in "${words[@]}"; do args+=("--helper-arg=$w") name+=-${w#--}; done
  echo "--- throughput with $setting"
  bench --throughput-only --no-gpu --concurrency 8,16,32 --runs-per-client 60 "${args[@]}" \
    >"$OUT/$name.txt" 2>/tmp/gpubox-bench.err
  rc=$?
  echo "exit $rc"
  ((rc == 0)) || tail -20 /tmp/gpubox-bench.err
  cat "$OUT/$name.txt"
done

# Where each side's tasks are at 8-32 clients (running, asleep, or blocked
# in the kernel, and on what): whether bwrap's and gpubox's plateaus there
# are the kernel serialising them. A step of its own, since the sampling
# costs CPU that the rows above must not pay.
echo "--- throughput with --task-states"
bench --throughput-only --no-gpu --concurrency 8,16,32 --runs-per-client 60 --task-states \
  >"$OUT/task-states.txt" 2>/tmp/gpubox-bench.err
rc=$?
echo "exit $rc"
((rc == 0)) || tail -20 /tmp/gpubox-bench.err
cat "$OUT/task-states.txt"
