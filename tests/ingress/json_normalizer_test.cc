#include "ingress/json_normalizer.h"

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hookfan/v1/event.pb.h"
#include "core/event_rules.h"
#include "ingress/source_config.h"
#include "tests/proto_matchers.h"

namespace hookfan::ingress {
namespace {

using ::hookfan::v1::Event;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

using ::hookfan::testing::EqualsProto;
using ::hookfan::broker::CheckEventType;
using ::hookfan::broker::IsValidEventType;

// A normalizer run: config and request headers in, event or error out. The
// header lookups made are recorded.
class JsonNormalizerTest : public ::testing::Test {
 protected:
  absl::StatusOr<Event> Run(const std::string& body) {
    return NormalizeJson(
        config_, "/webhooks/acme",
        [this](std::string_view name) -> std::optional<std::string_view> {
          looked_up_.emplace_back(name);
          const auto it = headers_.find(std::string(name));
          if (it == headers_.end()) return std::nullopt;
          return it->second;
        },
        body);
  }

  // Runs, failing the test on error.
  Event Normalize(const std::string& body) {
    absl::StatusOr<Event> event = Run(body);
    EXPECT_TRUE(event.ok()) << event.status() << "\nbody: " << body;
    return event.ok() ? *std::move(event) : Event();
  }

  void ExpectInvalid(const std::string& body, const std::string& message) {
    EXPECT_EQ(Run(body).status(), absl::InvalidArgumentError(message))
        << "body: " << body;
  }

