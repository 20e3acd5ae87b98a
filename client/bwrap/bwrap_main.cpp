// gpubox-bwrap: bubblewrap's command line, served by gpubox-helper. Tools
// built on bwrap (Codex, sandbox-runtime, unionai-sandbox) switch to gpubox
// by running this instead (a `bwrap` symlink to it early in PATH, or the
// tool's bwrap path setting): docs/agents.md.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <kj/async-unix.h>

#include <cstdio>
#include <vector>

#include "bwrap_options.hpp"
#include "bwrap_outcome.hpp"
#include "bwrap_status.hpp"
#include "error.hpp"
#include "gpubox/client.hpp"

extern char** environ;

namespace {

bool levelPrefix = false;

// bwrap's way to fail: one line on stderr, exit status 1.
int die(const std::string& message) {
  std::fprintf(stderr, "%sbwrap: %s\n", levelPrefix ? "<3>" : "", message.c_str());
  return 1;
}

std::string currentDirectory() {
  std::vector<char> buf(4096);
  // A directory that is gone leaves the command to start in $HOME or /.
  return ::getcwd(buf.data(), buf.size()) ? std::string(buf.data()) : std::string();
}

// --die-with-parent: when the parent goes, so does gpubox-bwrap, and with
// its connection the helper ends the whole sandbox.
void dieWithParent(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::getppid() != parent) ::_exit(1);  // it went before the line above
}

// Before the command starts: --info-fd, the first --json-status-fd record,
// then --block-fd.
void announce(const gpubox::bwrap::Invocation& inv, const gpubox::client::SandboxStarted& s) {
  using namespace gpubox::bwrap;
  // bwrap closes the info and block fds once used; one that is also the
  // command's stdin, stdout or stderr stays open for it.
  if (inv.infoFd) {
    if (!writeText(*inv.infoFd, infoJson(s))) gpubox::throwErrno("Write to info_fd");
    if (*inv.infoFd > 2) ::close(*inv.infoFd);
  }
  if (inv.jsonStatusFd && !writeText(*inv.jsonStatusFd, statusStartJson(s)))
    gpubox::throwErrno("Write to json_status_fd");
  if (inv.blockFd) {
    char byte;
    while (::read(*inv.blockFd, &byte, 1) < 0 && errno == EINTR) {
    }
    if (*inv.blockFd > 2) ::close(*inv.blockFd);
  }
}

// The helper refused host networking, which bwrap's command line asked for
// by leaving out --unshare-net: say so in those words.
std::string explainRefusal(const gpubox::bwrap::Invocation& inv, const std::string& message) {
  if (!inv.sharesHostNetwork || message.rfind("--net host", 0) != 0) return message;
  return "without --unshare-net the sandbox shares the host's network, which the helper "
         "refused (a policy rule with host_network = true allows it): " +
         message + ". Add --unshare-net, or set " + gpubox::bwrap::kNoHostNetworkVariable +
         "=1 to run such command lines without a network";
}

}  // namespace

int main(int argc, char** argv) {
  const pid_t parent = ::getppid();
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args)
    if (a == "--level-prefix") levelPrefix = true;
  gpubox::bwrap::Invocation inv;
  try {
    inv =
        gpubox::bwrap::parseCommandLine(args, environ, currentDirectory(), ::getuid(), ::getgid());
  } catch (const gpubox::Error& e) {
    if (std::string(e.what()) == "No command specified") {
      std::fputs(gpubox::bwrap::usage(argv[0]).c_str(), stderr);
      return 1;
    }
    return die(e.what());
  }
  if (inv.help) {
    std::fputs(gpubox::bwrap::usage(argv[0]).c_str(), stdout);
    return 0;
  }
  if (inv.version) {
    std::printf(
        "bubblewrap 0.11.0 (gpubox-bwrap %s: bubblewrap's command line, gpubox's sandbox)\n",
        GPUBOX_VERSION);
    return 0;
  }
  if (inv.dieWithParent) dieWithParent(parent);
  try {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) kj::UnixEventPort::captureSignal(sig);
    gpubox::client::Connection conn(gpubox::client::defaultSocketPath());
    gpubox::client::RunRequest request;
    request.spec = inv.spec;
    request.command = inv.command;
    request.forwardSignals = true;
    if (inv.infoFd || inv.jsonStatusFd || inv.blockFd)
      request.beforeExec = [&](const gpubox::client::SandboxStarted& s) { announce(inv, s); };
    gpubox::client::RunResult result = conn.run(request);
    gpubox::bwrap::Outcome outcome = gpubox::bwrap::outcomeOf(result, inv.command);
    if (!outcome.message.empty()) die(outcome.message);
    if (inv.jsonStatusFd && outcome.commandRan)
      gpubox::bwrap::writeText(*inv.jsonStatusFd, gpubox::bwrap::statusExitJson(outcome.exitCode));
    return outcome.exitCode;
  } catch (const gpubox::Error& e) {
    return die(explainRefusal(inv, e.what()));
  }
}
