#include "ingress/content_encoding.h"

#include <zlib.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::ingress {
namespace {

using ::testing::HasSubstr;

// `text` compressed as gzip (window_bits 31) or zlib (15).
std::string Compress(const std::string& text, int window_bits) {
  z_stream z{};
  deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, text.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST(ContentEncodingTest, GzipAndDeflateAreInflated) {
  const std::string body = R"({"action":"emm_device_enrolled"})";
  std::string out;
  ASSERT_TRUE(DecodeContent("gzip", Compress(body, 31), 1000, &out).ok());
  EXPECT_EQ(out, body);
  ASSERT_TRUE(DecodeContent("deflate", Compress(body, 15), 1000, &out).ok());
  EXPECT_EQ(out, body);
  ASSERT_TRUE(DecodeContent(" Identity ", body, 1000, &out).ok());
  EXPECT_EQ(out, body);
}

TEST(ContentEncodingTest, ABombStopsAtTheLimit) {
  // 64 MiB of zeros compress to ~64 KiB; inflating stops just past the 1 MiB limit.
  const std::string bomb = Compress(std::string(64 << 20, '\0'), 31);
  ASSERT_LT(bomb.size(), 100u << 10);
  std::string out;
  absl::Status s = DecodeContent("gzip", bomb, 1 << 20, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(s.message(), HasSubstr("larger than the limit of 1048576 bytes once gzip-decoded"));
  EXPECT_TRUE(out.empty());
}

TEST(ContentEncodingTest, BrokenAndUnknownEncodingsAreErrors) {
  std::string out;
  absl::Status s = DecodeContent("gzip", "not gzip at all", 1000, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("body is not valid gzip"));
  const std::string whole = Compress("hello world hello world", 31);
  s = DecodeContent("gzip", whole.substr(0, whole.size() / 2), 1000, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  s = DecodeContent("br", "x", 1000, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("Content-Encoding \"br\" is not supported"));
}

}  // namespace
}  // namespace hookfan::ingress