  JsonNormalizerConfig config_ = {.type_pointer = "/type"};
  std::map<std::string, std::string> headers_;  // by lowercase name
  std::vector<std::string> looked_up_;
};

// ---------------------------------------------------------------------------
// Events.

TEST_F(JsonNormalizerTest, TypeFromPointerWithPrefixMapsEveryField) {
  // The body is kept byte for byte; the type is prefix + pointed-at string.
  config_ = {.type_pointer = "/event/type", .type_prefix = "acme."};
  const std::string body =
      R"({ "event": {"type": "order.created"}, "n": 1.50 })";
  EXPECT_THAT(Normalize(body),
              EqualsProto(absl::StrCat(R"pb(
                                         source: "/webhooks/acme"
                                         type: "acme.order.created"
                                         data_content_type: "application/json"
                                         data: ')pb",
                                       body, "'")));
  EXPECT_THAT(looked_up_, IsEmpty());
}

TEST_F(JsonNormalizerTest, TypeFromHeaderIsLookedUpByLowercaseName) {
  // The configured header name may have any case; lookups are lowercase.
  config_ = {.type_header = "X-Acme-Event", .type_prefix = "acme."};
  headers_ = {{"x-acme-event", "Invoice.Paid"}};
  const Event event = Normalize(R"({"type":"ignored"})");
  EXPECT_EQ(event.type(), "acme.invoice.paid");
  EXPECT_EQ(event.source(), "/webhooks/acme");
  EXPECT_THAT(looked_up_, ElementsAre("x-acme-event"));
}

TEST_F(JsonNormalizerTest, PointerFollowsRfc6901) {
  // "~1" is "/", "~0" is "~", a number indexes an array.
  config_ = {.type_pointer = "/a~1b/c~0d/1/t"};
  EXPECT_EQ(Normalize(R"({"a/b":{"c~d":[{},{"t":"x.y"}]}})").type(), "x.y");
}

TEST_F(JsonNormalizerTest, EmptyPrefixLeavesTheTypeAsSent) {
  // No prefix: the producer's type, lowercased, is the event type.
  EXPECT_EQ(Normalize(R"({"type":"Order-Created_v2"})").type(),
            "order-created_v2");
}

TEST_F(JsonNormalizerTest, IdPointerGivesTheSourceEventId) {
  // A string is taken as is, a number as its JSON text.
  config_.id_pointer = "/meta/id";
  for (const auto& [id, expected] :
       {std::pair{R"("evt_123")", "evt_123"},
        {"42", "42"},
        {"-7", "-7"},
        {"18446744073709551615", "18446744073709551615"}}) {
    EXPECT_EQ(Normalize(absl::StrCat(R"({"type":"t","meta":{"id":)", id, "}}"))
                  .source_event_id(),
              expected)
        << id;
  }
}

TEST_F(JsonNormalizerTest, WithoutIdPointerThereIsNoSourceEventId) {
  // An "id" member means nothing unless the config points at it.
  EXPECT_EQ(Normalize(R"({"type":"t","id":"x"})").source_event_id(), "");
}

// ---------------------------------------------------------------------------
// Rejected bodies.

TEST_F(JsonNormalizerTest, BodyMustBeAJsonObject) {
  // Malformed, non-object and too deep bodies are refused like Applivery's.
  ExpectInvalid(R"({"type":)",
                "body is not valid JSON: at byte 9: syntax error while "
                "parsing value - unexpected end of input; expected '[', '{', "
                "or a literal");
  ExpectInvalid(R"(["t"])", "body must be a JSON object, got array");
  ExpectInvalid("null", "body must be a JSON object, got null");
  ExpectInvalid(absl::StrCat(R"({"type":"t","a":)", std::string(32, '['),
                             std::string(32, ']'), "}"),
                "JSON nested too deeply (more than 32 levels)");
}

TEST_F(JsonNormalizerTest, TypeNotFoundNamesThePointer) {
  // Missing key, a path through a non-container, an index out of range.
  config_ = {.type_pointer = "/event/type"};
  for (const char* body : {R"({})", R"({"event":"order"})",
                           R"({"event":{"kind":"x"}})", R"({"event":[]})"}) {
    ExpectInvalid(body, "type pointer /event/type: not found in the body");
  }
  config_ = {.type_pointer = "/events/2"};
  ExpectInvalid(R"({"events":["a","b"]})",
                "type pointer /events/2: not found in the body");
  config_ = {.type_pointer = "/events/-"};
  ExpectInvalid(R"({"events":["a"]})",
                "type pointer /events/-: not found in the body");
  config_ = {.type_pointer = "/events/99999999999999999999999"};
  ExpectInvalid(R"({"events":["a"]})",
                "type pointer /events/99999999999999999999999: not found in "
                "the body");
}

TEST_F(JsonNormalizerTest, TypeThatIsNoStringIsRejected) {
  // The message says what the pointer found instead.
  for (const auto& [value, got] : {std::pair{"7", "number"},
                                   {"null", "null"},
                                   {"{}", "object"},
                                   {"true", "boolean"}}) {
    ExpectInvalid(
        absl::StrCat(R"({"type":)", value, "}"),
        absl::StrCat("type pointer /type: must be a string, got ", got));
  }
}

TEST_F(JsonNormalizerTest, MissingTypeHeaderIsRejected) {
  // The header must be present; the body is not consulted.
  config_ = {.type_header = "X-Acme-Event"};
  ExpectInvalid(R"({"type":"t"})",
                "type header x-acme-event: missing from the request");
}

TEST_F(JsonNormalizerTest, InvalidTypeNamesTheFullTypeAndItsOrigin) {
  // The prefixed type must be a valid event type (core/event_rules.h).
  config_ = {.type_pointer = "/type", .type_prefix = "acme."};
  ExpectInvalid(R"({"type":"order created"})",
                "event type \"acme.order created\" (from type pointer /type) "
                "is not valid: ' ' at byte 10 is not allowed: tokens are a-z "
                "0-9 _ -");
  ExpectInvalid(R"({"type":""})",
                "event type \"acme.\" (from type pointer /type) is not valid: "
                "it has an empty token (a leading, trailing or doubled \".\")");
  ExpectInvalid(R"({"type":"orders.>"})",
                "event type \"acme.orders.>\" (from type pointer /type) is not "
                "valid: \"*\" and \">\" are subscription wildcards, not "
                "allowed in a type");
  config_ = {.type_header = "x-acme-event"};
  headers_ = {{"x-acme-event", ""}};
  ExpectInvalid("{}",
                "event type \"\" (from type header x-acme-event) is not "
                "valid: it is empty");
  headers_ = {{"x-acme-event", "caf\xc3\xa9"}};
  ExpectInvalid("{}",
                "event type \"caf\\xc3\\xa9\" (from type header x-acme-event) "
                "is not valid: '\\xc3' at byte 3 is not allowed: tokens are "
                "a-z 0-9 _ -");
  headers_ = {{"x-acme-event", std::string(256, 'a')}};
  ExpectInvalid("{}",
                absl::StrCat("event type \"", std::string(160, 'a'),
                             "...\" (from type header x-acme-event) is not "
                             "valid: it is longer than 255 bytes"));
}

TEST_F(JsonNormalizerTest, IdPointerMustFindANonEmptyStringOrNumber) {
  // With an id pointer configured, every event must carry its id.
  config_.id_pointer = "/id";
  ExpectInvalid(R"({"type":"t"})", "id pointer /id: not found in the body");
  for (const auto& [value, got] : {std::pair{"{}", "object"},
                                   {"[1]", "array"},
                                   {"true", "boolean"},
                                   {"null", "null"}}) {
    ExpectInvalid(
        absl::StrCat(R"({"type":"t","id":)", value, "}"),
        absl::StrCat("id pointer /id: must be a string or a number, got ",
                     got));
  }
  ExpectInvalid(R"({"type":"t","id":""})", "id pointer /id: must not be empty");
}

TEST_F(JsonNormalizerTest, UncheckedBadPointerFailsAsInternalError) {
  // A config CheckJsonNormalizerConfig refuses is a bug, not bad input.
  config_ = {.type_pointer = "type"};
  EXPECT_EQ(Run(R"({"type":"t"})").status(),
            absl::InternalError("type_pointer \"type\" is not a JSON pointer: "
                                "JSON pointer must be empty or begin with '/' "
                                "- was: 'type'"));
  config_ = {.type_pointer = "/type", .id_pointer = "/a~2"};
  EXPECT_EQ(Run(R"({"type":"t"})").status(),
            absl::InternalError("id_pointer \"/a~2\" is not a JSON pointer: "
                                "escape character '~' must be followed with "
                                "'0' or '1'"));
}

// ---------------------------------------------------------------------------
// Config checks.

TEST(CheckJsonNormalizerConfigTest, AcceptsWorkableConfigs) {
  // One type source, valid pointers, a prefix that can start a type.
  for (const JsonNormalizerConfig& config :
       {JsonNormalizerConfig{.type_pointer = "/type"},
        JsonNormalizerConfig{.type_pointer = "/a~1b/0",
        .type_prefix = "acme.",
        .id_pointer = "/id"},
        JsonNormalizerConfig{.type_header = "X-Event",
        .type_prefix = "acme.orders_"}}) {
    EXPECT_EQ(CheckJsonNormalizerConfig(config), absl::OkStatus())
        << config.type_pointer << config.type_header;
  }
}

TEST(CheckJsonNormalizerConfigTest, RefusesConfigsNormalizeJsonCannotUse) {
  // Each refusal names the setting at fault.
  EXPECT_EQ(CheckJsonNormalizerConfig({}),
            absl::InvalidArgumentError(
                "set exactly one of type_pointer and type_header"));
  EXPECT_EQ(CheckJsonNormalizerConfig(
                {.type_pointer = "/type", .type_header = "x-type"}),
            absl::InvalidArgumentError(
                "set exactly one of type_pointer and type_header"));
  EXPECT_EQ(CheckJsonNormalizerConfig({.type_pointer = "type"}),
            absl::InvalidArgumentError(
                "type_pointer \"type\" is not a JSON pointer: JSON pointer "
                "must be empty or begin with '/' - was: 'type'"));
  EXPECT_EQ(
      CheckJsonNormalizerConfig({.type_pointer = "/t", .id_pointer = "/~"}),
      absl::InvalidArgumentError(
          "id_pointer \"/~\" is not a JSON pointer: escape character '~' "
          "must be followed with '0' or '1'"));
  EXPECT_EQ(CheckJsonNormalizerConfig(
                {.type_pointer = "/t", .type_prefix = "acme.."}),
            absl::InvalidArgumentError(
                "type_prefix \"acme..\" is not the start of a valid event "
                "type: it has an empty token (a leading, trailing or doubled "
                "\".\")"));
  EXPECT_EQ(CheckJsonNormalizerConfig(
                {.type_pointer = "/t", .type_prefix = "acme.*."}),
            absl::InvalidArgumentError(
                "type_prefix \"acme.*.\" is not the start of a valid event "
                "type: \"*\" and \">\" are subscription wildcards, not "
                "allowed in a type"));
}

// ---------------------------------------------------------------------------
// The event type rule every ingest path shares (core/event_rules.h).

TEST(EventTypeTest, AcceptsDotSeparatedTokensUpTo255Bytes) {
  // Lowercase letters, digits, "_" and "-"; a single token is fine.
  for (const std::string& type :
       {std::string("a"), std::string("com.example.order-created_v2"),
        std::string("-._"), std::string(255, 'a')}) {
    EXPECT_TRUE(IsValidEventType(type)) << type;
    EXPECT_EQ(CheckEventType(type), absl::OkStatus()) << type;
  }
}

TEST(EventTypeTest, RefusesWhatFiltersCouldNotMatch) {
  // Each refusal gives its reason.
  for (const auto& [type, reason] :
       {std::pair<std::string, std::string>{"", "it is empty"},
        {std::string(256, 'a'), "it is longer than 255 bytes"},
        {"a.*",
         "\"*\" and \">\" are subscription wildcards, not allowed "
         "in a type"},
        {"a.>x",
         "\"*\" and \">\" are subscription wildcards, not allowed "
         "in a type"},
        {".a", "it has an empty token (a leading, trailing or doubled \".\")"},
        {"a.", "it has an empty token (a leading, trailing or doubled \".\")"},
        {"a..b",
         "it has an empty token (a leading, trailing or doubled \".\")"},
        {"a/b", "'/' at byte 1 is not allowed: tokens are a-z 0-9 _ -"},
        {"com.example.Order",
         "'O' at byte 12 is not allowed: tokens are a-z 0-9 _ - (types are lowercase)"},
        {std::string("a\0b", 3),
         "'\\x00' at byte 1 is not allowed: tokens are a-z 0-9 _ -"}}) {
    EXPECT_FALSE(IsValidEventType(type)) << type;
    EXPECT_EQ(CheckEventType(type), absl::InvalidArgumentError(reason)) << type;
  }
}

}  // namespace
}  // namespace hookfan::ingress
