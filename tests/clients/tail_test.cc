// hookfan-tail's command line and JSON output (clients/tail).

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "clients/tail/options.h"
#include "clients/tail/printer.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace hookfan::tail {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(TailOptionsTest, BodyIsJsonUnlessBase64IsAsked) {
  // --body picks how JSON output shows data; json is the default.
  absl::StatusOr<Options> none = ParseOptions({});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->body, Body::kJson);
  absl::StatusOr<Options> base64 = ParseOptions({"--body", "base64"});
  ASSERT_TRUE(base64.ok()) << base64.status();
  EXPECT_EQ(base64->body, Body::kBase64);
  absl::StatusOr<Options> json = ParseOptions({"--body=json"});
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->body, Body::kJson);
  EXPECT_EQ(ParseOptions({"--body", "hex"}).status(),
            absl::InvalidArgumentError("--body: expected json or base64, got \"hex\""));
  EXPECT_THAT(kUsage, HasSubstr("--body json|base64"));
}

TEST(TailOptionsTest, RepeatedFilterFlagsAccumulate) {
  // Each --type, --action, --platform and --organization adds to the filter.
  absl::StatusOr<Options> o =
      ParseOptions({"--type", "a.*", "--type=b.>", "--action", "emm_*", "--platform", "emm",
                    "--platform", "PLATFORM_APPLE", "--organization", "o1", "--organization",
                    "o2"});
  ASSERT_TRUE(o.ok()) << o.status();
  const v1::Filter& f = o->request.filter();
  EXPECT_THAT(f.types(), ::testing::ElementsAre("a.*", "b.>"));
  EXPECT_THAT(f.actions(), ::testing::ElementsAre("emm_*"));
  EXPECT_THAT(f.platforms(),
              ::testing::ElementsAre(v1::PLATFORM_ANDROID, v1::PLATFORM_APPLE));
  EXPECT_THAT(f.organization_ids(), ::testing::ElementsAre("o1", "o2"));
}

TEST(TailOptionsTest, DeviceFlagsAccumulateIntoTheDeviceLists) {
  absl::StatusOr<Options> o =
      ParseOptions({"--serial", "C02SERIAL", "--udid", "U-1", "--udid=U-2", "--device",
                    "applivery:5f63"});
  ASSERT_TRUE(o.ok()) << o.status();
  const v1::Filter& f = o->request.filter();
  EXPECT_THAT(f.serial_numbers(), ::testing::ElementsAre("C02SERIAL"));
  EXPECT_THAT(f.udids(), ::testing::ElementsAre("U-1", "U-2"));
  EXPECT_THAT(f.device_ids(), ::testing::ElementsAre("applivery:5f63"));
}

TEST(TailOptionsTest, SingleValuedFlagsTakeTheLastAndDefaultsHold) {
  absl::StatusOr<Options> none = ParseOptions({});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->server, "127.0.0.1:9090");
  EXPECT_EQ(none->connect_timeout_seconds, 5);
  EXPECT_FALSE(none->max_events.has_value());
  EXPECT_EQ(none->output, Output::kAuto);
  EXPECT_EQ(none->color, Color::kAuto);
  EXPECT_FALSE(none->help);
  absl::StatusOr<Options> o = ParseOptions(
      {"--server", "a:1", "--server=b:2", "--token", "t", "--group", "g", "--max", "3",
       "--connect-timeout", "9", "--output", "pretty", "--colour", "never", "--color=always"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->server, "b:2");
  EXPECT_EQ(o->token, "t");
  EXPECT_EQ(o->group, "g");
  EXPECT_EQ(o->max_events, 3u);
  EXPECT_EQ(o->connect_timeout_seconds, 9);
  EXPECT_EQ(o->output, Output::kPretty);
  EXPECT_EQ(o->color, Color::kAlways);
}

TEST(TailOptionsTest, FromIsEarliestLatestOrTheSequenceToStartAt) {
  absl::StatusOr<Options> earliest = ParseOptions({"--from", "earliest"});
  ASSERT_TRUE(earliest.ok()) << earliest.status();
  EXPECT_TRUE(earliest->request.start().earliest());
  absl::StatusOr<Options> latest = ParseOptions({"--from=latest"});
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_TRUE(latest->request.start().latest());
  absl::StatusOr<Options> snapshot = ParseOptions({"--from", "snapshot"});
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_TRUE(snapshot->request.start().snapshot());
  absl::StatusOr<Options> at = ParseOptions({"--from", "3"});
  ASSERT_TRUE(at.ok()) << at.status();
  EXPECT_EQ(at->request.start().after_sequence(), 2u);
  for (const char* bad : {"0", "-5", "soon"}) {
    EXPECT_EQ(ParseOptions({"--from", bad}).status(),
              absl::InvalidArgumentError(absl::StrCat(
                  "--from: expected earliest, latest, snapshot or a sequence >= 1, got \"", bad, "\"")));
  }
}

