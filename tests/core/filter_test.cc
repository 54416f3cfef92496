#include "core/filter.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::broker {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

v1::Event MakeEvent(std::string type, v1::Platform platform = v1::PLATFORM_ANDROID,
                    std::string action = "emm_device_enrolled", std::string org = "org1") {
  v1::Event e;
  e.set_type(std::move(type));
  e.set_platform(platform);
  e.set_action(std::move(action));
  e.mutable_organization()->set_id(std::move(org));
  return e;
}

TEST(TypePatternTest, LiteralMatchesOnlyItself) {
  EXPECT_TRUE(TypePatternMatches("applivery.device.enrolled", "applivery.device.enrolled"));
  EXPECT_FALSE(TypePatternMatches("applivery.device.enrolled", "applivery.device"));
  EXPECT_FALSE(TypePatternMatches("applivery.device", "applivery.device.enrolled"));
}

TEST(TypePatternTest, StarMatchesExactlyOneToken) {
  EXPECT_TRUE(TypePatternMatches("applivery.device.*", "applivery.device.enrolled"));
  EXPECT_TRUE(TypePatternMatches("applivery.*.created", "applivery.inventory_item.created"));
  EXPECT_FALSE(TypePatternMatches("applivery.device.*", "applivery.device"));
  EXPECT_FALSE(TypePatternMatches("applivery.*", "applivery.device.enrolled"));
}

TEST(TypePatternTest, GreaterThanMatchesOneOrMoreTrailingTokens) {
  EXPECT_TRUE(TypePatternMatches("applivery.>", "applivery.device.enrolled"));
  EXPECT_TRUE(TypePatternMatches("applivery.>", "applivery.unrecognized"));
  EXPECT_FALSE(TypePatternMatches("applivery.>", "applivery"));
  EXPECT_TRUE(TypePatternMatches(">", "anything.at.all"));
}

TEST(TypePatternTest, ValidationNamesTheProblem) {
  // Each malformed pattern is refused with the reason in the message.
  EXPECT_THAT(ValidateTypePattern("").message(), HasSubstr("empty"));
  EXPECT_THAT(ValidateTypePattern("a..b").message(), HasSubstr("empty token"));
  EXPECT_THAT(ValidateTypePattern("a.>.b").message(), HasSubstr("must be the last token"));
  EXPECT_THAT(ValidateTypePattern("a.dev*").message(), HasSubstr("must be a whole token"));
  EXPECT_THAT(ValidateTypePattern("a b").message(), HasSubstr("printable ASCII"));
  // Control characters, DEL and bytes >= 0x80 alike, whether char is signed.
  for (const char* bad : {"a\tb", "a.b\x7f", "a.\x80" "b", "caf\xc3\xa9.b"}) {
    EXPECT_EQ(ValidateTypePattern(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(ValidateTypePattern(std::string(300, 'a')).message(), HasSubstr("longer than"));
  EXPECT_EQ(ValidateTypePattern("a.b").code(), absl::StatusCode::kOk);
  EXPECT_EQ(ValidateTypePattern("a.").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ActionPatternTest, StarMatchesAnyRun) {
  EXPECT_TRUE(ActionPatternMatches("emm_*", "emm_device_enrolled"));
  EXPECT_TRUE(ActionPatternMatches("*_device_enrolled", "win_device_enrolled"));
  EXPECT_TRUE(ActionPatternMatches("*enroll*", "adm_enrollment-token_created"));
  EXPECT_TRUE(ActionPatternMatches("exact", "exact"));
  EXPECT_FALSE(ActionPatternMatches("emm_*", "win_device_enrolled"));
  EXPECT_FALSE(ActionPatternMatches("exact", "exactly"));
  EXPECT_TRUE(ActionPatternMatches("*", ""));
}

TEST(FilterTest, EmptyFilterMatchesEverything) {
  absl::StatusOr<Filter> f = Filter::Create(v1::Filter());
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->Matches(MakeEvent("applivery.device.enrolled")));
  EXPECT_TRUE(f->Matches(MakeEvent("x")));
}

TEST(FilterTest, ListsAreAndedAndEntriesOred) {
  // A type pattern list and a platform list must both match.
  v1::Filter proto;
  proto.add_types("applivery.device.*");
  proto.add_types("applivery.apns_certificate.expiring");
  proto.add_platforms(v1::PLATFORM_ANDROID);
  proto.add_platforms(v1::PLATFORM_WINDOWS);
  proto.add_organization_ids("org1");
  absl::StatusOr<Filter> f = Filter::Create(proto);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->Matches(MakeEvent("applivery.device.enrolled", v1::PLATFORM_ANDROID)));
  EXPECT_TRUE(f->Matches(MakeEvent("applivery.device.user_assigned", v1::PLATFORM_WINDOWS)));
  EXPECT_FALSE(f->Matches(MakeEvent("applivery.device.enrolled", v1::PLATFORM_APPLE)));
  EXPECT_FALSE(f->Matches(MakeEvent("applivery.inventory_item.created", v1::PLATFORM_ANDROID)));
  EXPECT_FALSE(f->Matches(
      MakeEvent("applivery.device.enrolled", v1::PLATFORM_ANDROID, "emm_device_enrolled", "org2")));
}

TEST(FilterTest, ActionPatternsFilter) {
  v1::Filter proto;
  proto.add_actions("win_*");
  absl::StatusOr<Filter> f = Filter::Create(proto);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->Matches(MakeEvent("t", v1::PLATFORM_WINDOWS, "win_device_added_mdm_user")));
  EXPECT_FALSE(f->Matches(MakeEvent("t", v1::PLATFORM_ANDROID, "emm_device_enrolled")));
}

TEST(FilterTest, UnspecifiedPlatformSelectsEventsWithoutPlatform) {
  v1::Filter proto;
  proto.add_platforms(v1::PLATFORM_UNSPECIFIED);
  absl::StatusOr<Filter> f = Filter::Create(proto);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->Matches(MakeEvent("t", v1::PLATFORM_UNSPECIFIED)));
  EXPECT_FALSE(f->Matches(MakeEvent("t", v1::PLATFORM_APPLE)));
}

