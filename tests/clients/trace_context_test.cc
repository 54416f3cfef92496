#include "hookfan/trace_context.h"

#include "gtest/gtest.h"

// The C++ client's view of an event's W3C trace context.

namespace hookfan {
namespace {

constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

v1::Event EventWith(const std::string& traceparent) {
  v1::Event event;
  (*event.mutable_extensions())["traceparent"] = traceparent;
  return event;
}

TEST(ClientTraceContextTest, NamesTheTraceTheSpanAndTheSampledFlag) {
  v1::Event event = EventWith(kParent);
  (*event.mutable_extensions())["tracestate"] = "congo=t61rcWkgMzE";
  std::optional<TraceContext> trace = TraceContextOf(event);
  ASSERT_TRUE(trace.has_value());
  EXPECT_EQ(trace->traceparent, kParent);
  EXPECT_EQ(trace->tracestate, "congo=t61rcWkgMzE");
  EXPECT_EQ(trace->trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(trace->parent_id(), "00f067aa0ba902b7");
  EXPECT_TRUE(trace->sampled());

  trace = TraceContextOf(EventWith("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
  ASSERT_TRUE(trace.has_value());
  EXPECT_FALSE(trace->sampled());
  EXPECT_EQ(trace->tracestate, "");
  // Only the low bit says "sampled"; other flags may be set with it.
  EXPECT_TRUE(TraceContextOf(EventWith("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0b"))
                  ->sampled());
  EXPECT_FALSE(TraceContextOf(EventWith("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe"))
                   ->sampled());
}

TEST(ClientTraceContextTest, ALaterVersionIsReadByTheSameLayout) {
  std::optional<TraceContext> trace =
      TraceContextOf(EventWith("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes"));
  ASSERT_TRUE(trace.has_value());
  EXPECT_EQ(trace->trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
}

TEST(ClientTraceContextTest, AnEventWithoutATraceparentOfTheW3CLayoutHasNone) {
  EXPECT_FALSE(TraceContextOf(v1::Event()).has_value());
  EXPECT_FALSE(TraceContextOf(EventWith("")).has_value());
  EXPECT_FALSE(TraceContextOf(EventWith("00-4bf92f3577b34da6a3ce929d0e0e4736")).has_value());
  EXPECT_FALSE(
      TraceContextOf(EventWith("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).has_value());
  EXPECT_FALSE(
      TraceContextOf(EventWith("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")).has_value());
  EXPECT_FALSE(
      TraceContextOf(EventWith("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x")).has_value());
}

}  // namespace
}  // namespace hookfan
