#!/usr/bin/env bash
# Packs what tests/bench/run-on-device.sh needs on a machine that has
# nothing of ours (the GPU host: Ubuntu 24.04, no network): the binaries of
# a build directory, stripped, in the same layout (so BUILD=KIT/build works
# for run-on-gpu.sh), Debian's bubblewrap as the benchmarks' baseline, and
# the shared libraries those need that such a host may lack or hold in
# another version.
#
#   scripts/device-kit.sh [BUILD [KIT]]     # defaults: build, build-device-kit
#
# KIT matches .gitignore's /build*/, so it never enters a commit; name it in
# the device call's carry list. glibc, libstdc++ and libgcc_s stay the
# host's (newer there, and backwards compatible).
set -euo pipefail

BUILD=${1:-build}
KIT=${2:-build-device-kit}
BWRAP=${BWRAP:-/usr/bin/bwrap}
LIMIT_MIB=60 # the device call carries 64 MiB with the working tree

binaries=(
  helper/gpubox-helper
  client/gpubox
  client/gpubox-bwrap
  tests/bench/bench_startup
  tests/bench/bench_exec_client
  tests/gpu/gpubox-cuda-probe
)
for b in "${binaries[@]}"; do
  [[ -x $BUILD/$b ]] || {
    echo "device-kit: $BUILD/$b is not built (meson setup $BUILD && ninja -C $BUILD;" \
      "the CUDA probe needs nvcc)" >&2
    exit 1
  }
done
[[ -x $BWRAP ]] || {
  echo "device-kit: $BWRAP missing (apt-get install bubblewrap)" >&2
  exit 1
}

rm -rf "$KIT"
mkdir -p "$KIT/bin" "$KIT/lib"
for b in "${binaries[@]}"; do
  mkdir -p "$KIT/build/$(dirname "$b")"
  strip --strip-debug -o "$KIT/build/$b" "$BUILD/$b"
done
# The client's shared library travels beside the CLI, as in the build tree.
find "$BUILD/client" -maxdepth 1 -name 'libgpubox-client.so*' \( -type f -o -type l \) \
  -exec cp -P {} "$KIT/build/client/" \;
strip --strip-debug "$KIT"/build/client/libgpubox-client.so.*.*.*
cp "$BWRAP" "$KIT/bin/bwrap"

# Every shared library the carried programs load, but the host's own core.
keep_hosts='^(linux-vdso|libc|libm|libpthread|libdl|librt|libresolv|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so'
while read -r lib; do
  name=$(basename "$lib")
  [[ $name =~ $keep_hosts ]] && continue
  [[ -e $KIT/lib/$name ]] || cp -L "$lib" "$KIT/lib/$name"
done < <(
  for f in "$KIT"/build/helper/gpubox-helper "$KIT"/build/client/gpubox "$KIT"/build/tests/bench/* \
    "$KIT"/build/tests/gpu/gpubox-cuda-probe "$KIT"/bin/bwrap; do
    ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
  done | sort -u
)

git describe --always --dirty >"$KIT/COMMIT" 2>/dev/null || echo "?" >"$KIT/COMMIT"
mib=$(du -sm "$KIT" | cut -f1)
echo "device-kit: $KIT ready, $mib MiB (commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
ls "$KIT/lib"
((mib <= LIMIT_MIB)) || {
  echo "device-kit: over $LIMIT_MIB MiB: the device call cannot carry it" >&2
  exit 1
}
