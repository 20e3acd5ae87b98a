// Asserts that parsing a policy text fails with a message containing every
// given fragment (file:line and the reason). Shared by the policy tests.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "error.hpp"
#include "policy.hpp"

namespace gpubox::policy {

inline void expectError(const std::string& text, std::initializer_list<std::string> fragments,
                        const std::string& fileName) {
  try {
    Policy::parse(text, fileName);
    ADD_FAILURE() << "parse succeeded but should have failed:\n" << text;
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const auto& fragment : fragments)
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "message '" << message << "' lacks '" << fragment << "'";
  }
}

}  // namespace gpubox::policy
