#include "exec_batch.hpp"

#include <fcntl.h>
#include <signal.h>

#include <kj/async-unix.h>

#include <cstdio>
#include <cstdlib>

#include "command_end.hpp"
#include "error.hpp"
#include "gpubox/client.hpp"
#include "json_status.hpp"
#include "unique_fd.hpp"

namespace gpubox::cli {

namespace {

sigset_t forwardedSet() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kForwardedSignals) sigaddset(&set, sig);
  return set;
}

// While a command runs the forwarded signals are blocked, read from kj's
// signalfd and sent to the command. While gpubox waits for the next line
// nothing runs that they could go to, so they act as on any process: a
// pending one is delivered as soon as they are unblocked, and gpubox ends.
void letSignalsEndUs(bool on) {
  const sigset_t set = forwardedSet();
  ::sigprocmask(on ? SIG_UNBLOCK : SIG_BLOCK, &set, nullptr);
}

// One line of stdin without its newline; false at the end of input.
bool readLine(std::string& line) {
  char* buf = nullptr;
  size_t cap = 0;
  ssize_t n = ::getline(&buf, &cap, stdin);
  if (n >= 0) line.assign(buf, static_cast<size_t>(n));
  std::free(buf);  // getline(3)'s buffer, allocated by libc
  if (n < 0) return false;
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return true;
}

bool blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

}  // namespace

int runExecBatch(const std::string& socket, const ExecOptions& opts) {
  for (int sig : kForwardedSignals) kj::UnixEventPort::captureSignal(sig);
  UniqueFd devNull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devNull) return fail("cannot open /dev/null for the commands' stdin");
  std::optional<client::Connection> conn;
  try {
    conn.emplace(client::defaultSocketPath(socket));
  } catch (const Error& e) {
    return fail(e.what());
  }
  int last = 0;
  unsigned lineNo = 0;
  std::string line;
  for (;;) {
    letSignalsEndUs(true);
    const bool more = readLine(line);
    letSignalsEndUs(false);
    if (!more) break;
    ++lineNo;
    if (blank(line)) continue;
    RunReport report;
    report.session = opts.session;
    bool lost = false;
    try {
      client::ExecRequest request;
      request.session = opts.session;
      request.command = parseExecBatchLine(batchLineWords(line), opts.command);
      request.stdinFd = devNull.get();
      request.forwardSignals = true;
      request.sandboxFacts = opts.jsonStatusFd.has_value();
      client::RunResult r = conn->exec(request).wait();
      fillReport(report, r);
      last = exitCodeOf(r);
    } catch (const Error& e) {
      // A lost connection ends the batch: no later line could run either,
      // and saying so once beats failing each of them the same way.
      lost = dynamic_cast<const client::ConnectionLost*>(&e) != nullptr;
      report.error = "line " + std::to_string(lineNo) + ": " + e.what() +
                     (lost ? "; no more lines are run" : "");
      last = fail(report.error);
    }
    writeJsonLine(opts.jsonStatusFd, runReportJson(report));
    if (lost) break;
  }
  // As after a single command (main.cpp's runAndReport): closing the socket
  // is the whole goodbye the helper needs.
  std::fflush(nullptr);
  std::_Exit(last);
}

}  // namespace gpubox::cli
