// hookfan-tail's command line and JSON output (clients/tail).

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
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
