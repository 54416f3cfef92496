#pragma once

#include <cstddef>
#include <memory>

#include "broker/event_log.h"
#include "broker/consumer_group.h"
#include "broker/fanout.h"
#include "common/executor.h"
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
// Initial metadata of an accepted Consume: the group joined.
inline constexpr char kGroupKey[] = "hookfan-group";

// Encodes events as a SubscribeResponse (field 1, repeated Event) by
// concatenating their stored wire encodings: no per-subscriber
// re-serialization.
grpc::ByteBuffer EncodeSubscribeResponse(const std::vector<EventPtr>& events);

// EventBrokerService implements hookfan.v1.EventBroker on the gRPC callback
// API. It is transport glue only: delivery logic lives in Fanout.
//
// Subscribe streams are pumped on a small executor: a commit wakes a parked
// subscription, the executor polls it and starts one write; the next poll
// happens when that write completes, so a slow client holds at most one
// batch and never delays ingestion or other clients.
//
// Thread-safe. `log`, `fanout` and `groups` must outlive it; destroy it only after
// the grpc::Server using it has shut down.
class EventBrokerService final
    : public v1::EventBroker::WithRawCallbackMethod_Subscribe<v1::EventBroker::CallbackService> {
 public:
  struct Options {
    int pump_threads = 2;
    size_t default_batch_events = 256;
    size_t max_batch_events = 4096;
    size_t max_batch_bytes = 1 << 20;  // a single larger event is still sent
  };

  EventBrokerService(EventLog* log, Fanout* fanout, GroupManager* groups, Options options);
  ~EventBrokerService() override;

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) override;

  grpc::ServerUnaryReactor* GetEvent(grpc::CallbackServerContext* context,
                                     const v1::GetEventRequest* request,
                                     v1::GetEventResponse* response) override;

  grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>* Consume(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListGroups(grpc::CallbackServerContext* context,
                                       const v1::ListGroupsRequest* request,
                                       v1::ListGroupsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteGroup(grpc::CallbackServerContext* context,
                                        const v1::DeleteGroupRequest* request,
                                        v1::DeleteGroupResponse* response) override;
  grpc::ServerUnaryReactor* ListDeadLetters(grpc::CallbackServerContext* context,
                                            const v1::ListDeadLettersRequest* request,
                                            v1::ListDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* RedriveDeadLetters(grpc::CallbackServerContext* context,
                                               const v1::RedriveDeadLettersRequest* request,
                                               v1::RedriveDeadLettersResponse* response) override;

 private:
  EventLog* const log_;
  Fanout* const fanout_;
  GroupManager* const groups_;
  const Options options_;
  Executor executor_;
};

// Converts an absl::Status to a grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace hookfan::broker
