#include "env.hpp"

#include <gtest/gtest.h>

#include "error.hpp"

using gpubox::EnvBuilder;

TEST(EnvBuilder, AppliesEditsInOrder) {
  EnvBuilder env({"PATH=/bin", "HOME=/root", "TERM=xterm"});
  env.unset("HOME");
  env.set("PATH", "/usr/bin");
  env.set("NEW", "a=b");
  EXPECT_EQ(env.entries(), (std::vector<std::string>{"TERM=xterm", "PATH=/usr/bin", "NEW=a=b"}));
  env.clear();
  env.set("ONLY", "1");
  EXPECT_EQ(env.entries(), (std::vector<std::string>{"ONLY=1"}));
}

TEST(EnvBuilder, UnsetMatchesWholeKeysOnly) {
  EnvBuilder env({"PATHX=1", "PATH=2"});
  env.unset("PATH");
  EXPECT_EQ(env.entries(), (std::vector<std::string>{"PATHX=1"}));
}

TEST(EnvBuilder, RejectsInvalidKeys) {
  EnvBuilder env({});
  EXPECT_THROW(env.set("", "x"), gpubox::Error);
  EXPECT_THROW(env.set("A=B", "x"), gpubox::Error);
  EXPECT_THROW(env.unset(""), gpubox::Error);
}

TEST(EnvBuilder, MergeReplacesExistingKeys) {
  EnvBuilder env({"CUDA_VISIBLE_DEVICES=3", "A=1"});
  env.merge({"CUDA_VISIBLE_DEVICES=0"});
  EXPECT_EQ(env.entries(), (std::vector<std::string>{"A=1", "CUDA_VISIBLE_DEVICES=0"}));
  EXPECT_THROW(env.merge({"broken"}), gpubox::Error);
}

TEST(EnvBuilder, AppendToPathAddsOnceAndOnlyWherePathIsSet) {
  EnvBuilder env({"HOME=/root", "PATH=/usr/bin:/bin"});
  env.appendToPath("/run/gpubox-driver/bin");
  EXPECT_EQ(env.entries(),
            (std::vector<std::string>{"HOME=/root", "PATH=/usr/bin:/bin:/run/gpubox-driver/bin"}));
  env.appendToPath("/run/gpubox-driver/bin");
  EXPECT_EQ(env.entries()[1], "PATH=/usr/bin:/bin:/run/gpubox-driver/bin") << "named already";
  EnvBuilder prefix({"PATH=/run/gpubox-driver/bin2"});
  prefix.appendToPath("/run/gpubox-driver/bin");
  EXPECT_EQ(prefix.entries()[0], "PATH=/run/gpubox-driver/bin2:/run/gpubox-driver/bin");
  EnvBuilder empty({"PATH="});
  empty.appendToPath("/x");
  EXPECT_EQ(empty.entries()[0], "PATH=/x");
  EnvBuilder none({"HOME=/root", "XPATH=/y"});
  none.appendToPath("/x");
  EXPECT_EQ(none.entries(), (std::vector<std::string>{"HOME=/root", "XPATH=/y"}));
}