TEST(TailOptionsTest, BadValuesAreRefusedNamingTheFlag) {
  EXPECT_EQ(ParseOptions({"--platform", "beos"}).status(),
            absl::InvalidArgumentError(
                "--platform: unknown platform \"beos\" (android, apple, windows, aosp, other)"));
  EXPECT_EQ(ParseOptions({"--output", "xml"}).status(),
            absl::InvalidArgumentError("--output: expected json or pretty, got \"xml\""));
  EXPECT_EQ(ParseOptions({"--colour", "pink"}).status(),
            absl::InvalidArgumentError(
                "--color: expected auto, always or never, got \"pink\""));
  EXPECT_EQ(ParseOptions({"--max", "0"}).status(),
            absl::InvalidArgumentError("--max: expected a positive count, got \"0\""));
  EXPECT_EQ(ParseOptions({"--connect-timeout", "x"}).status(),
            absl::InvalidArgumentError("--connect-timeout: expected seconds > 0, got \"x\""));
  // A refused value stops at the first: a later good one does not mend it.
  EXPECT_EQ(ParseOptions({"--output", "xml", "--output", "json"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TailOptionsTest, UnknownFlagsAndMissingValuesAreErrors) {
  EXPECT_EQ(ParseOptions({"--bogus"}).status(), absl::InvalidArgumentError("unknown flag --bogus"));
  EXPECT_EQ(ParseOptions({"--server", "a:1", "--verbose=3"}).status(),
            absl::InvalidArgumentError("unknown flag --verbose"));
  absl::Status missing = ParseOptions({"--server"}).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.message(), HasSubstr("--server"));
}

TEST(TailOptionsTest, HelpIsReportedButDoesNotHideABadFlag) {
  // main prints the usage for --help, and the error when there is one.
  for (const char* help : {"--help", "-h"}) {
    absl::StatusOr<Options> o = ParseOptions({"--type", "a", help});
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_TRUE(o->help);
  }
  EXPECT_EQ(ParseOptions({"--help", "--max", "0"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

class TailJsonOutputTest : public ::testing::Test {
 protected:
  TailJsonOutputTest() {
    event_.set_id("01a21a5a-5965-7000-9a6a-c7b991c35543");
    event_.set_sequence(7);
    event_.set_type("applivery.device.enrolled");
    event_.set_data_content_type("application/json");
  }

  // The exact protobuf JSON mapping of `event`.
  static std::string ProtoJson(const v1::Event& event) {
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = false;
    std::string line;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(event, &line, options).ok());
    return line;
  }

  v1::Event event_;
};

TEST_F(TailJsonOutputTest, JsonBodyIsAJsonValueInBodyAsSent) {
  // Keys keep their order, numbers their digits; only whitespace between
  // tokens goes, so the line stays one line.
  event_.set_data("{\n  \"z\": 1,\n  \"a\": [123456789012345678901234567890, 1.50],\n"
                  "  \"s\": \"two  spaces\\n\\\"q\\\"\"\n}\n");
  const std::string line = FormatJson(event_);
  EXPECT_EQ(line,
            "{\"id\":\"01a21a5a-5965-7000-9a6a-c7b991c35543\",\"sequence\":\"7\","
            "\"type\":\"applivery.device.enrolled\",\"dataContentType\":\"application/json\","
            "\"body\":{\"z\":1,\"a\":[123456789012345678901234567890,1.50],"
            "\"s\":\"two  spaces\\n\\\"q\\\"\"}}");
  const nlohmann::json parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["body"]["s"], "two  spaces\n\"q\"");
  EXPECT_FALSE(parsed.contains("data"));
}

TEST_F(TailJsonOutputTest, AnyJsonMediaTypeCounts) {
  for (const char* type : {"application/json; charset=utf-8", "Application/JSON",
                           "application/cloudevents+json", "text/json"}) {
    event_.set_data_content_type(type);
    event_.set_data("[1, 2]");
    EXPECT_THAT(FormatJson(event_), HasSubstr(",\"body\":[1,2]}")) << type;
  }
}

TEST_F(TailJsonOutputTest, DataThatIsNotJsonStaysBase64) {
  // Another media type, or bytes that do not parse, print as protobuf maps them.
  event_.set_data_content_type("text/plain");
  event_.set_data("{\"a\":1}");
  EXPECT_EQ(FormatJson(event_), ProtoJson(event_));
  event_.set_data_content_type("application/json");
  for (const std::string data : {std::string("{\"a\":"), std::string("{}\0junk", 7),
                                 std::string("")}) {
    event_.set_data(data);
    EXPECT_EQ(FormatJson(event_), ProtoJson(event_)) << absl::CEscape(data);
  }
  event_.set_data("{\"a\":1}");
  event_.set_data_content_type("");
  EXPECT_THAT(FormatJson(event_), HasSubstr("\"data\":\"eyJhIjoxfQ==\""));
}

TEST_F(TailJsonOutputTest, Base64IsTheExactProtobufMapping) {
  // --body base64: what protobuf's JSON parser reads back into the event.
  event_.set_data("{\"a\": 1}");
  const std::string line = FormatJson(event_, Body::kBase64);
  EXPECT_EQ(line, ProtoJson(event_));
  EXPECT_THAT(line, Not(HasSubstr("\"body\"")));
  v1::Event parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok());
  EXPECT_EQ(parsed.data(), event_.data());
}

TEST_F(TailJsonOutputTest, DeeplyNestedJsonBodyPrintsWithoutRecursion) {
  // A published event's data may nest as deep as its sender likes.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  event_.set_data(deep);
  EXPECT_THAT(FormatJson(event_), HasSubstr(",\"body\":" + deep + "}"));
}

}  // namespace
}  // namespace hookfan::tail