TEST(FilterTest, RejectsBadEntriesWithInvalidArgument) {
  v1::Filter bad_type;
  bad_type.add_types("a.>.b");
  EXPECT_EQ(Filter::Create(bad_type).status(),
            absl::InvalidArgumentError(
                "invalid type pattern \"a.>.b\": \">\" must be the last token"));

  v1::Filter bad_platform;
  bad_platform.add_platforms(static_cast<v1::Platform>(99));
  EXPECT_EQ(Filter::Create(bad_platform).status(),
            absl::InvalidArgumentError("unknown platform value 99"));

  v1::Filter too_many;
  for (size_t i = 0; i <= kMaxFilterEntries; ++i) too_many.add_types("a");
  EXPECT_EQ(Filter::Create(too_many).status(),
            absl::InvalidArgumentError("filter.types has more than 256 entries"));

  v1::Filter empty_action;
  empty_action.add_actions("");
  EXPECT_EQ(Filter::Create(empty_action).status().code(), absl::StatusCode::kInvalidArgument);
}

// One device known by several identifiers, as different providers name it.
v1::Event DeviceEvent(std::string provider, std::string id, std::string serial, std::string udid) {
  v1::Event e = MakeEvent(provider + ".device.x");
  v1::DeviceIdentity* d = e.mutable_device();
  d->set_provider(std::move(provider));
  d->set_id(std::move(id));
  d->set_serial_number(std::move(serial));
  d->set_udid(std::move(udid));
  return e;
}

TEST(FilterTest, DeviceListsAreOneCriterionMatchingAnyIdentifier) {
  v1::Filter proto;
  proto.add_serial_numbers("C02SERIAL");
  proto.add_udids("UDID-1");
  proto.add_device_ids("applivery:5f63");
  absl::StatusOr<Filter> f = Filter::Create(proto);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->Matches(DeviceEvent("jamf_pro", "42", "C02SERIAL", "")));   // serial only
  EXPECT_TRUE(f->Matches(DeviceEvent("nanomdm", "UDID-1", "", "UDID-1")));   // UDID only
  EXPECT_TRUE(f->Matches(DeviceEvent("applivery", "5f63", "", "")));         // id only
  EXPECT_FALSE(f->Matches(DeviceEvent("nanomdm", "5f63", "", "UDID-2")));    // another provider's 5f63
  EXPECT_FALSE(f->Matches(DeviceEvent("applivery", "other", "OTHER", "UDID-2")));
  EXPECT_FALSE(f->Matches(MakeEvent("applivery.device.x")));                 // no device
}

