#include "escape_check.hpp"

#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <stdexcept>

namespace gpubox::escape {

namespace {

std::string joined(std::initializer_list<const char*> names) {
  std::string out;
  for (const char* n : names) out += (out.empty() ? "" : "|") + std::string(n);
  return out;
}

}  // namespace

Expect refused(std::initializer_list<const char*> errnos) {
  std::vector<std::string> allowed(errnos.begin(), errnos.end());
  return {joined(errnos), [allowed](const std::string& got) {
            for (const auto& a : allowed)
              if (got == a) return true;
            return false;
          }};
}

Expect exactly(const std::string& result) {
  return {result, [result](const std::string& got) { return got == result; }};
}

Expect matching(const std::string& text, std::function<bool(const std::string&)> pred) {
  return {text, std::move(pred)};
}

std::string userNamespaceMode() {
  const char* m = std::getenv("GPUBOX_TEST_USER_NAMESPACE");
  return m && *m ? m : "default";
}

std::string callerLabel(uid_t uid) {
  return uid == 0 ? "root" : "uid" + std::to_string(uid);
}

void check(uid_t caller, const std::string& attempt, const Expect& expect, const std::string& got) {
  std::string line = "ESCAPE-CHECK [" + userNamespaceMode() + " " + callerLabel(caller) + "] " +
                     attempt + " | expected: " + expect.text + " | got: " + got;
  std::cout << line << std::endl;
  if (!expect.accepts(got)) ADD_FAILURE() << "ESCAPE: " << line;
}

std::string installProbe(const std::string& dir) {
  const char* probe = std::getenv("GPUBOX_ESCAPE_PROBE");
  if (!probe || !*probe) throw std::runtime_error("GPUBOX_ESCAPE_PROBE is not set (meson sets it)");
  std::string path = dir + "/escape_probe";
  itest::writeFile(path, itest::readFile(probe), 0755);
  return path;
}

std::map<std::string, std::string> parseProbeOutput(const std::string& out) {
  std::map<std::string, std::string> results;
  for (const auto& line : itest::lines(out)) {
    auto arrow = line.find(" => ");
    if (arrow != std::string::npos) results[line.substr(0, arrow)] = line.substr(arrow + 4);
  }
  return results;
}

std::string endedAs(const itest::RunResult& r) {
  if (r.timedOut) return "timed out";
  if (r.termSignal) return "signal " + std::to_string(r.termSignal);
  return "exit " + std::to_string(r.exitCode);
}

itest::RunResult runProbeRows(const itest::HelperProcess& helper, uid_t caller,
                              const std::string& probe, const std::vector<std::string>& plan,
                              const std::vector<ProbeRow>& rows, itest::RunOptions opts) {
  std::vector<std::string> args{"run"};
  args.insert(args.end(), plan.begin(), plan.end());
  args.insert(args.end(), {"--", probe});
  for (const auto& row : rows) args.push_back(row.attempt);
  opts.asUid = caller;
  itest::RunResult r = helper.cli(args, opts);
  auto results = parseProbeOutput(r.out);
  for (const auto& row : rows) {
    auto it = results.find(row.attempt);
    std::string got = it != results.end()
                          ? it->second
                          : "no result (" + endedAs(r) + "; stderr: " + r.err.substr(0, 200) + ")";
    check(caller, row.name + " [" + row.attempt + "]", row.expect, got);
  }
  return r;
}

HostSleeper::HostSleeper(uid_t uid) {
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork host sleeper");
  if (pid_ == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(uid, uid, uid) != 0 ||
        ::setresuid(uid, uid, uid) != 0)
      ::_exit(127);
    ::execl("/bin/sleep", "sleep", "3600", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait until it runs as the target uid (the exec has happened).
  itest::pollUntil(
      [&] {
        std::string status;
        try {
          status = itest::readFile("/proc/" + std::to_string(pid_) + "/status");
        } catch (const std::exception&) {
          return false;
        }
        return itest::statusField(status, "Name") == "sleep";
      },
      std::chrono::seconds(5));
}

HostSleeper::~HostSleeper() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

bool HostSleeper::alive() const {
  return itest::pidRunning(pid_);
}

}  // namespace gpubox::escape
