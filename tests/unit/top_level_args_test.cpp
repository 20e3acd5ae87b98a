// `gpubox [--socket PATH] COMMAND ...` (client/top_level_args.hpp).
#include "top_level_args.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "error.hpp"

using gpubox::Error;
using gpubox::cli::parseTopLevel;
using gpubox::cli::TopLevel;
using Command = TopLevel::Command;
using ::testing::HasSubstr;
using Args = std::vector<std::string>;

namespace {

std::string refusal(const Args& args) {
  try {
    parseTopLevel(args);
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST(TopLevelArgs, RunExecAndSessionTakeEverythingAfterTheirName) {
  TopLevel t = parseTopLevel({"run", "--socket", "x", "--json", "--", "ls"});
  EXPECT_EQ(t.command, Command::Run);
  EXPECT_EQ(t.socket, "");
  EXPECT_EQ(t.rest, (Args{"--socket", "x", "--json", "--", "ls"}));
  t = parseTopLevel({"--socket", "/s", "exec", "name", "--", "true"});
  EXPECT_EQ(t.command, Command::Exec);
  EXPECT_EQ(t.socket, "/s");
  EXPECT_EQ(t.rest, (Args{"name", "--", "true"}));
  t = parseTopLevel({"--socket=/t", "session"});
  EXPECT_EQ(t.command, Command::Session);
  EXPECT_EQ(t.socket, "/t");
  EXPECT_TRUE(t.rest.empty());
}

TEST(TopLevelArgs, ListingsTakeOnlyJsonAndHelp) {
  TopLevel t = parseTopLevel({"info"});
  EXPECT_EQ(t.command, Command::Info);
  EXPECT_FALSE(t.json);
  t = parseTopLevel({"--socket", "/s", "ps", "--json"});
  EXPECT_EQ(t.command, Command::Ps);
  EXPECT_TRUE(t.json);
  EXPECT_EQ(t.socket, "/s");
  t = parseTopLevel({"gpus", "--help"});
  EXPECT_EQ(t.command, Command::Gpus);
  EXPECT_TRUE(t.help);
  EXPECT_THAT(refusal({"info", "--verbose"}), HasSubstr("info: unexpected --verbose"));
  // --socket goes before the command, as CLI11 had it.
  EXPECT_THAT(refusal({"ps", "--socket", "/s"}), HasSubstr("ps: unexpected --socket"));
}

TEST(TopLevelArgs, VersionAndHelpBeforeAnyCommand) {
  EXPECT_EQ(parseTopLevel({"--version"}).command, Command::Version);
  EXPECT_EQ(parseTopLevel({"--socket", "/s", "--version", "run"}).command, Command::Version);
  EXPECT_EQ(parseTopLevel({"-h"}).command, Command::Help);
  EXPECT_EQ(parseTopLevel({"--help", "info"}).command, Command::Help);
  // After the command they are the command's: run's parser sees this one.
  EXPECT_EQ(parseTopLevel({"run", "--help"}).rest, (Args{"--help"}));
}

TEST(TopLevelArgs, WhatIsWrongIsNamed) {
  EXPECT_EQ(refusal({}), "no command given");
  EXPECT_EQ(refusal({"--socket", "/s"}), "no command given");
  EXPECT_EQ(refusal({"--socket"}), "--socket needs a path");
  EXPECT_EQ(refusal({"bogus"}), "unknown command bogus");
  EXPECT_EQ(refusal({"--bogus", "run"}), "unknown option --bogus");
}

TEST(TopLevelArgs, UsageNamesEveryCommand) {
  const std::string usage = gpubox::cli::topLevelUsage();
  for (const char* c : {"run", "session", "exec", "ps", "info", "gpus", "--socket", "--version"})
    EXPECT_THAT(usage, HasSubstr(c));
  EXPECT_THAT(gpubox::cli::listingUsage(Command::Gpus),
              HasSubstr("usage: gpubox [--socket PATH] gpus [--json]"));
}
