#pragma once

#include <string>
#include <type_traits>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"

namespace hookfan::testing {

// Matches a message equal to the text-format `text`, printing the difference.
MATCHER_P(EqualsProto, text, "") {
  std::remove_cvref_t<decltype(arg)> expected;
  if (!google::protobuf::TextFormat::ParseFromString(std::string(text),
                                                     &expected)) {
    *result_listener << "expected text does not parse";
    return false;
  }
  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(expected, arg)) return true;
  *result_listener << diff;
  return false;
}

}  // namespace hookfan::testing
