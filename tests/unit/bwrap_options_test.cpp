// gpubox-bwrap's translation of bubblewrap's command line into one request,
// without a helper: what each option becomes, and what is refused.
#include "bwrap_options.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "bwrap_outcome.hpp"
#include "bwrap_status.hpp"
#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox::bwrap {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr unsigned kUid = 1000;
constexpr unsigned kGid = 1000;

class Environ {
 public:
  explicit Environ(std::vector<std::string> entries) : entries_(std::move(entries)) {
    for (std::string& e : entries_) ptrs_.push_back(e.data());
    ptrs_.push_back(nullptr);
  }
  char** get() { return ptrs_.data(); }

 private:
  std::vector<std::string> entries_;
  std::vector<char*> ptrs_;
};

Invocation parse(const std::vector<std::string>& args,
                 std::vector<std::string> env = {"HOME=/home/me", "PATH=/usr/bin"},
                 const std::string& cwd = "/home/me/src", unsigned uid = kUid) {
  Environ e(std::move(env));
  return parseCommandLine(args, e.get(), cwd, uid, kGid);
}

std::string refusal(const std::vector<std::string>& args,
                    std::vector<std::string> env = {"HOME=/home/me"}, unsigned uid = kUid) {
  try {
    parse(args, std::move(env), "/home/me/src", uid);
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

// A pipe whose read end holds DATA (closed for writing), at a known fd.
class PipeWith {
 public:
  explicit PipeWith(const std::string& data) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
    read_.reset(fds[0]);
    UniqueFd w(fds[1]);
    if (::write(w.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size()))
      std::abort();
  }
  std::string fd() const { return std::to_string(read_.get()); }

 private:
  UniqueFd read_;
};

TEST(BwrapOptions, MountOptionsBecomeTheEmptyRootsPlanInOrder) {
  Invocation inv =
      parse({"--ro-bind",  "/usr",     "/usr",        "--symlink", "usr/lib",  "/lib",
             "--proc",     "proc",     "--dev",       "/dev/",     "--tmpfs",  "//tmp",
             "--bind-try", "build",    "/work/./out", "--dir",     "/var/tmp", "--remount-ro",
             "/usr",       "--mqueue", "/dev/mqueue", "--",        "make",     "-j2"});
  EXPECT_FALSE(inv.spec.useDefaultPlan) << "bwrap mounts nothing that is not asked for";
  std::vector<std::string> steps;
  for (const MountOp& op : inv.spec.mounts) steps.push_back(describeMount(op));
  EXPECT_THAT(steps,
              ElementsAre("--ro-bind /usr /usr", "--symlink usr/lib /lib", "--proc /proc",
                          "--dev /dev", "--tmpfs /tmp", "--bind-try /home/me/src/build /work/out",
                          "--dir /var/tmp", "--remount-ro /usr", "--mqueue /dev/mqueue"));
  EXPECT_THAT(inv.command.argv, ElementsAre("make", "-j2"));
}

TEST(BwrapOptions, TryFormsLeaveAMissingSourceToTheHelper) {
  Invocation inv = parse({"--ro-bind-try", "/no/such/dir", "/a", "--bind-try", "/tmp", "/b",
                          "--dev-bind-try", "/dev/null", "/c", "true"});
  ASSERT_EQ(inv.spec.mounts.size(), 3u);
  EXPECT_EQ(inv.spec.mounts[0].kind, MountKind::RoBind);
  EXPECT_TRUE(inv.spec.mounts[0].ifSourceExists);
  EXPECT_EQ(inv.spec.mounts[1].kind, MountKind::Bind);
  EXPECT_EQ(inv.spec.mounts[2].kind, MountKind::DevBind);
  EXPECT_EQ(refusal({"--bind", "/no/such/dir", "/a", "true"}),
            "Can't find source path /no/such/dir: No such file or directory");
}

TEST(BwrapOptions, PermsAndSizeModifyOnlyTheNextStepAndOnlyOnce) {
  Invocation inv =
      parse({"--perms", "01777", "--size",  "1048576", "--tmpfs", "/t",  "--size", "0x1000",
             "--perms", "0700",  "--tmpfs", "/u",      "--perms", "0",   "--dir",  "/d",
             "--dir",   "/e",    "--chmod", "1755",    "/e",      "true"});
  ASSERT_EQ(inv.spec.mounts.size(), 5u);
  EXPECT_EQ(inv.spec.mounts[0].mode, 01777u);
  EXPECT_EQ(inv.spec.mounts[0].sizeBytes, 1048576u);
  EXPECT_EQ(inv.spec.mounts[1].mode, 0700u);
  EXPECT_EQ(inv.spec.mounts[1].sizeBytes, 4096u);
  EXPECT_EQ(inv.spec.mounts[2].mode, 0u) << "--perms 0 is a mode";
  EXPECT_FALSE(inv.spec.mounts[3].mode.has_value()) << "the next step's default";
  EXPECT_EQ(inv.spec.mounts[4].kind, MountKind::Chmod);
  EXPECT_EQ(inv.spec.mounts[4].mode, 01755u);

  EXPECT_EQ(refusal({"--perms", "0640", "--perms", "0640", "--tmpfs", "/a", "true"}),
            "--perms given twice for the same action");
  EXPECT_EQ(refusal({"--size", "1", "--size", "1", "--tmpfs", "/a", "true"}),
            "--size given twice for the same action");
  EXPECT_EQ(refusal({"--perms", "0640", "--bind", "/", "/", "true"}),
            "--perms must be followed by an option that creates a file");
  EXPECT_EQ(refusal({"--size", "4096", "--dir", "/a", "true"}),
            "--size must be followed by --tmpfs");
  EXPECT_EQ(refusal({"--perms", "8", "--dir", "/a", "true"}),
            "--perms takes an octal argument <= 07777");
  EXPECT_EQ(refusal({"--chmod", "17777", "/a", "true"}),
            "--chmod takes an octal argument <= 07777");
  // bwrap's own list of bad sizes (tests/test-run.sh).
  for (const char* bad : {"0", "123bogus", "", "-12345678", " -12345678", "18446744073709551616"})
    EXPECT_EQ(refusal({"--size", bad, "--tmpfs", "/a", "true"}),
              "--size takes a non-zero number of bytes")
        << "--size '" << bad << "'";
  EXPECT_THAT(refusal({"--size", "9223372036854775809", "--tmpfs", "/a", "true"}),
              HasSubstr("--size (for tmpfs) is limited to"));
}

TEST(BwrapOptions, DataOptionsCarryWhatTheirFdReads) {
  PipeWith file("passwd line\n"), data("config"), ro(std::string("bin\0ary", 7));
  Invocation inv = parse({"--file", file.fd(), "/etc/passwd", "--perms", "0640", "--bind-data",
                          data.fd(), "/etc/conf", "--ro-bind-data", ro.fd(), "/etc/bin", "true"});
  ASSERT_EQ(inv.spec.mounts.size(), 3u);
  EXPECT_EQ(inv.spec.mounts[0].kind, MountKind::File);
  EXPECT_EQ(inv.spec.mounts[0].source, "passwd line\n");
  EXPECT_EQ(inv.spec.mounts[0].mode, 0666u) << "bwrap's --file default";
  EXPECT_EQ(inv.spec.mounts[1].kind, MountKind::BindData);
  EXPECT_EQ(inv.spec.mounts[1].mode, 0640u);
  EXPECT_EQ(inv.spec.mounts[2].kind, MountKind::RoBindData);
  EXPECT_EQ(inv.spec.mounts[2].source, std::string("bin\0ary", 7));
  EXPECT_EQ(inv.spec.mounts[2].mode, 0600u) << "bwrap's --ro-bind-data default";
  EXPECT_THAT(refusal({"--file", "notanfd", "/x", "true"}), HasSubstr("Invalid fd: notanfd"));
}

TEST(BwrapOptions, ArgsFromAnFdAreTakenInPlace) {
  const char raw[] = "--dir\0/tmp/a\0--setenv\0K\0v w";  // the last word without its NUL
  PipeWith words(std::string(raw, sizeof(raw) - 1));
  Invocation inv = parse({"--tmpfs", "/tmp", "--args", words.fd(), "--dir", "/tmp/b", "env"});
  std::vector<std::string> dirs;
  for (const MountOp& op : inv.spec.mounts) dirs.push_back(describeMount(op));
  EXPECT_THAT(dirs, ElementsAre("--tmpfs /tmp", "--dir /tmp/a", "--dir /tmp/b"));
  EXPECT_THAT(inv.command.env, ::testing::Contains("K=v w"));
  EXPECT_THAT(inv.command.argv, ElementsAre("env"));
}

TEST(BwrapOptions, NetworkIsTheHostsUnlessUnsharedAndThePolicyDecides) {
  Invocation shared = parse({"--ro-bind", "/", "/", "true"});
  EXPECT_EQ(shared.spec.network, Network::Host);
  EXPECT_TRUE(shared.sharesHostNetwork);
  EXPECT_EQ(parse({"--unshare-net", "true"}).spec.network, Network::None);
  EXPECT_EQ(parse({"--unshare-all", "true"}).spec.network, Network::None);
  EXPECT_EQ(parse({"--unshare-all", "--share-net", "true"}).spec.network, Network::Host);
  Invocation optedOut = parse({"true"}, {std::string(kNoHostNetworkVariable) + "=1"});
  EXPECT_EQ(optedOut.spec.network, Network::None);
  EXPECT_FALSE(optedOut.sharesHostNetwork);
  EXPECT_THAT(optedOut.command.env, ::testing::IsEmpty()) << "the front's settings stay outside";
}

TEST(BwrapOptions, GpusFromTheOptionOrTheEnvironmentWhichStaysOutside) {
  Invocation fromEnv = parse({"true"}, {"GPUBOX_GPU=0,1", "HOME=/home/me"});
  EXPECT_THAT(fromEnv.spec.gpus, ElementsAre("0,1"));
  EXPECT_THAT(fromEnv.command.env, ElementsAre("HOME=/home/me"));
  Invocation fromOption =
      parse({"--gpu", "count:1", "--gpu", "GPU-abc", "true"}, {"GPUBOX_GPU=all"});
  EXPECT_THAT(fromOption.spec.gpus, ElementsAre("count:1", "GPU-abc"));
  EXPECT_THAT(parse({"true"}, {}).spec.gpus, ::testing::IsEmpty());
}

TEST(BwrapOptions, EnvironmentEditsAndBwrapsWorkingDirectoryRule) {
  Invocation inv = parse({"--setenv", "FOO", "bar", "--unsetenv", "PATH", "true"},
                         {"FOO=wrong", "PATH=/bin", "HOME=/home/me"});
  EXPECT_THAT(inv.command.env, ElementsAre("HOME=/home/me", "FOO=bar"));
  EXPECT_TRUE(inv.command.cwd.empty());
  EXPECT_THAT(inv.command.cwdFallbacks, ElementsAre("/home/me/src", "/home/me"));
  EXPECT_TRUE(inv.command.setPwd);
  Invocation cleared = parse({"--clearenv", "--chdir", "/work", "true"}, {"HOME=/home/me"});
  EXPECT_THAT(cleared.command.env, ::testing::IsEmpty());
  EXPECT_EQ(cleared.command.cwd, "/work");
  EXPECT_THAT(cleared.command.cwdFallbacks, ::testing::IsEmpty());
  EXPECT_EQ(parse({"--argv0", "shown", "true"}).command.argv0, "shown");
  EXPECT_TRUE(parse({"--unshare-pid", "--as-pid-1", "true"}).spec.asPid1);
  EXPECT_FALSE(parse({"--unshare-pid", "true"}).spec.asPid1);
}

TEST(BwrapOptions, WhatCannotBeHonouredIsRefusedNeverDropped) {
  EXPECT_EQ(refusal({"--as-pid-1", "true"}), "Specifying --as-pid-1 requires --unshare-pid");
  EXPECT_THAT(refusal({"--cap-add", "CAP_NET_ADMIN", "true"}, {}, 0),
              HasSubstr("without any capability"));
  EXPECT_THAT(refusal({"--userns", "3", "true"}), HasSubstr("--userns is not supported"));
  EXPECT_THAT(refusal({"--pidns", "3", "true"}), HasSubstr("--pidns is not supported"));
  EXPECT_THAT(refusal({"--overlay-src", "/a", "true"}), HasSubstr("overlay"));
  EXPECT_EQ(refusal({"--hostname", "box", "true"}), "Specifying --hostname requires --unshare-uts");
  EXPECT_EQ(refusal({"--uid", "0", "true"}, {}, 0),
            "Specifying --uid requires --unshare-user or --userns");
  EXPECT_EQ(refusal({"--gid", "0", "true"}, {}, 0),
            "Specifying --gid requires --unshare-user or --userns");
  EXPECT_EQ(refusal({"--disable-userns", "true"}, {}, 0),
            "--disable-userns requires --unshare-user");
  EXPECT_EQ(refusal({"--no-such-option", "true"}), "Unknown option --no-such-option");
  EXPECT_EQ(refusal({"--bind", "/", "/"}), "No command specified");
  EXPECT_THAT(refusal({"--tmpfs", "/a/../b", "true"}), HasSubstr("'..'"));
}

// --uid / --gid: any id, mapped onto the caller's own by the sandbox's user
// namespace (the helper refuses other ids when it makes none).
TEST(BwrapOptions, SandboxIdsAreSent) {
  Invocation both = parse({"--unshare-user", "--uid", "1234", "--gid", "5678", "id"});
  EXPECT_EQ(both.spec.sandboxUid, 1234u);
  EXPECT_EQ(both.spec.sandboxGid, 5678u);
  EXPECT_NO_THROW(validateSpec(both.spec));

  // Not root: bwrap makes a user namespace anyway, so no --unshare-user.
  Invocation root = parse({"--uid", "0", "id"});
  EXPECT_EQ(root.spec.sandboxUid, 0u);
  EXPECT_EQ(root.spec.sandboxGid, std::nullopt);

  Invocation highest = parse({"--unshare-user", "--gid", "4294967294", "id"}, {}, "/", 0);
  EXPECT_EQ(highest.spec.sandboxUid, std::nullopt);
  EXPECT_EQ(highest.spec.sandboxGid, 4294967294u);

  Invocation none = parse({"--unshare-user", "id"});
  EXPECT_EQ(none.spec.sandboxUid, std::nullopt);
  EXPECT_EQ(none.spec.sandboxGid, std::nullopt);
}

TEST(BwrapOptions, MalformedSandboxIdsAreRefused) {
  EXPECT_EQ(refusal({"--unshare-user", "--uid", "4294967295", "id"}), "Invalid uid: 4294967295");
  EXPECT_EQ(refusal({"--unshare-user", "--uid", "-1", "id"}), "Invalid uid: -1");
  EXPECT_EQ(refusal({"--unshare-user", "--gid", "x", "id"}), "Invalid gid: x");
  EXPECT_EQ(refusal({"--unshare-user", "--gid", "", "id"}), "Invalid gid: ");
}

TEST(BwrapOptions, WhatGpuboxAlwaysDoesIsAccepted) {
  Invocation inv = parse({"--unshare-user",
                          "--uid",
                          "1000",
                          "--gid",
                          "1000",
                          "--unshare-ipc",
                          "--unshare-pid",
                          "--unshare-uts",
                          "--hostname",
                          "box",
                          "--unshare-cgroup-try",
                          "--disable-userns",
                          "--assert-userns-disabled",
                          "--new-session",
                          "--die-with-parent",
                          "--cap-drop",
                          "ALL",
                          "--cap-drop",
                          "CAP_KILL",
                          "true"});
  EXPECT_EQ(inv.spec.hostname, "box");
  EXPECT_TRUE(inv.dieWithParent);
  EXPECT_THAT(refusal({"--cap-drop", "KILL!", "true"}), HasSubstr("unknown capability"));
}

TEST(BwrapOptions, DoubleDashEndsTheOptionsEvenBeforeAnOptionLikeCommand) {
  Invocation inv = parse({"--", "--dev-bind", "/dev", "/dev", "sh"});
  EXPECT_TRUE(inv.spec.mounts.empty());
  EXPECT_THAT(inv.command.argv, ElementsAre("--dev-bind", "/dev", "/dev", "sh"));
}

TEST(BwrapOptions, SeccompProgramsAreReadAndChecked) {
  PipeWith one(std::string(16, '\0')), two(std::string(8, '\0')), bad(std::string(12, '\0'));
  Invocation inv = parse({"--add-seccomp-fd", one.fd(), "--add-seccomp-fd", two.fd(), "true"});
  ASSERT_EQ(inv.spec.seccompPrograms.size(), 2u);
  EXPECT_EQ(inv.spec.seccompPrograms[0].size(), 16u);
  EXPECT_EQ(refusal({"--seccomp", bad.fd(), "true"}),
            "Invalid seccomp data, must be multiple of 8");
  PipeWith three(std::string(8, '\0')), four(std::string(8, '\0'));
  EXPECT_EQ(refusal({"--seccomp", three.fd(), "--add-seccomp-fd", four.fd(), "true"}),
            "--add-seccomp-fd cannot be combined with --seccomp");
}

TEST(BwrapOptions, BindFdNamesTheDirectoryAndPinsItsInode) {
  char tmpl[] = "/tmp/bwrap-options-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  UniqueFd dir(::open(tmpl, O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dir.valid());
  struct stat st;
  ASSERT_EQ(::fstat(dir.get(), &st), 0);
  Invocation inv = parse({"--ro-bind-fd", std::to_string(dir.get()), "/src", "true"});
  ::rmdir(tmpl);
  ASSERT_EQ(inv.spec.mounts.size(), 1u);
  EXPECT_EQ(inv.spec.mounts[0].kind, MountKind::RoBind);
  EXPECT_EQ(inv.spec.mounts[0].source, tmpl);
  ASSERT_TRUE(inv.spec.mounts[0].sourceInode.has_value());
  EXPECT_EQ(inv.spec.mounts[0].sourceInode->ino, st.st_ino);
  EXPECT_EQ(inv.spec.mounts[0].sourceInode->dev, st.st_dev);
  EXPECT_THAT(refusal({"--bind-fd", std::to_string(dir.get()), "/src", "true"}),
              HasSubstr("deleted"));
  EXPECT_THAT(refusal({"--bind-fd", "999", "/src", "true"}), HasSubstr("file descriptor 999"));
}

TEST(BwrapOptions, HelpAndVersionStopAtOnce) {
  EXPECT_TRUE(parse({"--help"}).help);
  EXPECT_TRUE(parse({"--version", "--no-such-option"}).version);
  EXPECT_THAT(usage("/usr/bin/gpubox-bwrap"),
              HasSubstr("usage: /usr/bin/gpubox-bwrap [OPTIONS...] [--] COMMAND [ARGS...]"));
}

// docs/gpubox-bwrap.1 names every option --help lists (the man page writes
// "-" as "\-").
TEST(BwrapOptions, TheManPageNamesEveryOptionOfTheHelp) {
  const char* man = std::getenv("GPUBOX_BWRAP_MAN");
  ASSERT_NE(man, nullptr) << "GPUBOX_BWRAP_MAN is not set (run the tests with meson test)";
  std::ifstream in(man);
  ASSERT_TRUE(in) << man;
  const std::string page((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string help = usage("gpubox-bwrap");
  size_t named = 0;
  for (size_t at = help.find("--"); at != std::string::npos; at = help.find("--", at + 2)) {
    size_t end = at + 2;
    while (end < help.size() &&
           (std::isalnum(static_cast<unsigned char>(help[end])) || help[end] == '-'))
      ++end;
    const std::string option = help.substr(at, end - at);
    if (option == "--") continue;
    std::string escaped;
    for (char c : option) escaped += c == '-' ? std::string("\\-") : std::string(1, c);
    EXPECT_NE(page.find(escaped), std::string::npos)
        << option << " is in --help but not in " << man;
    ++named;
  }
  EXPECT_GT(named, 50u);
}

TEST(BwrapStatus, InfoAndJsonStatusHaveBwrapsFieldsAndLayout) {
  client::SandboxStarted s{
      4242, {{"user", 1}, {"mnt", 10}, {"pid", 11}, {"ipc", 12}, {"uts", 13}, {"net", 14}}};
  EXPECT_EQ(
      infoJson(s),
      "{\n    \"child-pid\": 4242,\n    \"ipc-namespace\": 12,\n    \"mnt-namespace\": 10,"
      "\n    \"net-namespace\": 14,\n    \"pid-namespace\": 11,\n    \"uts-namespace\": 13\n}\n");
  EXPECT_EQ(statusStartJson(s),
            "{ \"child-pid\": 4242, \"ipc-namespace\": 12, \"mnt-namespace\": 10, "
            "\"net-namespace\": 14, \"pid-namespace\": 11, \"uts-namespace\": 13 }\n");
  EXPECT_EQ(statusExitJson(42), "{ \"exit-code\": 42 }\n");
}

TEST(BwrapOutcome, ExitStatusAsBwrapGivesIt) {
  Command cmd{.argv = {"nosuchcmd"}};
  client::RunResult exited;
  exited.exitCode = 3;
  EXPECT_EQ(outcomeOf(exited, cmd).exitCode, 3);
  EXPECT_TRUE(outcomeOf(exited, cmd).commandRan);
  client::RunResult killed;
  killed.signal = 15;
  EXPECT_EQ(outcomeOf(killed, cmd).exitCode, 143);
  client::RunResult notFound;
  notFound.notStarted = client::StartFailure{ENOENT, client::StartFailure::Stage::Exec, ""};
  Outcome o = outcomeOf(notFound, cmd);
  EXPECT_EQ(o.exitCode, 1);
  EXPECT_FALSE(o.commandRan) << "no exit-code record for a command that never ran";
  EXPECT_EQ(o.message, "execvp nosuchcmd: No such file or directory");
}

}  // namespace
}  // namespace gpubox::bwrap
