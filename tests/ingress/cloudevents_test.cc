#include "ingress/cloudevents.h"

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hookfan/v1/event.pb.h"
#include "tests/proto_matchers.h"

namespace hookfan::ingress {
namespace {

using ::hookfan::v1::Event;

using ::hookfan::testing::EqualsProto;

constexpr std::string_view kStructured = "application/cloudevents+json";

// A request's headers: names as sent (any case), looked up by lowercase name.
class Headers {
 public:
  Headers() = default;
  Headers(std::initializer_list<std::pair<std::string, std::string>> entries) {
    for (const auto& [name, value] : entries) Add(name, value);
  }

  // Adds a header, replacing one of the same name.
  void Add(const std::string& name, const std::string& value) {
    const std::string lowercase = absl::AsciiStrToLower(name);
    if (!values_.contains(lowercase)) names_.push_back(name);
    values_[lowercase] = value;
  }

  std::optional<std::string_view> operator()(std::string_view name) const {
    const auto it = values_.find(std::string(name));
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }

  std::vector<std::string_view> names() const {
    return {names_.begin(), names_.end()};
  }

 private:
  std::vector<std::string> names_;
  std::map<std::string, std::string> values_;
};

absl::StatusOr<Event> ParseWith(std::string_view content_type,
                                const Headers& headers, std::string_view body) {
  const std::vector<std::string_view> names = headers.names();
  return ParseCloudEvent(
      content_type, [&headers](std::string_view name) { return headers(name); },
      body, names);
}

// Parses, failing the test on error.
Event Parse(std::string_view content_type, const Headers& headers,
            std::string_view body) {
  absl::StatusOr<Event> event = ParseWith(content_type, headers, body);
  EXPECT_TRUE(event.ok()) << event.status() << "\nbody: " << body;
  return event.ok() ? *std::move(event) : Event();
}

// A structured body with the required attributes, then `members`.
std::string StructuredBody(const std::string& members) {
  return absl::StrCat(R"({"specversion":"1.0","id":"e1","source":"/s",)",
                      R"("type":"com.example.created")",
                      members.empty() ? "" : ",", members, "}");
}

// Parses a structured event with the required attributes plus `members`.
Event ParseStructured(const std::string& members) {
  return Parse(kStructured, {}, StructuredBody(members));
}

void ExpectStructuredError(const std::string& body,
                           const std::string& message) {
  EXPECT_EQ(ParseWith(kStructured, {}, body).status(),
            absl::InvalidArgumentError(message))
      << "body: " << body;
}

// The binary-mode required headers, replaced or joined by `more`.
Headers BinaryHeaders(
    std::initializer_list<std::pair<std::string, std::string>> more = {}) {
  Headers headers = {{"ce-specversion", "1.0"},
                     {"ce-id", "e1"},
                     {"ce-source", "/s"},
                     {"ce-type", "com.example.created"}};
  for (const auto& [name, value] : more) headers.Add(name, value);
  return headers;
}

// ---------------------------------------------------------------------------
// Structured mode.

TEST(CloudEventsTest, StructuredEventMapsEveryAttribute) {
  // The JSON format's example, with content-type parameters and any case.
  const std::string body = R"({
    "specversion": "1.0",
    "type": "com.example.someevent",
    "source": "/mycontext",
    "id": "C234-1234-1234",
    "subject": "orders/42",
    "time": "2018-04-05T17:31:00.25+02:00",
    "dataschema": "https://example.com/schema.json",
    "comexampleextension1": "value",
    "datacontenttype": "application/json",
    "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": true}
  })";
  EXPECT_THAT(Parse("Application/CloudEvents+JSON; charset=utf-8", {}, body),
              EqualsProto(R"pb(
                source: "/mycontext"
                type: "com.example.someevent"
                subject: "orders/42"
                key: "orders/42"
                data_content_type: "application/json"
                data: '{"appinfoA":"abc","appinfoB":123,"appinfoC":true}'
                extensions { key: "comexampleextension1" value: "value" }
                source_event_id: "C234-1234-1234"
                source_time { seconds: 1522942260 nanos: 250000000 }
                data_schema: "https://example.com/schema.json"
              )pb"));
}

