#!/usr/bin/env bash
# Installs everything gpubox needs to build and test on Debian 12 (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  build-essential g++ meson ninja-build pkg-config clang-format
  capnproto libcapnp-dev libseccomp-dev libcap-dev
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libyaml-cpp-dev libbpf-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-dev  # tests/fuzz: clang++ and its libFuzzer/ASan/UBSan runtimes
  bubblewrap iproute2 procps systemd util-linux
  # tests/bwrap-suite: bubblewrap's own tests, fetched with apt-get source
  dpkg-dev python3 libcap2-bin strace
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
