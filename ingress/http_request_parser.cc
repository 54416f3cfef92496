#include "ingress/http_request_parser.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ingress/json_body.h"

namespace hookfan::ingress {
namespace {

constexpr absl::string_view kCrlf = "\r\n";
constexpr size_t kMaxChunkLine = 4096;

// A sender's bytes as they may appear in an error message (PrintableForError).
std::string Printable(absl::string_view text) {
  return PrintableForError(std::string_view(text.data(), text.size()));
}

// RFC 9110 5.6.2: tchar.
bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

bool IsToken(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

// A field value may hold visible characters, SP, HTAB and obs-text, never
// CR, LF or NUL (RFC 9110 5.5).
bool IsFieldValue(absl::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes a path; false on a broken escape or an encoded NUL.
bool DecodePath(absl::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    const int hi = i + 1 < in.size() ? HexValue(in[i + 1]) : -1;
    const int lo = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// True if the comma-separated header value `list` names `token`.
bool ListHas(absl::string_view list, absl::string_view token) {
  for (absl::string_view item : absl::StrSplit(list, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(item), token)) return true;
  }
  return false;
}

}  // namespace

std::optional<std::string_view> HttpRequest::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (absl::EqualsIgnoreCase(n, absl::string_view(name.data(), name.size()))) return v;
  }
  return std::nullopt;
}

HttpRequestParser::Result HttpRequestParser::Fail(int status, std::string message) {
  state_ = State::kError;
  error_status_ = status;
  error_message_ = std::move(message);
  return Result::kError;
}

HttpRequest HttpRequestParser::TakeRequest() {
  HttpRequest out = std::move(request_);
  request_ = HttpRequest();
  state_ = State::kHead;
  remaining_ = 0;
  trailer_bytes_ = 0;
  return out;
}

HttpRequestParser::Result HttpRequestParser::Parse(absl::string_view data, size_t* used) {
  *used = 0;
  while (true) {
    absl::string_view rest = data.substr(*used);
    switch (state_) {
      case State::kHead: {
        // Empty lines before a request line are skipped (RFC 9112 2.2).
        while (absl::StartsWith(rest, kCrlf)) {
          *used += 2;
          rest.remove_prefix(2);
          head_scanned_ = 0;
        }
        // Bytes already searched are not searched again: a head sent a
        // byte at a time costs linear time, not quadratic.
        const size_t end = rest.find("\r\n\r\n", head_scanned_ > 3 ? head_scanned_ - 3 : 0);
        if (end == rest.npos) {
          head_scanned_ = rest.size();
          if (rest.size() > limits_.max_head_bytes) {
            return Fail(431, absl::StrCat("request head is larger than the limit of ",
                                          limits_.max_head_bytes, " bytes"));
          }
          return Result::kIncomplete;
        }
        if (end + 4 > limits_.max_head_bytes) {
          return Fail(431, absl::StrCat("request head is larger than the limit of ",
                                        limits_.max_head_bytes, " bytes"));
        }
        *used += end + 4;
        head_scanned_ = 0;
        if (Result r = ParseHead(rest.substr(0, end)); r == Result::kError) return r;
        if (Result r = ParseFraming(); r == Result::kError) return r;
        break;
      }
      case State::kBody: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, rest.size()));
        request_.body.append(rest.data(), n);
        *used += n;
        remaining_ -= n;
        if (remaining_ > 0) return Result::kIncomplete;
        state_ = State::kDone;
        break;
      }
      case State::kChunkSize: {
        const size_t eol = rest.find(kCrlf);
        if (eol == rest.npos) {
          if (rest.size() > kMaxChunkLine) return Fail(400, "chunk size line is too long");
          return Result::kIncomplete;
        }
        absl::string_view line = rest.substr(0, eol);
        line = line.substr(0, line.find(';'));  // chunk extensions are ignored
        line = absl::StripTrailingAsciiWhitespace(line);
        if (line.empty() || line.size() > 15) return Fail(400, "bad chunk size");
        uint64_t size = 0;
        for (char c : line) {
          const int v = HexValue(c);
          if (v < 0) return Fail(400, "bad chunk size");
          size = size * 16 + static_cast<uint64_t>(v);
        }
        *used += eol + 2;
        if (size > limits_.max_body_bytes - request_.body.size()) {
          return Fail(413, absl::StrCat("body is larger than the limit of ",
                                        limits_.max_body_bytes, " bytes"));
        }
        remaining_ = size;
        state_ = size == 0 ? State::kTrailers : State::kChunkData;
        break;
      }
      case State::kChunkData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, rest.size()));
        request_.body.append(rest.data(), n);
        *used += n;
        remaining_ -= n;
        if (remaining_ > 0) return Result::kIncomplete;
        state_ = State::kChunkEnd;
        break;
      }
      case State::kChunkEnd: {
        // A wrong first byte fails at once, not after a second one arrives.
        if (!absl::StartsWith(kCrlf, rest.substr(0, 2))) {
          return Fail(400, "chunk data does not end in CRLF");
        }
        if (rest.size() < 2) return Result::kIncomplete;
        *used += 2;
        state_ = State::kChunkSize;
        break;
      }
      case State::kTrailers: {
        const size_t eol = rest.find(kCrlf);
        if (eol == rest.npos) {
          if (trailer_bytes_ + rest.size() > limits_.max_head_bytes) {
            return Fail(431, "trailer fields are too large");
          }
          return Result::kIncomplete;
        }
        *used += eol + 2;
        trailer_bytes_ += eol + 2;
        if (trailer_bytes_ > limits_.max_head_bytes) {
          return Fail(431, "trailer fields are too large");
        }
        if (eol == 0) state_ = State::kDone;  // trailer fields are read and ignored
        break;
      }
      case State::kDone:
        return Result::kComplete;
      case State::kError:
        return Result::kError;
    }
  }
}

