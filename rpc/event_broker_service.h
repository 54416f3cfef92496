#pragma once

#include <cstddef>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/authz.h"
#include "rpc/caller_identity.h"
#include "rpc/publish_request.h"
#include "rpc/wire.h"
#include "core/consumer_groups.h"
#include "store/event_log.h"
#include "core/fanout.h"
#include "core/ingest.h"
#include "core/send_budget.h"
#include "common/clock.h"
#include "common/executor.h"
#include "common/sync.h"
#include "common/uuid.h"
#include "grpcpp/grpcpp.h"
#include "hookfan/v1/broker.grpc.pb.h"

namespace hookfan::broker {

// The trailing-metadata key that carries the sequence to resume after when a
// stream ends with UNAVAILABLE (shutdown, drain).
inline constexpr char kResumeAfterKey[] = "hookfan-resume-after";
// Initial metadata of an accepted Subscribe: the subscription starts after
// this sequence (what "latest" resolved to), so a client cut off before its
// first event can still resume without a gap.
inline constexpr char kStartAfterKey[] = "hookfan-start-after";
// Initial metadata of an accepted Subscribe from a snapshot: the last
// sequence the snapshot covers; events above it are live.
inline constexpr char kSnapshotThroughKey[] = "hookfan-snapshot-through";
// Initial metadata of an accepted Consume: the group joined.
inline constexpr char kGroupKey[] = "hookfan-group";

// EventBrokerService implements hookfan.v1.EventBroker on the gRPC callback
// API. It is transport glue only: delivery logic lives in Fanout and
// ConsumerGroups, access decisions in the Authorizer (it extracts each call's
// bearer token and TLS peer identities and maps the statuses).
//
// Subscribe streams are pumped on a small executor: a commit wakes a parked
// subscription, the executor polls it and starts one write; the next poll
// happens when that write completes, so a slow client holds at most one
// batch and never delays ingestion or other clients. The batches of all
// streams together are bounded by a SendBudget (send_buffer_bytes), and a
// stream whose write is outstanding past stall_timeout ends with
// RESOURCE_EXHAUSTED and, on Subscribe, the sequence to resume after.
//
// Publish appends on its own small executor, so a commit waiting for fsync
// never holds a gRPC thread.
//
// Thread-safe. `log`, `fanout` and `groups` (and the clock and authorizer
// of Options) must outlive it; destroy it only after the grpc::Server using
// it has shut down.
// CallCount counts calls in progress, for AwaitIdle. Thread-safe.
class CallCount {
 public:
  // Counts one more; returns how many are counted now.
  int Add() {
    MutexLock lock(&mu_);
    return ++count_;
  }
  void Remove() {
    MutexLock lock(&mu_);
    --count_;
  }
  // Waits until none is counted or `deadline` passes; true if none is.
  bool AwaitZero(absl::Time deadline) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithDeadline(absl::Condition(
                                     +[](int* n) { return *n == 0; }, &count_),
                                 deadline);
  }

