#!/usr/bin/env bash
# bubblewrap's own test suite against gpubox-bwrap.
#
#   run-bwrap-tests.sh GPUBOX_HELPER GPUBOX_BWRAP
#
# Fetches Debian bookworm's bubblewrap 0.8.0 source at test time (apt-get
# source, with a private apt configuration: the host's apt sources are left
# alone; nothing of it is kept in this repository), cuts its
# tests/test-run.sh into cases that run on their own (split_cases.py), and
# runs every case twice on this machine: with the real bwrap (/usr/bin/bwrap)
# and with gpubox-bwrap against a gpubox-helper started for it. Every case
# the real bwrap passes must pass with gpubox-bwrap, except those on the
# skip list below (each with its reason; docs/agents.md has the same list).
# Prints "N of M cases pass, K skipped (listed)" and exits 0 only when all
# M pass; 77 (skipped) with the reason when it cannot run here (not root, no
# bwrap, no network or apt). GPUBOX_BWRAP_SUITE_SOURCE=DIR uses an unpacked
# bubblewrap-0.8.0 source tree instead of fetching one.
set -euo pipefail

skip() {
  echo "SKIP: $*"
  exit 77
}

(($# == 2)) || {
  echo "usage: $0 GPUBOX_HELPER GPUBOX_BWRAP" >&2
  exit 2
}
helper=$(realpath "$1")
front=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
real_bwrap=/usr/bin/bwrap

[ "$(id -u)" = 0 ] || skip "needs root: the helper is privileged, and the suite's cases are run as root"
[ -x "$real_bwrap" ] || skip "no $real_bwrap to compare with (scripts/install-deps.sh installs bubblewrap)"
command -v python3 >/dev/null || skip "no python3 (the suite itself needs it)"

# Cases gpubox-bwrap does not pass by design, by the name of their first
# "ok" line, and why.
declare -A skip_list=(
  ["pre-exec failure doesn't include exit-code in json-status"]="it makes bwrap's own 39th prctl() fail with strace; gpubox-bwrap makes other system calls (the helper does the setup), so nothing fails and the command runs"
  ["can mount /proc recursively"]="it runs bwrap inside bwrap with --unshare-user --cap-add ALL: gpubox sandboxes never hold capabilities and gpubox's seccomp filter refuses nested user namespaces (which also makes --assert-userns-disabled hold where the case expects it to fail)"
  ["we have no caps as uid != 0"]="as root, bwrap hands the command root's capabilities and the case compares them with capsh --print outside; gpubox sandboxes never hold any capability"
  ["tmpfs has expected permissions"]="it reads /proc/self/mountinfo under --bind / / without --proc: gpubox covers the host's procfs such a bind brings along (it shows another pid namespace's processes), so that /proc is empty"
)

work=$(mktemp -d /tmp/gpubox-bwrap-suite-XXXXXX)
chmod 0755 "$work"
helper_pid=
cleanup() {
  if [ -n "$helper_pid" ]; then
    kill "$helper_pid" 2>/dev/null || true
    wait "$helper_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fetch_source() {
  local apt="$work/apt"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$work/src"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" >"$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=root")
  command -v dpkg-source >/dev/null || skip "no dpkg-source (dpkg-dev) to unpack the source package"
  timeout 300 apt-get -qq "${opts[@]}" update >"$work/apt.log" 2>&1 ||
    skip "apt-get update of deb.debian.org's bookworm sources failed (no network?): $(tail -1 "$work/apt.log")"
  (cd "$work/src" && timeout 300 apt-get -qq "${opts[@]}" source bubblewrap >>"$work/apt.log" 2>&1) ||
    skip "apt-get source bubblewrap failed: $(tail -1 "$work/apt.log")"
  ls -d "$work"/src/bubblewrap-*/ | head -1
}

if [ -n "${GPUBOX_BWRAP_SUITE_SOURCE:-}" ]; then
  source_dir="$work/$(basename "$(realpath "$GPUBOX_BWRAP_SUITE_SOURCE")")"
  cp -a "$GPUBOX_BWRAP_SUITE_SOURCE" "$source_dir"
else
  source_dir=$(fetch_source)
fi
source_dir=${source_dir%/}
case "$(basename "$source_dir")" in
  bubblewrap-0.8.0*) ;;
  *)
    echo "FAIL: got $(basename "$source_dir"); this runner and its skip list are for bubblewrap 0.8.0"
    exit 1
    ;;
esac
tests="$source_dir/tests"
python3 "$here/split_cases.py" "$tests/test-run.sh" "$tests"

# A helper of its own, reachable by the cases through GPUBOX_SOCKET.
mkdir -m 0755 "$work/helper"
socket="$work/helper/gpubox.sock"
helper_args=(--listen "$socket")
[ -n "${GPUBOX_TEST_USER_NAMESPACE:-}" ] && helper_args+=(--user-namespace "$GPUBOX_TEST_USER_NAMESPACE")
"$helper" "${helper_args[@]}" >"$work/helper/log" 2>&1 &
helper_pid=$!
for _ in $(seq 300); do
  [ -S "$socket" ] && break
  kill -0 "$helper_pid" 2>/dev/null || break
  sleep 0.1
done
[ -S "$socket" ] || {
  echo "FAIL: gpubox-helper did not start:"
  cat "$work/helper/log"
  exit 1
}

# Runs case NN with BWRAP=$2; the exit status is the case's.
run_case() {
  local n=$1 bwrap=$2 log=$3
  (cd "$tests" && BWRAP="$bwrap" GPUBOX_SOCKET="$socket" timeout 300 bash "case-$n.sh") >"$log" 2>&1
}

passed=0 counted=0 skipped=0 failed_names=()
while IFS=$'\t' read -r n name; do
  reason=""
  for key in "${!skip_list[@]}"; do
    [[ "$name" == "$key"* ]] && reason=${skip_list[$key]}
  done
  if ! run_case "$n" "$real_bwrap" "$work/real-$n.log"; then
    echo "not counted  $n $name: fails with the real bwrap here"
    continue
  fi
  if [ -n "$reason" ]; then
    skipped=$((skipped + 1))
    echo "skipped      $n $name: $reason"
    continue
  fi
  counted=$((counted + 1))
  if run_case "$n" "$front" "$work/front-$n.log"; then
    passed=$((passed + 1))
    echo "pass         $n $name"
  else
    failed_names+=("$n $name")
    echo "FAIL         $n $name; its output with gpubox-bwrap:"
    tail -n 30 "$work/front-$n.log" | sed 's/^/    | /'
  fi
done <"$tests/cases.tsv"

echo "$passed of $counted cases pass, $skipped skipped (listed)"
((passed == counted))
