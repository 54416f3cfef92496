#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/consumer_groups.h"
#include "store/event_log.h"
#include "nats/nats_connection.h"
#include "nats/nats_latest_view.h"
#include "common/clock.h"
#include "common/sync.h"
#include "hookfan/v1/broker.pb.h"

namespace hookfan::broker {

class NatsGroupMember;

// NatsConsumerGroups runs consumer groups on NATS JetStream, so that the
// members of one group may be connected to any hookfan replica: a group is
// a durable pull consumer on the events stream, shared by every replica, and
// JetStream leases each event to one member at a time until it is acked.
//
// Layout, for the events stream S (NatsOptions::stream):
// - Group G is the durable consumer DurableName(G) ("hookfan-grp-" + G with
//   '.' written as '~') on S. Its Description holds the group's config (the
//   base64 of a v1::ConsumerOpen with group, filter, max_deliveries,
//   key_ordered and ack_deadline); a Join with other values is refused.
// - Dead letters live in the stream "S_DEAD": one v1::DeadLetter (event
//   sequence and id only; the event is read from the log) per dead event on
//   "S.dead.<durable>.<sequence>". Redriving publishes the sequence on
//   "S.redrive.<durable>" and removes the dead letter; each group has a
//   second durable consumer of the same name on S_DEAD for those, from which
//   its members take redriven events before new ones.
// - A group started from a snapshot has a third durable consumer of that
//   name, on the latest view's stream (NatsLatestView), whose Description
//   says where the snapshot ends (SnapshotRange); the group's consumer on S
//   starts after it. Members fetch the view's entries first in each round
//   (a key_ordered group fetches nothing else until the snapshot is done),
//   pass over those written after the snapshot, and delete the consumer
//   once all of the snapshot was delivered and acked.
//
// Semantics, where they differ from GroupManager:
// - ack_deadline is the group's (JetStream's AckWait), fixed at creation
//   like the filter: a member asking for another one is refused. Extend
//   restarts the deadline at now + ack_deadline whatever extension it asks
//   for (JetStream's "in progress"), so it never shortens it and cannot
//   lengthen it beyond one ack_deadline at a time.
// - JetStream takes one filter subject: a filter with exactly one type
//   pattern becomes the consumer's subject filter; anything else (several
//   patterns, actions, platforms, organization ids) is applied here, and a
//   delivered event that does not match is acked at once and never shown.
// - key_ordered groups have one event in flight for the whole group
//   (MaxAckPending 1), which keeps per-key order trivially at the cost of
//   parallelism; a redriven event may be in flight beside it.
// - A nacked event is offered again at once (or after the nack's delay), a
//   lapsed one at its deadline: no exponential backoff. An event is
//   dead-lettered when
//   a nack (or a departing member) fails its max_deliveries-th attempt, or
//   when JetStream delivers it once more after that (a lapsed lease): the
//   member that fetches it records the dead letter and terminates the
//   message. The dead-letter attempts are those handed to members.
// - A member fetches ahead up to its max_in_flight; fetched events count as
//   delivered for JetStream (their lease starts when fetched, and
//   Delivery::deadline says so). An idle member picks up redriven events
//   within Options::fetch_wait.
// - A departing member's events go back to the group once the pull request
//   it left waiting on the server has expired (within fetch_wait), not at
//   once: JetStream 2.9 was seen losing a nacked message to such a request.
// - Two replicas creating one group at the same moment with different
//   configs may both succeed (JetStream 2.9 has no create-only call); the
//   later one's config wins.
//
// Errors a member's Poll reports (and keeps reporting): kUnavailable when
// the NATS connection is lost, JetStream does not answer, or after
// Shutdown(); kAborted when the group was deleted (on any replica: learnt
// from JetStream's consumer-deleted advisory, else from a failed fetch or
// ack, or a check an idle member makes every few seconds). A group deleted
// and at once created again may see its new members end too; they rejoin.
//
// Thread-safe. `connection` and `log` must outlive it; members must be
// destroyed before it.
class NatsConsumerGroups : public ConsumerGroups {
 public:
  struct Options {
    Clock* clock = Clock::Real();
    // How long an idle member's request for the next event waits on the
    // server. Also bounds how late an idle member picks up a redriven
    // event, and how long a departing member's events wait to go back.
    absl::Duration fetch_wait = absl::Seconds(1);
  };

  // Creates the dead-letter stream "<stream>_DEAD" if missing. Errors:
  // kUnavailable when NATS does not answer; kInternal for a stream that
  // cannot be created (e.g. its subjects overlap another stream).
  static absl::StatusOr<std::unique_ptr<NatsConsumerGroups>> Create(NatsConnection* connection,
                                                                    EventLog* log,
                                                                    Options options);
  ~NatsConsumerGroups() override;
  NatsConsumerGroups(const NatsConsumerGroups&) = delete;
  NatsConsumerGroups& operator=(const NatsConsumerGroups&) = delete;

