#include "common/metrics.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::metrics {
namespace {

using ::testing::HasSubstr;

// One metric of every kind, as hookfan registers them.
void RegisterEveryKind(Registry& r) {
  r.AddCounter("hookfan_webhooks_total", "Webhooks answered, by source and HTTP status.",
               {{"source", "applivery"}, {"code", "202"}})
      ->Add(2);
  r.AddCounter("hookfan_webhooks_total", "Webhooks answered, by source and HTTP status.",
               {{"source", ""}, {"code", "404"}})
      ->Add();
  r.AddCounter("hookfan_store_errors_total", "Appends refused.");
  Histogram* h = r.AddHistogram("hookfan_append_duration_seconds", "Append latency.",
                                LatencyBuckets());
  h->Observe(0.0005);
  h->Observe(0.003);
  h->Observe(20);
  r.AddCallback("hookfan_subscriptions", "Open streams.",
                [] { return std::vector<Sample>{{{}, 3}}; });
  r.AddCallback(
      "hookfan_store_refusals_total", "Refusals by reason.",
      [] {
        return std::vector<Sample>{{{{"reason", "timeout"}}, 4}, {{{"reason", "a\"b\\c\nd"}}, 1}};
      },
      "counter");
  r.AddCallback("hookfan_group_lag_events", "Lag per group.", [] { return std::vector<Sample>{}; });
  r.AddCallback("hookfan_ratio", "A fraction.", [] {
    return std::vector<Sample>{{{}, 0.25}, {{{"x", "big"}}, 12345678901234567.0}};
  });
}

// The exposition of RegisterEveryKind. It differs from the hand-written one
// hookfan had before prometheus-cpp only in: labels of counters and
// histograms sorted by name; a histogram's _count and _sum before its
// buckets; values with 16 significant digits, not 6 (1.234567890123457e+16,
// was 1.23457e+16).
constexpr char kEveryKind[] = R"(# HELP hookfan_webhooks_total Webhooks answered, by source and HTTP status.
# TYPE hookfan_webhooks_total counter
hookfan_webhooks_total{code="202",source="applivery"} 2
hookfan_webhooks_total{code="404",source=""} 1
# HELP hookfan_store_errors_total Appends refused.
# TYPE hookfan_store_errors_total counter
hookfan_store_errors_total 0
# HELP hookfan_append_duration_seconds Append latency.
# TYPE hookfan_append_duration_seconds histogram
hookfan_append_duration_seconds_count 3
hookfan_append_duration_seconds_sum 20.0035
hookfan_append_duration_seconds_bucket{le="0.0005"} 1
hookfan_append_duration_seconds_bucket{le="0.001"} 1
hookfan_append_duration_seconds_bucket{le="0.0025"} 1
hookfan_append_duration_seconds_bucket{le="0.005"} 2
hookfan_append_duration_seconds_bucket{le="0.01"} 2
hookfan_append_duration_seconds_bucket{le="0.025"} 2
hookfan_append_duration_seconds_bucket{le="0.05"} 2
hookfan_append_duration_seconds_bucket{le="0.1"} 2
hookfan_append_duration_seconds_bucket{le="0.25"} 2
hookfan_append_duration_seconds_bucket{le="0.5"} 2
hookfan_append_duration_seconds_bucket{le="1"} 2
hookfan_append_duration_seconds_bucket{le="2.5"} 2
hookfan_append_duration_seconds_bucket{le="5"} 2
hookfan_append_duration_seconds_bucket{le="10"} 2
hookfan_append_duration_seconds_bucket{le="+Inf"} 3
# HELP hookfan_subscriptions Open streams.
# TYPE hookfan_subscriptions gauge
hookfan_subscriptions 3
# HELP hookfan_store_refusals_total Refusals by reason.
# TYPE hookfan_store_refusals_total counter
hookfan_store_refusals_total{reason="timeout"} 4
hookfan_store_refusals_total{reason="a\"b\\c\nd"} 1
# HELP hookfan_group_lag_events Lag per group.
# TYPE hookfan_group_lag_events gauge
# HELP hookfan_ratio A fraction.
# TYPE hookfan_ratio gauge
hookfan_ratio 0.25
hookfan_ratio{x="big"} 1.234567890123457e+16
)";

// Every kind renders with the names, types, HELP texts and labels it was
// registered with, in registration order.
TEST(MetricsTest, RendersEveryKindAsRegistered) {
  Registry r;
  RegisterEveryKind(r);
  EXPECT_EQ(r.Render(), kEveryKind);
}

