#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/consumer_groups.h"
#include "store/event_log.h"
#include "core/fanout.h"
#include "store/group_store.h"
#include "common/clock.h"
#include "common/sync.h"
#include "hookfan/v1/broker.pb.h"

namespace hookfan::broker {

class GroupMember;

// GroupManager runs the consumer groups: named, durable groups whose
// members share the matching events, each leased to one member at a time
// until acked (at-least-once).
//
// Each group reads the log through one Fanout subscription (its read
// position) and keeps the events taken and not yet acked ("pending"): ready
// for delivery, leased to a member until a deadline, or waiting (nacked with
// a delay, or backing off after an expired lease). A lease that expires, or
// a nack, counts as a failed delivery; after max_deliveries the event moves
// to the group's dead letters. With key_ordered, an event is only delivered
// when no earlier pending event has the same key (Event.key), so one key is
// never in flight twice and its events arrive in sequence order.
//
// Ready events are handed out one at a time, round-robin, among the members
// asking for work and with room under their max_in_flight: the member
// polling and those whose last Poll found nothing. Each event is offered to
// one of them, and only that member leases it (at its next Poll; a parked
// one is woken) unless it leaves first. So members that keep up get equal
// shares, whichever of them happens to poll first after an append.
//
// State that must survive a restart goes to the GroupStore (see there):
// acked events never come back, unacked ones are redelivered with their
// attempt counts.
//
// Deadlines and backoff use the injected Clock; Tick() expires them (a
// background ticker calls it unless Options::start_ticker is false, as in
// tests with a FakeClock).
//
// Thread-safe. `log`, `fanout`, `store` must outlive it.
class GroupManager : public ConsumerGroups {
 public:
  struct Options {
    Clock* clock = Clock::Real();
    absl::Duration backoff_base = absl::Seconds(1);  // redelivery after n failures: base·2^(n-1)
    absl::Duration backoff_max = absl::Seconds(60);
    size_t max_pending = 10000;  // per group: bounds memory for a slow group
    bool start_ticker = true;
    absl::Duration tick_interval = absl::Milliseconds(50);
  };

  // Loads the groups kept in `store`. Errors: from the store; kDataLoss for
  // a group config that does not decode.
  static absl::StatusOr<std::unique_ptr<GroupManager>> Create(EventLog* log, Fanout* fanout,
                                                              GroupStore* store, Options options);
  ~GroupManager() override;
  GroupManager(const GroupManager&) = delete;
  GroupManager& operator=(const GroupManager&) = delete;

  // ConsumerGroups. Join's member is a GroupMember.
  absl::StatusOr<std::unique_ptr<ConsumerGroupMember>> Join(const v1::ConsumerOpen& open,
                                                            std::function<void()> wake) override;

  std::vector<v1::GroupInfo> ListGroups() override;

  Stats stats() const override {
    return {deliveries_.load(std::memory_order_relaxed),
            redeliveries_.load(std::memory_order_relaxed),
            dead_lettered_.load(std::memory_order_relaxed)};
  }
  absl::Status DeleteGroup(const std::string& name) override;
  absl::StatusOr<std::vector<v1::DeadLetter>> ListDeadLetters(const std::string& name,
                                                              uint64_t after,
                                                              size_t limit) override;
  absl::StatusOr<uint64_t> Redrive(const std::string& name,
                                   absl::Span<const uint64_t> sequences) override;

  // Expires leases, releases waits that are due, dead-letters events past
  // max_deliveries, and wakes members with work.
  void Tick();

  void Shutdown() override;

 private:
  friend class GroupMember;
  struct Group;
  struct Member;
  struct Pending;

  GroupManager(EventLog* log, Fanout* fanout, GroupStore* store, Options options);

