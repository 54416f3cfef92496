#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace hookfan::ingress {

// Cidr is an IPv4 or IPv6 address range such as "10.0.0.0/8" or "fd00::/8",
// used to restrict which peers may call a webhook source. Immutable value
// type; thread-compatible.
//
// An IPv4 address and its IPv4-mapped IPv6 form (::ffff:a.b.c.d) are the
// same address: 10.0.0.0/8 contains ::ffff:10.1.2.3, and ::ffff:0:0/96
// contains 10.1.2.3 (a dual-stack socket reports IPv4 peers mapped). So
// ::/0 contains every address.
class Cidr {
 public:
  // Parses "a.b.c.d/n" (n in 0..32), an IPv6 address with "/n" (n in
  // 0..128), or a bare address (= /32 or /128). Errors: kInvalidArgument
  // naming `text`, for a malformed address or prefix length, or for an
  // address with bits set beyond the prefix ("10.0.0.1/8": the range meant
  // is ambiguous).
  static absl::StatusOr<Cidr> Parse(std::string_view text);

  // True if the address `ip` (textual IPv4 or IPv6, no brackets, port or
  // zone) lies in the range. False for anything that is not an address.
  bool Contains(std::string_view ip) const;

  // The canonical text: "10.0.0.0/8", "192.168.1.7/32", "fd00::/8".
  std::string ToString() const;

  friend bool operator==(const Cidr&, const Cidr&) = default;

 private:
  using Bytes = std::array<uint8_t, 16>;

  Cidr(bool v4, const Bytes& network, int prefix_bits)
      : v4_(v4), network_(network), prefix_bits_(prefix_bits) {}

  bool v4_;          // written as IPv4: printed as such
  Bytes network_;    // IPv6, IPv4 held mapped (::ffff:a.b.c.d)
  int prefix_bits_;  // of the 128, so IPv4 /8 is 104
};

}  // namespace hookfan::ingress
