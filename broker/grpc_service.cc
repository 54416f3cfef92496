#include "broker/grpc_service.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"

namespace hookfan::broker {
namespace {

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

char* PutVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

// StreamPump drives the writing side of a server stream, for Subscribe and
// Consume alike: Wake() (from the broker) or a completed write schedules one
// Produce() on the executor; a produced response is written; at most one
// Produce runs and none while a write is outstanding, so a slow client holds
// at most one response. Every path reaches Finish exactly once.
//
// Lifetime: deleted once gRPC has called OnDone and no Produce is queued or
// running. Subclasses release what may call Wake() in Release(), which runs
// first in the destructor.
template <typename Reactor, typename Response>
class StreamPump : public Reactor {
 public:
  explicit StreamPump(Executor* executor) : executor_(executor) {}

  void Wake() {
    absl::MutexLock lock(&mu_);
    wake_pending_ = true;
    ScheduleLocked();
  }

  void FinishNow(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

  // The next batch is produced right here, on gRPC's thread, not after a
  // hop through the executor: a write completing is the common case under
  // load, and the hop doubled the cost of each delivery.
  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (finished_) {
        if (pending_finish_) {
          this->Finish(*pending_finish_);
          pending_finish_.reset();
        }
        return;
      }
      if (!ok) {
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed by the client"));
        return;
      }
      if (pumping_) return;  // a pump already runs and will see writing_ == false
      pumping_ = true;
      wake_pending_ = false;
      ++pumps_;
    }
    Pump();
  }

  void OnCancel() override { FinishNow(grpc::Status::CANCELLED); }

  void OnDone() override {
    bool remove;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      remove = pumps_ == 0;
    }
    if (remove) delete this;
  }

 protected:
  // Fills `out` with the next response; false when there is nothing to send
  // now (a later Wake() says when to try again). An error finishes the
  // stream with that status.
  virtual absl::StatusOr<bool> Produce(Response* out) = 0;
  // Turns a Produce error into the stream's final status.
  virtual grpc::Status StatusFor(const absl::Status& status) { return ToGrpcStatus(status); }

  // Call once the stream may produce (after setup).
  void Activate() {
    absl::MutexLock lock(&mu_);
    active_ = true;
    ScheduleLocked();
  }

 private:
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!active_ || pumping_ || writing_ || finished_) return;
    pumping_ = true;
    wake_pending_ = false;
    ++pumps_;
    executor_->Schedule([this] { Pump(); });
  }

  void Pump() {
    absl::StatusOr<bool> produced = Produce(&response_);
    bool remove;
    {
      absl::MutexLock lock(&mu_);
      pumping_ = false;
      if (!finished_) {
        if (!produced.ok()) {
          FinishLocked(StatusFor(produced.status()));
        } else if (*produced) {
          writing_ = true;
          this->StartWrite(&response_);
        } else if (wake_pending_) {
          ScheduleLocked();
        }
      }
      --pumps_;
      remove = done_ && pumps_ == 0;
    }
    if (remove) delete this;
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    if (writing_) {
      pending_finish_ = status;  // finished from OnWriteDone
    } else {
      this->Finish(status);
    }
  }

  Executor* const executor_;
  Response response_;  // written only by Pump, read by gRPC during a write
  absl::Mutex mu_;
  bool active_ ABSL_GUARDED_BY(mu_) = false;
  bool pumping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int pumps_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<grpc::Status> pending_finish_ ABSL_GUARDED_BY(mu_);
};

// One Subscribe stream: batches from a Fanout subscription, pre-encoded.
class SubscribeReactor final
    : public StreamPump<grpc::ServerWriteReactor<grpc::ByteBuffer>, grpc::ByteBuffer> {
 public:
  SubscribeReactor(grpc::CallbackServerContext* context, Executor* executor,
                   size_t batch_events, size_t batch_bytes)
      : StreamPump(executor),
        context_(context),
        batch_events_(batch_events),
        batch_bytes_(batch_bytes) {}

  ~SubscribeReactor() override { subscription_.reset(); }  // no wake after this

  // Sends the initial metadata at once, so a client can tell the
  // subscription is registered before any event arrives.
  void Start(std::unique_ptr<Subscription> subscription) {
    subscription_ = std::move(subscription);
    context_->AddInitialMetadata(kStartAfterKey, absl::StrCat(subscription_->cursor()));
    StartSendInitialMetadata();
    Activate();
  }

 private:
  absl::StatusOr<bool> Produce(grpc::ByteBuffer* out) override {
    absl::StatusOr<std::vector<EventPtr>> batch = subscription_->Poll(batch_events_, batch_bytes_);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) return false;
    *out = EncodeSubscribeResponse(*batch);
    return true;
  }

  // Adds the resume point to streams that end because the server goes away.
  grpc::Status StatusFor(const absl::Status& status) override {
    if (absl::IsUnavailable(status)) {
      uint64_t resume = subscription_->cursor();
      context_->AddTrailingMetadata(kResumeAfterKey, absl::StrCat(resume));
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat(status.message(), "; resume after sequence ", resume));
    }
    return ToGrpcStatus(status);
  }

  grpc::CallbackServerContext* const context_;
  const size_t batch_events_;
  const size_t batch_bytes_;
  std::unique_ptr<Subscription> subscription_;  // set once by Start
};