  absl::Status Load();
  absl::StatusOr<std::unique_ptr<Subscription>> OpenReader(Group* g, const v1::StartPosition& start);
  // Adds `member` to its group, adopting `created` (then nulled) if the group
  // does not exist yet.
  absl::Status AddMember(const std::shared_ptr<Member>& member, const v1::ConsumerOpen& config,
                          std::shared_ptr<Group>& created);
  absl::StatusOr<std::vector<Delivery>> Poll(Member* member, size_t max, size_t max_bytes);
  // Poll's work; members to wake once mu_ is released go to `wakes`.
  absl::StatusOr<std::vector<Delivery>> PollLocked(Member* member, size_t max, size_t max_bytes,
                                                   std::vector<std::shared_ptr<Member>>* wakes)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Settle(Member* member, absl::Span<const uint64_t> sequences, bool ack,
                      absl::Duration delay);
  absl::Status Extend(Member* member, absl::Span<const uint64_t> sequences,
                      absl::Duration extension);
  void Leave(Member* member);

  // Helpers below require mu_.
  absl::Status FillLocked(Group* g, size_t want) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddPendingLocked(Group* g, EventPtr event, uint32_t attempts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemovePendingLocked(Group* g, uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool EligibleLocked(const Group* g, uint64_t seq) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves `seq` to the dead letters after `attempts` deliveries.
  void DeadLetterLocked(Group* g, uint64_t seq, uint32_t attempts, absl::Time now,
                        GroupStore::Changes* changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Offers the ready, eligible events no one holds an offer for, one at a
  // time round-robin, to the members asking for work: `poller` (up to
  // `poller_room`) and every idle member with room under max_in_flight.
  // Parked members offered something go to `wakes`. Events no client could
  // receive (over kMaxDeliverableEventBytes) are offered to no one: they go
  // to `undeliverable`, for the poller to dead-letter.
  void OfferLocked(Group* g, Member* poller, size_t poller_room,
                   std::vector<uint64_t>* undeliverable,
                   std::vector<std::shared_ptr<Member>>* wakes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Withdraws the offer of `p`, if any: anyone may lease it again.
  void ReleaseOfferLocked(Group* g, Pending& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A delivery failed (nack, expiry): wait `delay`, or dead-letter.
  void FailLocked(Group* g, uint64_t seq, absl::Duration delay, absl::Time now,
                  GroupStore::Changes* changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RaiseFloorLocked(Group* g, GroupStore::Changes* changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CollectWakesLocked(Group* g, std::vector<std::shared_ptr<Member>>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void WakeAll(const std::vector<std::shared_ptr<Member>>& members);
  void OnLogWake(Group* g);
  void TickerLoop();

  EventLog* const log_;
  Fanout* const fanout_;
  GroupStore* const store_;
  const Options options_;

  Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_member_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, std::shared_ptr<Group>> groups_ ABSL_GUARDED_BY(mu_);

  Notification stop_ticker_;
  std::thread ticker_;
  std::atomic<uint64_t> deliveries_{0};
  std::atomic<uint64_t> redeliveries_{0};
  std::atomic<uint64_t> dead_lettered_{0};
};

// GroupMember is a member of a GroupManager group (see ConsumerGroupMember).
class GroupMember : public ConsumerGroupMember {
 public:
  ~GroupMember() override;
  GroupMember(const GroupMember&) = delete;
  GroupMember& operator=(const GroupMember&) = delete;

  absl::StatusOr<std::vector<Delivery>> Poll(
      size_t max, size_t max_bytes = std::numeric_limits<size_t>::max()) override;
  absl::Status Ack(absl::Span<const uint64_t> sequences) override;
  absl::Status Nack(absl::Span<const uint64_t> sequences, absl::Duration delay) override;
  absl::Status Extend(absl::Span<const uint64_t> sequences, absl::Duration extension) override;
  uint64_t ignored() const override;

 private:
  friend class GroupManager;
  GroupMember(GroupManager* manager, std::shared_ptr<GroupManager::Member> member)
      : manager_(manager), member_(std::move(member)) {}

  GroupManager* const manager_;
  const std::shared_ptr<GroupManager::Member> member_;
};

}  // namespace hookfan::broker
