#!/usr/bin/env bash
# The main job: builds gpubox, starts a helper on a private socket, and runs
# a real sandboxed command as the unprivileged user 'nobody', showing what
# that command sees. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${BUILD_DIR:-build}
[ -f "$build/build.ninja" ] || meson setup "$build"
ninja -C "$build" >/dev/null

run_dir=$(mktemp -d /tmp/gpubox-demo.XXXXXX)
chmod 0755 "$run_dir"
"$build/helper/gpubox-helper" --listen "$run_dir/gpubox.sock" 2>"$run_dir/helper.log" &
helper=$!
trap 'kill $helper 2>/dev/null; wait $helper 2>/dev/null; rm -rf "$run_dir"' EXIT
for _ in $(seq 50); do [ -S "$run_dir/gpubox.sock" ] && break; sleep 0.1; done

gpubox=$(realpath "$build/client/gpubox")
echo "== gpubox info (as nobody)"
(cd "$run_dir" && setpriv --reuid=nobody --regid=nogroup --clear-groups \
  "$gpubox" --socket "$run_dir/gpubox.sock" info)
echo
echo "== gpubox run, as nobody, default sandbox plan"
(cd "$run_dir" && setpriv --reuid=nobody --regid=nogroup --clear-groups \
  "$gpubox" --socket "$run_dir/gpubox.sock" run --hostname sandbox -- sh -c '
    echo "who am I:      $(id)"
    echo "hostname:      $(hostname)"
    echo "processes:"; ps -eo pid,user,args | sed "s/^/    /"
    echo "capabilities:  $(grep -E "^(CapEff|CapBnd)" /proc/self/status | tr "\t\n" "  ")"
    echo "no_new_privs:  $(grep NoNewPrivs /proc/self/status | cut -f2)"
    echo "network:       $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\n" " ")"
    echo "/dev:          $(ls /dev | tr "\n" " ")"
    echo "GPU nodes:     $(ls /dev/nvidia* 2>/dev/null || echo none)"
    echo "helper socket: $(stat -c %F "'"$run_dir"'"/gpubox.sock 2>&1) (masked: not connectable)"
    touch /etc/x 2>/dev/null && echo "wrote /etc/x (unexpected)" || echo "write to /etc: refused (read-only host root)"
    touch /tmp/x && echo "write to /tmp: ok (private tmpfs)"
  ')
echo
echo "== helper log"
cat "$run_dir/helper.log"
