// Parsing and formatting of the words people write limits in.
#include "limits.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include "error.hpp"

namespace gpubox {
namespace {

TEST(Limits, SizesAreBinary) {
  EXPECT_EQ(parseSize("--memory", "512M"), 512ull << 20);
  EXPECT_EQ(parseSize("--memory", "4G"), 4ull << 30);
  EXPECT_EQ(parseSize("--memory", "1.5G"), 3ull << 29);
  EXPECT_EQ(parseSize("--memory", "64k"), 64ull << 10);
  EXPECT_EQ(parseSize("--memory", "2GiB"), 2ull << 30);
  EXPECT_EQ(parseSize("--memory", "65536"), 65536u);
  for (const char* bad : {"", "M", "12X", "1.2.3G", "-1G", "0", "G4"}) {
    try {
      parseSize("--memory", bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--memory"), std::string::npos) << e.what();
    }
  }
}

TEST(Limits, Durations) {
  EXPECT_EQ(parseDurationMs("--timeout", "30s"), 30000u);
  EXPECT_EQ(parseDurationMs("--timeout", "500ms"), 500u);
  EXPECT_EQ(parseDurationMs("--timeout", "5m"), 300000u);
  EXPECT_EQ(parseDurationMs("--timeout", "2h"), 7200000u);
  EXPECT_EQ(parseDurationMs("--timeout", "1h30m"), 5400000u);
  EXPECT_EQ(parseDurationMs("--timeout", "90"), 90000u);
  EXPECT_EQ(parseDurationMs("--timeout", "1.5s"), 1500u);
  for (const char* bad : {"", "soon", "10x", "1h30", "0s", "s", "-3s"})
    EXPECT_THROW(parseDurationMs("--timeout", bad), Error) << bad;
}

TEST(Limits, CpusAndCounts) {
  EXPECT_EQ(parseCpus("--cpus", "0.5"), 500u);
  EXPECT_EQ(parseCpus("--cpus", "2"), 2000u);
  EXPECT_EQ(parseCpus("--cpus", "0.01"), 10u);
  for (const char* bad : {"0", "0.001", "half", "1c", ""})
    EXPECT_THROW(parseCpus("--cpus", bad), Error);
  // Halves round up; the ceiling is 4096 CPUs once rounded; a number too
  // large for any integer is out of range, not undefined.
  EXPECT_EQ(parseCpus("--cpus", "0.0125"), 13u);
  EXPECT_EQ(parseCpus("--cpus", "4096"), 4096000u);
  EXPECT_EQ(parseCpus("--cpus", "4096.0004"), 4096000u);
  EXPECT_THROW(parseCpus("--cpus", "4096.0005"), Error);
  EXPECT_THROW(parseCpus("--cpus", std::string(400, '9')), Error);
  EXPECT_EQ(parseDurationMs("--timeout", "1.5ms"), 2u);
  EXPECT_EQ(parseDurationMs("--timeout", "0.25s"), 250u);
  EXPECT_THROW(parseDurationMs("--timeout", std::string(400, '9') + "s"), Error);
  EXPECT_EQ(parseCount("--pids", "64"), 64u);
  for (const char* bad : {"0", "-1", "6.4", "", "9999999999"})
    EXPECT_THROW(parseCount("--pids", bad), Error) << bad;
}

TEST(Limits, Rlimits) {
  RlimitSetting r = parseRlimit("nofile=1024:4096");
  EXPECT_EQ(r.name, "NOFILE");
  EXPECT_EQ(r.soft, 1024u);
  EXPECT_EQ(r.hard, 4096u);
  r = parseRlimit("CORE=unlimited");
  EXPECT_EQ(r.soft, kRlimUnlimited);
  EXPECT_EQ(r.hard, kRlimUnlimited);
  r = parseRlimit("RLIMIT_STACK=8388608");
  EXPECT_EQ(r.name, "STACK");
  EXPECT_EQ(r.hard, 8388608u);
  EXPECT_EQ(rlimitResource("NOFILE"), RLIMIT_NOFILE);
  EXPECT_EQ(rlimitResource("nope"), -1);
  try {
    parseRlimit("FILES=10");
    ADD_FAILURE() << "unknown name accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("FILES"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NOFILE"), std::string::npos) << "lists the known names";
  }
  for (const char* bad : {"NOFILE", "=1", "NOFILE=", "NOFILE=x", "NOFILE=10:5", "NOFILE=1:2:3"})
    EXPECT_THROW(parseRlimit(bad), Error) << bad;
}

TEST(Limits, FormatsAsPeopleWriteThem) {
  EXPECT_EQ(formatSize(64ull << 20), "64M");
  EXPECT_EQ(formatSize(3ull << 29), "1.5G");
  EXPECT_EQ(formatSize(100), "100");
  EXPECT_EQ(formatDurationMs(1500), "1.5s");
  EXPECT_EQ(formatDurationMs(90000), "1m30s");
  EXPECT_EQ(formatDurationMs(7200000), "2h");
  EXPECT_EQ(formatDurationMs(250), "250ms");
  EXPECT_EQ(formatCpus(500), "0.5");
  EXPECT_EQ(formatCpus(2000), "2");
  EXPECT_EQ(formatCpus(1255), "1.255");
}

TEST(Limits, ValidationOfWireValues) {
  Limits ok;
  ok.memoryBytes = 1 << 20;
  ok.rlimits = {{"NOFILE", 10, 20}};
  EXPECT_NO_THROW(validateLimits(ok));
  Limits badName;
  badName.rlimits = {{"BOGUS", 1, 1}};
  EXPECT_THROW(validateLimits(badName), Error);
  Limits inverted;
  inverted.rlimits = {{"NOFILE", 20, 10}};
  EXPECT_THROW(validateLimits(inverted), Error);
  Limits tinyMemory;
  tinyMemory.memoryBytes = 100;
  EXPECT_THROW(validateLimits(tinyMemory), Error);
  EXPECT_EQ(defaultRlimits(), (std::vector<RlimitSetting>{{"CORE", 0, 0}}));
}

}  // namespace
}  // namespace gpubox