 private:
  Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

class EventBrokerService final
    : public v1::EventBroker::WithRawCallbackMethod_Subscribe<
          v1::EventBroker::CallbackService> {
 public:
  struct Options {
    int pump_threads = 2;
    size_t default_batch_events = 256;
    size_t max_batch_events = 4096;
    // Subscribe and Consume responses stop before their events pass this
    // many bytes (a single larger event is sent alone), so every response
    // stays within gRPC's default 4 MiB client receive limit.
    size_t max_batch_bytes = kMaxResponseEventBytes;
    // Receive time of published events, and the ids minted for them.
    Clock* clock = Clock::Real();
    // Who may do what. nullptr, like an Authorizer without grants, lets
    // every call in.
    const Authorizer* authorizer = nullptr;
    // Threads appending published events; concurrent appends share a commit.
    int publish_threads = 4;
    // A Publish with the same source and id as one stored less than this
    // long before (by receive time) is a duplicate.
    absl::Duration publish_dedup_window = absl::Hours(24);
    // Subscribe and Consume streams open at once; more are refused with
    // RESOURCE_EXHAUSTED (clients retry, elsewhere or later). 0: no limit.
    int max_streams = 0;
    // Bytes of Subscribe and Consume responses handed to gRPC and not yet
    // written out, for all streams together; past it batches shrink to
    // SendBudget::Options::min_batch_bytes (see SendBudget).
    size_t send_buffer_bytes = 64 << 20;
    // A stream whose response is not written out within this ends with
    // RESOURCE_EXHAUSTED, and is cancelled a timeout later. 0: never.
    absl::Duration stall_timeout = absl::Seconds(30);
    // What every published event obeys (the same for webhooks).
    IngestRules rules;
    // Where published events enter the log: the one ingest path, shared
    // with webhooks (its metrics count both). Null: the service makes its
    // own over `log`, with `clock` and `rules`.
    Ingestor* ingestor = nullptr;
  };

  EventBrokerService(EventLog* log, Fanout* fanout, ConsumerGroups* groups,
                     Options options);
  ~EventBrokerService() override;

  // Waits until no Subscribe or Consume stream is open and every Publish
  // has been answered, or until `deadline`; true if so. For a drain: end
  // the streams first (Fanout::Shutdown, ConsumerGroups::Shutdown), then
  // shut the grpc::Server down with no grace left, so idle connections are
  // closed at once instead of waiting for their clients to read a GOAWAY.
  bool AwaitIdle(absl::Time deadline);

  // The bytes queued to streams and the stalls so far, for metrics.
  const SendBudget& send_budget() const { return send_budget_; }

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;

  grpc::ServerUnaryReactor* GetEvent(grpc::CallbackServerContext* context,
                                     const v1::GetEventRequest* request,
                                     v1::GetEventResponse* response) override;
  grpc::ServerUnaryReactor* GetLatest(grpc::CallbackServerContext* context,
                                      const v1::GetLatestRequest* request,
                                      v1::GetLatestResponse* response) override;
  grpc::ServerUnaryReactor* ListKeys(grpc::CallbackServerContext* context,
                                     const v1::ListKeysRequest* request,
                                     v1::ListKeysResponse* response) override;

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const v1::PublishRequest* request,
                                    v1::PublishResponse* response) override;

  grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>* Consume(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListGroups(
      grpc::CallbackServerContext* context,
      const v1::ListGroupsRequest* request,
      v1::ListGroupsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteGroup(
      grpc::CallbackServerContext* context,
      const v1::DeleteGroupRequest* request,
      v1::DeleteGroupResponse* response) override;
  grpc::ServerUnaryReactor* ListDeadLetters(
      grpc::CallbackServerContext* context,
      const v1::ListDeadLettersRequest* request,
      v1::ListDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* RedriveDeadLetters(
      grpc::CallbackServerContext* context,
      const v1::RedriveDeadLettersRequest* request,
      v1::RedriveDeadLettersResponse* response) override;

 private:
  // Identifies the caller of `context` (see Authorizer::Authenticate).
  absl::StatusOr<const SubscriberGrant*> Authenticate(
      const grpc::CallbackServerContext& context) const;
  // Takes a stream slot for `reactor` (released when it is deleted), or
  // finishes it with RESOURCE_EXHAUSTED and returns false.
  template <typename R>
  bool TakeStreamSlot(R* reactor);
  // Checks that `caller` may manage group `name`; OK for an unknown group
  // (the ConsumerGroups then answers kNotFound).
  absl::Status CheckManageGroup(const SubscriberGrant* caller,
                                const std::string& name);
  // Appends a published event; the answer for `response`.
  absl::Status Store(v1::Event event, v1::PublishResponse* response);
  // Runs SendBudget::ExpireStalled every sweep interval until destruction.
  void Sweep();

  EventLog* const log_;
  Fanout* const fanout_;
  ConsumerGroups* const groups_;
  const Options options_;
  const Authorizer open_authorizer_{{}};
  const Authorizer* const
      authorizer_;  // options_.authorizer or open_authorizer_
  std::unique_ptr<Ingestor> own_ingestor_;  // when Options::ingestor is null
  Ingestor* const ingestor_;
  std::shared_ptr<CallCount> open_streams_ = std::make_shared<CallCount>();
  CallCount publishing_;  // Publish calls not answered yet
  SendBudget send_budget_;
  Mutex sweeper_mu_;
  bool stopping_ ABSL_GUARDED_BY(sweeper_mu_) = false;
  std::thread sweeper_;  // while stall_timeout > 0; joined first on destruction
  Executor executor_;
  Executor publish_executor_;  // last: its queued work finishes first
};


}  // namespace hookfan::broker
