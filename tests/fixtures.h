#pragma once

// Reading the files under tests/fixtures (HOOKFAN_FIXTURES_DIR, defined for
// every test executable by tests/CMakeLists.txt).

#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace hookfan::testing {

// The bytes of tests/fixtures/<path>, e.g. "nanomdm/authenticate.json";
// a test expectation fails (and "" is returned) when it cannot be read.
inline std::string ReadFixtureFile(const std::string& path) {
  std::ifstream in(std::string(HOOKFAN_FIXTURES_DIR) + "/" + path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_TRUE(in.good()) << "cannot read fixture " << path;
  return content.str();
}

}  // namespace hookfan::testing
