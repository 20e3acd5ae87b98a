// gpubox exec NAME --batch: many commands into one session over one
// connection, read from stdin one JSON array per line. What an agent that
// cannot link libgpubox-client keeps open to pay one round trip per command
// instead of a client process per command (docs/agents.md).
#pragma once

#include <string>

#include "run_options.hpp"

namespace gpubox::cli {

// Runs every line of stdin in OPTS.session, in order, until stdin ends;
// returns the last line's exit status (0 for no lines). Each command gets
// /dev/null as stdin and this process's stdout and stderr; with
// OPTS.jsonStatusFd, one record per non-blank line. A line that cannot run
// (bad JSON, an unknown option, a refused exec) gets its error on stderr
// and in its record, and the next line still runs; a lost connection to the
// helper ends the batch there (125). SIGINT, SIGTERM, SIGHUP
// and SIGQUIT go to the running command; between commands they end gpubox.
int runExecBatch(const std::string& socket, const ExecOptions& opts);

}  // namespace gpubox::cli
