// The helper's own implementation of the systemd protocols it speaks
// (systemd_protocol.hpp): the journal's native encoding byte for byte, and
// readiness datagrams and socket-activation checks against sockets of the
// test's own. No root, no systemd.
#include "systemd_protocol.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <string>

#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox::systemd {
namespace {

using namespace std::string_literals;

TEST(JournalEncoding, PlainFieldsAreKeyEqualsValueLines) {
  EXPECT_EQ(encodeJournalMessage({{"MESSAGE", "listening on /run/gpubox.sock"},
                                  {"PRIORITY", "6"},
                                  {"SYSLOG_IDENTIFIER", "gpubox-helper"}}),
            "MESSAGE=listening on /run/gpubox.sock\nPRIORITY=6\nSYSLOG_IDENTIFIER=gpubox-helper\n");
}

TEST(JournalEncoding, EmptyValueAndNoFields) {
  EXPECT_EQ(encodeJournalMessage({{"GPUBOX_GPUS", ""}}), "GPUBOX_GPUS=\n");
  EXPECT_EQ(encodeJournalMessage({}), "");
}

TEST(JournalEncoding, ANewlineSelectsTheBinarySafeForm) {
  // KEY '\n', the length as 64-bit little endian, the bytes, '\n'.
  EXPECT_EQ(encodeJournalMessage({{"MESSAGE", "two\nlines"}, {"PRIORITY", "3"}}),
            "MESSAGE\n\x09\0\0\0\0\0\0\0two\nlines\nPRIORITY=3\n"s);
}

TEST(JournalEncoding, BinaryFormCarriesAnyBytesAndLongLengths) {
  std::string value = "a\0b\n"s + std::string(300, 'x');  // 304 = 0x130
  std::string expected = "GPUBOX_ARGV0\n\x30\x01\0\0\0\0\0\0"s + value + "\n";
  EXPECT_EQ(encodeJournalMessage({{"GPUBOX_ARGV0", value}}), expected);
}

// A datagram socket bound at a fresh path in a temp dir; reads what arrives.
class DatagramSink {
 public:
  explicit DatagramSink(bool abstract) {
    char tmpl[] = "/tmp/gpubox-sdproto-XXXXXX";
    if (!::mkdtemp(tmpl)) throwErrno("mkdtemp");
    dir_ = tmpl;
    name_ = abstract ? "@gpubox-sdproto-" + dir_.substr(dir_.rfind('-') + 1) : dir_ + "/notify";
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    name_.copy(addr.sun_path, name_.size());
    socklen_t len = offsetof(struct sockaddr_un, sun_path) + name_.size();
    if (abstract) addr.sun_path[0] = '\0';
    if (::bind(fd_.get(), reinterpret_cast<struct sockaddr*>(&addr), len) != 0) throwErrno("bind");
  }
  ~DatagramSink() {
    fd_.reset();
    ::unlink((dir_ + "/notify").c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& name() const { return name_; }
  std::string receive() {
    char buf[4096];
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    return n < 0 ? "<nothing: " + errnoMessage("recv", errno) + ">" : std::string(buf, n);
  }

 private:
  std::string dir_, name_;
  UniqueFd fd_;
};

TEST(Notify, QuietlyNothingWithoutNotifySocket) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_EQ(notify("READY=1"), 0);
}

TEST(Notify, SendsToAPathAndLeavesTheVariableSet) {
  DatagramSink sink(false);
  ::setenv("NOTIFY_SOCKET", sink.name().c_str(), 1);
  EXPECT_EQ(notify("READY=1"), 0);
  EXPECT_EQ(sink.receive(), "READY=1");
  EXPECT_NE(std::getenv("NOTIFY_SOCKET"), nullptr);
  ::unsetenv("NOTIFY_SOCKET");
}

TEST(Notify, SendsToAnAbstractName) {
  DatagramSink sink(true);
  ::setenv("NOTIFY_SOCKET", sink.name().c_str(), 1);
  EXPECT_EQ(notify("STOPPING=1"), 0);
  EXPECT_EQ(sink.receive(), "STOPPING=1");
  ::unsetenv("NOTIFY_SOCKET");
}

TEST(Notify, ReportsAnUnusableAddress) {
  ::setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
  EXPECT_NE(notify("READY=1"), 0);
  ::setenv("NOTIFY_SOCKET", "/nonexistent/gpubox/notify", 1);
  EXPECT_NE(notify("READY=1"), 0);
  ::unsetenv("NOTIFY_SOCKET");
}

TEST(ListenFds, NoneWithoutVariablesOrForAnotherPid) {
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  EXPECT_EQ(listenFds(), 0);
  ::setenv("LISTEN_PID", std::to_string(::getpid() + 1).c_str(), 1);
  ::setenv("LISTEN_FDS", "1", 1);
  ::setenv("LISTEN_FDNAMES", "gpubox", 1);
  EXPECT_EQ(listenFds(), 0);
  // Unset either way: no child may take them as its own.
  EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);
  EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);
  EXPECT_EQ(std::getenv("LISTEN_FDNAMES"), nullptr);
}

TEST(ListenFds, MalformedVariablesAreAnError) {
  ::setenv("LISTEN_PID", "12x", 1);
  ::setenv("LISTEN_FDS", "1", 1);
  EXPECT_THROW(listenFds(), Error);
  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::setenv("LISTEN_FDS", "-1", 1);
  EXPECT_THROW(listenFds(), Error);
  EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);
}

TEST(ListeningSocketCheck, OnlyAListeningUnixStreamSocket) {
  UniqueFd stream(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_FALSE(isListeningUnixStreamSocket(stream.get())) << "not listening yet";
  // Bound to an address the kernel picks (autobind: an abstract name).
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  ASSERT_EQ(::bind(stream.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(sa_family_t)),
            0);
  ASSERT_EQ(::listen(stream.get(), 1), 0);
  EXPECT_TRUE(isListeningUnixStreamSocket(stream.get()));
  UniqueFd dgram(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_FALSE(isListeningUnixStreamSocket(dgram.get()));
  UniqueFd inet(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (inet && ::listen(inet.get(), 1) == 0) {
    EXPECT_FALSE(isListeningUnixStreamSocket(inet.get()));
  }
  int pipeFds[2];
  ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
  UniqueFd r(pipeFds[0]), w(pipeFds[1]);
  EXPECT_FALSE(isListeningUnixStreamSocket(r.get()));
  EXPECT_FALSE(isListeningUnixStreamSocket(-1));
}

}  // namespace
}  // namespace gpubox::systemd
