#include "common/metrics.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace hookfan::metrics {

struct Registry::Family {
  std::string name, help, type;
  std::vector<std::pair<Labels, std::unique_ptr<Counter>>> counters;
  std::vector<std::pair<Labels, std::unique_ptr<Histogram>>> histograms;
  std::vector<std::function<std::vector<Sample>()>> callbacks;
};

namespace {

std::string Escape(const std::string& value) {
  return absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

// {a="x",b="y"} with `extra` appended; "" when there are none.
std::string LabelText(const Labels& labels, const Labels& extra = {}) {
  std::string out;
  for (const Labels* set : {&labels, &extra}) {
    for (const auto& [name, value] : *set) {
      absl::StrAppend(&out, out.empty() ? "{" : ",", name, "=\"", Escape(value), "\"");
    }
  }
  return out.empty() ? out : out + "}";
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrCat(v);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family* Registry::FamilyFor(const std::string& name, const std::string& help,
                                      const std::string& type) {
  for (const auto& f : families_) {
    if (f->name == name) return f.get();
  }
  families_.push_back(std::make_unique<Family>(Family{name, help, type, {}, {}, {}}));
  return families_.back().get();
}

Counter* Registry::AddCounter(const std::string& name, const std::string& help, Labels labels) {
  std::lock_guard lock(mu_);
  Family* f = FamilyFor(name, help, "counter");
  f->counters.emplace_back(std::move(labels), std::make_unique<Counter>());
  return f->counters.back().second.get();
}

Histogram* Registry::AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds, Labels labels) {
  std::lock_guard lock(mu_);
  Family* f = FamilyFor(name, help, "histogram");
  f->histograms.emplace_back(std::move(labels), std::make_unique<Histogram>(std::move(bounds)));
  return f->histograms.back().second.get();
}

void Registry::AddCallback(const std::string& name, const std::string& help,
                           std::function<std::vector<Sample>()> read, const std::string& type) {
  std::lock_guard lock(mu_);
  FamilyFor(name, help, type)->callbacks.push_back(std::move(read));
}

std::string Registry::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& f : families_) {
    absl::StrAppend(&out, "# HELP ", f->name, " ", f->help, "\n# TYPE ", f->name, " ", f->type,
                    "\n");
    for (const auto& [labels, counter] : f->counters) {
      absl::StrAppend(&out, f->name, LabelText(labels), " ", counter->value(), "\n");
    }
    for (const auto& [labels, h] : f->histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= h->bounds_.size(); ++i) {
        cumulative += h->counts_[i].load(std::memory_order_relaxed);
        double le = i < h->bounds_.size() ? h->bounds_[i] : INFINITY;
        absl::StrAppend(&out, f->name, "_bucket", LabelText(labels, {{"le", Number(le)}}), " ",
                        cumulative, "\n");
      }
      absl::StrAppend(&out, f->name, "_sum", LabelText(labels), " ",
                      Number(h->sum_.load(std::memory_order_relaxed)), "\n", f->name, "_count",
                      LabelText(labels), " ", h->count_.load(std::memory_order_relaxed), "\n");
    }
    for (const auto& read : f->callbacks) {
      for (const Sample& s : read()) {
        absl::StrAppend(&out, f->name, LabelText(s.labels), " ", Number(s.value), "\n");
      }
    }
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace hookfan::metrics
