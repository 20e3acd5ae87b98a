#!/usr/bin/env bash
# Real-GPU checks for gpubox. Run as root from the repository root on a
# machine with an NVIDIA GPU, after `meson setup build && ninja -C build`:
#
#   tests/gpu/run-on-gpu.sh            # BUILD=dir to use another build dir
#
# It starts a private gpubox-helper with a policy that grants every GPU to
# the caller and to nobody (65534), then checks, as root and as nobody:
#   - the CUDA probe and `nvidia-smi -L` work inside `gpubox run --gpu 0`;
#   - without --gpu the probe fails cleanly (non-zero, a "no device" error)
#     and no /dev/nvidia* node is visible;
#   - with more than one GPU, granting one shows exactly one;
# and prints the probe's throughput inside the sandbox divided by outside.
# Every check prints PASS or FAIL; the exit status is non-zero on any FAIL.
set -uo pipefail

BUILD=${BUILD:-build}
HELPER=$BUILD/helper/gpubox-helper
CLIENT=$BUILD/client/gpubox
PROBE=$BUILD/tests/gpu/gpubox-cuda-probe
TIMEOUT=${TIMEOUT:-300}

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
die() { echo "FAIL: $*" >&2; exit 2; }

[[ $EUID -eq 0 ]] || die "run as root: the helper needs CAP_SYS_ADMIN (and the test runs as nobody too)"
for f in "$HELPER" "$CLIENT" "$PROBE"; do
  [[ -x $f ]] || die "$f not built (meson setup $BUILD && ninja -C $BUILD; the probe needs nvcc)"
