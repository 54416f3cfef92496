#include "ingress/http_request_parser.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::ingress {
namespace {

using ::testing::HasSubstr;
using Result = HttpRequestParser::Result;

constexpr HttpRequestParser::Limits kLimits{
    .max_head_bytes = 1024, .max_headers = 8, .max_body_bytes = 100};

class HttpRequestParserTest : public ::testing::Test {
 protected:
  // Feeds `wire` in pieces of `step` bytes, as a connection would, keeping
  // what the parser leaves unconsumed.
  Result Feed(const std::string& wire, size_t step = 1 << 20) {
    Result r = Result::kIncomplete;
    for (size_t i = 0; i < wire.size(); i += step) {
      buffer_.append(wire.substr(i, step));
      size_t used = 0;
      r = parser_.Parse(buffer_, &used);
      buffer_.erase(0, used);
      if (r != Result::kIncomplete) return r;
    }
    return r;
  }

  HttpRequestParser parser_{kLimits};
  std::string buffer_;
};

TEST_F(HttpRequestParserTest, ContentLengthRequestByteByByte) {
  // A request sent one byte at a time parses as one sent whole.
  const std::string wire =
      "POST /webhooks/a%2Fb/tok?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
      "Content-Length: 2\r\n\r\n{}";
  ASSERT_EQ(Feed(wire, 1), Result::kComplete);
  HttpRequest r = parser_.TakeRequest();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/webhooks/a%2Fb/tok?x=1");
  EXPECT_EQ(r.path, "/webhooks/a/b/tok");
  EXPECT_EQ(r.body, "{}");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header("X-Missing"), std::nullopt);
  EXPECT_TRUE(buffer_.empty());
}

TEST_F(HttpRequestParserTest, PipelinedRequestsAreReadOneAtATime) {
  // Two requests in one read: the second is left for after the first.
  const std::string wire =
      "POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nxGET /healthz HTTP/1.1\r\n\r\n";
  ASSERT_EQ(Feed(wire), Result::kComplete);
  EXPECT_EQ(parser_.TakeRequest().body, "x");
  EXPECT_EQ(buffer_, "GET /healthz HTTP/1.1\r\n\r\n");
  size_t used = 0;
  ASSERT_EQ(parser_.Parse(buffer_, &used), Result::kComplete);
  EXPECT_EQ(used, buffer_.size());
  EXPECT_EQ(parser_.TakeRequest().path, "/healthz");
}

TEST_F(HttpRequestParserTest, ChunkedBodyWithExtensionsAndTrailers) {
  const std::string wire =
      "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
  ASSERT_EQ(Feed(wire, 3), Result::kComplete);
  EXPECT_EQ(parser_.TakeRequest().body, "abc0123456789");
}

