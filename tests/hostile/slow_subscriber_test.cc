// Subscribers that stop reading (issue #23, item 4), against the real binary
// on loopback: a thousand raw HTTP/2 streams from earliest that never read,
// with the largest windows HTTP/2 allows, must not take the server's memory
// or stall a live subscriber; a stream stalled past --grpc-stall-timeout
// ends with a status that names the flag, and the client library resumes.

#include <httplib.h>
#include <sys/wait.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "hookfan/subscriber.h"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr long long kMiB = 1 << 20;

// Runs `h2_attack.py stalled-subscribers` (python3-h2, which only Debian's
// interpreter has) until Close(): `connections` connections of
// `streams` Subscribe streams each, none ever read.
class StalledSubscribers {
 public:
  StalledSubscribers(int port, int connections, int streams)
      : ready_file_(MakeTempDir() + "/ready") {
    const std::string command =
        absl::StrCat("/usr/bin/python3 ", HOOKFAN_SOURCE_DIR,
                     "/tests/hostile/h2_attack.py stalled-subscribers --port ", port,
                     " --connections ", connections, " --streams ", streams, " --ready-file ",
                     ready_file_);
    tool_ = popen(command.c_str(), "w");  // its stdin holds it open
  }
  ~StalledSubscribers() { Close(); }

  // Whether every request was sent, within `timeout`.
  bool WaitReady(absl::Duration timeout) {
    return tool_ != nullptr &&
           Eventually([&] { return !ReadFile(ready_file_).empty(); }, timeout);
  }
  // Resets every connection; the tool's exit status.
  int Close() {
    if (tool_ == nullptr) return -1;
    const int status = pclose(tool_);
    tool_ = nullptr;
    return status;
  }

 private:
  const std::string ready_file_;
  FILE* tool_ = nullptr;
};

class SlowSubscriberTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }

  void Start(std::vector<std::string> extra_args = {}) {
    hookfan_ = std::make_unique<HookfanProcess>(HookfanProcess::Options{
        .data_dir = dir_, .extra_args = std::move(extra_args), .measures_memory = true});
    ASSERT_TRUE(hookfan_->Start());
    stub_ = hookfan_->NewStub();
  }

  // Stores `total` bytes as events of `each` bytes of data, by Publish.
  void Store(long long total, long long each) {
    const std::string data(each, 'x');
    for (long long stored = 0, i = 0; stored < total; stored += each, ++i) {
      v1::PublishRequest request;
      request.set_type("test.bulk");
      request.set_id(absl::StrCat("bulk-", i));
      request.set_data(data);
      grpc::ClientContext context;
      v1::PublishResponse response;
      grpc::Status status = stub_->Publish(&context, request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }

  double Metric(const std::string& name) {
    httplib::Client client("127.0.0.1", hookfan_->http_port());
    client.set_read_timeout(5, 0);
    auto res = client.Get("/metrics");
    return res ? MetricValue(res->body, name) : -1;
  }

  long long Rss() { return ProcStatusBytes(hookfan_->pid(), "VmRSS"); }

  std::string dir_;
  std::unique_ptr<HookfanProcess> hookfan_;
  std::unique_ptr<v1::EventBroker::Stub> stub_;
};

// 1,000 Subscribe streams from earliest (10 MB stored) whose clients never
// read hold at most 128 MB while open, and give it back within 8 s of
// closing; a live subscriber keeps getting each webhook within a second.
TEST_F(SlowSubscriberTest, NonReadingSubscribersHoldBoundedMemory) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(Store(10 * kMiB, 16 << 10));
  v1::SubscribeRequest live_request;
  live_request.mutable_filter()->add_types("applivery.>");
  StreamCollector live(stub_.get(), live_request);
  // The cost of the stalled streams, not of start-up or storing.
  ASSERT_EQ(hookfan_->PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
  ASSERT_TRUE(live.WaitFor(1));
  const long long rss_start = Rss();

  constexpr int kConnections = 10, kStreamsEach = 100;
  StalledSubscribers stalled(hookfan_->grpc_port(), kConnections, kStreamsEach);
  ASSERT_TRUE(stalled.WaitReady(absl::Seconds(30)));
  long long rss_peak = 0;
  auto sample = [&] { rss_peak = std::max(rss_peak, Rss()); };
  // Every stalled stream was handed what it may hold: each one's first
  // batch went out, and the server has stopped producing.
  double delivered = -1, last = -2;
  EXPECT_TRUE(Eventually(
      [&] {
        sample();
        last = delivered;
        delivered = Metric("hookfan_delivered_bytes_total");
        return Metric("hookfan_subscriptions") >= 1 + kConnections * kStreamsEach &&
               Metric("hookfan_delivered_events_total") >= kConnections * kStreamsEach &&
               delivered == last;
      },
      absl::Seconds(60), [] { absl::SleepFor(absl::Milliseconds(250)); }))
      << "subscriptions " << Metric("hookfan_subscriptions") << ", delivered bytes "
      << delivered;

  // The live subscriber is not starved by them.
  for (int i = 0; i < 3; ++i) {
    const absl::Time posted = absl::Now();
    ASSERT_EQ(hookfan_->PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
    EXPECT_TRUE(live.WaitFor(2 + i, absl::Seconds(5)));
    EXPECT_LT(absl::Now() - posted, absl::Seconds(1) * kTimeFactor) << "webhook " << i;
    sample();
  }
  EXPECT_LE(rss_peak - rss_start, 128 * kMiB * kMemoryFactor)
      << "RSS " << rss_start / kMiB << " MiB before, peak " << rss_peak / kMiB << " MiB";

  EXPECT_EQ(stalled.Close(), 0);
  const absl::Time closed = absl::Now();
  long long rss_after = 0;
  EXPECT_TRUE(Eventually([&] { return Metric("hookfan_subscriptions") == 1; },
                         absl::Seconds(8) * kTimeFactor));
  EXPECT_TRUE(Eventually(
      [&] { return (rss_after = Rss()) - rss_start <= 64 * kMiB * kMemoryFactor; },
      absl::Seconds(8) - (absl::Now() - closed), [] { absl::SleepFor(absl::Milliseconds(200)); }))
      << "RSS " << rss_start / kMiB << " MiB before, " << rss_after / kMiB
      << " MiB after the stalled streams closed (peak " << rss_peak / kMiB << " MiB)";
  std::printf("RSS MiB: start %lld, peak %lld (+%lld), after close %lld (+%lld)\n",
              rss_start / kMiB, rss_peak / kMiB, (rss_peak - rss_start) / kMiB,
              rss_after / kMiB, (rss_after - rss_start) / kMiB);
}

// A client that stops reading for --grpc-stall-timeout gets
// RESOURCE_EXHAUSTED naming the flag once it reads again, and the client
// library resumes after it with no gap and no duplicate.
TEST_F(SlowSubscriberTest, StalledStreamEndsNamingTheFlagAndTheLibraryResumes) {
  // TSan runs gRPC 5-15 times slower: a longer timeout keeps the reset of
  // a stream still stuck a timeout later out of the reader's way.
  const absl::Duration timeout = absl::Seconds(kUnderSanitizer ? 6 : 2);
  ASSERT_NO_FATAL_FAILURE(
      Start({absl::StrCat("--grpc-stall-timeout=", absl::FormatDuration(timeout))}));
  constexpr int kEvents = 256;  // 4 MiB: batches of 1 MiB, far past the window
  ASSERT_NO_FATAL_FAILURE(Store(kEvents * (16 << 10), 16 << 10));

  // gRPC's default 64 KiB stream window, not grown by BDP probes: a handler
  // that does not return stops the stream at once.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  Subscriber::Options options;
  options.connection.channel = grpc::CreateCustomChannel(
      hookfan_->grpc_address(), grpc::InsecureChannelCredentials(), args);
  options.connection.initial_backoff = absl::Milliseconds(50);
  Mutex mu;
  std::vector<std::string> log;
  options.connection.log = [&](absl::string_view line) {
    MutexLock lock(&mu);
    log.emplace_back(line);
  };
  options.start.set_earliest(true);
  Subscriber subscriber(options);
  std::vector<uint64_t> sequences;
  bool stalled = false;
  absl::Status end = subscriber.Run([&](const v1::Event& event) {
    sequences.push_back(event.sequence());
    if (sequences.size() == 1) {  // a consumer that hangs on its first event
      stalled = Eventually([&] { return Metric("hookfan_grpc_streams_stalled_total") >= 1; },
                           timeout * 5);
    }
    return sequences.size() < kEvents;
  });
  EXPECT_TRUE(end.ok()) << end;
  EXPECT_TRUE(stalled) << "hookfan_grpc_streams_stalled_total "
                       << Metric("hookfan_grpc_streams_stalled_total");
  std::vector<uint64_t> expected;
  for (uint64_t s = 1; s <= kEvents; ++s) expected.push_back(s);
  EXPECT_EQ(sequences, expected);
  MutexLock lock(&mu);
  EXPECT_THAT(log, ElementsAre(AllOf(HasSubstr("RESOURCE_EXHAUSTED the stream stalled: the client "
                                               "took no data for " +
                                               absl::FormatDuration(timeout) +
                                               " (the limit is --grpc-stall-timeout); resume after "
                                               "sequence")),
                               "stream accepted again"));
}

}  // namespace
}  // namespace hookfan::testing
