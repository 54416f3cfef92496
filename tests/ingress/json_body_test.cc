#include "ingress/json_body.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::ingress {
namespace {

using ::testing::HasSubstr;

constexpr char kTooDeep[] = "JSON nested too deeply (more than 32 levels)";

// This process's private writable memory (VmData), in bytes: what
// RLIMIT_DATA bounds.
long long DataBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmData:", 0) != 0) continue;
    long long kb = 0;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits += c;
    }
    if (absl::SimpleAtoi(digits, &kb)) return kb * 1024;
  }
  return -1;
}

// Allows this process at most `bytes` more private memory: an allocation
// past that fails (std::bad_alloc).
void LimitDataGrowth(long long bytes) {
  const long long now = DataBytes();
  if (now < 0) std::_Exit(3);
  const rlimit limit = {.rlim_cur = static_cast<rlim_t>(now + bytes),
                        .rlim_max = static_cast<rlim_t>(now + bytes)};
  if (setrlimit(RLIMIT_DATA, &limit) != 0) std::_Exit(4);
}

TEST(JsonBodyTest, AMillionOpenBracketsAreRefusedAsTooDeep) {
  // The depth limit is the first problem in the text: it is the one named.
  EXPECT_EQ(ParseJsonBody(std::string(1'000'000, '[')).status(),
            absl::InvalidArgumentError(kTooDeep));
  EXPECT_EQ(ParseJsonBody(std::string(1'000'000, '{')).status(),
            absl::InvalidArgumentError(
                "body is not valid JSON: at byte 2: syntax error while "
                "parsing object key - unexpected '{'; expected string "
                "literal"));
  EXPECT_EQ(ParseJsonBody(absl::StrCat(std::string(33, '['), "x")).status(),
            absl::InvalidArgumentError(kTooDeep));
}

TEST(JsonBodyTest, TooDeepBodyIsRefusedWithoutBuildingItsTree) {
  // A million levels would take some 70 MB as a tree; refused before any
  // is built, they fit in 16 MB with room to spare. Run in a child process
  // whose memory is capped: a tree built anyway ends it with bad_alloc.
  const std::string body = std::string(1'000'000, '[');
  const std::string closed = absl::StrCat(std::string(500'000, '['),
                                          std::string(500'000, ']'));
  EXPECT_EXIT(
      {
        LimitDataGrowth(16 << 20);
        const bool refused =
            ParseJsonBody(body).status() ==
                absl::InvalidArgumentError(kTooDeep) &&
            ParseJsonBody(closed).status() ==
                absl::InvalidArgumentError(kTooDeep);
        std::fprintf(stderr, "%s\n", refused ? "both too deep" : "other");
        std::_Exit(refused ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "both too deep");
}

TEST(JsonBodyTest, SyntaxErrorBeforeTheDepthLimitIsNamed) {
  // Invalid text that never nests past the limit is refused as invalid,
  // however deep it would go later.
  EXPECT_EQ(ParseJsonBody(absl::StrCat("[[1 2", std::string(100, '['))).status(),
            absl::InvalidArgumentError(
                "body is not valid JSON: at byte 5: syntax error while "
                "parsing array - unexpected number literal; expected ']'"));
  const absl::Status unterminated =
      ParseJsonBody(std::string(kMaxJsonDepth, '[')).status();
  EXPECT_EQ(unterminated.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unterminated.message(),
              HasSubstr("body is not valid JSON: at byte 33:"));
}

TEST(JsonBodyTest, NestingAtTheLimitParses) {
  // 32 levels is the deepest body taken, and it comes back whole.
  const std::string body = absl::StrCat(std::string(kMaxJsonDepth, '['),
                                        std::string(kMaxJsonDepth, ']'));
  const absl::StatusOr<nlohmann::json> parsed = ParseJsonBody(body);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->dump(), body);
  EXPECT_EQ(ParseJsonBody(absl::StrCat("[", body, "]")).status(),
            absl::InvalidArgumentError(kTooDeep));
}

// Epoch milliseconds keep their milliseconds, before 1970 too (nanos stay
// in [0, 1e9)), and are refused outside years 0001 to 9999.
TEST(JsonBodyTest, TimestampFromUnixMillis) {
  std::optional<google::protobuf::Timestamp> t = TimestampFromUnixMillis(1764584542512);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->seconds(), 1764584542);
  EXPECT_EQ(t->nanos(), 512'000'000);
  t = TimestampFromUnixMillis(-1500);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->seconds(), -2);
  EXPECT_EQ(t->nanos(), 500'000'000);
  EXPECT_TRUE(TimestampFromUnixMillis(253402300799999).has_value());
  EXPECT_FALSE(TimestampFromUnixMillis(253402300800000).has_value());
  EXPECT_FALSE(TimestampFromUnixMillis(INT64_MAX).has_value());
  EXPECT_FALSE(TimestampFromUnixMillis(INT64_MIN).has_value());
}

}  // namespace
}  // namespace hookfan::ingress