TEST_F(HttpRequestParserTest, ConnectionCloseAndHttp10) {
  ASSERT_EQ(Feed("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), Result::kComplete);
  EXPECT_FALSE(parser_.TakeRequest().keep_alive);
  ASSERT_EQ(Feed("GET / HTTP/1.0\r\n\r\n"), Result::kComplete);
  EXPECT_FALSE(parser_.TakeRequest().keep_alive);
  ASSERT_EQ(Feed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), Result::kComplete);
  EXPECT_TRUE(parser_.TakeRequest().keep_alive);
}

TEST_F(HttpRequestParserTest, ExpectContinueIsSeenOnceTheHeadIsRead) {
  ASSERT_EQ(Feed("POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"),
            Result::kIncomplete);
  EXPECT_TRUE(parser_.head_complete());
  EXPECT_TRUE(parser_.body_pending());
  EXPECT_TRUE(parser_.request().expect_continue);
  ASSERT_EQ(Feed("hello"), Result::kComplete);
}

TEST_F(HttpRequestParserTest, LeadingEmptyLinesAreSkipped) {
  ASSERT_EQ(Feed("\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"), Result::kComplete);
  EXPECT_EQ(parser_.TakeRequest().path, "/healthz");
}

struct BadRequest {
  std::string name;
  std::string wire;
  int status;
  std::string message;
};

class HttpRequestParserErrorTest : public HttpRequestParserTest,
                                   public ::testing::WithParamInterface<BadRequest> {};

TEST_P(HttpRequestParserErrorTest, IsRefusedWithItsStatus) {
  // Every framing problem is an error with a status, however the bytes arrive.
  for (size_t step : {size_t{1}, size_t{7}, size_t{1} << 20}) {
    parser_.~HttpRequestParser();
    new (&parser_) HttpRequestParser(kLimits);
    buffer_.clear();
    ASSERT_EQ(Feed(GetParam().wire, step), Result::kError) << "step " << step;
    EXPECT_EQ(parser_.error_status(), GetParam().status);
    EXPECT_THAT(parser_.error_message(), HasSubstr(GetParam().message));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Framing, HttpRequestParserErrorTest,
    ::testing::Values(
        BadRequest{"HeadOverLimit", "GET / HTTP/1.1\r\nX: " + std::string(2000, 'a'), 431,
                   "request head is larger than the limit of 1024 bytes"},
        BadRequest{"TooManyHeaders",
                   "GET / HTTP/1.1\r\n" + [] {
                     std::string h;
                     for (int i = 0; i < 9; ++i) h += "X-" + std::to_string(i) + ": v\r\n";
                     return h;
                   }() + "\r\n",
                   431, "more than 8 header fields"},
        BadRequest{"ContentLengthOverLimit", "POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n",
                   413, "body is larger than the limit of 100 bytes"},
        BadRequest{"ChunkedOverLimit",
                   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n" +
                       std::string(80, 'a') + "\r\n50\r\n",
                   413, "body is larger than the limit of 100 bytes"},
        BadRequest{"TwoDifferentContentLengths",
                   "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400,
                   "Content-Length headers disagree"},
        BadRequest{"ContentLengthListDisagrees",
                   "POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\nab", 400,
                   "Content-Length headers disagree"},
        BadRequest{"ContentLengthAndTransferEncoding",
                   "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
                   "Content-Length and Transfer-Encoding together"},
        BadRequest{"NegativeContentLength", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400,
                   "Content-Length is not a number"},
        BadRequest{"OtherTransferEncoding",
                   "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
                   "is not supported"},
        BadRequest{"Http2Preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505,
                   "HTTP version 2.0 is not supported"},
        // What the sender wrote is echoed printable (found by the fuzzer).
        BadRequest{"UnprintableVersion", "GET / HTTP/1\xff.0\r\n\r\n", 505,
                   "HTTP version 1\\xff.0 is not supported"},
        BadRequest{"UnprintableTransferEncoding",
                   "POST / HTTP/1.1\r\nTransfer-Encoding: \xe9t\xe9\r\n\r\n", 501,
                   "Transfer-Encoding \"\\xe9t\\xe9\" is not supported"},
        BadRequest{"NotHttp", "hello there\r\n\r\n", 400, "request line"},
        BadRequest{"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400,
                   "bad header field name"},
        BadRequest{"FoldedHeader", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400,
                   "folded header lines"},
        BadRequest{"BareLf", "GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", 400, "does not end in CRLF"},
        BadRequest{"NulInValue", std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 27), 400,
                   "control character"},
        BadRequest{"AbsoluteTarget", "GET http://x/ HTTP/1.1\r\n\r\n", 400,
                   "request target must be a path"},
        BadRequest{"BadChunkSize",
                   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
                   "bad chunk size"},
        BadRequest{"ChunkWithoutCrlf",
                   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab", 400,
                   "chunk data does not end in CRLF"},
        BadRequest{"EncodedNulInPath", "GET /a%00 HTTP/1.1\r\n\r\n", 400, "bad % escape"}),
    [](const ::testing::TestParamInfo<BadRequest>& info) { return info.param.name; });

}  // namespace
}  // namespace hookfan::ingress