done
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: is the NVIDIA driver installed?"
mapfile -t host_gpus < <(nvidia-smi -L)
ngpus=${#host_gpus[@]}
((ngpus > 0)) || die "nvidia-smi -L lists no GPU"
echo "host: $ngpus GPU(s)"
printf '  %s\n' "${host_gpus[@]}"

tmp=$(mktemp -d /tmp/gpubox-gpu.XXXXXX)
chmod 755 "$tmp"
helper_pid=
cleanup() {
  [[ -n $helper_pid ]] && kill "$helper_pid" 2>/dev/null && wait "$helper_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# Copies that nobody can read and run wherever the checkout lives (often a
# 0700 home directory). The client's library travels with it ($ORIGIN rpath).
mkdir -p "$tmp/bin"
cp "$PROBE" "$tmp/bin/gpubox-cuda-probe"
cp -P "$CLIENT" "$BUILD"/client/libgpubox-client.so* "$tmp/bin/" 2>/dev/null || cp "$CLIENT" "$tmp/bin/"
chmod -R a+rX "$tmp/bin"
probe=$tmp/bin/gpubox-cuda-probe
gpubox=$tmp/bin/gpubox

cat >"$tmp/helper.toml" <<TOML
# written by tests/gpu/run-on-gpu.sh
[[allow]]
users = [$(id -u), 65534]
gpus = ["all"]
max_gpus = $ngpus
TOML
chmod 644 "$tmp/helper.toml"

"$HELPER" --listen "$tmp/sock" --config "$tmp/helper.toml" 2>"$tmp/helper.log" &
helper_pid=$!
for _ in $(seq 100); do
  [[ -S $tmp/sock ]] && break
  kill -0 "$helper_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -S $tmp/sock ]] || { cat "$tmp/helper.log" >&2; die "the helper did not start"; }

# as USER CMD...: run CMD as root (self) or as nobody, from a directory both
# can use (the default sandbox plan binds the current directory).
as() {
  local who=$1
  shift
  if [[ $who == self ]]; then
    (cd "$tmp" && timeout "$TIMEOUT" "$@")
  else
    (cd "$tmp" && timeout "$TIMEOUT" setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@")
  fi
}
run() { local who=$1; shift; as "$who" "$gpubox" --socket "$tmp/sock" run "$@"; }

field() { sed -n "s/.*probe: ok .*$1=\([0-9.]*\).*/\1/p" <<<"$2" | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

echo "--- outside any sandbox"
outside=$(as self "$probe" 2>&1)
rc=$?
echo "$outside"
if ((rc == 0)); then pass "probe on the host"; else fail "probe on the host (exit $rc)"; fi
out_gemm=$(field gemm_gflops "$outside")
out_bw=$(field bw_gbps "$outside")

for who in self nobody; do
  echo "--- as $who ($( [[ $who == self ]] && id -un || echo nobody))"

  inside=$(run "$who" --gpu 0 -- "$probe" 2>&1)
  rc=$?
  echo "$inside"
  if ((rc == 0)) && grep -q '^probe: ok devices=1 ' <<<"$inside"; then
    pass "$who: probe inside run --gpu 0 (one device)"
  else
    fail "$who: probe inside run --gpu 0 (exit $rc)"
  fi
  in_gemm=$(field gemm_gflops "$inside")
  in_bw=$(field bw_gbps "$inside")
  echo "throughput inside/outside: gemm $(ratio "${in_gemm:-0}" "${out_gemm:-0}")" \
    "bw $(ratio "${in_bw:-0}" "${out_bw:-0}") (gemm ${in_gemm:-?}/${out_gemm:-?} GFLOP/s," \
    "bw ${in_bw:-?}/${out_bw:-?} GB/s)"

  smi=$(run "$who" --gpu 0 -- nvidia-smi -L 2>&1)
  rc=$?
  echo "$smi"
  smi_lines=$(grep -c '^GPU ' <<<"$smi")
  if ((rc == 0)) && ((smi_lines == 1)); then
    pass "$who: nvidia-smi -L inside run --gpu 0 shows exactly one GPU"
  else
    fail "$who: nvidia-smi -L inside run --gpu 0 (exit $rc, $smi_lines GPU lines)"
  fi
  uuid0=$(grep -o 'GPU-[0-9a-f-]*' <<<"$smi" | head -1)
  if [[ -n $uuid0 ]] && printf '%s\n' "${host_gpus[@]}" | grep -qF "$uuid0"; then
    pass "$who: the GPU inside ($uuid0) is one of the host's"
  else
    fail "$who: the GPU inside ('$uuid0') is not one of the host's"
  fi

  nogpu=$(run "$who" -- "$probe" 2>&1)
  rc=$?
  echo "$nogpu"
  if ((rc != 0 && rc != 124)) &&
    grep -qE 'CUDA_ERROR_NO_DEVICE|Found no NVIDIA driver|no CUDA-capable device' <<<"$nogpu"; then
    pass "$who: without --gpu the probe fails cleanly (exit $rc, no device)"
  else
    fail "$who: without --gpu the probe should fail with a no-device error (exit $rc)"
  fi
  nodes=$(run "$who" -- sh -c 'ls /dev/nvidia* 2>/dev/null' 2>&1)
  if [[ -z $nodes ]]; then
    pass "$who: without --gpu no /dev/nvidia* node is visible"
  else
    fail "$who: without --gpu these nodes are visible: $nodes"
  fi

  if ((ngpus > 1)); then
    smi1=$(run "$who" --gpu 1 -- nvidia-smi -L 2>&1)
    rc=$?
    echo "$smi1"
    uuid1=$(grep -o 'GPU-[0-9a-f-]*' <<<"$smi1" | head -1)
    if ((rc == 0)) && (($(grep -c '^GPU ' <<<"$smi1") == 1)) && [[ -n $uuid1 && $uuid1 != "$uuid0" ]]; then
      pass "$who: run --gpu 1 shows exactly one GPU, a different one ($uuid1)"
    else
      fail "$who: run --gpu 1 should show exactly one GPU other than $uuid0"
    fi
    all=$(run "$who" --gpu all -- nvidia-smi -L 2>&1)
    if (($(grep -c '^GPU ' <<<"$all") == ngpus)); then
      pass "$who: run --gpu all shows all $ngpus GPUs"
    else
      fail "$who: run --gpu all shows $(grep -c '^GPU ' <<<"$all") of $ngpus GPUs"
    fi
  else
    echo "SKIP: $who: only one GPU, cannot check that granting one of several shows one"
  fi
done

echo "--- helper log"
cat "$tmp/helper.log"
if ((failures > 0)); then
  echo "run-on-gpu: $failures check(s) FAILED"
  exit 1
fi
echo "run-on-gpu: all checks passed"
