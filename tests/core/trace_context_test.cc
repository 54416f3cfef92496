#include "core/trace_context.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

// W3C Trace Context on events: which values are kept, and what an event
// without a valid trace gets.

namespace hookfan::broker {
namespace {

constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextTest, TraceparentFollowsTheSpec) {
  EXPECT_TRUE(IsValidTraceparent(kParent));
  EXPECT_TRUE(IsValidTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
  // A later version: the same first 55 characters, then nothing or "-…".
  EXPECT_TRUE(IsValidTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_TRUE(IsValidTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what"));
  EXPECT_FALSE(IsValidTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01what"));
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",   // 00 has nothing more
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero parent id
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // upper case
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",     // short flags
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    // not hex
           "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
       }) {
    EXPECT_FALSE(IsValidTraceparent(bad)) << bad;
  }
}

TEST(TraceContextTest, TracestateFollowsTheSpec) {
  EXPECT_TRUE(IsValidTracestate(""));
  EXPECT_TRUE(IsValidTracestate("congo=t61rcWkgMzE"));
  EXPECT_TRUE(IsValidTracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE ,,"));
  EXPECT_TRUE(IsValidTracestate("fw529a3039@dt=00f067aa0ba902b7,a*b/c_d-e=v a l"));
  std::string members;
  for (int i = 0; i < 32; ++i) members += "k" + std::to_string(i) + "=v,";
  EXPECT_TRUE(IsValidTracestate(members));
  EXPECT_FALSE(IsValidTracestate(members + "k32=v"));  // 33 members
  for (const char* bad : {
           "congo",                    // no value
           "Congo=1",                  // key starts upper case
           "1congo=1",                 // a simple key starts with a letter
           "congo=",                   // empty value
           "congo=a,b",                // "b" has no "="
           "congo=a=b",                // "=" in the value
           "congo=a\x01b",             // a control character
           "congo=1,congo=2",          // a key twice
           "t@UPPER=1",                // system id lower case
           "t@abcdefghijklmno=1",      // system id over 14
       }) {
    EXPECT_FALSE(IsValidTracestate(bad)) << bad;
  }
  EXPECT_FALSE(IsValidTracestate(std::string(513, 'a')));
  EXPECT_FALSE(IsValidTracestate("k=" + std::string(257, 'v')));
}

TEST(TraceContextTest, NewTracesAreValidSampledAndDistinct) {
  std::set<std::string> trace_ids;
  for (int i = 0; i < 100; ++i) {
    const std::string parent = NewTraceparent();
    EXPECT_TRUE(IsValidTraceparent(parent)) << parent;
    EXPECT_TRUE(parent.starts_with("00-") && parent.ends_with("-01")) << parent;
    trace_ids.insert(std::string(TraceIdOf(parent)));
  }
  EXPECT_EQ(trace_ids.size(), 100u);
  EXPECT_EQ(TraceIdOf(kParent), "4bf92f3577b34da6a3ce929d0e0e4736");
}

v1::Event WithTrace(const char* parent, const char* state) {
  v1::Event event;
  if (parent != nullptr) (*event.mutable_extensions())[kTraceparent] = parent;
  if (state != nullptr) (*event.mutable_extensions())[kTracestate] = state;
  return event;
}

TEST(TraceContextTest, CompleteKeepsAValidTraceAndReplacesWhatIsNot) {
  v1::Event valid = WithTrace(kParent, "congo=t61rcWkgMzE");
  TraceContextChange change = CompleteTraceContext(&valid);
  EXPECT_EQ(change.dropped, 0);
  EXPECT_FALSE(change.started);
  EXPECT_EQ(valid.extensions().at(kTraceparent), kParent);
  EXPECT_EQ(valid.extensions().at(kTracestate), "congo=t61rcWkgMzE");

  v1::Event bad_state = WithTrace(kParent, "congo");
  change = CompleteTraceContext(&bad_state);
  EXPECT_EQ(change.dropped, 1);
  EXPECT_FALSE(change.started);
  EXPECT_EQ(bad_state.extensions().at(kTraceparent), kParent);
  EXPECT_EQ(bad_state.extensions().count(kTracestate), 0u);

  v1::Event bad_parent = WithTrace("00-zz", "congo=1");  // its state goes with it
  change = CompleteTraceContext(&bad_parent);
  EXPECT_EQ(change.dropped, 2);
  EXPECT_TRUE(change.started);
  EXPECT_TRUE(IsValidTraceparent(bad_parent.extensions().at(kTraceparent)));
  EXPECT_EQ(bad_parent.extensions().count(kTracestate), 0u);

  v1::Event lone_state = WithTrace(nullptr, "congo=1");
  change = CompleteTraceContext(&lone_state);
  EXPECT_EQ(change.dropped, 1);
  EXPECT_TRUE(change.started);
  EXPECT_EQ(lone_state.extensions().count(kTracestate), 0u);

  v1::Event none = WithTrace(nullptr, nullptr);
  change = CompleteTraceContext(&none);
  EXPECT_EQ(change.dropped, 0);
  EXPECT_TRUE(change.started);
  const std::string started = none.extensions().at(kTraceparent);
  change = CompleteTraceContext(&none);  // idempotent
  EXPECT_EQ(change.dropped, 0);
  EXPECT_FALSE(change.started);
  EXPECT_EQ(none.extensions().at(kTraceparent), started);
}

}  // namespace
}  // namespace hookfan::broker