// One Consume stream: the first request joins the group; later ones ack,
// nack or extend; deliveries are written as the member has credit.
class ConsumeReactor final
    : public StreamPump<grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>,
                        v1::ConsumeResponse> {
 public:
  ConsumeReactor(grpc::CallbackServerContext* context, GroupManager* groups, Executor* executor)
      : StreamPump(executor), context_(context), groups_(groups) {
    StartRead(&request_);
  }

  ~ConsumeReactor() override { member_.reset(); }  // no wake after this

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side or went away
      FinishNow(grpc::Status::OK);
      return;
    }
    absl::Status status;
    if (member_ == nullptr) {
      status = Open();
    } else {
      switch (request_.kind_case()) {
        case v1::ConsumeRequest::kAck:
          status = member_->Ack(request_.ack().sequences());
          break;
        case v1::ConsumeRequest::kNack:
          status = member_->Nack(request_.nack().sequences(), ToDuration(request_.nack().delay()));
          break;
        case v1::ConsumeRequest::kExtend:
          status = member_->Extend(request_.extend().sequences(),
                                   ToDuration(request_.extend().extension()));
          break;
        default:
          status = absl::InvalidArgumentError("after open, send ack, nack or extend");
      }
    }
    if (!status.ok()) {
      FinishNow(ToGrpcStatus(status));
      return;
    }
    StartRead(&request_);
  }

 private:
  absl::Status Open() {
    if (!request_.has_open()) {
      return absl::InvalidArgumentError("the first ConsumeRequest must carry open");
    }
    max_batch_ = request_.open().max_in_flight() == 0 ? 64 : request_.open().max_in_flight();
    absl::StatusOr<std::unique_ptr<GroupMember>> member =
        groups_->Join(request_.open(), [this] { Wake(); });
    if (!member.ok()) return member.status();
    member_ = *std::move(member);
    context_->AddInitialMetadata(kGroupKey, request_.open().group());
    StartSendInitialMetadata();
    Activate();
    return absl::OkStatus();
  }

  absl::StatusOr<bool> Produce(v1::ConsumeResponse* out) override {
    absl::StatusOr<std::vector<Delivery>> deliveries = member_->Poll(max_batch_);
    if (!deliveries.ok()) return deliveries.status();
    if (deliveries->empty()) return false;
    out->Clear();
    for (const Delivery& d : *deliveries) {
      v1::Delivery* proto = out->add_deliveries();
      *proto->mutable_event() = d.event->event;
      proto->set_attempt(d.attempt);
      SetTimestamp(d.deadline, proto->mutable_deadline());
    }
    out->set_ignored_acks(member_->ignored());
    return true;
  }

  grpc::CallbackServerContext* const context_;
  GroupManager* const groups_;
  v1::ConsumeRequest request_;
  size_t max_batch_ = 64;
  std::unique_ptr<GroupMember> member_;  // set once, by the first read
};

// Finishes a unary call with `status`.
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

grpc::ByteBuffer EncodeSubscribeResponse(const std::vector<EventPtr>& events) {
  constexpr char kEventsTag = (1 << 3) | 2;  // field 1, length-delimited
  size_t total = 0;
  for (const EventPtr& e : events) {
    total += 1 + VarintSize(e->wire.size()) + e->wire.size();
  }
  auto* bytes = new std::string(total, '\0');
  char* p = bytes->data();
  for (const EventPtr& e : events) {
    *p++ = kEventsTag;
    p = PutVarint(p, e->wire.size());
    p = std::copy(e->wire.begin(), e->wire.end(), p);
  }
  grpc::Slice slice(bytes->data(), bytes->size(),
                    [](void* s) { delete static_cast<std::string*>(s); }, bytes);
  return grpc::ByteBuffer(&slice, 1);
}

