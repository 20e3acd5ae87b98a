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
echo "== limits, as nobody"
as_nobody() {
  (cd "$run_dir" && setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$gpubox" --socket "$run_dir/gpubox.sock" "$@")
}
echo "-- a fork bomb under --pids 32:"
as_nobody run --pids 32 -- perl -e 'my $n = 0;
  for (1..1000) { my $p = fork(); if (!defined $p) { print "fork failed after $n children: $!\n"; last }
                  if ($p == 0) { sleep 5; exit 0 } $n++ }'
echo "-- a memory hog under --memory 64M:"
as_nobody run --memory 64M -- sh -c 'x=$(head -c 300000000 /dev/zero | tr "\0" a)' || echo "exit status $?"
echo "-- a process that ignores SIGTERM under --timeout 2s --kill-after 1s:"
as_nobody run --timeout 2s --kill-after 1s -- sh -c 'trap "" TERM; sleep 600' || echo "exit status $?"
echo
echo "== a session, as nobody: state kept across commands"
name=$(as_nobody session create --name demo --ttl 10m --memory 256M)
as_nobody exec "$name" -- sh -c 'echo "first command wrote this" > /tmp/note'
as_nobody exec "$name" -- cat /tmp/note
as_nobody ps
as_nobody session rm "$name"
echo
echo "== helper log"
cat "$run_dir/helper.log"
