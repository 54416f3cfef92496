#pragma once

#include <cstddef>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace hookfan::ingress {

// Undoes the Content-Encoding `encoding` of a request body into `*out`.
// "gzip" (and "x-gzip") and "deflate" (zlib, or gzip) are inflated a block
// at a time, stopping as soon as more than `max_bytes` come out, so a small
// body that inflates to gigabytes costs no more than `max_bytes` of work
// and memory; "identity" and "" copy the body.
//
// Errors: kOutOfRange when the decoded body is over `max_bytes` (413);
// kInvalidArgument when the body is not valid for its encoding (400);
// kUnimplemented for any other encoding (415). Each message says which.
absl::Status DecodeContent(absl::string_view encoding, absl::string_view body, size_t max_bytes,
                           std::string* out);

}  // namespace hookfan::ingress
