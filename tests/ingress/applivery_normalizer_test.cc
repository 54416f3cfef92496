#include "ingress/applivery_normalizer.h"

#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/substitute.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "gtest/gtest.h"
#include "hookfan/v1/event.pb.h"
#include "tests/fixtures.h"
#include "tests/proto_matchers.h"

namespace hookfan::ingress {
namespace {

using ::hookfan::v1::Event;
using ::testing::EndsWith;
using ::testing::HasSubstr;

using ::hookfan::testing::EqualsProto;

std::string ReadFixture(const std::string& name) {
  return hookfan::testing::ReadFixtureFile("applivery/" + name + ".json");
}

// Normalizes `body`, failing the test on error.
Event Normalize(const std::string& body) {
  absl::StatusOr<Event> event = NormalizeApplivery(body);
  EXPECT_TRUE(event.ok()) << event.status() << "\nbody: " << body;
  return event.ok() ? *std::move(event) : Event();
}

// Normalizes a fixture, checks data holds its bytes, and returns the event
// without data so the rest compares as text.
Event NormalizeFixture(const std::string& name) {
  const std::string body = ReadFixture(name);
  Event event = Normalize(body);
  EXPECT_EQ(event.data(), body);
  event.clear_data();
  return event;
}

void ExpectInvalid(const std::string& body, const std::string& message) {
  const absl::StatusOr<Event> event = NormalizeApplivery(body);
  EXPECT_EQ(event.status(), absl::InvalidArgumentError(message))
      << "body: " << body;
}

// `depth` objects nested inside each other, the outermost holding `action`.
std::string NestedObjects(int depth) {
  std::string body = R"({"action":"x_deep")";
  for (int i = 1; i < depth; ++i) body += R"(,"a":{"b":1)";
  return body + std::string(depth, '}');
}

TEST(AppliveryNormalizerTest, EnrollmentTokenSampleMapsEveryField) {
  // Applivery's sample, where mdmUser.id is an object {id, email}.
  EXPECT_THAT(
      NormalizeFixture("emm_enrollment_token_created"), EqualsProto(R"pb(
        source: "/webhooks/applivery"
        type: "applivery.enrollment_token.created"
        subject: "mdm-users/5e9099ee4da32b180204770e"
        platform: PLATFORM_ANDROID
        platform_prefix: "emm"
        organization {
          id: "5d4d1391cd523c15f50df235"
          name: "Applivery Test"
          url: "https://dashboard.applivery.io/test"
        }
        action: "emm_enrollment_token_created"
        key: "5d4d1391cd523c15f50df235"
        data_content_type: "application/json"
        enrollment_token_created {
          token_type: "Fully Managed"
          send_email: true
          mdm_user {
            id: "5e9099ee4da32b180204770e"
            email: "[email protected]"
            url: "https://dashboard.applivery.io/test/mdm/users/5e9099ee4da32r180204770e"
          }
        }
      )pb"));
}

TEST(AppliveryNormalizerTest, DeviceEnrolledSampleMapsEveryField) {
  // The device id comes from the device URL; the device keys the event.
  EXPECT_THAT(
      NormalizeFixture("emm_device_enrolled"), EqualsProto(R"pb(
        source: "/webhooks/applivery"
        type: "applivery.device.enrolled"
        subject: "devices/5f634c11034824062256e38c"
        platform: PLATFORM_ANDROID
        platform_prefix: "emm"
        organization {
          id: "5d4d1391cd523c15f50df235"
          name: "Applivery Test"
          url: "https://dashboard.applivery.io/test"
        }
        action: "emm_device_enrolled"
        key: "5f634c11034824062256e38c"
        data_content_type: "application/json"
        device {
          provider: "applivery"
          id: "5f634c11034824062256e38c"
          platform: PLATFORM_ANDROID
          user: "[email protected]"
        }
        device_enrolled {
          device {
            id: "5f634c11034824062256e38c"
            management_type: "Fully Managed"
            url: "https://dashboard.applivery.io/test/mdm/users/5e9099ee4da32b180204770e?id=5f634c11034824062256e38c"
            field: "emmDevice"
          }
          mdm_user {
            id: "5e9099ee4da32b180204770e"
            email: "[email protected]"
            url: "https://dashboard.applivery.io/test/mdm/users/5e9099ee4da32b180204770e"
          }
        }
      )pb"));
}

TEST(AppliveryNormalizerTest, DeviceUserAssignedSampleMapsEveryField) {
  // Windows sample: empty productName and a trigger.
  EXPECT_THAT(
      NormalizeFixture("win_device_added_mdm_user"), EqualsProto(R"pb(
        source: "/webhooks/applivery"
        type: "applivery.device.user_assigned"
        subject: "devices/66d05845114a9509d18e7266"
        platform: PLATFORM_WINDOWS
        platform_prefix: "win"
        organization {
          id: "5c34ec7810399b6cc062a04a"
          name: "Applivery Test"
          url: "https://dashboard.applivery.io/test"
        }
        action: "win_device_added_mdm_user"
        key: "66d05845114a9509d18e7266"
        data_content_type: "application/json"
        device {
          provider: "applivery"
          id: "66d05845114a9509d18e7266"
          platform: PLATFORM_WINDOWS
          user: "[email protected]"
        }
        device_user_assigned {
          device {
            id: "66d05845114a9509d18e7266"
            product_name: ""
            url: "https://dashboard.applivery.io/test/mdm/users/65f83a5e4ecbfd693b7486d6?id=66d05845114a9509d18e7266"
            field: "winDevice"
          }
          mdm_user {
            id: "65f83a5e4ecbfd693b7486d6"
            email: "[email protected]"
            url: "https://dashboard.applivery.io/test/mdm/users/65f83a5e4ecbfd693b7486d6"
          }
          trigger: "deviceUpdate"
        }
      )pb"));
}

TEST(AppliveryNormalizerTest, ApnsCertificateSampleMapsEveryField) {
  // numDays arrives as the string "5"; the action has no prefix but is Apple.
  EXPECT_THAT(
      NormalizeFixture("apple_push_certification_renovation"), EqualsProto(R"pb(
        source: "/webhooks/applivery"
        type: "applivery.apns_certificate.expiring"
        platform: PLATFORM_APPLE
        organization {
          id: "5d4d1391cd523c15f50df235"
          name: "Applivery Test"
          url: "https://dashboard.applivery.io/test"
        }
        action: "apple_push_certification_renovation"
        key: "5d4d1391cd523c15f50df235"
        data_content_type: "application/json"
        apns_certificate_expiring { days_left: 5 apple_id: "[email protected]" }
      )pb"));
}

TEST(AppliveryNormalizerTest, InventoryItemSampleMapsEveryField) {
  // The action is a sentence; subAction says which operation.
  EXPECT_THAT(NormalizeFixture("inventory_item_registered"), EqualsProto(R"pb(
                source: "/webhooks/applivery"
                type: "applivery.inventory_item.created"
                subject: "inventory-items/62bd71d980df8b001b085ceb"
                organization {
                  id: "5d4d1391cd523c15f50df235"
                  name: "Applivery Test"
                  url: "https://dashboard.applivery.io/test"
                }
                action: "A new InventoryItem is being registered"
                sub_action: "created"
                key: "5d4d1391cd523c15f50df235"
                data_content_type: "application/json"
                inventory_item_created {
                  id: "62bd71d980df8b001b085ceb"
                  item_type: "monitor"
                  member {
                    type: "mdmUser"
                    id: "6241d3d804e388001b3c605c"
                    email: "[email protected]"
                  }
                  metadata {}
                }
              )pb"));
}

TEST(AppliveryNormalizerTest, NumDaysIsReadFromStringOrInteger) {
  // Applivery sends a string; a JSON integer means the same.
  for (const auto& [num_days, days_left] :
       {std::pair{R"("5")", 5}, {"7", 7}, {R"("-1")", -1}, {"0", 0}}) {
    const Event event = Normalize(absl::StrCat(
        R"({"action":"apple_push_certification_renovation","numDays":)",
        num_days, "}"));
    EXPECT_EQ(event.apns_certificate_expiring().days_left(), days_left)
        << num_days;
  }
}

TEST(AppliveryNormalizerTest, NumDaysThatIsNoInt32ReadsZero) {
  // An unreadable day count is tolerated: the event still arrives.
  for (const char* num_days :
       {R"("abc")", R"("")", R"("5.5")", "5.5", "4294967301",
        R"("99999999999")", "true", "null", "{}", "[5]"}) {
    const Event event = Normalize(absl::StrCat(
        R"({"action":"apple_push_certification_renovation","numDays":)",
        num_days, "}"));
    EXPECT_EQ(event.type(), "applivery.apns_certificate.expiring");
    EXPECT_EQ(event.apns_certificate_expiring().days_left(), 0) << num_days;
  }
}

TEST(AppliveryNormalizerTest, MdmUserIdAsStringOrObjectGivesTheSameId) {
  // Both shapes Applivery sends arrive as the id string.
  const Event as_string = Normalize(
      R"({"action":"emm_enrollment_token_created","mdmUser":{"id":"u1","email":"a@x"}})");
  const Event as_object = Normalize(
      R"({"action":"emm_enrollment_token_created","mdmUser":{"id":{"id":"u1","email":"b@x"},"email":"a@x"}})");
  for (const Event& event : {as_string, as_object}) {
    EXPECT_THAT(event.enrollment_token_created().mdm_user(),
                EqualsProto(R"pb(id: "u1" email: "a@x")pb"));
    EXPECT_EQ(event.subject(), "mdm-users/u1");
  }
}

TEST(AppliveryNormalizerTest, MdmUserIdObjectSuppliesMissingEmail) {
  // The email inside {id, email} stands in when the user's own is absent.
  const Event event = Normalize(
      R"({"action":"emm_device_enrolled","mdmUser":{"id":{"id":"u1","email":"b@x"}}})");
  EXPECT_THAT(event.device_enrolled().mdm_user(),
              EqualsProto(R"pb(id: "u1" email: "b@x")pb"));
}

TEST(AppliveryNormalizerTest, BothEnrollmentTokenSpellingsMapToOneType) {
  // The sample says enrollment_token, Applivery's table enrollment-token.
  for (const char* action :
       {"adm_enrollment_token_created", "adm_enrollment-token_created"}) {
    const Event event = Normalize(absl::StrCat(
        R"({"action":")", action,
        R"(","enrollmentToken":{"type":"User Enrollment"},"sendEmail":false})"));
    EXPECT_EQ(event.type(), "applivery.enrollment_token.created") << action;
    EXPECT_EQ(event.platform(), v1::PLATFORM_APPLE) << action;
    EXPECT_EQ(event.platform_prefix(), "adm") << action;
    EXPECT_THAT(event.enrollment_token_created(),
                EqualsProto(R"pb(token_type: "User Enrollment")pb"));
  }
}

TEST(AppliveryNormalizerTest, EachPlatformPrefixMapsToItsPlatform) {
  // Known prefixes name their platform; any other lowercase prefix is OTHER.
  for (const auto& [prefix, platform] : {std::pair{"emm", v1::PLATFORM_ANDROID},
                                         {"adm", v1::PLATFORM_APPLE},
                                         {"win", v1::PLATFORM_WINDOWS},
                                         {"aos", v1::PLATFORM_AOSP},
                                         {"xyz", v1::PLATFORM_OTHER},
                                         {"tv2", v1::PLATFORM_OTHER}}) {
    const Event event = Normalize(
        absl::StrCat(R"({"action":")", prefix, R"(_device_enrolled",")", prefix,
                     R"(Device":{"url":"https://d/x?id=d1"}})"));
    EXPECT_EQ(event.type(), "applivery.device.enrolled") << prefix;
    EXPECT_EQ(event.platform(), platform) << prefix;
    EXPECT_EQ(event.platform_prefix(), prefix);
    EXPECT_EQ(event.device_enrolled().device().field(),
              absl::StrCat(prefix, "Device"));
    EXPECT_EQ(event.subject(), "devices/d1") << prefix;
  }
}

TEST(AppliveryNormalizerTest, PrefixThatIsNotLowercaseAlnumIsUnrecognized) {
  // "{os}" is a non-empty lowercase alphanumeric word, nothing else.
  for (const char* action : {"EMM_device_enrolled", "_device_enrolled",
                             "e-m_device_enrolled", "device_enrolled"}) {
    const Event event =
        Normalize(absl::StrCat(R"({"action":")", action, R"("})"));
    EXPECT_EQ(event.type(), "applivery.unrecognized") << action;
    EXPECT_EQ(event.platform(), v1::PLATFORM_UNSPECIFIED) << action;
    EXPECT_EQ(event.platform_prefix(), "") << action;
    EXPECT_EQ(event.action(), action);
  }
}

TEST(AppliveryNormalizerTest, DeviceIsFoundUnderAnyKeyEndingInDevice) {
  // "<prefix>Device" wins; else the first "…Device" key holding an object.
  const Event preferred = Normalize(
      R"({"action":"win_device_enrolled","aaaDevice":{},"winDevice":{"type":"t"}})");
  EXPECT_EQ(preferred.device_enrolled().device().field(), "winDevice");
  const Event fallback = Normalize(
      R"({"action":"win_device_enrolled","aDevice":"no","bDevice":{"type":"t"}})");
  EXPECT_THAT(fallback.device_enrolled().device(),
              EqualsProto(R"pb(management_type: "t" field: "bDevice")pb"));
}

TEST(AppliveryNormalizerTest, DeviceIdIsTheIdQueryParameterOfItsUrl) {
  // Only a query parameter named exactly "id" counts.
  for (const auto& [url, id] : {std::pair{"https://d/u/1?id=d1", "d1"},
                                {"https://d/u/1?a=1&id=d1&b=2", "d1"},
                                {"https://d/u/1?id=d1#top", "d1"},
                                {"https://d/u/1/id=d1", ""},
                                {"https://d/u/1?grid=d1", ""},
                                {"https://d/u/1?id=", ""}}) {
    const Event event = Normalize(
        absl::StrCat(R"({"action":"emm_device_enrolled","emmDevice":{"url":")",
                     url, R"("},"organization":{"id":"o1"}})"));
    EXPECT_EQ(event.device_enrolled().device().id(), id) << url;
  }
}

TEST(AppliveryNormalizerTest, SubjectAndKeyFallBackWithoutDeviceId) {
  // No device id: the subject is the user, the key the organization.
  const Event event = Normalize(
      R"({"action":"emm_device_enrolled","emmDevice":{"url":"https://d/u"},)"
      R"("mdmUser":{"id":"u1"},"organization":{"id":"o1"}})");
  EXPECT_EQ(event.subject(), "mdm-users/u1");
  EXPECT_EQ(event.key(), "o1");
  const Event bare = Normalize(R"({"action":"emm_device_enrolled"})");
  EXPECT_EQ(bare.subject(), "");
  EXPECT_EQ(bare.key(), "");
  EXPECT_FALSE(bare.has_organization());
  EXPECT_THAT(bare.device_enrolled(), EqualsProto(""));
}

TEST(AppliveryNormalizerTest, InventorySubActionSelectsTypeAndPayload) {
  // created / updated / deleted each have a type and a oneof field.
  const std::string item =
      R"("inventoryItem":{"id":"i1","type":"laptop","members":)"
      R"([5,{"type":"mdmUser","memberId":"m1"},{"memberId":"m2"}],)"
      R"("metadata":{"serial":"S1","ports":[1,2]}})";
  const char* const kExpected = R"pb(
    id: "i1"
    item_type: "laptop"
    member { type: "mdmUser" id: "m1" }
    metadata {
      fields {
        key: "serial"
        value { string_value: "S1" }
      }
      fields {
        key: "ports"
        value {
          list_value {
            values { number_value: 1 }
            values { number_value: 2 }
          }
        }
      }
    }
  )pb";
  for (const auto& [sub_action, type, payload_case] :
       {std::tuple{"created", "applivery.inventory_item.created",
                   Event::kInventoryItemCreated},
        {"updated", "applivery.inventory_item.updated",
         Event::kInventoryItemUpdated},
        {"deleted", "applivery.inventory_item.deleted",
         Event::kInventoryItemDeleted}}) {
    const Event event = Normalize(absl::StrCat(
        R"({"action":"A new InventoryItem is being registered","subAction":")",
        sub_action, R"(",)", item, "}"));
    EXPECT_EQ(event.type(), type);
    EXPECT_EQ(event.sub_action(), sub_action);
    ASSERT_EQ(event.payload_case(), payload_case) << sub_action;
    const v1::InventoryItemChanged& payload =
        payload_case == Event::kInventoryItemCreated
            ? event.inventory_item_created()
        : payload_case == Event::kInventoryItemUpdated
            ? event.inventory_item_updated()
            : event.inventory_item_deleted();
    EXPECT_THAT(payload, EqualsProto(kExpected)) << sub_action;
    EXPECT_EQ(event.subject(), "inventory-items/i1");
  }
}

TEST(AppliveryNormalizerTest, InventoryWithoutKnownSubActionIsUnrecognized) {
  // A missing or unknown operation is not guessed; the body is kept.
  for (const char* sub_action :
       {"", R"(,"subAction":"archived")", R"(,"subAction":7)"}) {
    const Event event = Normalize(
        absl::StrCat(R"({"action":"A new InventoryItem is being registered")",
                     sub_action, R"(,"inventoryItem":{"id":"i1"}})"));
    EXPECT_EQ(event.type(), "applivery.unrecognized") << sub_action;
    EXPECT_EQ(event.payload_case(), Event::kUnrecognized) << sub_action;
    EXPECT_EQ(event.subject(), "inventory-items/i1");
  }
}

TEST(AppliveryNormalizerTest, AppDistributionActionsMapToTheirTypes) {
  // No published samples: type from the action, body kept as a Struct.
  constexpr char kPayload[] = R"pb(
    body {
      fields {
        key: "action"
        value { string_value: "$0" }
      }
      fields {
        key: "organization"
        value {
          struct_value {
            fields {
              key: "id"
              value { string_value: "o1" }
            }
          }
        }
      }
    }
  )pb";
  for (const auto& [action, type] :
       {std::pair{"build_created", "applivery.build.created"},
        {"build_processed", "applivery.build.processed"},
        {"bug_created", "applivery.bug.created"},
        {"feedback_created", "applivery.feedback.created"},
        {"certificate_will_expire", "applivery.certificate.expiring"}}) {
    const Event event = Normalize(absl::StrCat(
        R"({"action":")", action, R"(","organization":{"id":"o1"}})"));
    EXPECT_EQ(event.type(), type);
    EXPECT_EQ(event.platform(), v1::PLATFORM_UNSPECIFIED) << action;
    EXPECT_EQ(event.platform_prefix(), "") << action;
    EXPECT_EQ(event.key(), "o1");
    EXPECT_THAT(event.app_distribution(),
                EqualsProto(absl::Substitute(kPayload, action)));
  }
}

