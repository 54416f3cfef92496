#include "ingress/cidr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace hookfan::ingress {
namespace {

constexpr int kV4MappedBits = 96;  // ::ffff:0:0/96 holds IPv4

struct Address {
  bool v4;
  std::array<uint8_t, 16> bytes;  // IPv4 mapped into IPv6
};

// Parses a textual IPv4 or IPv6 address; nullopt if it is neither.
std::optional<Address> ParseAddress(std::string_view text) {
  const std::string s(text);  // inet_pton wants a NUL-terminated string
  Address a{};
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    a.v4 = true;
    a.bytes[10] = a.bytes[11] = 0xff;
    std::memcpy(&a.bytes[12], &v4, 4);
    return a;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    a.v4 = false;
    std::memcpy(a.bytes.data(), &v6, 16);
    return a;
  }
  return std::nullopt;
}

// Whether the first `bits` bits of `a` and `b` are equal.
bool SamePrefix(const std::array<uint8_t, 16>& a,
                const std::array<uint8_t, 16>& b, int bits) {
  int i = 0;
  for (; bits >= 8; ++i, bits -= 8) {
    if (a[i] != b[i]) return false;
  }
  if (bits == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (a[i] & mask) == (b[i] & mask);
}

}  // namespace

absl::StatusOr<Cidr> Cidr::Parse(std::string_view text) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid CIDR \"", std::string(text), "\": ", why));
  };
  const size_t slash = text.find('/');
  const std::optional<Address> address = ParseAddress(text.substr(0, slash));
  if (!address) return invalid("not an IPv4 or IPv6 address");
  const int max_bits = address->v4 ? 32 : 128;
  int bits = max_bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 ||
        !std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) {
      return invalid("prefix length is not a number");
    }
    bits = 0;
    for (char c : digits) bits = bits * 10 + (c - '0');
    if (bits > max_bits) {
      return invalid(absl::StrCat("prefix length is over ", max_bits));
    }
  }
  const int prefix_bits = address->v4 ? kV4MappedBits + bits : bits;
  Cidr cidr(address->v4, address->bytes, prefix_bits);
  // Zero the host bits and insist they were zero already.
  for (int bit = prefix_bits; bit < 128; ++bit) {
    cidr.network_[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  }
  if (cidr.network_ != address->bytes) {
    return invalid(absl::StrCat("address has bits set beyond the prefix; ",
                                "did you mean ", cidr.ToString(), "?"));
  }
  return cidr;
}

bool Cidr::Contains(std::string_view ip) const {
  const std::optional<Address> address = ParseAddress(ip);
  return address && SamePrefix(address->bytes, network_, prefix_bits_);
}

std::string Cidr::ToString() const {
  char text[INET6_ADDRSTRLEN];
  if (v4_) {
    inet_ntop(AF_INET, &network_[12], text, sizeof(text));
    return absl::StrCat(text, "/", prefix_bits_ - kV4MappedBits);
  }
  inet_ntop(AF_INET6, network_.data(), text, sizeof(text));
  return absl::StrCat(text, "/", prefix_bits_);
}

}  // namespace hookfan::ingress