TEST(FilterTest, DeviceCriterionIsAndedWithTheOtherLists) {
  v1::Filter proto;
  proto.add_types("nanomdm.>");
  proto.add_udids("UDID-1");
  absl::StatusOr<Filter> f = Filter::Create(proto);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->Matches(DeviceEvent("nanomdm", "UDID-1", "", "UDID-1")));
  v1::Event other_type = DeviceEvent("nanomdm", "UDID-1", "", "UDID-1");
  other_type.set_type("applivery.device.x");
  EXPECT_FALSE(f->Matches(other_type));
}

TEST(FilterTest, RejectsEmptyAndMalformedDeviceIdentifiers) {
  v1::Filter empty_serial;
  empty_serial.add_serial_numbers("");
  EXPECT_EQ(Filter::Create(empty_serial).status(),
            absl::InvalidArgumentError("filter.serial_numbers has an empty entry"));
  v1::Filter empty_udid;
  empty_udid.add_udids("");
  EXPECT_EQ(Filter::Create(empty_udid).status(),
            absl::InvalidArgumentError("filter.udids has an empty entry"));
  for (const char* bad : {"5f63", ":5f63", "applivery:", ""}) {
    v1::Filter device_id;
    device_id.add_device_ids(bad);
    const absl::Status status = Filter::Create(device_id).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("must be written <provider>:<id>")) << bad;
  }
  v1::Filter too_many;
  for (size_t i = 0; i <= kMaxFilterEntries; ++i) too_many.add_udids("u");
  EXPECT_EQ(Filter::Create(too_many).status(),
            absl::InvalidArgumentError("filter.udids has more than 256 entries"));
}

class TypeIndexTest : public ::testing::Test {
 protected:
  std::vector<int*> Match(const std::string& type) {
    std::vector<int*> out;
    index_.ForEachMatch(type, [&](int* v) { out.push_back(v); });
    return out;
  }

  TypeIndex<int> index_;
  int a_ = 1, b_ = 2, c_ = 3, d_ = 4;
};

TEST_F(TypeIndexTest, FindsLiteralAndWildcardPatterns) {
  // Each pattern kind is found for the types it matches and no others.
  index_.Add("applivery.device.enrolled", &a_);
  index_.Add("applivery.device.*", &b_);
  index_.Add("applivery.>", &c_);
  index_.Add("other.>", &d_);
  EXPECT_THAT(Match("applivery.device.enrolled"), UnorderedElementsAre(&a_, &b_, &c_));
  EXPECT_THAT(Match("applivery.device.user_assigned"), UnorderedElementsAre(&b_, &c_));
  EXPECT_THAT(Match("applivery.unrecognized"), UnorderedElementsAre(&c_));
  EXPECT_THAT(Match("applivery"), UnorderedElementsAre());
  EXPECT_THAT(Match("other.x.y.z"), UnorderedElementsAre(&d_));
}

TEST_F(TypeIndexTest, RemovePrunesAndKeepsOthers) {
  index_.Add("a.b", &a_);
  index_.Add("a.b", &b_);
  index_.Add("a.*", &c_);
  index_.Remove("a.b", &a_);
  EXPECT_THAT(Match("a.b"), UnorderedElementsAre(&b_, &c_));
  index_.Remove("a.b", &b_);
  index_.Remove("a.*", &c_);
  EXPECT_TRUE(index_.empty());
}

TEST_F(TypeIndexTest, AgreesWithTypePatternMatches) {
  // The index and the plain matcher give the same answers on a grid.
  const std::vector<std::string> patterns = {"a.b.c", "a.*.c", "a.>", "*.b.*", ">", "a.*", "*"};
  const std::vector<std::string> types = {"a", "a.b", "a.b.c", "x.b.y", "a.x.c", "a.b.c.d"};
  std::vector<int> values(patterns.size());
  for (size_t i = 0; i < patterns.size(); ++i) index_.Add(patterns[i], &values[i]);
  for (const std::string& t : types) {
    std::vector<int*> got = Match(t);
    for (size_t i = 0; i < patterns.size(); ++i) {
      bool in_index = std::count(got.begin(), got.end(), &values[i]) > 0;
      EXPECT_EQ(in_index, TypePatternMatches(patterns[i], t)) << patterns[i] << " vs " << t;
    }
  }
}

}  // namespace
}  // namespace hookfan::broker
