#include "core/ingest.h"

#include "core/trace_context.h"
#include "store/memory_event_log.h"
#include "tests/store/forwarding_event_log.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// The one ingest path: ids and receive times from the injected clock, the
// event rules, Append or AppendOnce, and its two metrics.

namespace hookfan::broker {
namespace {

using ::testing::HasSubstr;

v1::Event EventOf(const std::string& type) {
  v1::Event event;
  event.set_type(type);
  event.set_source("/test");
  return event;
}

class IngestorTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  MemoryEventLog log_;
  metrics::Registry metrics_;
  Ingestor ingestor_{&log_, {.clock = &clock_,
                             .rules = {.max_event_bytes = kMinMaxEventBytes},
                             .metrics = &metrics_}};
};

TEST_F(IngestorTest, MintsIdAndReceiveTimeFromTheClock) {
  absl::StatusOr<AppendOnceResult> stored = ingestor_.Ingest(EventOf("a.b"), "", absl::Hours(1));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->sequence, 1u);
  EXPECT_FALSE(stored->id.empty());
  absl::StatusOr<EventPtr> event = log_.GetById(stored->id);
  ASSERT_TRUE(event.ok());
  EXPECT_EQ((*event)->event.time().seconds(), absl::ToUnixSeconds(clock_.Now()));
}

// Stamp at receipt, Ingest later: the id and the time are the receipt's.
TEST_F(IngestorTest, KeepsWhatStampGave) {
  v1::Event event = EventOf("a.b");
  ingestor_.Stamp(&event);
  const std::string id = event.id();
  const absl::Time received = clock_.Now();
  clock_.Advance(absl::Seconds(30));
  absl::StatusOr<AppendOnceResult> stored = ingestor_.Ingest(event, "", absl::Hours(1));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->id, id);
  EXPECT_EQ((*log_.GetById(id))->event.time().seconds(), absl::ToUnixSeconds(received));
}

TEST_F(IngestorTest, ADedupKeyMakesARepeatADuplicateOfTheOriginal) {
  absl::StatusOr<AppendOnceResult> first = ingestor_.Ingest(EventOf("a.b"), "k", absl::Hours(1));
  absl::StatusOr<AppendOnceResult> again = ingestor_.Ingest(EventOf("a.b"), "k", absl::Hours(1));
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(log_.LastSequence(), 1u);
}

// Every stored event carries a valid trace: its own, or one started here
// (counted once, whether Stamp or Ingest started it); invalid values are
// dropped and counted.
TEST_F(IngestorTest, EveryEventCarriesAValidTrace) {
  constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  v1::Event traced = EventOf("a.b");
  (*traced.mutable_extensions())["traceparent"] = kParent;
  absl::StatusOr<AppendOnceResult> stored = ingestor_.Ingest(traced, "", absl::Hours(1));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ((*log_.GetById(stored->id))->event.extensions().at("traceparent"), kParent);

  v1::Event stamped = EventOf("a.b");
  ingestor_.Stamp(&stamped);
  const std::string started = stamped.extensions().at("traceparent");
  stored = ingestor_.Ingest(stamped, "", absl::Hours(1));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ((*log_.GetById(stored->id))->event.extensions().at("traceparent"), started);

  v1::Event invalid = EventOf("a.b");
  (*invalid.mutable_extensions())["traceparent"] = "00-zz";
  (*invalid.mutable_extensions())["tracestate"] = "a=1";
  stored = ingestor_.Ingest(invalid, "", absl::Hours(1));
  ASSERT_TRUE(stored.ok());
  const v1::Event& replaced = (*log_.GetById(stored->id))->event;
  EXPECT_TRUE(IsValidTraceparent(replaced.extensions().at("traceparent")));
  EXPECT_EQ(replaced.extensions().count("tracestate"), 0u);

  const std::string text = metrics_.Render();
  EXPECT_THAT(text, HasSubstr("hookfan_traces_started_total 2\n"));
  EXPECT_THAT(text, HasSubstr("hookfan_trace_context_dropped_total 2\n"));
}

