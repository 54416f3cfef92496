#pragma once

// A consumer-group member for tests that counts the wakes it was given, so
// that tests wait for wakes (with a deadline) rather than sleep. Works on
// any ConsumerGroups: the contract suite and the per-implementation tests
// share it.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "core/consumer_groups.h"
#include "gtest/gtest.h"

namespace hookfan::broker::group_test {

// A group from the earliest event, with `max_in_flight` (0: the default)
// and `ack_deadline`.
inline v1::ConsumerOpen Open(const std::string& group, uint32_t max_in_flight = 0,
                             absl::Duration ack_deadline = absl::Seconds(30)) {
  v1::ConsumerOpen open;
  open.set_group(group);
  open.mutable_start()->set_earliest(true);
  open.set_max_in_flight(max_in_flight);
  open.mutable_ack_deadline()->set_seconds(absl::ToInt64Seconds(ack_deadline));
  return open;
}

inline std::vector<uint64_t> Seqs(const std::vector<Delivery>& deliveries) {
  std::vector<uint64_t> out;
  for (const Delivery& d : deliveries) out.push_back(d.event->event.sequence());
  return out;
}

inline std::vector<uint32_t> Attempts(const std::vector<Delivery>& deliveries) {
  std::vector<uint32_t> out;
  for (const Delivery& d : deliveries) out.push_back(d.attempt);
  return out;
}

class TestMember {
 public:
  absl::Status Join(ConsumerGroups* groups, const v1::ConsumerOpen& open) {
    absl::StatusOr<std::unique_ptr<ConsumerGroupMember>> member = groups->Join(open, [this] {
      MutexLock lock(&mu_);
      ++wakes_;
    });
    if (!member.ok()) return member.status();
    member_ = *std::move(member);
    return absl::OkStatus();
  }
  void Leave() { member_.reset(); }
  ConsumerGroupMember* operator->() const { return member_.get(); }

  // One Poll that must succeed (empty on failure, which is reported).
  std::vector<Delivery> PollNow(size_t max = 1000) {
    absl::StatusOr<std::vector<Delivery>> got = member_->Poll(max);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *std::move(got) : std::vector<Delivery>{};
  }

  // Polls (waiting for wakes in between) until `n` deliveries came or
  // `timeout` passed; returns what came.
  std::vector<Delivery> PollFor(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    std::vector<Delivery> out;
    while (out.size() < n) {
      int wakes_before = wakes();
      absl::StatusOr<std::vector<Delivery>> got = member_->Poll(n - out.size());
      if (!got.ok()) {
        ADD_FAILURE() << got.status();
        break;
      }
      out.insert(out.end(), got->begin(), got->end());
      if (!got->empty()) continue;
      if (!WaitForWake(wakes_before, deadline)) break;
    }
    return out;
  }

  // Polls until Poll fails (or `timeout` passes: then OK), dropping
  // deliveries.
  absl::Status PollUntilError(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      int wakes_before = wakes();
      absl::StatusOr<std::vector<Delivery>> got = member_->Poll(100);
      if (!got.ok()) return got.status();
      if (got->empty() && !WaitForWake(wakes_before, deadline)) return absl::OkStatus();
    }
  }

 private:
  int wakes() {
    MutexLock lock(&mu_);
    return wakes_;
  }
  bool WaitForWake(int after, absl::Time deadline) {
    MutexLock lock(&mu_);
    auto woken = [this, after]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wakes_ > after; };
    return mu_.AwaitWithDeadline(absl::Condition(&woken), deadline);
  }

  Mutex mu_;
  int wakes_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<ConsumerGroupMember> member_;  // destroyed first: wakes stop
};

}  // namespace hookfan::broker::group_test
