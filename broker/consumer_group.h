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
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "broker/event_log.h"
#include "broker/fanout.h"
#include "broker/group_store.h"
#include "common/clock.h"
#include "hookfan/v1/broker.pb.h"

namespace hookfan::broker {

// One event leased to a member.
struct Delivery {
  EventPtr event;
  uint32_t attempt = 0;  // 1 on first delivery
  absl::Time deadline;   // ack before this, or it is redelivered
};

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
// State that must survive a restart goes to the GroupStore (see there):
// acked events never come back, unacked ones are redelivered with their
// attempt counts.
//
// Deadlines and backoff use the injected Clock; Tick() expires them (a
// background ticker calls it unless Options::start_ticker is false, as in
// tests with a FakeClock).
//
// Thread-safe. `log`, `fanout`, `store` must outlive it.
class GroupManager {
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
  ~GroupManager();
  GroupManager(const GroupManager&) = delete;
  GroupManager& operator=(const GroupManager&) = delete;

  // Joins `open.group` (creating it on first use). `wake` is called (never
  // concurrently with itself, must not block or call back in) when a parked
  // member may have deliveries or must see an error; the holder then calls
  // Poll. Errors: kInvalidArgument (bad name, filter, options);
  // kFailedPrecondition (group exists with other filter/options);
  // kUnavailable (shut down, store failure).
  absl::StatusOr<std::unique_ptr<GroupMember>> Join(const v1::ConsumerOpen& open,
                                                    std::function<void()> wake);

  std::vector<v1::GroupInfo> ListGroups();

  // Totals since start, for metrics: leases handed to members, of which
  // redeliveries (attempt > 1), and events moved to dead letters.
  struct Stats {
    uint64_t deliveries = 0, redeliveries = 0, dead_lettered = 0;
  };
  Stats stats() const {
    return {deliveries_.load(std::memory_order_relaxed),
            redeliveries_.load(std::memory_order_relaxed),
            dead_lettered_.load(std::memory_order_relaxed)};
  }
  // Errors: kNotFound; kUnavailable.
  absl::Status DeleteGroup(const std::string& name);
  // Errors: kNotFound; kUnavailable.
  absl::StatusOr<std::vector<v1::DeadLetter>> ListDeadLetters(const std::string& name,
                                                              uint64_t after, size_t limit);
  // Redrives the named dead letters (all when empty); returns how many.
  // Errors: kNotFound; kUnavailable.
  absl::StatusOr<uint64_t> Redrive(const std::string& name, absl::Span<const uint64_t> sequences);

  // Expires leases, releases waits that are due, dead-letters events past
  // max_deliveries, and wakes members with work.
  void Tick();

  // Every member's Poll fails with kUnavailable from now on. Idempotent.
  void Shutdown();

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
  absl::StatusOr<std::vector<Delivery>> Poll(Member* member, size_t max);
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

  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_member_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, std::shared_ptr<Group>> groups_ ABSL_GUARDED_BY(mu_);

  absl::Notification stop_ticker_;
  std::thread ticker_;
  std::atomic<uint64_t> deliveries_{0};
  std::atomic<uint64_t> redeliveries_{0};
  std::atomic<uint64_t> dead_lettered_{0};
};

// GroupMember is one member's handle on its group. Destroying it leaves the
// group: the events it holds are offered to the other members at once
// (each counts as a delivery attempt, as a lapsed lease would).
// Poll calls must not overlap; other methods may be called from any thread.
class GroupMember {
 public:
  ~GroupMember();
  GroupMember(const GroupMember&) = delete;
  GroupMember& operator=(const GroupMember&) = delete;

  // Leases up to `max` ready events to this member, within its
  // max_in_flight. Empty: nothing now; `wake` fires when there may be.
  // Errors: kAborted (group deleted), kUnavailable (shutdown, store),
  // kOutOfRange (the group's position fell behind retention).
  absl::StatusOr<std::vector<Delivery>> Poll(size_t max);

  // Acks: these events are done. Sequences not leased to this member are
  // ignored and counted (ignored()). Errors: kUnavailable (store).
  absl::Status Ack(absl::Span<const uint64_t> sequences);
  // Hands events back for redelivery after `delay` (counts as a failed
  // delivery). Same rules as Ack.
  absl::Status Nack(absl::Span<const uint64_t> sequences, absl::Duration delay);
  // Moves the deadline of events leased to this member to now + extension.
  absl::Status Extend(absl::Span<const uint64_t> sequences, absl::Duration extension);

  // Acks and nacks that named a sequence not leased to this member.
  uint64_t ignored() const;

 private:
  friend class GroupManager;
  GroupMember(GroupManager* manager, std::shared_ptr<GroupManager::Member> member)
      : manager_(manager), member_(std::move(member)) {}

  GroupManager* const manager_;
  const std::shared_ptr<GroupManager::Member> member_;
};

// Validates a consumer group name: 1–128 characters of [A-Za-z0-9._-].
absl::Status ValidateGroupName(const std::string& name);

}  // namespace hookfan::broker
