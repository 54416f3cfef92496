#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace prometheus {
class Collectable;
class Counter;
class Histogram;
class Registry;
}  // namespace prometheus

namespace hookfan::metrics {

// Label names and values of one series. Counters and histograms are
// rendered with their labels sorted by name (prometheus-cpp keeps them in a
// map); gauges read by callbacks keep the order given.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing count. Lock-free (an atomic double, exact up to
// 2^53); any thread.
class Counter {
 public:
  void Add(uint64_t n = 1);
  uint64_t value() const;

 private:
  friend class Registry;
  explicit Counter(prometheus::Counter* counter) : counter_(counter) {}
  prometheus::Counter* const counter_;  // owned by the registry
};

// A distribution over fixed buckets (upper bounds, strictly increasing).
// Any thread. An observation takes a short lock (prometheus-cpp's: a scrape
// sees _count, _sum and the buckets agree).
class Histogram {
 public:
  void Observe(double value);

 private:
  friend class Registry;
  explicit Histogram(prometheus::Histogram* histogram) : histogram_(histogram) {}
  prometheus::Histogram* const histogram_;  // owned by the registry
};

// One value of a gauge read at scrape time.
struct Sample {
  Labels labels;
  double value = 0;
};

// Registry holds a process's metrics and renders them in the Prometheus
// text exposition format (version 0.0.4), by prometheus-cpp. Metrics are
// registered once, at start-up (by name + labels: the same name and labels
// again give the same series); the returned pointers stay valid for the
// registry's life. A name is one kind of metric: registering it as another
// kind, or with an invalid metric or label name, throws
// std::invalid_argument (a programming error, fatal at start-up).
// Thread-safe.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter* AddCounter(const std::string& name, const std::string& help, Labels labels = {});
  Histogram* AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> bounds, Labels labels = {});
  // A gauge (or counter, with `type` "counter") whose samples `read` returns
  // at each scrape. `read` must not call back into the registry.
  void AddCallback(const std::string& name, const std::string& help,
                   std::function<std::vector<Sample>()> read, const std::string& type = "gauge");

  // Every metric, one family per name in the order the names were first
  // registered. A family's counters and histograms are in label order, a
  // callback's samples in the order `read` returns them.
  std::string Render() const;

 private:
  class CallbackFamily;
  // The family called `name` in families_, or null.
  prometheus::Collectable* Find(const std::string& name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remember(const std::string& name, prometheus::Collectable* family)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable std::mutex mu_;
  // Owns the counter and histogram families and their series.
  std::unique_ptr<prometheus::Registry> registry_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<CallbackFamily>> callbacks_ ABSL_GUARDED_BY(mu_);
  // Every family, by name, in registration order: Render's order (the
  // prometheus::Registry groups them by type instead).
  std::vector<std::pair<std::string, prometheus::Collectable*>> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Counter>> counters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Histogram>> histograms_ ABSL_GUARDED_BY(mu_);
};

// Buckets for latencies in seconds: 0.5 ms … 10 s.
std::vector<double> LatencyBuckets();

}  // namespace hookfan::metrics
