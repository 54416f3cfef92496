#include "common/uuid.h"

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "gtest/gtest.h"

namespace hookfan {
namespace {

TEST(UuidV7Test, CanonicalVersion7WithTheClocksMilliseconds) {
  FakeClock clock(absl::FromUnixMillis(0x0189abcdef12));
  UuidV7Generator ids(&clock);
  const std::string id = ids.Next();
  EXPECT_TRUE(IsCanonicalUuid(id)) << id;
  EXPECT_EQ(id.substr(0, 13), "0189abcd-ef12");  // 48 bits of Unix ms
  EXPECT_EQ(id[14], '7');                        // version
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);  // RFC 9562 variant
}

// Within one millisecond, and when the clock steps back, ids still increase.
TEST(UuidV7Test, StrictlyIncreasingEvenWhenTheClockStandsOrStepsBack) {
  FakeClock clock;
  UuidV7Generator ids(&clock);
  std::string last = ids.Next();
  for (int i = 0; i < 10000; ++i) {
    if (i == 5000) clock.Advance(absl::Seconds(-5));
    const std::string next = ids.Next();
    ASSERT_LT(last, next) << i;
    last = next;
  }
}

TEST(UuidV7Test, ThreadsNeverGetTheSameId) {
  UuidV7Generator ids;
  std::vector<std::vector<std::string>> minted(4);
  std::vector<std::thread> threads;
  for (auto& out : minted) {
    threads.emplace_back([&ids, &out] {
      for (int i = 0; i < 2000; ++i) out.push_back(ids.Next());
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& out : minted) all.insert(out.begin(), out.end());
  EXPECT_EQ(all.size(), 8000u);
}

TEST(UuidV7Test, IsCanonicalUuidTakesOnlyTheLowercase36CharacterForm) {
  EXPECT_TRUE(IsCanonicalUuid("01a21a5a-5965-7000-9a6a-c7b991c35543"));
  EXPECT_FALSE(IsCanonicalUuid("01A21A5A-5965-7000-9A6A-C7B991C35543"));
  EXPECT_FALSE(IsCanonicalUuid("01a21a5a59657000-9a6a-c7b991c35543"));
  EXPECT_FALSE(IsCanonicalUuid("01a21a5a-5965-7000-9a6a-c7b991c3554"));
  EXPECT_FALSE(IsCanonicalUuid("01a21a5a-5965-7000-9a6a-c7b991c3554g"));
  EXPECT_FALSE(IsCanonicalUuid(""));
}

TEST(RandomHexTest, TwoCharactersPerByteAndNeverTheSame) {
  const std::string a = RandomHex(16), b = RandomHex(16);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace hookfan