// An event naming its device by UDID alone gets the serial number an
// earlier event taught the log; one naming an unknown UDID stays as it came.
TEST_F(IngestorTest, CompletesADeviceKnownByUdidAlone) {
  v1::Event authenticated = EventOf("nanomdm.device.authenticated");
  authenticated.mutable_device()->set_udid("U1");
  authenticated.mutable_device()->set_serial_number("S1");
  ASSERT_TRUE(ingestor_.Ingest(authenticated, "", absl::Hours(1)).ok());

  v1::Event later = EventOf("nanomdm.device.token_updated");
  later.mutable_device()->set_udid("U1");
  later.set_key("U1");
  absl::StatusOr<AppendOnceResult> stored = ingestor_.Ingest(later, "", absl::Hours(1));
  ASSERT_TRUE(stored.ok()) << stored.status();
  const v1::Event& completed = (*log_.GetById(stored->id))->event;
  EXPECT_EQ(completed.device().serial_number(), "S1");
  EXPECT_EQ(completed.device().udid(), "U1");
  EXPECT_EQ(completed.key(), "U1");

  v1::Event unknown = EventOf("nanomdm.device.token_updated");
  unknown.mutable_device()->set_udid("U2");
  stored = ingestor_.Ingest(unknown, "", absl::Hours(1));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ((*log_.GetById(stored->id))->event.device().serial_number(), "");
  EXPECT_TRUE((*log_.GetById(stored->id))->event.has_device());
  v1::Event no_device = EventOf("a.b");
  stored = ingestor_.Ingest(no_device, "", absl::Hours(1));
  ASSERT_TRUE(stored.ok());
  EXPECT_FALSE((*log_.GetById(stored->id))->event.has_device());
  EXPECT_THAT(metrics_.Render(), HasSubstr("hookfan_device_lookup_errors_total 0\n"));
}

// A log whose device directory cannot answer; everything else works.
class NoDirectoryLog final : public ForwardingEventLog {
 public:
  absl::StatusOr<std::string> DeviceSerialNumber(std::string_view) override {
    return absl::UnavailableError("the directory is down");
  }
};

// A directory that cannot answer costs the event its serial number, not
// its storage; the miss is counted.
TEST(IngestorDirectoryTest, AnUnansweredLookupStoresTheEventAsItCame) {
  NoDirectoryLog log;
  metrics::Registry metrics;
  Ingestor::Options options;
  options.metrics = &metrics;
  Ingestor ingestor(&log, options);
  v1::Event event = EventOf("nanomdm.device.token_updated");
  event.mutable_device()->set_udid("U1");
  absl::StatusOr<AppendOnceResult> stored = ingestor.Ingest(event, "", absl::Hours(1));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*log.GetById(stored->id))->event.device().udid(), "U1");
  EXPECT_THAT(metrics.Render(), HasSubstr("hookfan_device_lookup_errors_total 1\n"));

  // An event the type rule refuses is refused before any lookup.
  v1::Event refused = EventOf("Not A Type");
  refused.mutable_device()->set_udid("U1");
  EXPECT_TRUE(absl::IsInvalidArgument(ingestor.Ingest(refused, "", absl::Hours(1)).status()));
  EXPECT_THAT(metrics.Render(), HasSubstr("hookfan_device_lookup_errors_total 1\n"));
}

TEST_F(IngestorTest, EventRulesRefuseBeforeTheStore) {
  absl::StatusOr<AppendOnceResult> bad_type = ingestor_.Ingest(EventOf("A.B"), "", absl::Hours(1));
  EXPECT_TRUE(absl::IsInvalidArgument(bad_type.status()));
  v1::Event big = EventOf("a.b");
  big.set_data(std::string(kMinMaxEventBytes, 'x'));
  absl::StatusOr<AppendOnceResult> too_big = ingestor_.Ingest(big, "", absl::Hours(1));
  EXPECT_TRUE(absl::IsResourceExhausted(too_big.status()));
  EXPECT_THAT(too_big.status().message(), HasSubstr("(--max-event-bytes)"));
  EXPECT_EQ(log_.LastSequence(), 0u);
  // Refusals by rule are not store errors; the latency counts appends only.
  const std::string text = metrics_.Render();
  EXPECT_THAT(text, HasSubstr("hookfan_store_errors_total 0\n"));
  EXPECT_THAT(text, HasSubstr("hookfan_append_duration_seconds_count 0\n"));
}

TEST_F(IngestorTest, CountsEveryAppendItTimes) {
  ASSERT_TRUE(ingestor_.Ingest(EventOf("a.b"), "", absl::Hours(1)).ok());
  ASSERT_TRUE(ingestor_.Ingest(EventOf("a.c"), "k", absl::Hours(1)).ok());
  EXPECT_THAT(metrics_.Render(), HasSubstr("hookfan_append_duration_seconds_count 2\n"));
}

}  // namespace
}  // namespace hookfan::broker
