#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace hookfan::metrics {

// Label names and values of one series, in the order given.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing count. Lock-free; any thread.
class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A distribution over fixed buckets (upper bounds, increasing). Lock-free;
// any thread.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

 private:
  friend class Registry;
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// One value of a gauge read at scrape time.
struct Sample {
  Labels labels;
  double value = 0;
};

// Registry holds a process's metrics and renders them in the Prometheus
// text exposition format (version 0.0.4). Metrics are registered once, at
// start-up (by name + labels); the returned pointers stay valid for the
// registry's life. Thread-safe.
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

  // Every metric, grouped by name in registration order.
  std::string Render() const;

 private:
  struct Family;
  Family* FamilyFor(const std::string& name, const std::string& help, const std::string& type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_ ABSL_GUARDED_BY(mu_);
};

// Buckets for latencies in seconds: 0.5 ms … 10 s.
std::vector<double> LatencyBuckets();

}  // namespace hookfan::metrics
