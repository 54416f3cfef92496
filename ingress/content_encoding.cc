#include "ingress/content_encoding.h"

#include <zlib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace hookfan::ingress {
namespace {

absl::Status Inflate(absl::string_view encoding, int window_bits, absl::string_view body,
                     size_t max_bytes, std::string* out) {
  z_stream z{};
  if (inflateInit2(&z, window_bits) != Z_OK) {
    return absl::InternalError("cannot set up zlib");
  }
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  z.avail_in = static_cast<uInt>(body.size());
  out->clear();
  char block[16 * 1024];
  absl::Status status;
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(block);
    z.avail_out = sizeof(block);
    const int rc = inflate(&z, Z_NO_FLUSH);
    const size_t produced = sizeof(block) - z.avail_out;
    if (out->size() + produced > max_bytes) {
      status = absl::OutOfRangeError(absl::StrCat("body is larger than the limit of ", max_bytes,
                                                  " bytes once ", encoding, "-decoded"));
      break;
    }
    out->append(block, produced);
    if (rc == Z_STREAM_END) {
      if (z.avail_in != 0) {
        status = absl::InvalidArgumentError(
            absl::StrCat("body has bytes after its ", encoding, " stream"));
      }
      break;
    }
    if (rc != Z_OK && !(rc == Z_BUF_ERROR && produced > 0)) {
      status = absl::InvalidArgumentError(absl::StrCat(
          "body is not valid ", encoding, rc == Z_BUF_ERROR ? " (cut short)" : ""));
      break;
    }
  }
  inflateEnd(&z);
  if (!status.ok()) out->clear();
  return status;
}

}  // namespace

absl::Status DecodeContent(absl::string_view encoding, absl::string_view body, size_t max_bytes,
                           std::string* out) {
  const std::string coding = absl::AsciiStrToLower(absl::StripAsciiWhitespace(encoding));
  if (coding.empty() || coding == "identity") {
    out->assign(body.data(), body.size());
    return absl::OkStatus();
  }
  // 15: the largest window; +16 reads gzip only, +32 either zlib or gzip.
  if (coding == "gzip" || coding == "x-gzip") return Inflate(coding, 15 + 16, body, max_bytes, out);
  if (coding == "deflate") return Inflate(coding, 15 + 32, body, max_bytes, out);
  return absl::UnimplementedError(absl::StrCat(
      "Content-Encoding \"", encoding, "\" is not supported; send gzip, deflate or identity"));
}

}  // namespace hookfan::ingress