EventBrokerService::EventBrokerService(EventLog* log, Fanout* fanout, GroupManager* groups,
                                       Options options)
    : log_(log),
      fanout_(fanout),
      groups_(groups),
      options_(options),
      executor_(options.pump_threads) {}

EventBrokerService::~EventBrokerService() = default;

grpc::ServerWriteReactor<grpc::ByteBuffer>* EventBrokerService::Subscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  v1::SubscribeRequest req;
  grpc::ByteBuffer copy = *request;
  grpc::Status parsed =
      grpc::SerializationTraits<v1::SubscribeRequest>::Deserialize(&copy, &req);

  size_t batch = req.max_batch_size() == 0 ? options_.default_batch_events
                                           : std::min<size_t>(req.max_batch_size(),
                                                              options_.max_batch_events);
  auto* reactor =
      new SubscribeReactor(context, &executor_, batch, options_.max_batch_bytes);
  if (!parsed.ok()) {
    reactor->FinishNow(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                    "SubscribeRequest does not parse"));
    return reactor;
  }
  absl::StatusOr<std::unique_ptr<Subscription>> sub =
      fanout_->Subscribe(req.filter(), req.start(), [reactor] { reactor->Wake(); });
  if (!sub.ok()) {
    reactor->FinishNow(ToGrpcStatus(sub.status()));
    return reactor;
  }
  log::Debug("subscription opened", {{"peer", context->peer()},
                                     {"filter", req.filter().ShortDebugString()},
                                     {"cursor", (*sub)->cursor()}});
  reactor->Start(*std::move(sub));
  return reactor;
}

grpc::ServerUnaryReactor* EventBrokerService::GetEvent(
    grpc::CallbackServerContext* context, const v1::GetEventRequest* request,
    v1::GetEventResponse* response) {
  absl::StatusOr<EventPtr> found;
  switch (request->key_case()) {
    case v1::GetEventRequest::kId:
      found = log_->GetById(request->id());
      break;
    case v1::GetEventRequest::kSequence: {
      absl::StatusOr<std::vector<EventPtr>> read = log_->Read(request->sequence(), 1);
      if (!read.ok()) {
        found = read.status();
      } else if (read->empty() || read->front()->event.sequence() != request->sequence()) {
        found = absl::NotFoundError(
            absl::StrCat("no event with sequence ", request->sequence(), " is held"));
      } else {
        found = read->front();
      }
      break;
    }
    case v1::GetEventRequest::KEY_NOT_SET:
      found = absl::InvalidArgumentError("set id or sequence");
      break;
  }
  if (found.ok()) *response->mutable_event() = (*found)->event;
  return Reply(context, found.status());
}

grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>* EventBrokerService::Consume(
    grpc::CallbackServerContext* context) {
  return new ConsumeReactor(context, groups_, &executor_);
}

grpc::ServerUnaryReactor* EventBrokerService::ListGroups(grpc::CallbackServerContext* context,
                                                         const v1::ListGroupsRequest* /*request*/,
                                                         v1::ListGroupsResponse* response) {
  for (v1::GroupInfo& info : groups_->ListGroups()) *response->add_groups() = std::move(info);
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* EventBrokerService::DeleteGroup(grpc::CallbackServerContext* context,
                                                          const v1::DeleteGroupRequest* request,
                                                          v1::DeleteGroupResponse* /*response*/) {
  return Reply(context, groups_->DeleteGroup(request->group()));
}

grpc::ServerUnaryReactor* EventBrokerService::ListDeadLetters(
    grpc::CallbackServerContext* context, const v1::ListDeadLettersRequest* request,
    v1::ListDeadLettersResponse* response) {
  size_t limit = request->limit() == 0 ? 100 : std::min<uint32_t>(request->limit(), 1000);
  absl::StatusOr<std::vector<v1::DeadLetter>> dead =
      groups_->ListDeadLetters(request->group(), request->after_sequence(), limit);
  if (dead.ok()) {
    for (v1::DeadLetter& d : *dead) *response->add_dead_letters() = std::move(d);
  }
  return Reply(context, dead.status());
}

grpc::ServerUnaryReactor* EventBrokerService::RedriveDeadLetters(
    grpc::CallbackServerContext* context, const v1::RedriveDeadLettersRequest* request,
    v1::RedriveDeadLettersResponse* response) {
  absl::StatusOr<uint64_t> n = groups_->Redrive(request->group(), request->sequences());
  if (n.ok()) response->set_redriven(*n);
  return Reply(context, n.status());
}

}  // namespace hookfan::broker
