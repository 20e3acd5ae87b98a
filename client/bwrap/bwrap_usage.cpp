#include "bwrap_options.hpp"

namespace gpubox::bwrap {

std::string usage(const std::string& program) {
  return "usage: " + program + R"( [OPTIONS...] [--] COMMAND [ARGS...]

gpubox-bwrap takes bubblewrap's command line and has gpubox-helper build the
sandbox: the same empty root and mount options, run as you with no
capabilities under gpubox's seccomp filter, in new user (where the helper
has them), mount, pid, ipc, uts and cgroup namespaces whatever the options
say, and a new network namespace unless the host's is shared (no
--unshare-net) and the helper's policy allows it (host_network).

    --help                       Show this text
    --version                    Show the version
    --args FD                    Read more options, NUL-separated, from FD, in place
    --level-prefix               Start each message with its syslog severity, as <3>
    --unshare-all                All namespaces, network included
    --share-net                  ... but keep the host's network (policy: host_network)
    --unshare-user, --unshare-user-try, --unshare-ipc, --unshare-pid,
    --unshare-uts, --unshare-cgroup, --unshare-cgroup-try
                                 Accepted: gpubox makes these namespaces anyway
    --unshare-net                A network namespace of its own, with only lo
    --disable-userns             No new user namespaces inside (gpubox never allows them)
    --assert-userns-disabled     Holds: gpubox's seccomp filter refuses them
    --uid UID, --gid GID         The ids inside, mapped onto yours by the user namespace
                                 (a helper without user namespaces: only your own)
    --hostname NAME              The sandbox's hostname (needs --unshare-uts)
    --as-pid-1                   The command is pid 1 of a pid namespace of its own
                                 (needs --unshare-pid); gpubox's init stays above it
    --chdir DIR                  Where the command starts
    --clearenv                   Start from an empty environment
    --setenv VAR VALUE           Set VAR in the command's environment
    --unsetenv VAR               Remove VAR from it
    --argv0 VALUE                The argv[0] the command sees
    --lock-file DEST             The sandbox holds a read lock on DEST while it runs
    --sync-fd FD                 FD stays open (in gpubox-bwrap) while the sandbox runs
    --bind SRC DEST              Host path SRC, writable, at DEST
    --bind-try SRC DEST          The same, left out when SRC does not exist
    --dev-bind SRC DEST          SRC at DEST with its device nodes usable
                                 (root, or a policy rule with dev_bind)
    --dev-bind-try SRC DEST      The same, left out when SRC does not exist
    --ro-bind SRC DEST           Host path SRC, read-only, at DEST
    --ro-bind-try SRC DEST       The same, left out when SRC does not exist
    --bind-fd FD DEST            The directory FD has open, writable, at DEST
    --ro-bind-fd FD DEST         The same, read-only
    --remount-ro DEST            Make what is at DEST read-only (with what is below it)
    --proc DEST                  The sandbox's own procfs at DEST
    --dev DEST                   A minimal /dev at DEST
    --tmpfs DEST                 An empty tmpfs at DEST
    --mqueue DEST                The sandbox's POSIX message queues at DEST
    --dir DEST                   Make the directory DEST
    --file FD DEST               A new file DEST holding what FD reads
    --bind-data FD DEST          What FD reads, as a file bound on DEST
    --ro-bind-data FD DEST       The same, read-only
    --symlink SRC DEST           A symlink DEST pointing to SRC
    --seccomp FD                 A classic BPF program read from FD (once)
    --add-seccomp-fd FD          One more of them (repeatable); they run after gpubox's
                                 own filter, so they can only refuse more
    --block-fd FD                Start the command only once FD has data (or is closed)
    --info-fd FD                 Write the sandbox's pid and namespaces to FD as JSON
    --json-status-fd FD          The same, then the command's exit code, on FD
    --new-session                Accepted: every command gets a session of its own
    --die-with-parent            End the sandbox when gpubox-bwrap's parent dies
                                 (it always ends when gpubox-bwrap does)
    --cap-drop CAP               Accepted: no capability is kept to begin with
    --perms OCTAL                Permission bits for the next --tmpfs, --dir, --file,
                                 --bind-data or --ro-bind-data
    --size BYTES                 Size of the next --tmpfs
    --chmod OCTAL PATH           New permission bits for PATH, which must exist
    --gpu SPEC                   gpubox's own: GPUs (all, 0,2, GPU-<uuid>, count:N, none)
                                 as the helper's policy allows; also $GPUBOX_GPU

Refused, with a message: --cap-add, --userns, --userns2,
--userns-block-fd, --pidns, --exec-label, --file-label and the overlay options.
The helper's socket: $GPUBOX_SOCKET, else /run/gpubox/gpubox.sock.
)";
}

}  // namespace gpubox::bwrap
