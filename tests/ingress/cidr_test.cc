#include "ingress/cidr.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::ingress {
namespace {

// Parses `text`, failing the test on error.
Cidr MustParse(const std::string& text) {
  absl::StatusOr<Cidr> cidr = Cidr::Parse(text);
  EXPECT_TRUE(cidr.ok()) << cidr.status();
  return cidr.ok() ? *cidr : *Cidr::Parse("0.0.0.0/32");
}

TEST(CidrTest, Ipv4RangeContainsItsAddressesOnly) {
  const Cidr cidr = MustParse("10.0.0.0/8");
  EXPECT_TRUE(cidr.Contains("10.0.0.0"));
  EXPECT_TRUE(cidr.Contains("10.255.255.255"));
  EXPECT_FALSE(cidr.Contains("11.0.0.0"));
  EXPECT_FALSE(cidr.Contains("9.255.255.255"));
}

TEST(CidrTest, PrefixNeedNotFallOnAByte) {
  const Cidr cidr = MustParse("192.168.4.0/22");
  EXPECT_TRUE(cidr.Contains("192.168.7.255"));
  EXPECT_FALSE(cidr.Contains("192.168.8.0"));
  EXPECT_FALSE(cidr.Contains("192.168.3.255"));
}

TEST(CidrTest, BareAddressIsOneHost) {
  const Cidr v4 = MustParse("192.168.1.7");
  EXPECT_EQ(v4.ToString(), "192.168.1.7/32");
  EXPECT_TRUE(v4.Contains("192.168.1.7"));
  EXPECT_FALSE(v4.Contains("192.168.1.8"));

  const Cidr v6 = MustParse("::1");
  EXPECT_EQ(v6.ToString(), "::1/128");
  EXPECT_TRUE(v6.Contains("::1"));
  EXPECT_FALSE(v6.Contains("::2"));
}

TEST(CidrTest, Ipv6RangeContainsItsAddressesOnly) {
  const Cidr cidr = MustParse("fd00::/8");
  EXPECT_TRUE(cidr.Contains("fd12:3456::1"));
  EXPECT_TRUE(cidr.Contains("FDFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF"));
  EXPECT_FALSE(cidr.Contains("fe80::1"));
  EXPECT_FALSE(cidr.Contains("10.0.0.1"));
}

TEST(CidrTest, Ipv4MappedAddressIsTheIpv4Address) {
  // Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d.
  EXPECT_TRUE(MustParse("10.0.0.0/8").Contains("::ffff:10.1.2.3"));
  EXPECT_TRUE(MustParse("10.0.0.0/8").Contains("::FFFF:a01:203"));
  EXPECT_FALSE(MustParse("10.0.0.0/8").Contains("::ffff:11.1.2.3"));
  EXPECT_TRUE(MustParse("::ffff:0:0/96").Contains("10.1.2.3"));
  // Only the mapped form: the deprecated IPv4-compatible ::a.b.c.d is not.
  EXPECT_FALSE(MustParse("10.0.0.0/8").Contains("::10.1.2.3"));
}

TEST(CidrTest, ZeroPrefixesSpanTheirFamily) {
  EXPECT_TRUE(MustParse("0.0.0.0/0").Contains("203.0.113.9"));
  EXPECT_FALSE(MustParse("0.0.0.0/0").Contains("2001:db8::1"));
  EXPECT_TRUE(MustParse("::/0").Contains("2001:db8::1"));
  EXPECT_TRUE(MustParse("::/0").Contains("203.0.113.9"));
}

TEST(CidrTest, WhatIsNotAnAddressIsNotContained) {
  const Cidr any = MustParse("::/0");
  for (const char* ip : {"", "10.1.2", "10.1.2.3:80", "[::1]", "fe80::1%eth0",
                         "localhost", " 10.1.2.3", "10.1.2.3/32"}) {
    EXPECT_FALSE(any.Contains(ip)) << ip;
  }
}

TEST(CidrTest, ToStringIsCanonical) {
  EXPECT_EQ(MustParse("10.0.0.0/8").ToString(), "10.0.0.0/8");
  EXPECT_EQ(MustParse("FD00:0:0::/8").ToString(), "fd00::/8");
  EXPECT_EQ(MustParse("::ffff:10.0.0.0/104").ToString(), "::ffff:10.0.0.0/104");
  EXPECT_EQ(MustParse("0.0.0.0/0"), MustParse("0.0.0.0/0"));
}

TEST(CidrTest, MalformedTextIsRefusedWithTheReason) {
  EXPECT_EQ(Cidr::Parse("10.0.0.0/33").status(),
            absl::InvalidArgumentError(
                "invalid CIDR \"10.0.0.0/33\": prefix length is over 32"));
  EXPECT_EQ(Cidr::Parse("fd00::/129").status(),
            absl::InvalidArgumentError(
                "invalid CIDR \"fd00::/129\": prefix length is over 128"));
  EXPECT_EQ(Cidr::Parse("10.0.0/8").status(),
            absl::InvalidArgumentError(
                "invalid CIDR \"10.0.0/8\": not an IPv4 or IPv6 address"));
  EXPECT_EQ(Cidr::Parse("").status(),
            absl::InvalidArgumentError(
                "invalid CIDR \"\": not an IPv4 or IPv6 address"));
  EXPECT_EQ(Cidr::Parse("10.0.0.0/").status(),
            absl::InvalidArgumentError(
                "invalid CIDR \"10.0.0.0/\": prefix length is not a number"));
  EXPECT_EQ(Cidr::Parse("10.0.0.0/+8").status(),
            absl::InvalidArgumentError(
                "invalid CIDR \"10.0.0.0/+8\": prefix length is not a number"));
  EXPECT_EQ(
      Cidr::Parse("10.0.0.0/8/8").status(),
      absl::InvalidArgumentError(
          "invalid CIDR \"10.0.0.0/8/8\": prefix length is not a number"));
}

TEST(CidrTest, HostBitsBeyondThePrefixAreRefused) {
  // "10.0.0.1/8" may mean 10.0.0.0/8 or 10.0.0.1/32: the operator decides.
  EXPECT_EQ(Cidr::Parse("10.0.0.1/8").status(),
            absl::InvalidArgumentError(
                "invalid CIDR \"10.0.0.1/8\": address has bits set beyond the "
                "prefix; did you mean 10.0.0.0/8?"));
  EXPECT_EQ(Cidr::Parse("fd00::1/8").status(),
            absl::InvalidArgumentError(
                "invalid CIDR \"fd00::1/8\": address has bits set beyond the "
                "prefix; did you mean fd00::/8?"));
}

}  // namespace
}  // namespace hookfan::ingress
