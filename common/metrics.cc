#include "common/metrics.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "prometheus/check_names.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace hookfan::metrics {

namespace {

prometheus::Labels ToMap(const Labels& labels) { return {labels.begin(), labels.end()}; }

}  // namespace

// The samples of one name's callbacks, read at each Collect. prometheus-cpp
// has no metric read at scrape time; this is the Collectable its own
// families are, serialized beside them.
class Registry::CallbackFamily : public prometheus::Collectable {
 public:
  CallbackFamily(std::string name, std::string help, prometheus::MetricType type)
      : name_(std::move(name)), help_(std::move(help)), type_(type) {}

  prometheus::MetricType type() const { return type_; }

  // Called with the registry's mu_ held, as Collect is.
  void Add(std::function<std::vector<Sample>()> read) { reads_.push_back(std::move(read)); }

  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily family{name_, help_, type_, {}};
    for (const auto& read : reads_) {
      for (const Sample& s : read()) {
        prometheus::ClientMetric& metric = family.metric.emplace_back();
        for (const auto& [name, value] : s.labels) metric.label.push_back({name, value});
        (type_ == prometheus::MetricType::Counter ? metric.counter.value : metric.gauge.value) =
            s.value;
      }
    }
    return {std::move(family)};
  }

 private:
  const std::string name_, help_;
  const prometheus::MetricType type_;
  std::vector<std::function<std::vector<Sample>()>> reads_;
};

void Counter::Add(uint64_t n) { counter_->Increment(static_cast<double>(n)); }

uint64_t Counter::value() const { return static_cast<uint64_t>(counter_->Value()); }

void Histogram::Observe(double value) { histogram_->Observe(value); }

Registry::Registry() : registry_(std::make_unique<prometheus::Registry>()) {}
Registry::~Registry() = default;

prometheus::Collectable* Registry::Find(const std::string& name) const {
  for (const auto& [known, family] : families_) {
    if (known == name) return family;
  }
  return nullptr;
}

void Registry::Remember(const std::string& name, prometheus::Collectable* family) {
  if (Find(name) == nullptr) families_.emplace_back(name, family);
}

Counter* Registry::AddCounter(const std::string& name, const std::string& help, Labels labels) {
  std::lock_guard lock(mu_);
  // prometheus::Registry refuses a name another of its types has, not one
  // of a callback, which it does not know.
  if (dynamic_cast<CallbackFamily*>(Find(name)) != nullptr) {
    throw std::invalid_argument(name + " is already a metric read at scrape time");
  }
  auto& family = prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
  Remember(name, &family);
  counters_.push_back(std::unique_ptr<Counter>(new Counter(&family.Add(ToMap(labels)))));
  return counters_.back().get();
}

Histogram* Registry::AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds, Labels labels) {
  std::lock_guard lock(mu_);
  if (dynamic_cast<CallbackFamily*>(Find(name)) != nullptr) {
    throw std::invalid_argument(name + " is already a metric read at scrape time");
  }
  auto& family = prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
  Remember(name, &family);
  histograms_.push_back(std::unique_ptr<Histogram>(new Histogram(
      &family.Add(ToMap(labels), prometheus::Histogram::BucketBoundaries(std::move(bounds))))));
  return histograms_.back().get();
}

void Registry::AddCallback(const std::string& name, const std::string& help,
                           std::function<std::vector<Sample>()> read, const std::string& type) {
  prometheus::MetricType metric_type;
  if (type == "gauge") {
    metric_type = prometheus::MetricType::Gauge;
  } else if (type == "counter") {
    metric_type = prometheus::MetricType::Counter;
  } else {
    throw std::invalid_argument(name + ": a metric read at scrape time is a gauge or a counter");
  }
  if (!prometheus::CheckMetricName(name)) throw std::invalid_argument("Invalid metric name");
  std::lock_guard lock(mu_);
  prometheus::Collectable* known = Find(name);
  auto* family = dynamic_cast<CallbackFamily*>(known);
  if (known != nullptr && (family == nullptr || family->type() != metric_type)) {
    throw std::invalid_argument(name + " is already a metric of another type");
  }
  if (family == nullptr) {
    family =
        callbacks_.emplace_back(std::make_unique<CallbackFamily>(name, help, metric_type)).get();
    Remember(name, family);
  }
  family->Add(std::move(read));
}

std::string Registry::Render() const {
  std::vector<prometheus::MetricFamily> families;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, collectable] : families_) {
      const bool hashed = dynamic_cast<const CallbackFamily*>(collectable) == nullptr;
      for (prometheus::MetricFamily& family : collectable->Collect()) {
        // A prometheus::Family keeps its series in a hash map: sorted, a
        // scrape lists them in the same order every time.
        if (hashed) {
          std::sort(family.metric.begin(), family.metric.end(),
                    [](const auto& a, const auto& b) { return a.label < b.label; });
        }
        families.push_back(std::move(family));
      }
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace hookfan::metrics