// `promtool check metrics` (Debian package prometheus) accepts the output.
TEST(MetricsTest, OutputPassesPromtool) {
  if (std::system("command -v promtool >/dev/null") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  Registry r;
  RegisterEveryKind(r);
  const std::string file = ::testing::TempDir() + "/metrics_test.txt";
  std::ofstream(file) << r.Render();
  std::string output;
  FILE* check = popen(("promtool check metrics < " + file + " 2>&1").c_str(), "r");
  ASSERT_NE(check, nullptr);
  char buffer[256];
  while (fgets(buffer, sizeof(buffer), check) != nullptr) output += buffer;
  EXPECT_EQ(pclose(check), 0) << output;
}

// A counter counts what is added, and the same name and labels again are
// the same series.
TEST(MetricsTest, CounterAddsAndSameLabelsAreOneSeries) {
  Registry r;
  Counter* a = r.AddCounter("jobs_total", "Jobs.", {{"queue", "a"}});
  Counter* b = r.AddCounter("jobs_total", "Jobs.", {{"queue", "b"}});
  a->Add();
  a->Add(41);
  r.AddCounter("jobs_total", "Jobs.", {{"queue", "a"}})->Add(8);
  EXPECT_EQ(a->value(), 50u);
  EXPECT_EQ(b->value(), 0u);
  EXPECT_EQ(r.Render(),
            "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\n"
            "jobs_total{queue=\"a\"} 50\njobs_total{queue=\"b\"} 0\n");
}

// Adds from several threads at once are all counted.
TEST(MetricsTest, CounterCountsConcurrentAdds) {
  Registry r;
  Counter* c = r.AddCounter("adds_total", "Adds.");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([c] {
      for (int i = 0; i < 100000; ++i) c->Add();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(c->value(), 400000u);
}

// Buckets count every observation at or below their bound (cumulative);
// +Inf, _count and _sum count all of them.
TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Registry r;
  Histogram* h = r.AddHistogram("wait_seconds", "Waits.", {1, 2, 4}, {{"pool", "x"}});
  for (double v : {0.5, 1.0, 1.5, 3.0, 3.5, 9.0}) h->Observe(v);
  EXPECT_EQ(r.Render(),
            "# HELP wait_seconds Waits.\n# TYPE wait_seconds histogram\n"
            "wait_seconds_count{pool=\"x\"} 6\n"
            "wait_seconds_sum{pool=\"x\"} 18.5\n"
            "wait_seconds_bucket{pool=\"x\",le=\"1\"} 2\n"
            "wait_seconds_bucket{pool=\"x\",le=\"2\"} 3\n"
            "wait_seconds_bucket{pool=\"x\",le=\"4\"} 5\n"
            "wait_seconds_bucket{pool=\"x\",le=\"+Inf\"} 6\n");
}

// Bounds that do not increase are a programming error.
TEST(MetricsTest, HistogramBoundsMustIncrease) {
  Registry r;
  EXPECT_THROW(r.AddHistogram("bad_seconds", "Bad.", {2, 1}), std::invalid_argument);
}

// A callback is read at each scrape, its samples with their labels in the
// order it returns them.
TEST(MetricsTest, CallbacksAreReadAtEachScrapeWithTheirLabels) {
  Registry r;
  double lag = 7;
  r.AddCallback("group_lag_events", "Lag.", [&lag] {
    return std::vector<Sample>{{{{"group", "b"}, {"area", "x"}}, lag}, {{{"group", "a"}}, 1}};
  });
  const std::string family = "# HELP group_lag_events Lag.\n# TYPE group_lag_events gauge\n";
  EXPECT_EQ(r.Render(), family +
                            "group_lag_events{group=\"b\",area=\"x\"} 7\n"
                            "group_lag_events{group=\"a\"} 1\n");
  lag = 0.5;
  EXPECT_THAT(r.Render(), HasSubstr("group_lag_events{group=\"b\",area=\"x\"} 0.5\n"));
}

// A callback of type "counter" is declared a counter, and one without
// samples still declares its family.
TEST(MetricsTest, CallbackTypesAndEmptyCallbacks) {
  Registry r;
  r.AddCallback("reads_total", "Reads.", [] { return std::vector<Sample>{{{}, 3}}; }, "counter");
  r.AddCallback("nothing", "Nothing yet.", [] { return std::vector<Sample>{}; });
  EXPECT_EQ(r.Render(),
            "# HELP reads_total Reads.\n# TYPE reads_total counter\nreads_total 3\n"
            "# HELP nothing Nothing yet.\n# TYPE nothing gauge\n");
  EXPECT_THROW(r.AddCallback("odd", "Odd.", [] { return std::vector<Sample>{}; }, "summary"),
               std::invalid_argument);
}

// Families are rendered in the order their names were first registered,
// whatever their kind; a counter family's series in label order.
TEST(MetricsTest, FamiliesRenderInRegistrationOrder) {
  Registry r;
  r.AddCounter("c_total", "C.", {{"k", "z"}});
  r.AddCallback("g", "G.", [] { return std::vector<Sample>{{{}, 1}}; });
  r.AddHistogram("h_seconds", "H.", {1});
  r.AddCounter("a_total", "A.");
  r.AddCounter("c_total", "C.", {{"k", "m"}});
  const std::string text = r.Render();
  size_t c = text.find("# TYPE c_total"), g = text.find("# TYPE g "),
         h = text.find("# TYPE h_seconds"), a = text.find("# TYPE a_total");
  ASSERT_NE(a, std::string::npos);
  EXPECT_LT(c, g);
  EXPECT_LT(g, h);
  EXPECT_LT(h, a);
  EXPECT_LT(text.find("c_total{k=\"m\"}"), text.find("c_total{k=\"z\"}"));
  EXPECT_EQ(text.find("# TYPE c_total"), text.rfind("# TYPE c_total"));  // one family, once
}

// A name is one kind of metric.
TEST(MetricsTest, ANameIsOneKind) {
  Registry r;
  r.AddCounter("x_total", "X.");
  r.AddCallback("y", "Y.", [] { return std::vector<Sample>{}; });
  EXPECT_THROW(r.AddHistogram("x_total", "X.", {1}), std::invalid_argument);
  EXPECT_THROW(r.AddCallback("x_total", "X.", [] { return std::vector<Sample>{}; }),
               std::invalid_argument);
  EXPECT_THROW(r.AddCounter("y", "Y."), std::invalid_argument);
  EXPECT_THROW(r.AddCallback("y", "Y.", [] { return std::vector<Sample>{}; }, "counter"),
               std::invalid_argument);
  EXPECT_THROW(r.AddCounter("bad name", "B."), std::invalid_argument);
}

}  // namespace
}  // namespace hookfan::metrics
