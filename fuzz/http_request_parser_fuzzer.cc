// Fuzzes HttpRequestParser (ingress/http_request_parser.h), the first code
// that reads a sender's bytes. The input is a one-byte seed followed by the
// wire bytes of one connection. The bytes are parsed twice, the way the
// HTTP edge does (accumulate, Parse, drop what it used, repeat): once
// arriving all at once and once in pieces of 1 to 16 bytes chosen by the
// seed. Checks the contract:
// - how the bytes arrive changes nothing: the same requests (method,
//   target, path, version, headers, body, keep-alive, 100-continue), then
//   the same error or none;
// - Parse never claims more bytes than it was given;
// - a request has a method and a target, at most
//   Limits::max_headers headers and a body of at most max_body_bytes;
// - an error is 400, 413, 431, 501 or 505 with a non-empty printable-ASCII
//   message that HttpReason knows.
// Small limits make every bound reachable with short inputs.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "ingress/http_request_parser.h"

namespace {

using ::hookfan::fuzz::Check;
using ::hookfan::fuzz::IsPrintableAscii;
using ::hookfan::ingress::HttpReason;
using ::hookfan::ingress::HttpRequest;
using ::hookfan::ingress::HttpRequestParser;

constexpr HttpRequestParser::Limits kLimits{
    .max_head_bytes = 512, .max_headers = 8, .max_body_bytes = 256};

// What a parse produced: each request written out, then the error if any.
std::string Describe(const HttpRequest& r) {
  std::string out = absl::StrCat("[", r.method, " ", r.target, " -> ", r.path, " 1.",
                                 r.minor_version, " keep-alive=", r.keep_alive,
                                 " continue=", r.expect_continue, "\n");
  for (const auto& [name, value] : r.headers) absl::StrAppend(&out, name, ": ", value, "\n");
  absl::StrAppend(&out, "body ", r.body.size(), ": ", r.body, "]\n");
  return out;
}

void CheckRequest(const HttpRequest& r) {
  Check(!r.method.empty() && !r.target.empty(), "a request without method or target",
        Describe(r));
  Check(r.headers.size() <= kLimits.max_headers, "more headers than the limit", Describe(r));
  Check(r.body.size() <= kLimits.max_body_bytes, "body over the limit", Describe(r));
  Check(r.minor_version == 0 || r.minor_version == 1, "version other than 1.0/1.1",
        Describe(r));
}

// Parses `wire` arriving in pieces of the given sizes (the last piece takes
// the rest) and describes the outcome.
std::string ParseInPieces(absl::string_view wire, const std::vector<size_t>& pieces) {
  HttpRequestParser parser(kLimits);
  std::string outcome;
  std::string buffer;
  size_t offset = 0;
  for (size_t i = 0; offset < wire.size(); ++i) {
    const size_t n = i < pieces.size() ? std::min(pieces[i], wire.size() - offset)
                                       : wire.size() - offset;
    buffer.append(wire.data() + offset, n);
    offset += n;
    for (;;) {
      size_t used = 0;
      const HttpRequestParser::Result r = parser.Parse(buffer, &used);
      Check(used <= buffer.size(), "Parse used more than it was given",
            absl::StrCat(used, " > ", buffer.size()));
      buffer.erase(0, used);
      if (r == HttpRequestParser::Result::kIncomplete) break;
      if (r == HttpRequestParser::Result::kError) {
        const int status = parser.error_status();
        Check(status == 400 || status == 413 || status == 431 || status == 501 || status == 505,
              "unexpected error status", absl::StrCat(status));
        Check(*HttpReason(status) != '\0', "an error status without a reason phrase",
              absl::StrCat(status));
        Check(!parser.error_message().empty() && IsPrintableAscii(parser.error_message()),
              "error message empty or not printable", parser.error_message());
        return absl::StrCat(outcome, "error ", status, ": ", parser.error_message());
      }
      const HttpRequest request = parser.TakeRequest();
      CheckRequest(request);
      outcome += Describe(request);
    }
  }
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint32_t seed = data[0] + 1;
  const absl::string_view wire(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<size_t> pieces;
  for (size_t covered = 0; covered < wire.size();) {
    seed = seed * 1103515245 + 12345;  // a fixed LCG: the seed alone decides
    pieces.push_back(1 + (seed >> 16) % 16);
    covered += pieces.back();
  }
  const std::string whole = ParseInPieces(wire, {});
  const std::string split = ParseInPieces(wire, pieces);
  Check(whole == split, "the outcome depends on how the bytes arrive",
        absl::StrCat("at once:\n", whole, "\nin pieces:\n", split));
  return 0;
}
