#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace hookfan::ingress {

// One HTTP/1.x request, as HttpRequestParser reads it.
struct HttpRequest {
  std::string method;  // as sent, e.g. "POST"
  std::string target;  // the request-target, e.g. "/webhooks/x/tok?a=1"
  std::string path;    // the target before '?', percent-decoded
  int minor_version = 1;  // HTTP/1.<minor_version>
  // Every header field in the order sent, names as sent (any case).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // after chunked decoding; Content-Encoding is left as sent
  bool keep_alive = true;       // the sender keeps the connection open after the answer
  bool expect_continue = false;  // "Expect: 100-continue"

  // The first value of the header `name` (case-insensitive), if any.
  std::optional<std::string_view> Header(std::string_view name) const;
};

// HttpRequestParser reads HTTP/1.0 and HTTP/1.1 requests (RFC 9112) from
// bytes as they arrive, one request at a time, and refuses whatever a
// sender could use to take memory or smuggle a second request:
//
//   431  a head (request line + headers) over Limits::max_head_bytes, or
//        more than Limits::max_headers header fields
//   413  a Content-Length, or a chunked body, over Limits::max_body_bytes
//        (a Content-Length is refused before any of the body is read)
//   400  anything that does not parse: a bad request line, a header name
//        that is not a token or has white space before its colon, folded
//        or NUL/CR/LF-carrying header values, Content-Length values that
//        disagree or are not digits, Content-Length together with
//        Transfer-Encoding, a bad chunk
//   501  a Transfer-Encoding other than "chunked"
//   505  an HTTP version other than 1.0 and 1.1
//
// After an error the connection must be closed: its framing is lost.
// Lines end with CRLF; a bare LF is an error.
//
// Not thread-safe; one per connection.
class HttpRequestParser {
 public:
  struct Limits {
    size_t max_head_bytes = 64 * 1024;
    size_t max_headers = 100;
    size_t max_body_bytes = 1 << 20;
  };

  enum class Result {
    kIncomplete,  // more bytes are needed
    kComplete,    // request() holds a whole request
    kError,       // error_status() and error_message() say why
  };

  explicit HttpRequestParser(Limits limits) : limits_(limits) {}

  // Consumes a prefix of `data`, setting `*used` to its length, and says
  // how far the current request has come. Bytes after a complete request
  // (pipelined requests) are not consumed. After kComplete, take the
  // request with TakeRequest before parsing the next one.
  Result Parse(absl::string_view data, size_t* used);

  // True once the current request's head has been read (then request()
  // has its method, target and headers, and the body may follow).
  bool head_complete() const { return state_ != State::kHead; }
  // True when the current request expects a body that has not all come.
  bool body_pending() const {
    return state_ != State::kHead && state_ != State::kDone && state_ != State::kError;
  }
  const HttpRequest& request() const { return request_; }

  // The request after kComplete; resets the parser for the next one.
  HttpRequest TakeRequest();

  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }

 private:
  enum class State { kHead, kBody, kChunkSize, kChunkData, kChunkEnd, kTrailers, kDone, kError };

  Result Fail(int status, std::string message);
  // Parses the head in `head` (without the final CRLF CRLF).
  Result ParseHead(absl::string_view head);
  Result ParseFraming();

  const Limits limits_;
  State state_ = State::kHead;
  HttpRequest request_;
  size_t head_scanned_ = 0;  // bytes of the head searched for its end so far
  uint64_t remaining_ = 0;   // body or chunk bytes still to come
  size_t trailer_bytes_ = 0;
  int error_status_ = 0;
  std::string error_message_;
};

// The reason phrase of an HTTP status ("Not Found"); "" for one not known.
const char* HttpReason(int status);

}  // namespace hookfan::ingress
