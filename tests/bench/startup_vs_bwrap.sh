#!/usr/bin/env bash
# Sandbox start-up cost, gpubox vs bubblewrap, side by side in one run:
# alternates `gpubox run` and `bwrap` with the same mount plan running
# /bin/true, N times each, and prints the medians and their ratio.
# Usage (as root, from the repo root after a build in ./build):
#   bash tests/bench/startup_vs_bwrap.sh [N] [BUILD_DIR]
set -euo pipefail
n=${1:-200}
build=${2:-build}
command -v bwrap >/dev/null || { echo "bwrap is not installed (apt-get install bubblewrap)"; exit 1; }
dir=$(mktemp -d)
chmod 0755 "$dir"
"$build/helper/gpubox-helper" --listen "$dir/sock" 2>"$dir/helper.log" &
helper=$!
trap 'kill $helper; wait $helper 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$dir/sock" ] && break; sleep 0.05; done
plan=(--ro-bind / / --proc /proc --dev /dev --tmpfs /tmp)
gpubox=("$build/client/gpubox" --socket "$dir/sock" run "${plan[@]}" -- /bin/true)
bwrap=(bwrap "${plan[@]}" --unshare-all --die-with-parent -- /bin/true)
now() { date +%s%N; }
: >"$dir/g"; : >"$dir/b"
for _ in $(seq "$n"); do
  t0=$(now); "${gpubox[@]}"; t1=$(now); "${bwrap[@]}"; t2=$(now)
  echo $((t1 - t0)) >>"$dir/g"; echo $((t2 - t1)) >>"$dir/b"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
g=$(median "$dir/g"); b=$(median "$dir/b")
awk -v g="$g" -v b="$b" -v n="$n" 'BEGIN {
  printf "runs each:            %d\n", n
  printf "gpubox run (median):  %.2f ms\n", g / 1e6
  printf "bwrap (median):       %.2f ms\n", b / 1e6
  printf "ratio gpubox/bwrap:   %.2f\n", g / b }'
