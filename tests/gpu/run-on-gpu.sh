#!/usr/bin/env bash
# Real-GPU checks for gpubox. Run as root from the repository root on a
# machine with an NVIDIA GPU, after `meson setup build && ninja -C build`:
#
#   tests/gpu/run-on-gpu.sh            # BUILD=dir to use another build dir
#
# HELPER_ARGS adds arguments to the helper it starts (e.g. "--cgroup-parent
# /gpuboxdev" on a host whose own cgroup delegates no controller).
#
# It starts a private gpubox-helper with a policy that grants every GPU to
# the caller and to nobody (65534), then checks, as root and as nobody:
#   - the CUDA probe and `nvidia-smi -L` work inside `gpubox run --gpu 0`;
#   - without --gpu the probe fails cleanly (non-zero, a "no device" error)
#     and no /dev/nvidia* node is visible;
#   - with more than one GPU, granting one shows exactly one;
#   - a session (`session create --gpu 0 --memory 16G`) runs the probe in two
#     execs, one after the other, and `session rm` ends it;
#   - a --memory ceiling (8G) leaves the probe room to run;
#   - in a root that is not the host's (a bare tree of the probe's own
#     libraries), read-only and writable, the probe and nvidia-smi find the
#     driver through /run/gpubox-driver, and the writable tree is unchanged;
#   - all of it under the default seccomp filter (--json-status names it;
#     if the probe fails there but runs with --seccomp none, that is a FAIL
#     that names the filter);
# and prints the probe's throughput inside the sandbox divided by outside,
# and the sandboxes' peak memory where `ps --json`/--json-status report it.
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
live_session= # "WHO NAME" of a session a failed check left behind
cleanup() {
  [[ -n $live_session ]] && cli "${live_session% *}" session rm "${live_session#* }" >/dev/null 2>&1
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

read -ra helper_args <<<"${HELPER_ARGS:-}"
"$HELPER" --listen "$tmp/sock" --config "$tmp/helper.toml" "${helper_args[@]}" 2>"$tmp/helper.log" &
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
cli() { local who=$1; shift; as "$who" "$gpubox" --socket "$tmp/sock" "$@"; }
run() { local who=$1; shift; cli "$who" run "$@"; }

field() { sed -n "s/.*probe: ok .*$1=\([0-9.]*\).*/\1/p" <<<"$2" | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
probe_ok() { grep -q '^probe: ok devices=1 ' <<<"$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
# peak_bytes JSON [NAME]: the first memory-peak figure in JSON (in NAME's
# entry when given), or nothing. Informational: the field's exact name is
# left to the JSON's own documentation, so any key with "peak" in it counts.
peak_bytes() {
  command -v python3 >/dev/null || return 0
  python3 -c '
import json, sys
name = sys.argv[1] if len(sys.argv) > 1 else ""
text = sys.stdin.read()
try:
    docs = [json.loads(text)]
except ValueError:  # JSON lines
    docs = [json.loads(l) for l in text.splitlines() if l.strip().startswith(("{", "["))]
def walk(o, inside):
    if isinstance(o, dict):
        inside = inside or o.get("name") == name
        if inside:
            for k, v in o.items():
                if "peak" in k.lower() and isinstance(v, (int, float)) and not isinstance(v, bool):
                    print(int(v))
                    sys.exit(0)
        for v in o.values():
            walk(v, inside)
    elif isinstance(o, list):
        for v in o:
            walk(v, inside)
for d in docs:
    walk(d, not name)
' "${@:2}" 2>/dev/null <<<"$1"
}

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

  # A session: one sandbox, the probe in two execs (the second must find the
  # GPU as usable as the first did), then removed.
  session=gpu-probe-$$
  created=$(cli "$who" session create --gpu 0 --memory 16G --name "$session" 2>&1)
  rc=$?
  echo "$created"
  if ((rc == 0)) && [[ $(tail -n 1 <<<"$created") == "$session" ]]; then
    pass "$who: session create --gpu 0 --memory 16G --name $session"
    live_session="$who $session"
    for n in 1 2; do
      out=$(cli "$who" exec "$session" -- "$probe" 2>&1)
      rc=$?
      echo "$out"
      if ((rc == 0)) && probe_ok "$out"; then
        pass "$who: probe in exec $n of session $session (one device)"
      else
        fail "$who: probe in exec $n of session $session (exit $rc)"
      fi
    done
    ps_json=$(cli "$who" ps --json 2>&1)
    peak=$(peak_bytes "$ps_json" "$session")
    if [[ -n $peak ]]; then
      echo "session $session: memory peak $(mib "$peak") (ceiling 16G)"
    else
      echo "session $session: memory peak not reported by ps --json"
    fi
    removed=$(cli "$who" session rm "$session" 2>&1)
    rc=$?
    if ((rc == 0)); then
      pass "$who: session rm $session"
      live_session=
      gone=$(cli "$who" exec "$session" -- true 2>&1)
      rc=$?
      if ((rc != 0)); then
        pass "$who: exec in a removed session fails (exit $rc)"
      else
        fail "$who: exec in the removed session $session still ran: $gone"
      fi
    else
      fail "$who: session rm $session (exit $rc): $removed"
    fi
  else
    fail "$who: session create --gpu 0 --memory 16G --name $session (exit $rc, printed no name)"
  fi

  # A memory ceiling with room for CUDA: the probe must run under it.
  status=$tmp/status-$who.json
  inside=$(run "$who" --gpu 0 --memory 8G --json-status 3 -- "$probe" 2>&1 3>"$status")
  rc=$?
  echo "$inside"
  if ((rc == 0)) && probe_ok "$inside"; then
    pass "$who: probe inside run --gpu 0 --memory 8G"
  else
    fail "$who: probe inside run --gpu 0 --memory 8G (exit $rc)"
  fi
  # Every check above ran under the default seccomp filter; say so, and if
  # the probe failed, show whether the filter is what broke it.
  if grep -q '"seccomp":"default"' "$status" 2>/dev/null; then
    pass "$who: the probe ran under the default seccomp filter"
  else
    fail "$who: --json-status does not name the default seccomp filter: $(cat "$status" 2>/dev/null)"
  fi
  if ((rc != 0)) && [[ $who == root ]]; then
    unfiltered=$(run root --gpu 0 --memory 8G --seccomp none -- "$probe" 2>&1)
    if probe_ok "$unfiltered"; then
      fail "root: the probe works with --seccomp none but not under the default filter: the profile breaks CUDA (strace -f it)"
    fi
  fi
  peak=$(peak_bytes "$(cat "$status" 2>/dev/null)")
  if [[ -n $peak ]]; then
    echo "run --memory 8G: memory peak $(mib "$peak")"
  else
    echo "run --memory 8G: memory peak not reported by --json-status"
  fi
done

# CUDA in a root that is not the host's (docs/gpu.md, "Driver libraries"):
# a bare tree holding only the probe and the libraries ldd names for it and
# for nvidia-smi (never the driver's own: those must come from gpubox), the mount points a
# distribution's base files have, and a loader cache made by ldconfig -r.
# Read-only as root and as nobody; writable (--bind) as root, and then the
# tree must be exactly as it was.
echo "--- a root that is not the host's"
foreign=$tmp/foreign
mkdir -p "$foreign"/{run,proc,dev,etc/ld.so.conf.d,usr/bin}
cp "$probe" "$foreign/usr/bin/probe"
while read -r lib; do
  [[ $lib == */libcuda* || $lib == */libnvidia* ]] && continue
  mkdir -p "$foreign$(dirname "$lib")"
  cp -L "$lib" "$foreign$lib"
done < <(for exe in "$probe" "$(command -v nvidia-smi)"; do
  ldd "$exe" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u)
echo 'include /etc/ld.so.conf.d/*.conf' >"$foreign/etc/ld.so.conf"
ldconfig -r "$foreign" || fail "ldconfig -r $foreign"
chmod -R a+rX "$foreign"
for who in self nobody; do
  out=$(run "$who" --ro-bind "$foreign" / --proc /proc --dev /dev --gpu 0 -- /usr/bin/probe 2>&1)
  rc=$?
  echo "$out" | tail -3
  if ((rc == 0)) && probe_ok "$out"; then
    pass "$who: probe in a read-only foreign root (driver from /run/gpubox-driver)"
  else
    fail "$who: probe in a read-only foreign root (exit $rc)"
  fi
  # By name: the command's PATH gains /run/gpubox-driver/bin.
  smi=$(run "$who" --ro-bind "$foreign" / --proc /proc --dev /dev --gpu 0 \
    --setenv PATH /usr/bin:/bin -- nvidia-smi -L 2>&1)
  rc=$?
  if ((rc == 0)) && (($(grep -c '^GPU ' <<<"$smi") == 1)); then
    pass "$who: nvidia-smi -L (found on PATH) in a read-only foreign root shows one GPU"
  else
    fail "$who: nvidia-smi -L in a read-only foreign root (exit $rc): $smi"
  fi
done
listing() { find "$foreign" -printf '%p %m %s %U %T@\n' | sort; }
before=$(listing)
# CUDA_CACHE_DISABLE: the probe's own JIT cache (~/.nv/ComputeCache, as
# root /root/.nv in this root) is the command writing into a root it was
# given writable, not gpubox; without it the listing below changes on hosts
# where CUDA keeps one (seen on an H200, 2026-11-30).
out=$(run self --bind "$foreign" / --proc /proc --dev /dev --gpu 0 \
  --setenv CUDA_CACHE_DISABLE 1 -- /usr/bin/probe 2>&1)
rc=$?
if ((rc == 0)) && probe_ok "$out"; then
  pass "self: probe in a writable foreign root"
else
  fail "self: probe in a writable foreign root (exit $rc): $(tail -3 <<<"$out")"
fi
if [[ $(listing) == "$before" ]]; then
  pass "the writable foreign root is left as it was"
else
  fail "the writable foreign root changed: $(diff <(echo "$before") <(listing) | head -5)"
fi

# Start-up with a real GPU against start-up without one (issue 8: target
# <= 1.1x), as uid 65534, interleaved pairs, medians. Informational: timings
# never fail this script. STARTUP_RUNS=0 leaves it out.
startup_runs=${STARTUP_RUNS:-50}
if ((startup_runs > 0)); then
  echo "--- start-up: run --gpu 0 -- true against run -- true ($startup_runs pairs, uid 65534)"
  ms() { local t0 t1; t0=$(date +%s%N); run nobody "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(((t1 - t0) / 1000)); }
  gpu_us=() plain_us=()
  for ((i = 0; i < startup_runs; i++)); do
    if ((i % 2 == 0)); then
      gpu_us+=("$(ms --gpu 0 -- true)") plain_us+=("$(ms -- true)")
    else
      plain_us+=("$(ms -- true)") gpu_us+=("$(ms --gpu 0 -- true)")
    fi
  done
  median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
  g=$(median "${gpu_us[@]}")
  p=$(median "${plain_us[@]}")
  echo "start-up median: --gpu 0 $((g / 1000)).$(printf '%03d' $((g % 1000))) ms," \
    "no GPU $((p / 1000)).$(printf '%03d' $((p % 1000))) ms, ratio $(ratio "$g" "$p")" \
    "(wall time of the client, including its own start)"
fi

echo "--- helper log"
cat "$tmp/helper.log"
if ((failures > 0)); then
  echo "run-on-gpu: $failures check(s) FAILED"
  exit 1
fi
echo "run-on-gpu: all checks passed"