TEST(AppliveryNormalizerTest, AppDistributionIdsAreFoundInAnyKnownShape) {
  // Best effort over the shapes a payload plausibly uses; else empty.
  for (const auto& [fields, application_id, build_id] :
       {std::tuple{R"("application":"a1","build":"b1")", "a1", "b1"},
        {R"("application":{"id":"a2"},"build":{"id":"b2"})", "a2", "b2"},
        {R"("app":{"id":"a3"},"buildId":"b3")", "a3", "b3"},
        {R"("applicationId":"a4")", "a4", ""},
        {R"("application":5,"build":["b"])", "", ""}}) {
    const Event event =
        Normalize(absl::StrCat(R"({"action":"build_processed",)", fields, "}"));
    EXPECT_EQ(event.app_distribution().application_id(), application_id)
        << fields;
    EXPECT_EQ(event.app_distribution().build_id(), build_id) << fields;
  }
}

TEST(AppliveryNormalizerTest, UnknownActionIsUnrecognizedWithBodyKept) {
  // Nothing is dropped: every JSON type survives into the Struct.
  const std::string body =
      R"({"action":"emm_device_wiped","organization":{"id":"o1"},)"
      R"("emmDevice":{"url":"https://d/u?id=d1"},)"
      R"("n":-2.5,"big":12345678901,"t":true,"z":null,"l":["s",{}]})";
  Event event = Normalize(body);
  EXPECT_EQ(event.data(), body);
  event.clear_data();
  EXPECT_THAT(event, EqualsProto(R"pb(
                source: "/webhooks/applivery"
                type: "applivery.unrecognized"
                subject: "devices/d1"
                platform: PLATFORM_ANDROID
                platform_prefix: "emm"
                organization { id: "o1" }
                action: "emm_device_wiped"
                key: "d1"
                data_content_type: "application/json"
                device { provider: "applivery" id: "d1" platform: PLATFORM_ANDROID }
                unrecognized {
                  body {
                    fields {
                      key: "action"
                      value { string_value: "emm_device_wiped" }
                    }
                    fields {
                      key: "organization"
                      value {
                        struct_value {
                          fields {
                            key: "id"
                            value { string_value: "o1" }
                          }
                        }
                      }
                    }
                    fields {
                      key: "emmDevice"
                      value {
                        struct_value {
                          fields {
                            key: "url"
                            value { string_value: "https://d/u?id=d1" }
                          }
                        }
                      }
                    }
                    fields {
                      key: "n"
                      value { number_value: -2.5 }
                    }
                    fields {
                      key: "big"
                      value { number_value: 12345678901 }
                    }
                    fields {
                      key: "t"
                      value { bool_value: true }
                    }
                    fields {
                      key: "z"
                      value { null_value: NULL_VALUE }
                    }
                    fields {
                      key: "l"
                      value {
                        list_value {
                          values { string_value: "s" }
                          values { struct_value {} }
                        }
                      }
                    }
                  }
                }
              )pb"));
}

TEST(AppliveryNormalizerTest, UnknownPrefixOnUnknownActionIsNoPlatform) {
  // "build_deleted" names no platform: only known prefixes are trusted here.
  const Event event = Normalize(R"({"action":"build_deleted"})");
  EXPECT_EQ(event.type(), "applivery.unrecognized");
  EXPECT_EQ(event.platform(), v1::PLATFORM_UNSPECIFIED);
  EXPECT_EQ(event.platform_prefix(), "");
}

TEST(AppliveryNormalizerTest, WrongTypedFieldsAreToleratedAndLeftEmpty) {
  // Only the action is required; a field of the wrong type reads as absent.
  const Event token = Normalize(
      R"({"action":"emm_enrollment_token_created","organization":"o1",)"
      R"("sendEmail":"yes","enrollmentToken":["Fully Managed"],)"
      R"("mdmUser":{"id":5,"email":{},"url":null},"subAction":1})");
  EXPECT_FALSE(token.has_organization());
  EXPECT_EQ(token.sub_action(), "");
  EXPECT_THAT(token.enrollment_token_created(),
              EqualsProto(R"pb(mdm_user {})pb"));

  const Event device = Normalize(
      R"({"action":"emm_device_enrolled","organization":{"id":1,"name":[]},)"
      R"("emmDevice":{"url":7,"type":{}},"mdmUser":"u1","trigger":3})");
  EXPECT_THAT(device.organization(), EqualsProto(""));
  EXPECT_THAT(device.device_enrolled(),
              EqualsProto(R"pb(device { field: "emmDevice" })pb"));

  const Event item = Normalize(
      R"({"action":"A new InventoryItem is being registered",)"
      R"("subAction":"updated","inventoryItem":{"id":[],"members":"m1",)"
      R"("metadata":"none"}})");
  EXPECT_THAT(item.inventory_item_updated(), EqualsProto(""));
  const Event no_item =
      Normalize(R"({"action":"A new InventoryItem is being registered",)"
                R"("subAction":"deleted","inventoryItem":"i1"})");
  EXPECT_THAT(no_item.inventory_item_deleted(), EqualsProto(""));
}

TEST(AppliveryNormalizerTest, MalformedJsonIsRejectedWithByteOffset) {
  // The sender learns where and why its body stopped being JSON.
  ExpectInvalid(
      R"({"action": tru})",
      "body is not valid JSON: at byte 15: syntax error while "
      "parsing value - invalid literal; last read: '\"action\": tru}'");
  ExpectInvalid(R"({"action":"x",})",
                "body is not valid JSON: at byte 15: syntax error while "
                "parsing object key - unexpected '}'; expected string literal");
}

TEST(AppliveryNormalizerTest, NulByteAfterTheJsonIsRejected) {
  // Found by fuzz/applivery_normalizer_fuzzer: nlohmann stops at a NUL byte,
  // so an object followed by NUL and junk passed as JSON and the junk went
  // out in data (fuzz/regressions/applivery_normalizer/nul_after_object).
  ExpectInvalid(std::string("{\"action\":\"build_created\"}\0junk", 31),
                "body is not valid JSON: at byte 27: syntax error while "
                "parsing value - unexpected NUL byte; expected end of input");
  ExpectInvalid(std::string("5\0{", 3),
                "body is not valid JSON: at byte 2: syntax error while "
                "parsing value - unexpected NUL byte; expected end of input");
}

TEST(AppliveryNormalizerTest, EmptyBodyIsRejectedAsNotJson) {
  // An empty body is a malformed one, not an empty object.
  ExpectInvalid("",
                "body is not valid JSON: at byte 1: syntax error while "
                "parsing value - unexpected end of input; expected '[', '{', "
                "or a literal");
}

TEST(AppliveryNormalizerTest, ParseErrorDetailIsPrintableAndBounded) {
  // The message is echoed in a JSON error body: no raw bytes, no huge token.
  ExpectInvalid("{\"action\":\"\xff\"}",
                "body is not valid JSON: at byte 12: syntax error while "
                "parsing value - invalid string: ill-formed UTF-8 byte; last "
                "read: '\"\\xff'");
  const absl::StatusOr<Event> event =
      NormalizeApplivery(R"({"action":")" + std::string(100000, 'a'));
  EXPECT_EQ(event.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(event.status().message(),
              HasSubstr("missing closing quote; last read: '\"aaaa"));
  EXPECT_LT(event.status().message().size(), 250u);
  EXPECT_THAT(std::string(event.status().message()), EndsWith("..."));
}

TEST(AppliveryNormalizerTest, NonObjectJsonIsRejected) {
  // A webhook body is an object; the message names what came instead.
  for (const auto& [body, got] :
       {std::pair{R"([{"action":"emm_device_enrolled"}])", "array"},
        {R"("emm_device_enrolled")", "string"},
        {"42", "number"},
        {"true", "boolean"},
        {"null", "null"}}) {
    ExpectInvalid(body, absl::StrCat("body must be a JSON object, got ", got));
  }
}

TEST(AppliveryNormalizerTest, MissingActionIsRejected) {
  // The action is the one required field.
  ExpectInvalid(R"({"organization":{"id":"o1"}})",
                "missing required field \"action\"");
  ExpectInvalid("{}", "missing required field \"action\"");
}

TEST(AppliveryNormalizerTest, NonStringOrEmptyActionIsRejected) {
  // An action that is not a non-empty string cannot be routed or kept.
  ExpectInvalid(R"({"action":7})",
                "field \"action\" must be a string, got number");
  ExpectInvalid(R"({"action":null})",
                "field \"action\" must be a string, got null");
  ExpectInvalid(R"({"action":{"name":"emm_device_enrolled"}})",
                "field \"action\" must be a string, got object");
  ExpectInvalid(R"({"action":""})", "field \"action\" must not be empty");
}

TEST(AppliveryNormalizerTest, NestingAtTheLimitStaysReadableByProtobuf) {
  // The deepest accepted body gives an event that protobuf's default
  // recursion limit (100) still parses inside three enclosing messages.
  const Event event = Normalize(NestedObjects(kAppliveryMaxJsonDepth));
  EXPECT_EQ(event.type(), "applivery.unrecognized");
  const std::string bytes = event.SerializeAsString();
  google::protobuf::io::CodedInputStream input(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  input.SetRecursionLimit(100 - 3);
  Event parsed;
  ASSERT_TRUE(parsed.ParseFromCodedStream(&input));
  EXPECT_THAT(parsed, EqualsProto(event.DebugString()));
}

TEST(AppliveryNormalizerTest, NestingBeyondTheLimitIsRejected) {
  // Deeper bodies are refused up front, whatever their action.
  ExpectInvalid(NestedObjects(kAppliveryMaxJsonDepth + 1),
                "JSON nested too deeply (more than 32 levels)");
  ExpectInvalid(absl::StrCat(R"({"action":"emm_device_enrolled","a":)",
                             std::string(kAppliveryMaxJsonDepth, '['),
                             std::string(kAppliveryMaxJsonDepth, ']'), "}"),
                "JSON nested too deeply (more than 32 levels)");
}

TEST(AppliveryNormalizerTest, VeryDeepNestingDoesNotCrash) {
  // 200k levels neither overflow the stack nor pass as an event; unclosed,
  // they pass the depth limit before the text ends, so that is the error.
  constexpr int kDepth = 200000;
  ExpectInvalid(absl::StrCat(R"({"action":"x","a":)", std::string(kDepth, '['),
                             std::string(kDepth, ']'), "}"),
                "JSON nested too deeply (more than 32 levels)");
  ExpectInvalid(std::string(kDepth, '['),
                "JSON nested too deeply (more than 32 levels)");
}

}  // namespace
}  // namespace hookfan::ingress