  // ConsumerGroups. Join also fails with kInvalidArgument when the group's
  // config does not fit a JetStream consumer description (4 KiB: a very
  // long filter).
  absl::StatusOr<std::unique_ptr<ConsumerGroupMember>> Join(const v1::ConsumerOpen& open,
                                                            std::function<void()> wake) override;
  // Every group on the stream (created by any replica); `members` counts
  // this replica's. Empty when NATS does not answer.
  std::vector<v1::GroupInfo> ListGroups() override;
  absl::Status DeleteGroup(const std::string& name) override;
  absl::StatusOr<std::vector<v1::DeadLetter>> ListDeadLetters(const std::string& name,
                                                              uint64_t after,
                                                              size_t limit) override;
  absl::StatusOr<uint64_t> Redrive(const std::string& name,
                                   absl::Span<const uint64_t> sequences) override;
  // This replica's totals.
  Stats stats() const override {
    return {deliveries_.load(std::memory_order_relaxed),
            redeliveries_.load(std::memory_order_relaxed),
            dead_lettered_.load(std::memory_order_relaxed)};
  }
  void Shutdown() override;

  // The JetStream consumer name of a group, and back (nullopt for a name
  // that is not a group's).
  static std::string DurableName(absl::string_view group);
  static std::optional<std::string> GroupName(absl::string_view durable);

 private:
  friend class NatsGroupMember;

  NatsConsumerGroups(NatsConnection* connection, EventLog* log, Options options);
  absl::Status Setup();
  // OK once the event log is open and Setup succeeded (tried again on each
  // call until then: a replica may start before NATS answers).
  absl::Status EnsureSetUp();

  std::string DeadStream() const;
  std::string DeadSubject(absl::string_view durable, uint64_t sequence) const;
  std::string DeadSubjects(absl::string_view durable) const;  // of every dead letter
  std::string RedriveSubject(absl::string_view durable) const;

  // A group started from a snapshot: the log sequence its snapshot covers
  // (its consumer on the events stream starts after it) and the latest
  // view's last sequence when it was taken (entries past it are not part of
  // it). Kept in the Description of the group's consumer on the view's
  // stream, which delivers the snapshot and is deleted once it is done.
  struct SnapshotRange {
    uint64_t through = 0;
    uint64_t view_sequence = 0;
    std::string Encode() const;
    static std::optional<SnapshotRange> Decode(absl::string_view text);
  };
  NatsLatestView* View() const;  // the log's latest view (null: none)
  // The snapshot of the group whose consumer is `durable`, while it lasts
  // (nullopt: none), and its consumer's filter subject. Errors: as
  // NatsStatus.
  absl::StatusOr<std::optional<SnapshotRange>> FindSnapshot(const std::string& durable,
                                                            std::string* filter_subject = nullptr);
  // Deletes the snapshot consumer of `durable`, if any.
  void DropSnapshot(const std::string& durable);
  // Finds, or takes and creates, the snapshot a new group starts from.
  absl::StatusOr<SnapshotRange> EnsureSnapshot(const std::string& durable,
                                               const v1::ConsumerOpen& config);
  // Creates the group's consumers if missing (starting at `open.start`)
  // and checks that an existing group has `config`. Errors: as Join.
  absl::Status EnsureGroup(const v1::ConsumerOpen& open, const v1::ConsumerOpen& config);
  // OK if the group's consumer exists; kNotFound (naming the group) or
  // kUnavailable otherwise.
  absl::Status CheckGroup(const std::string& name);
  // The event sequences of a group's dead letters, ascending.
  absl::StatusOr<std::vector<uint64_t>> DeadSequences(absl::string_view durable);
  // Records a dead letter (only that: the caller settles the message).
  absl::Status PublishDeadLetter(absl::string_view durable, const EventPtr& event,
                                 uint32_t attempts);

  // This replica's members, by group. Register fails with kUnavailable
  // after Shutdown().
  absl::Status Register(NatsGroupMember* member);
  void Unregister(NatsGroupMember* member);
  // Ends the members of `group` (all when empty) with `why`.
  void EndMembers(const std::string& group, const absl::Status& why);
  void EndMembersLocked(const std::string& group, const absl::Status& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // JetStream's consumer-deleted advisories for the events stream.
  static void OnConsumerDeleted(natsConnection* nc, natsSubscription* sub, natsMsg* msg,
                                void* closure);
  static void OnDeletionsClosed(void* closure);

  NatsConnection* const connection_;
  EventLog* const log_;
  const Options options_;
  int connection_listener_ = 0;
  natsSubscription* deletions_ = nullptr;  // null if the advisories cannot be read
  Notification deletions_closed_;

  // Lock order: NatsConnection's listener lock, mu_, a member's locks.
  Mutex setup_mu_;
  bool set_up_ ABSL_GUARDED_BY(setup_mu_) = false;
  Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::set<NatsGroupMember*>> members_ ABSL_GUARDED_BY(mu_);

  std::atomic<uint64_t> deliveries_{0};
  std::atomic<uint64_t> redeliveries_{0};
  std::atomic<uint64_t> dead_lettered_{0};
};

}  // namespace hookfan::broker