TEST(CloudEventsTest, StructuredDataWithoutContentTypeIsJson) {
  // Absent datacontenttype means application/json, which the event records.
  const Event event = ParseStructured(R"("data": [1, {"a": null}] )");
  EXPECT_EQ(event.data(), R"([1,{"a":null}])");
  EXPECT_EQ(event.data_content_type(), "application/json");
}

TEST(CloudEventsTest, StructuredJsonDataIsStoredAsJsonText) {
  // Under a JSON content type every value, a string too, is JSON text.
  for (const auto& [members, data] :
       {std::pair{R"("data":"I'm just a string")", R"("I'm just a string")"},
        {R"("data":null)", "null"},
        {R"("data":5,"datacontenttype":"text/json")", "5"},
        {R"("data":{"b":[]},"datacontenttype":"application/vnd.x+json")",
         R"({"b":[]})"},
        {R"("data":"\u00e9","datacontenttype":"application/json; charset=x")",
         "\"\xc3\xa9\""}}) {
    EXPECT_EQ(ParseStructured(members).data(), data) << members;
  }
}

TEST(CloudEventsTest, StructuredStringDataUnderOtherContentTypeIsItsBytes) {
  // A string under a non-JSON type is the content itself, not JSON text.
  const Event event = ParseStructured(
      R"("datacontenttype":"text/plain","data":"hello\nworld")");
  EXPECT_EQ(event.data(), "hello\nworld");
  EXPECT_EQ(event.data_content_type(), "text/plain");
}

TEST(CloudEventsTest, StructuredDataBase64IsDecoded) {
  // Binary data arrives base64-encoded; datacontenttype stays as given.
  const Event event = ParseStructured(
      R"("datacontenttype":"application/octet-stream","data_base64":"AAFoaf8=")");
  EXPECT_EQ(event.data(), std::string("\x00\x01hi\xff", 5));
  EXPECT_EQ(event.data_content_type(), "application/octet-stream");
  const Event untyped = ParseStructured(R"("data_base64":"aGk=")");
  EXPECT_EQ(untyped.data(), "hi");
  EXPECT_EQ(untyped.data_content_type(), "");
}

TEST(CloudEventsTest, StructuredEventWithoutDataHasNone) {
  // No data member: no data and no implied content type.
  const Event event = ParseStructured("");
  EXPECT_EQ(event.data(), "");
  EXPECT_EQ(event.data_content_type(), "");
  EXPECT_FALSE(event.has_source_time());
}

TEST(CloudEventsTest, ExtensionsKeepTheirStringForm) {
  // Strings verbatim, integers and booleans as JSON text, null is absent.
  const Event event = ParseStructured(
      R"("comexampleothervalue":5,"negative":-3,"big":18446744073709551615,)"
      R"("flag":true,"off":false,"traceparent":"00-ab-cd-01","unset":null)");
  EXPECT_THAT(event.extensions(),
              ::testing::UnorderedElementsAre(
                  ::testing::Pair("comexampleothervalue", "5"),
                  ::testing::Pair("negative", "-3"),
                  ::testing::Pair("big", "18446744073709551615"),
                  ::testing::Pair("flag", "true"), ::testing::Pair("off", "false"),
                  ::testing::Pair("traceparent", "00-ab-cd-01")));
}

TEST(CloudEventsTest, PartitionKeyExtensionIsTheKey) {
  // The partitioning extension orders events; without it the subject does.
  EXPECT_EQ(ParseStructured(R"("subject":"s1","partitionkey":"p1")").key(),
            "p1");
  EXPECT_EQ(ParseStructured(R"("subject":"s1","partitionkey":"")").key(), "s1");
  EXPECT_EQ(ParseStructured(R"("subject":"s1")").key(), "s1");
  EXPECT_EQ(ParseStructured("").key(), "");
}