HttpRequestParser::Result HttpRequestParser::ParseHead(absl::string_view head) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, kCrlf);
  if (lines[0].find_first_of("\r\n") != absl::string_view::npos) {
    return Fail(400, "request line does not end in CRLF");
  }
  // Request line: method SP request-target SP HTTP-version.
  std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ');
  if (parts.size() != 3 || !IsToken(parts[0]) || parts[1].empty()) {
    return Fail(400, "request line is not METHOD TARGET HTTP/1.1");
  }
  if (parts[2] == "HTTP/1.1") {
    request_.minor_version = 1;
  } else if (parts[2] == "HTTP/1.0") {
    request_.minor_version = 0;
  } else if (absl::StartsWith(parts[2], "HTTP/")) {
    return Fail(505, absl::StrCat("HTTP version ", Printable(parts[2].substr(5)),
                                  " is not supported; use HTTP/1.1"));
  } else {
    return Fail(400, "request line is not METHOD TARGET HTTP/1.1");
  }
  request_.method = std::string(parts[0]);
  request_.target = std::string(parts[1]);
  if (request_.target[0] != '/' || !IsFieldValue(request_.target) ||
      request_.target.find_first_of(" \t") != std::string::npos) {
    return Fail(400, "request target must be a path starting with /");
  }
  absl::string_view path = request_.target;
  path = path.substr(0, path.find('?'));
  if (!DecodePath(path, &request_.path)) return Fail(400, "request path has a bad % escape");

  if (lines.size() - 1 > limits_.max_headers) {
    return Fail(431, absl::StrCat("more than ", limits_.max_headers, " header fields"));
  }
  request_.headers.reserve(lines.size() - 1);
  for (size_t i = 1; i < lines.size(); ++i) {
    absl::string_view line = lines[i];
    if (line.empty() || line[0] == ' ' || line[0] == '\t') {
      return Fail(400, "folded header lines are not accepted");
    }
    if (line.find_first_of("\r\n") != line.npos) {
      return Fail(400, "header line does not end in CRLF");
    }
    const size_t colon = line.find(':');
    if (colon == line.npos || !IsToken(line.substr(0, colon))) {
      return Fail(400, "bad header field name");
    }
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (!IsFieldValue(value)) return Fail(400, "header value has a control character");
    request_.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return Result::kIncomplete;
}

HttpRequestParser::Result HttpRequestParser::ParseFraming() {
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool transfer_encoding = false;
  bool close = request_.minor_version == 0;
  for (const auto& [name, value] : request_.headers) {
    if (absl::EqualsIgnoreCase(name, "Content-Length")) {
      // A list of equal values is one value (RFC 9110 8.6); any difference
      // is a request smuggling attempt or a broken sender.
      for (absl::string_view item : absl::StrSplit(value, ',')) {
        item = absl::StripAsciiWhitespace(item);
        uint64_t n = 0;
        if (item.empty() || item.size() > 18 ||
            !std::all_of(item.begin(), item.end(), absl::ascii_isdigit) ||
            !absl::SimpleAtoi(item, &n)) {
          return Fail(400, "Content-Length is not a number");
        }
        if (content_length.has_value() && *content_length != n) {
          return Fail(400, "Content-Length headers disagree");
        }
        content_length = n;
      }
    } else if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
      if (transfer_encoding || !absl::EqualsIgnoreCase(value, "chunked")) {
        return Fail(501, absl::StrCat("Transfer-Encoding \"", Printable(value),
                                      "\" is not supported; send chunked or Content-Length"));
      }
      transfer_encoding = chunked = true;
    } else if (absl::EqualsIgnoreCase(name, "Connection")) {
      if (ListHas(value, "close")) close = true;
      if (request_.minor_version == 0 && ListHas(value, "keep-alive")) close = false;
    } else if (absl::EqualsIgnoreCase(name, "Expect")) {
      if (absl::EqualsIgnoreCase(value, "100-continue")) request_.expect_continue = true;
    }
  }
  request_.keep_alive = !close;
  if (transfer_encoding && content_length.has_value()) {
    return Fail(400, "Content-Length and Transfer-Encoding together are not accepted");
  }
  if (transfer_encoding && request_.minor_version == 0) {
    return Fail(400, "Transfer-Encoding is not allowed in HTTP/1.0");
  }
  if (chunked) {
    state_ = State::kChunkSize;
    return Result::kIncomplete;
  }
  const uint64_t length = content_length.value_or(0);
  if (length > limits_.max_body_bytes) {
    return Fail(413, absl::StrCat("body is larger than the limit of ", limits_.max_body_bytes,
                                  " bytes"));
  }
  request_.body.reserve(static_cast<size_t>(length));
  remaining_ = length;
  state_ = length == 0 ? State::kDone : State::kBody;
  if (length == 0) request_.expect_continue = false;
  return Result::kIncomplete;
}

const char* HttpReason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

}  // namespace hookfan::ingress