TEST(CloudEventsTest, NullOrEmptyOptionalAttributesAreAbsent) {
  // The JSON format reads null as unset; hookfan reads "" the same way.
  EXPECT_THAT(ParseStructured(R"("subject":null,"time":null,"dataschema":null,)"
                              R"("datacontenttype":null,"data_base64":null)"),
              EqualsProto(R"pb(
                source: "/s"
                type: "com.example.created"
                source_event_id: "e1"
              )pb"));
  EXPECT_THAT(ParseStructured(R"("subject":"","time":"","dataschema":"",)"
                              R"("datacontenttype":"","data":{})"),
              EqualsProto(R"pb(
                source: "/s"
                type: "com.example.created"
                source_event_id: "e1"
                data_content_type: "application/json"
                data: "{}"
              )pb"));
}

TEST(CloudEventsTest, StructuredContentTypeWinsOverCeHeaders) {
  // With a structured content type the body is the event; ce-* is ignored.
  const Event event =
      Parse(kStructured, {{"ce-specversion", "0.3"}, {"ce-id", "other"}},
            StructuredBody(""));
  EXPECT_EQ(event.source_event_id(), "e1");
}

// ---------------------------------------------------------------------------
// Binary mode.

TEST(BinaryCloudEventsTest, HeadersMapToAttributesAndBodyIsData) {
  // The binding's example: ce-* attributes, Content-Type, body verbatim.
  const std::string body = "<much wow=\"xml\"/>";
  EXPECT_THAT(Parse("application/xml",
                    {{"Ce-SpecVersion", "1.0"},
                     {"ce-type", "com.example.someevent"},
                     {"ce-source", "/mycontext"},
                     {"ce-id", "B234-1234-1234"},
                     {"ce-time", "2018-04-05T17:31:00Z"},
                     {"ce-subject", "orders/42"},
                     {"ce-dataschema", "https://example.com/s.xsd"},
                     {"CE-ComExampleExtension1", "value"},
                     {"ce-comexampleothervalue", "5"},
                     {"content-type", "application/xml"},
                     {"x-other", "ignored"}},
                    body),
              EqualsProto(R"pb(
                source: "/mycontext"
                type: "com.example.someevent"
                subject: "orders/42"
                key: "orders/42"
                data_content_type: "application/xml"
                data: "<much wow=\"xml\"/>"
                extensions { key: "comexampleextension1" value: "value" }
                extensions { key: "comexampleothervalue" value: "5" }
                source_event_id: "B234-1234-1234"
                source_time { seconds: 1522949460 }
                data_schema: "https://example.com/s.xsd"
              )pb"));
}

TEST(BinaryCloudEventsTest, HeaderValuesArePercentDecoded) {
  // The binding percent-encodes non-ASCII, space, '"' and '%' in values.
  const Event event =
      Parse("text/plain",
            BinaryHeaders({{"ce-subject", "caf%C3%A9%20menu%25"},
                           {"ce-source", "/s%2Fx"},
                           {"ce-partitionkey", "k%201"},
                           {"ce-id", "%22e1%22"},
                           {"ce-time", "2018-04-05T17%3A31%3A00%2b02%3a00"}}),
            "hi");
  EXPECT_EQ(event.subject(), "caf\xc3\xa9 menu%");
  EXPECT_EQ(event.source(), "/s/x");
  EXPECT_EQ(event.source_event_id(), "\"e1\"");
  EXPECT_EQ(event.extensions().at("partitionkey"), "k 1");
  EXPECT_EQ(event.key(), "k 1");
  EXPECT_EQ(event.source_time().seconds(), 1522942260);
}

TEST(BinaryCloudEventsTest, ExtensionsNeedTheHeaderNames) {
  // A lookup alone cannot find extension headers; the names list can.
  const Headers headers = BinaryHeaders({{"ce-traceparent", "00-ab"}});
  const absl::StatusOr<Event> event = ParseCloudEvent(
      "text/plain", [&headers](std::string_view name) { return headers(name); },
      "hi");
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_THAT(event->extensions(), ::testing::IsEmpty());
  EXPECT_THAT(Parse("text/plain", headers, "hi").extensions(),
              ::testing::ElementsAre(::testing::Pair("traceparent", "00-ab")));
}

TEST(BinaryCloudEventsTest, CeDataContentTypeIsIgnored) {
  // Content-Type carries datacontenttype in binary mode, even when absent.
  const Event event = Parse(
      "", BinaryHeaders({{"ce-datacontenttype", "application/json"}}), "{}");
  EXPECT_EQ(event.data_content_type(), "");
  EXPECT_THAT(event.extensions(), ::testing::IsEmpty());
  EXPECT_EQ(event.data(), "{}");
}

TEST(BinaryCloudEventsTest, EmptyOptionalHeadersAreAbsent) {
  // An empty ce-subject, ce-time or ce-dataschema says nothing.
  EXPECT_THAT(
      Parse("",
            BinaryHeaders(
                {{"ce-subject", ""}, {"ce-time", ""}, {"ce-dataschema", ""}}),
            ""),
      EqualsProto(R"pb(
        source: "/s"
        type: "com.example.created"
        source_event_id: "e1"
      )pb"));
}

// ---------------------------------------------------------------------------
// Time.

TEST(CloudEventsTest, TimeAcceptsRfc3339Forms) {
  // Any offset, any fraction length, "T" and "Z" in either case; a leap
  // second reads as the second after it.
  for (const auto& [text, seconds, nanos] :
       {std::tuple<const char*, int64_t, int32_t>{"2018-04-05T17:31:00Z",
                                                  1522949460, 0},
        {"2018-04-05t17:31:00z", 1522949460, 0},
        {"2018-04-05T17:31:00+02:00", 1522942260, 0},
        {"2018-04-05T17:31:00-05:30", 1522969260, 0},
        {"2018-04-05T17:31:00.123456789Z", 1522949460, 123456789},
        {"2018-04-05T17:31:00.5Z", 1522949460, 500000000},
        {"2016-12-31T23:59:60Z", 1483228800, 0},  // a leap second
        {"9999-12-31T23:59:59Z", 253402300799, 0}}) {
    const Event event =
        ParseStructured(absl::StrCat(R"("time":")", text, R"(")"));
    EXPECT_EQ(event.source_time().seconds(), seconds) << text;
    EXPECT_EQ(event.source_time().nanos(), nanos) << text;
  }
}

TEST(CloudEventsTest, TimeInAnotherFormatIsRejected) {
  // RFC 3339 only: full date, full time, and an offset.
  for (const char* text :
       {"yesterday", "2018-04-05", "2018-04-05T17:31:00",
        "2018-04-05 17:31:00Z", " 2018-04-05T17:31:00Z",
        "2018-04-05T17:31:00Z ", "2018-04-05T17:31:00+0200",
        "2018-04-05T17:31:00.Z", "2018-4-05T17:31:00Z", "2018-13-05T17:31:00Z",
        "2018-02-30T17:31:00Z", "2018-04-05T24:00:00Z",
        "2018-04-05T17:31:00+24:00"}) {
    ExpectStructuredError(
        StructuredBody(absl::StrCat(R"("time":")", text, R"(")")),
        absl::StrCat("attribute \"time\" must be an RFC 3339 timestamp like "
                     "\"2018-04-05T17:31:00Z\", got \"",
                     text, "\""));
  }
  ExpectStructuredError(StructuredBody(R"("time":1522949460)"),
                        "attribute \"time\" must be a string, got number");
}

TEST(CloudEventsTest, TimeOutsideTimestampRangeIsRejected) {
  // google.protobuf.Timestamp holds years 0001 to 9999 in UTC.
  ExpectStructuredError(
      StructuredBody(R"("time":"0001-01-01T00:00:00+01:00")"),
      "attribute \"time\" is outside years 0001 to 9999 in UTC");
  ExpectStructuredError(
      StructuredBody(R"("time":"9999-12-31T23:59:59-01:00")"),
      "attribute \"time\" is outside years 0001 to 9999 in UTC");
}

// ---------------------------------------------------------------------------
// Requests that are no CloudEvent hookfan takes.

TEST(CloudEventsTest, BatchModeIsNotSupported) {
  // One event per request; the caller answers 415.
  EXPECT_EQ(ParseWith("application/cloudevents-batch+json", {}, "[]").status(),
            absl::FailedPreconditionError(
                "batch mode (application/cloudevents-batch+json) is not "
                "supported: send one event per request"));
}

TEST(CloudEventsTest, OtherStructuredFormatsAreNotSupported) {
  // Only the JSON event format is read, even with ce-specversion present.
  EXPECT_EQ(ParseWith("application/cloudevents+xml; charset=utf-8",
                      BinaryHeaders(), "<e/>")
                .status(),
            absl::FailedPreconditionError(
                "structured mode format application/cloudevents+xml is not "
                "supported: use application/cloudevents+json or binary mode"));
}

TEST(CloudEventsTest, RequestInNeitherModeIsRejected) {
  // No structured content type and no ce-specversion: say what is expected.
  EXPECT_EQ(ParseWith("application/json", {{"ce-id", "e1"}}, "{}").status(),
            absl::FailedPreconditionError(
                "not a CloudEvent: expected Content-Type "
                "application/cloudevents+json (structured mode) or a "
                "ce-specversion header (binary mode), got Content-Type "
                "\"application/json\""));
  EXPECT_EQ(ParseWith("", {}, "{}").status(),
            absl::FailedPreconditionError(
                "not a CloudEvent: expected Content-Type "
                "application/cloudevents+json (structured mode) or a "
                "ce-specversion header (binary mode), got no Content-Type"));
}

// ---------------------------------------------------------------------------
// Malformed structured events.

TEST(CloudEventsTest, StructuredBodyMustBeAJsonObject) {
  // The same JSON checks as every JSON source.
  ExpectStructuredError("{\"id\":",
                        "body is not valid JSON: at byte 7: syntax error "
                        "while parsing value - unexpected end of input; "
                        "expected '[', '{', or a literal");
  ExpectStructuredError("[]", "body must be a JSON object, got array");
  ExpectStructuredError(
      StructuredBody(absl::StrCat(R"("data":)", std::string(32, '['),
                                  std::string(32, ']'))),
      "JSON nested too deeply (more than 32 levels)");
}

TEST(CloudEventsTest, StructuredBodyWithNulByteAfterTheJsonIsRejected) {
  // Found by fuzz/cloudevents_fuzzer: nlohmann stops at a NUL byte, so an
  // event followed by NUL and junk passed as JSON
  // (fuzz/regressions/cloudevents/nul_after_structured_event).
  const std::string body = StructuredBody("");
  ExpectStructuredError(
      absl::StrCat(body, std::string("\0", 1), "[[["),
      absl::StrCat("body is not valid JSON: at byte ", body.size() + 1,
                   ": syntax error while parsing value - unexpected NUL "
                   "byte; expected end of input"));
}

TEST(CloudEventsTest, MissingRequiredAttributeIsNamed) {
  // specversion, id, source and type are required; null counts as missing.
  ExpectStructuredError(R"({"id":"e1","source":"/s","type":"t"})",
                        "missing required attribute \"specversion\"");
  ExpectStructuredError(R"({"specversion":"1.0","source":"/s","type":"t"})",
                        "missing required attribute \"id\"");
  ExpectStructuredError(
      R"({"specversion":"1.0","id":"e1","source":null,"type":"t"})",
      "missing required attribute \"source\"");
  ExpectStructuredError(R"({"specversion":"1.0","id":"e1","source":"/s"})",
                        "missing required attribute \"type\"");
}

TEST(CloudEventsTest, RequiredAttributeMustBeANonEmptyString) {
  // The message names the attribute and what came instead.
  ExpectStructuredError(
      R"({"specversion":"1.0","id":7,"source":"/s","type":"t"})",
      "attribute \"id\" must be a string, got number");
  ExpectStructuredError(
      R"({"specversion":"1.0","id":"e1","source":"","type":"t"})",
      "attribute \"source\" must not be empty");
  ExpectStructuredError(
      R"({"specversion":"1.0","id":"e1","source":"/s","type":["t"]})",
      "attribute \"type\" must be a string, got array");
  ExpectStructuredError(StructuredBody(R"("subject":{})"),
                        "attribute \"subject\" must be a string, got object");
  ExpectStructuredError(
      StructuredBody(R"("datacontenttype":true)"),
      "attribute \"datacontenttype\" must be a string, got boolean");
}

TEST(CloudEventsTest, OnlySpecVersionOneIsRead) {
  // 0.3 and others differ in attributes; checked before anything else.
  ExpectStructuredError(R"({"specversion":"0.3"})",
                        "attribute \"specversion\" must be \"1.0\", got "
                        "\"0.3\"");
  ExpectStructuredError(R"({"specversion":1.0})",
                        "attribute \"specversion\" must be a string, got "
                        "number");
}

TEST(CloudEventsTest, TypeIsStoredLowercase) {
  // Every stored type is lowercase (event.proto); a sender's is lowercased.
  EXPECT_EQ(Parse(kStructured, {},
                  R"({"specversion":"1.0","id":"e1","source":"/s","type":"com.GitHub.Push"})")
                .type(),
            "com.github.push");
}

TEST(CloudEventsTest, InvalidTypeIsRejectedWithTheReason) {
  // Types must stay matchable by subscription filters.
  for (const auto& [type, reason] :
       {std::pair{"com..x",
                  "it has an empty token (a leading, trailing or "
                  "doubled \".\")"},
        {"com.*",
         "\"*\" and \">\" are subscription wildcards, not allowed "
         "in a type"},
        {"com.a b",
         "' ' at byte 5 is not allowed: tokens are a-z 0-9 _ "
         "-"}}) {
    ExpectStructuredError(
        absl::StrCat(R"({"specversion":"1.0","id":"e1","source":"/s",)",
                     R"("type":")", type, R"("})"),
        absl::StrCat("attribute \"type\" is not a valid event type: ", reason));
  }
}

TEST(CloudEventsTest, DataAndDataBase64AreMutuallyExclusive) {
  // Either JSON/text data or binary data, never both.
  ExpectStructuredError(
      StructuredBody(R"("data":null,"data_base64":"aGk=")"),
      "attributes \"data\" and \"data_base64\" are mutually exclusive");
}

TEST(CloudEventsTest, NonStringDataUnderNonJsonContentTypeIsRejected) {
  // Only a string can carry text/plain content.
  ExpectStructuredError(
      StructuredBody(R"("datacontenttype":"text/plain","data":{"a":1})"),
      "attribute \"data\" must be a string when datacontenttype "
      "\"text/plain\" is not JSON, got object");
}

TEST(CloudEventsTest, BadDataBase64IsRejected) {
  // data_base64 is a base64 string.
  ExpectStructuredError(StructuredBody(R"("data_base64":"a*b")"),
                        "attribute \"data_base64\" is not valid base64");
  ExpectStructuredError(
      StructuredBody(R"("data_base64":[1])"),
      "attribute \"data_base64\" must be a string, got array");
}

TEST(CloudEventsTest, ExtensionNameMustFollowTheCloudEventsRule) {
  // 1 to 20 lowercase letters or digits; anything else is refused.
  for (const char* name : {"Foo", "x_y", "trace-id", "abcdefghij0123456789x"}) {
    ExpectStructuredError(
        StructuredBody(absl::StrCat("\"", name, R"(":"v")")),
        absl::StrCat("attribute name \"", name,
                     "\" is not allowed: extension attribute names are 1 to "
                     "20 lowercase letters or digits"));
  }
  EXPECT_EQ(ParseStructured(R"("abcdefghij0123456789":"v")")
                .extensions()
                .at("abcdefghij0123456789"),
            "v");
}

TEST(CloudEventsTest, ExtensionValueMustBeStringIntegerOrBoolean) {
  // The CloudEvents type system has no objects, arrays or fractions.
  for (const auto& [value, got] : {std::pair{"{}", "object"},
                                   {"[1]", "array"},
                                   {"1.5", "non-integer number"}}) {
    ExpectStructuredError(
        StructuredBody(absl::StrCat(R"("ext":)", value)),
        absl::StrCat("extension attribute \"ext\" must be a string, an "
                     "integer or a boolean, got ",
                     got));
  }
}

// ---------------------------------------------------------------------------
// Malformed binary events.

void ExpectBinaryError(std::string_view content_type, const Headers& headers,
                       const std::string& message) {
  EXPECT_EQ(ParseWith(content_type, headers, "").status(),
            absl::InvalidArgumentError(message));
}

TEST(BinaryCloudEventsTest, MissingOrEmptyRequiredHeaderIsNamed) {
  // ce-id, ce-source and ce-type are required and non-empty.
  ExpectBinaryError("", {{"ce-specversion", "1.0"}},
                    "missing required header ce-id");
  ExpectBinaryError(
      "", {{"ce-specversion", "1.0"}, {"ce-id", "e1"}, {"ce-type", "t"}},
      "missing required header ce-source");
  ExpectBinaryError("", BinaryHeaders({{"ce-type", ""}}),
                    "header ce-type must not be empty");
  ExpectBinaryError("", BinaryHeaders({{"ce-specversion", ""}}),
                    "header ce-specversion must not be empty");
}

TEST(BinaryCloudEventsTest, HeaderValuesAreChecked) {
  // The same rules as in structured mode, naming the header.
  ExpectBinaryError("", BinaryHeaders({{"ce-specversion", "0.3"}}),
                    "header ce-specversion must be \"1.0\", got \"0.3\"");
  ExpectBinaryError("", BinaryHeaders({{"ce-type", "a.>"}}),
                    "header ce-type is not a valid event type: \"*\" and "
                    "\">\" are subscription wildcards, not allowed in a type");
  ExpectBinaryError("", BinaryHeaders({{"ce-time", "2018-04-05"}}),
                    "header ce-time must be an RFC 3339 timestamp like "
                    "\"2018-04-05T17:31:00Z\", got \"2018-04-05\"");
}

TEST(BinaryCloudEventsTest, MalformedPercentEncodingIsRejected) {
  // "%" must start %XX; the offset points at it.
  for (const char* subject : {"50%", "a%2", "a%zz"}) {
    ExpectBinaryError(
        "", BinaryHeaders({{"ce-subject", subject}}),
        absl::StrCat("header ce-subject has a malformed "
                     "percent-encoding at byte ",
                     std::string_view(subject).find('%'), " (expected %XX)"));
  }
}

TEST(BinaryCloudEventsTest, ValuesMustBeUtf8) {
  // Event strings are protobuf strings: UTF-8 only, after decoding too.
  ExpectBinaryError("", BinaryHeaders({{"ce-subject", "%FF"}}),
                    "header ce-subject is not valid UTF-8 after "
                    "percent-decoding");
  ExpectBinaryError("", BinaryHeaders({{"ce-source", "/s\xc3"}}),
                    "header ce-source is not valid UTF-8 after "
                    "percent-decoding");
  ExpectBinaryError("", BinaryHeaders({{"ce-id", "%ED%A0%80"}}),
                    "header ce-id is not valid UTF-8 after percent-decoding");
  ExpectBinaryError("text/plain; x=\xff", BinaryHeaders(),
                    "Content-Type is not valid UTF-8");
}

TEST(BinaryCloudEventsTest, ExtensionHeaderNameMustFollowTheRule) {
  // ce-<name> names an extension only when <name> is a valid one.
  ExpectBinaryError("", BinaryHeaders({{"ce-trace-id", "x"}}),
                    "header ce-trace-id: extension attribute names are 1 to "
                    "20 lowercase letters or digits");
  ExpectBinaryError("", BinaryHeaders({{"ce-", "x"}}),
                    "header ce-: extension attribute names are 1 to 20 "
                    "lowercase letters or digits");
  ExpectBinaryError("", BinaryHeaders({{"ce-data", "x"}}),
                    "header ce-data: \"data\" is reserved for the event "
                    "payload");
}

}  // namespace
}  // namespace hookfan::ingress
