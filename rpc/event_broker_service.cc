#include "rpc/event_broker_service.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/event_rules.h"
#include "core/filter.h"
#include "core/ingest.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace hookfan::broker {
namespace {

// StreamPump drives the writing side of a server stream, for Subscribe and
// Consume alike: Wake() (from the broker) or a completed write schedules one
// Produce() on the executor; a produced response is written; at most one
// Produce runs and none while a write is outstanding, so a slow client holds
// at most one response. Every path reaches Finish exactly once.
//
// Each response is sized by the SendBudget shared by all streams and held in
// it until its write completes. A write outstanding past the stall timeout
// finishes the stream with RESOURCE_EXHAUSTED naming --grpc-stall-timeout
// (queued behind the data, for a client that is slow but reading); one still
// outstanding a timeout later cancels the stream, which frees its buffers.
//
// Lifetime: deleted once gRPC has called OnDone and no Produce or stall
// handling is queued or running. Subclasses release what may call Wake()
// in their destructor.
template <typename Reactor, typename Response>
class StreamPump : public Reactor {
 public:
  StreamPump(grpc::CallbackServerContext* context, Executor* executor,
             SendBudget* budget, size_t max_batch_bytes)
      : context_(context),
        executor_(executor),
        budget_(budget),
        max_batch_bytes_(max_batch_bytes) {}
  ~StreamPump() {
    ReleaseHold();  // a safety net: OnWriteDone released it already
    if (slot_ != nullptr) slot_->Remove();
  }

  void Wake() {
    MutexLock lock(&mu_);
    wake_pending_ = true;
    ScheduleLocked();
  }

  void FinishNow(const grpc::Status& status) {
    MutexLock lock(&mu_);
    FinishLocked(status);
  }

  // Counts this stream in `open` until it is deleted.
  void HoldSlot(std::shared_ptr<CallCount> open) { slot_ = std::move(open); }

  // The next batch is produced right here, on gRPC's thread, not after a
  // hop through the executor: a write completing is the common case under
  // load, and the hop doubled the cost of each delivery.
  void OnWriteDone(bool ok) override {
    // First, so a stall handler is never called for a write that is over.
    ReleaseHold();
    {
      MutexLock lock(&mu_);
      writing_ = false;
      if (finished_) {
        if (pending_finish_) {
          this->Finish(*pending_finish_);
          pending_finish_.reset();
        }
        return;
      }
      if (!ok) {
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED,
                                  "stream closed by the client"));
        return;
      }
      if (pumping_)
        return;  // a pump already runs and will see writing_ == false
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
      MutexLock lock(&mu_);
      done_ = true;
      remove = pumps_ == 0;
    }
    if (remove) delete this;
  }

 protected:
  grpc::CallbackServerContext* context() const { return context_; }

  // Fills `out` with the next response, of at most `max_bytes` (but at
  // least one event), and returns its size in bytes; 0 when there is
  // nothing to send now (a later Wake() says when to try again). An error
  // finishes the stream with that status.
  virtual absl::StatusOr<size_t> Produce(Response* out, size_t max_bytes) = 0;
  // Turns a Produce error into the stream's final status.
  virtual grpc::Status StatusFor(const absl::Status& status) {
    return ToGrpcStatus(status);
  }

  // Call once the stream may produce (after setup).
  void Activate() {
    MutexLock lock(&mu_);
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
    absl::StatusOr<size_t> produced =
        Produce(&response_, budget_->BatchBytes(max_batch_bytes_));
    // Held before mu_ is taken: the budget calls OnStalled under its own
    // lock, which then takes mu_.
    uint64_t hold = 0;
    if (produced.ok() && *produced > 0) {
      hold = budget_->Hold(*produced,
                           [this](SendBudget::Stall which) { OnStalled(which); });
    }
    bool remove;
    {
      MutexLock lock(&mu_);
      pumping_ = false;
      if (!finished_) {
        if (!produced.ok()) {
          FinishLocked(StatusFor(produced.status()));
        } else if (*produced > 0) {
          writing_ = true;
          hold_ = std::exchange(hold, 0);
          this->StartWrite(&response_);
        } else if (wake_pending_) {
          ScheduleLocked();
        }
      }
      --pumps_;
      remove = done_ && pumps_ == 0;
    }
    if (hold != 0) budget_->Release(hold);  // finished meanwhile: never written
    if (remove) delete this;
  }

  void ReleaseHold() {
    uint64_t hold;
    {
      MutexLock lock(&mu_);
      hold = std::exchange(hold_, 0);
    }
    if (hold != 0) budget_->Release(hold);
  }

  // From the budget, under its lock (so before ReleaseHold returns): only
  // schedules the work, which may call back into gRPC and so into
  // OnWriteDone.
  void OnStalled(SendBudget::Stall which) {
    MutexLock lock(&mu_);
    if (!writing_ || done_) return;
    ++pumps_;
    executor_->Schedule([this, which] { EndStalled(which); });
  }

  void EndStalled(SendBudget::Stall which) {
    if (which == SendBudget::Stall::kFirst) {
      const grpc::Status status = StatusFor(absl::ResourceExhaustedError(absl::StrCat(
          "the stream stalled: the client took no data for ",
          absl::FormatDuration(budget_->stall_timeout()),
          " (the limit is --grpc-stall-timeout)")));
      MutexLock lock(&mu_);
      if (!finished_) {
        // Not deferred to OnWriteDone as FinishLocked would: the write may
        // never complete. The status follows the data in the stream.
        finished_ = true;
        this->Finish(status);
      }
    } else {
      context_->TryCancel();  // not reading even the status: free it all
    }
    bool remove;
    {
      MutexLock lock(&mu_);
      --pumps_;
      remove = done_ && pumps_ == 0;
    }
    if (remove) delete this;
  }

  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    if (writing_) {
      pending_finish_ = status;  // finished from OnWriteDone
    } else {
      this->Finish(status);
    }
  }

  grpc::CallbackServerContext* const context_;
  Executor* const executor_;
  SendBudget* const budget_;
  const size_t max_batch_bytes_;
  std::shared_ptr<CallCount> slot_;  // the open-stream count, if counted in it
  Response response_;  // written only by Pump, read by gRPC during a write
  Mutex mu_;
  bool active_ ABSL_GUARDED_BY(mu_) = false;
  bool pumping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int pumps_ ABSL_GUARDED_BY(mu_) = 0;  // Pump and EndStalled queued or running
  uint64_t hold_ ABSL_GUARDED_BY(mu_) = 0;  // the budget's hold of the write, if any
  std::optional<grpc::Status> pending_finish_ ABSL_GUARDED_BY(mu_);
};

// One Subscribe stream: batches from a Fanout subscription, pre-encoded.
class SubscribeReactor final
    : public StreamPump<grpc::ServerWriteReactor<grpc::ByteBuffer>,
                        grpc::ByteBuffer> {
 public:
  SubscribeReactor(grpc::CallbackServerContext* context, Executor* executor,
                   SendBudget* budget, size_t batch_events, size_t batch_bytes)
      : StreamPump(context, executor, budget, batch_bytes), batch_events_(batch_events) {}

  ~SubscribeReactor() override { subscription_.reset(); }  // no wake after this

  // Sends the initial metadata at once, so a client can tell the
  // subscription is registered before any event arrives.
  void Start(std::unique_ptr<Subscription> subscription, bool snapshot) {
    subscription_ = std::move(subscription);
    context()->AddInitialMetadata(kStartAfterKey,
                                 absl::StrCat(subscription_->cursor()));
    if (snapshot) {
      context()->AddInitialMetadata(kSnapshotThroughKey,
                                    absl::StrCat(subscription_->snapshot_through()));
    }
    StartSendInitialMetadata();
    Activate();
  }

 private:
  absl::StatusOr<size_t> Produce(grpc::ByteBuffer* out,
                                 size_t max_bytes) override {
    absl::StatusOr<std::vector<EventPtr>> batch =
        subscription_->Poll(batch_events_, max_bytes);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) return 0;
    *out = EncodeSubscribeResponse(*batch);
    return out->Length();
  }

  // Adds the resume point to streams that end because the server goes away
  // or the client stalled: the client resumes after it.
  grpc::Status StatusFor(const absl::Status& status) override {
    if (absl::IsUnavailable(status) || absl::IsResourceExhausted(status)) {
      uint64_t resume = subscription_->cursor();
      context()->AddTrailingMetadata(kResumeAfterKey, absl::StrCat(resume));
      grpc::Status base = ToGrpcStatus(status);
      return grpc::Status(base.error_code(), absl::StrCat(base.error_message(),
                                                          "; resume after sequence ", resume));
    }
    return ToGrpcStatus(status);
  }

  const size_t batch_events_;
  std::unique_ptr<Subscription> subscription_;  // set once by Start
};

// One Consume stream: the first request joins the group; later ones ack,
// nack or extend; deliveries are written as the member has credit.
class ConsumeReactor final
    : public StreamPump<
          grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>,
          v1::ConsumeResponse> {
 public:
  // A `caller` error finishes the stream at once with that status.
  ConsumeReactor(grpc::CallbackServerContext* context, ConsumerGroups* groups,
                 Executor* executor, const Authorizer* authorizer,
                 absl::StatusOr<const SubscriberGrant*> caller,
                 SendBudget* budget, size_t batch_bytes)
      : StreamPump(context, executor, budget, batch_bytes),
        groups_(groups),
        authorizer_(authorizer) {
    if (!caller.ok()) {
      FinishNow(ToGrpcStatus(caller.status()));
      return;
    }
    caller_ = *caller;
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
          status = member_->Nack(request_.nack().sequences(),
                                 ToDuration(request_.nack().delay()));
          break;
        case v1::ConsumeRequest::kExtend:
          status = member_->Extend(request_.extend().sequences(),
                                   ToDuration(request_.extend().extension()));
          break;
        default:
          status = absl::InvalidArgumentError(
              "after open, send ack, nack or extend");
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
      return absl::InvalidArgumentError(
          "the first ConsumeRequest must carry open");
    }
    if (absl::Status s =
            authorizer_->CheckReceive(caller_, request_.open().filter());
        !s.ok()) {
      return s;
    }
    max_batch_ = request_.open().max_in_flight() == 0
                     ? 64
                     : request_.open().max_in_flight();
    absl::StatusOr<std::unique_ptr<ConsumerGroupMember>> member =
        groups_->Join(request_.open(), [this] { Wake(); });
    if (!member.ok()) return member.status();
    member_ = *std::move(member);
    context()->AddInitialMetadata(kGroupKey, request_.open().group());
    StartSendInitialMetadata();
    Activate();
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Produce(v1::ConsumeResponse* out,
                                 size_t max_bytes) override {
    absl::StatusOr<std::vector<Delivery>> deliveries =
        member_->Poll(max_batch_, max_bytes);
    if (!deliveries.ok()) return deliveries.status();
    if (deliveries->empty()) return 0;
    out->Clear();
    for (const Delivery& d : *deliveries) {
      v1::Delivery* proto = out->add_deliveries();
      *proto->mutable_event() = d.event->event;
      proto->set_attempt(d.attempt);
      SetTimestamp(d.deadline, proto->mutable_deadline());
    }
    out->set_ignored_acks(member_->ignored());
    return out->ByteSizeLong();
  }

  ConsumerGroups* const groups_;
  const Authorizer* const authorizer_;
  const SubscriberGrant* caller_ =
      Authorizer::kAnyone;  // set by the constructor
  v1::ConsumeRequest request_;
  size_t max_batch_ = 64;
  std::unique_ptr<ConsumerGroupMember> member_;  // set once, by the first read
};

// Finishes a unary call with `status`.
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

EventBrokerService::EventBrokerService(EventLog* log, Fanout* fanout,
                                       ConsumerGroups* groups, Options options)
    : log_(log),
      fanout_(fanout),
      groups_(groups),
      options_(options),
      authorizer_(options.authorizer != nullptr ? options.authorizer
                                                : &open_authorizer_),
      own_ingestor_(options.ingestor != nullptr
                        ? nullptr
                        : std::make_unique<Ingestor>(
                              log, Ingestor::Options{.clock = options.clock, .rules = options.rules})),
      ingestor_(options.ingestor != nullptr ? options.ingestor : own_ingestor_.get()),
      // Stalls are measured in real time, like the network they happen
      // on: tests that move options.clock by hours must not stall streams.
      send_budget_({.total_bytes = options.send_buffer_bytes,
                    .stall_timeout = options.stall_timeout,
                    .clock = Clock::Real()}),
      executor_(options.pump_threads),
      publish_executor_(options.publish_threads) {
  if (options.stall_timeout > absl::ZeroDuration()) {
    sweeper_ = std::thread([this] { Sweep(); });
  }
}

EventBrokerService::~EventBrokerService() {
  {
    MutexLock lock(&sweeper_mu_);
    stopping_ = true;
  }
  if (sweeper_.joinable()) sweeper_.join();
}

void EventBrokerService::Sweep() {
  MutexLock lock(&sweeper_mu_);
  while (!sweeper_mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                                       send_budget_.sweep_interval())) {
    send_budget_.ExpireStalled();
  }
}

bool EventBrokerService::AwaitIdle(absl::Time deadline) {
  return open_streams_->AwaitZero(deadline) && publishing_.AwaitZero(deadline);
}

absl::StatusOr<const SubscriberGrant*> EventBrokerService::Authenticate(
    const grpc::CallbackServerContext& context) const {
  if (authorizer_->open()) return Authorizer::kAnyone;
  return authorizer_->Authenticate(BearerToken(context),
                                   PeerIdentities(context));
}

absl::Status EventBrokerService::CheckManageGroup(const SubscriberGrant* caller,
                                                  const std::string& name) {
  if (caller == Authorizer::kAnyone) return absl::OkStatus();
  for (const v1::GroupInfo& info : groups_->ListGroups()) {
    if (info.name() == name)
      return authorizer_->CheckManageGroup(caller, name, info.filter());
  }
  return absl::OkStatus();
}

template <typename R>
bool EventBrokerService::TakeStreamSlot(R* reactor) {
  int open = open_streams_->Add();
  reactor->HoldSlot(open_streams_);
  if (options_.max_streams > 0 && open > options_.max_streams) {
    reactor->FinishNow(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("this hookfan serves at most ", options_.max_streams,
                     " streams at once; retry later or on another replica")));
    return false;
  }
  return true;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* EventBrokerService::Subscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  v1::SubscribeRequest req;
  grpc::ByteBuffer copy = *request;
  grpc::Status parsed =
      grpc::SerializationTraits<v1::SubscribeRequest>::Deserialize(&copy, &req);

  size_t batch =
      req.max_batch_size() == 0
          ? options_.default_batch_events
          : std::min<size_t>(req.max_batch_size(), options_.max_batch_events);
  auto* reactor = new SubscribeReactor(context, &executor_, &send_budget_,
                                       batch, options_.max_batch_bytes);
  if (!TakeStreamSlot(reactor)) return reactor;
  absl::StatusOr<const SubscriberGrant*> caller = Authenticate(*context);
  if (!caller.ok()) {
    reactor->FinishNow(ToGrpcStatus(caller.status()));
    return reactor;
  }
  if (!parsed.ok()) {
    reactor->FinishNow(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                    "SubscribeRequest does not parse"));
    return reactor;
  }
  if (absl::Status s = authorizer_->CheckReceive(*caller, req.filter());
      !s.ok()) {
    reactor->FinishNow(ToGrpcStatus(s));
    return reactor;
  }
  // No store work for a client already gone (one that sends a request
  // and resets the stream at once, by the thousand).
  if (context->IsCancelled()) {
    reactor->FinishNow(grpc::Status::CANCELLED);
    return reactor;
  }
  absl::StatusOr<std::unique_ptr<Subscription>> sub = fanout_->Subscribe(
      req.filter(), req.start(), [reactor] { reactor->Wake(); });
  if (!sub.ok()) {
    // A re-subscribe refused while the store is away is told where to
    // resume, as a stream it ended would be: where it asked to start.
    if (absl::IsUnavailable(sub.status()) &&
        req.start().position_case() == v1::StartPosition::kAfterSequence) {
      context->AddTrailingMetadata(kResumeAfterKey, absl::StrCat(req.start().after_sequence()));
    }
    reactor->FinishNow(ToGrpcStatus(sub.status()));
    return reactor;
  }
  log::Debug("subscription opened",
             {{"peer", context->peer()},
              {"filter", req.filter().ShortDebugString()},
              {"cursor", (*sub)->cursor()}});
  reactor->Start(*std::move(sub),
                 req.start().position_case() == v1::StartPosition::kSnapshot);
  return reactor;
}

grpc::ServerUnaryReactor* EventBrokerService::GetEvent(
    grpc::CallbackServerContext* context, const v1::GetEventRequest* request,
    v1::GetEventResponse* response) {
  absl::StatusOr<const SubscriberGrant*> caller = Authenticate(*context);
  if (!caller.ok()) return Reply(context, caller.status());
  absl::StatusOr<EventPtr> found;
  switch (request->key_case()) {
    case v1::GetEventRequest::kId:
      // Checked first, so an id's echo in an error is short (and a
      // hostile one never reaches the store).
      if (!IsCanonicalUuid(request->id())) {
        found = absl::InvalidArgumentError(absl::StrCat(
            "id ", QuoteForError(request->id()),
            " is not a hookfan event id (a UUID such as "
            "01a21a5a-5965-7000-9a6a-c7b991c35543)"));
      } else {
        found = log_->GetById(request->id());
      }
      break;
    case v1::GetEventRequest::kSequence: {
      absl::StatusOr<std::vector<EventPtr>> read =
          log_->Read(request->sequence(), 1);
      if (!read.ok()) {
        found = read.status();
      } else if (read->empty() ||
                 read->front()->event.sequence() != request->sequence()) {
        found = absl::NotFoundError(absl::StrCat(
            "no event with sequence ", request->sequence(), " is held"));
      } else {
        found = read->front();
      }
      break;
    }
    case v1::GetEventRequest::KEY_NOT_SET:
      found = absl::InvalidArgumentError("set id or sequence");
      break;
  }
  if (!found.ok()) return Reply(context, found.status());
  if (absl::Status s =
          authorizer_->CheckReceiveEvent(*caller, (*found)->event.type());
      !s.ok()) {
    return Reply(context, s);
  }
  *response->mutable_event() = (*found)->event;
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* EventBrokerService::GetLatest(
    grpc::CallbackServerContext* context, const v1::GetLatestRequest* request,
    v1::GetLatestResponse* response) {
  absl::StatusOr<const SubscriberGrant*> caller = Authenticate(*context);
  if (!caller.ok()) return Reply(context, caller.status());
  if (request->key().empty() || request->key().size() > kMaxKeyLength) {
    return Reply(context, absl::InvalidArgumentError(absl::StrCat(
                              "key must be 1 to ", kMaxKeyLength, " bytes")));
  }
  v1::Filter types;
  *types.mutable_types() = request->types();
  absl::StatusOr<Filter> filter = Filter::Create(types);
  if (!filter.ok()) return Reply(context, filter.status());
  if (absl::Status s = authorizer_->CheckReceive(*caller, types); !s.ok()) {
    return Reply(context, s);
  }
  absl::StatusOr<std::vector<EventPtr>> latest = log_->GetLatest(request->key());
  if (!latest.ok()) return Reply(context, latest.status());
  for (const EventPtr& e : *latest) {
    if (filter->Matches(e->event)) *response->add_events() = e->event;
  }
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* EventBrokerService::ListKeys(
    grpc::CallbackServerContext* context, const v1::ListKeysRequest* request,
    v1::ListKeysResponse* response) {
  constexpr size_t kDefaultPage = 100;
  constexpr size_t kMaxPage = 1000;
  absl::StatusOr<const SubscriberGrant*> caller = Authenticate(*context);
  if (!caller.ok()) return Reply(context, caller.status());
  absl::StatusOr<Filter> filter = Filter::Create(request->filter());
  if (!filter.ok()) return Reply(context, filter.status());
  if (absl::Status s = authorizer_->CheckReceive(*caller, request->filter()); !s.ok()) {
    return Reply(context, s);
  }
  // The token is the last key of the previous page.
  std::string after;
  if (!absl::WebSafeBase64Unescape(request->page_token(), &after)) {
    return Reply(context, absl::InvalidArgumentError("page_token is not one ListKeys returned"));
  }
  const size_t page = request->page_size() == 0
                          ? kDefaultPage
                          : std::min<size_t>(request->page_size(), kMaxPage);
  absl::StatusOr<std::vector<KeyLatest>> keys = log_->ListLatest(after, page);
  if (!keys.ok()) return Reply(context, keys.status());
  for (const KeyLatest& key : *keys) {
    std::vector<const v1::Event*> matching;
    for (const EventPtr& e : key.events) {
      if (filter->Matches(e->event)) matching.push_back(&e->event);
    }
    if (matching.empty()) continue;  // in sequence order, as ListLatest returns them
    v1::KeyState* state = response->add_keys();
    state->set_key(key.key);
    state->set_last_sequence(matching.back()->sequence());
    *state->mutable_last_time() = matching.back()->time();
    for (const v1::Event* e : matching) state->add_types(e->type());
  }
  if (keys->size() == page) {
    response->set_next_page_token(absl::WebSafeBase64Escape(keys->back().key));
  }
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* EventBrokerService::Publish(
    grpc::CallbackServerContext* context, const v1::PublishRequest* request,
    v1::PublishResponse* response) {
  absl::StatusOr<const SubscriberGrant*> caller = Authenticate(*context);
  if (!caller.ok()) return Reply(context, caller.status());
  absl::StatusOr<v1::Event> event = EventFromPublishRequest(*request);
  if (!event.ok()) return Reply(context, event.status());
  if (absl::Status s = authorizer_->CheckPublish(*caller, event->type());
      !s.ok()) {
    return Reply(context, s);
  }
  // The receive time is taken now, not when the executor gets to it.
  ingestor_->Stamp(&*event);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  publishing_.Add();
  publish_executor_.Schedule(
      [this, reactor, response, event = *std::move(event)]() mutable {
        reactor->Finish(ToGrpcStatus(Store(std::move(event), response)));
        publishing_.Remove();
      });
  return reactor;
}

absl::Status EventBrokerService::Store(v1::Event event,
                                       v1::PublishResponse* response) {
  const std::string source = event.source();
  const std::string type = event.type();
  const std::string key =
      event.source_event_id().empty()
          ? ""
          : absl::StrCat("publish:", source, "\n", event.source_event_id());
  absl::StatusOr<AppendOnceResult> stored =
      ingestor_->Ingest(std::move(event), key, options_.publish_dedup_window);
  if (!stored.ok()) {
    if (absl::IsResourceExhausted(stored.status()) ||
        absl::IsInvalidArgument(stored.status())) {
      log::Warn("publish refused", {{"type", type}, {"error", stored.status().ToString()}});
    } else if (absl::IsUnavailable(stored.status())) {
      // The store logs why (once per change or reason, not once per call).
      log::Debug("publish: the store is unavailable",
                 {{"type", type}, {"error", stored.status().ToString()}});
    } else {
      log::Error("publish: append failed",
                 {{"type", type}, {"error", stored.status().ToString()}});
    }
    return stored.status();
  }
  const AppendOnceResult& result = *stored;
  response->set_id(result.id);
  response->set_sequence(result.sequence);
  response->set_duplicate(result.duplicate);
  log::Debug("published", {{"type", type},
                           {"source", source},
                           {"id", result.id},
                           {"sequence", result.sequence},
                           {"duplicate", result.duplicate}});
  return absl::OkStatus();
}

grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>*
EventBrokerService::Consume(grpc::CallbackServerContext* context) {
  auto* reactor =
      new ConsumeReactor(context, groups_, &executor_, authorizer_, Authenticate(*context),
                         &send_budget_, options_.max_batch_bytes);
  TakeStreamSlot(reactor);
  return reactor;
}

grpc::ServerUnaryReactor* EventBrokerService::ListGroups(
    grpc::CallbackServerContext* context,
    const v1::ListGroupsRequest* /*request*/,
    v1::ListGroupsResponse* response) {
  absl::StatusOr<const SubscriberGrant*> caller = Authenticate(*context);
  if (!caller.ok()) return Reply(context, caller.status());
  for (v1::GroupInfo& info : groups_->ListGroups()) {
    if (authorizer_->CheckManageGroup(*caller, info.name(), info.filter())
            .ok()) {
      *response->add_groups() = std::move(info);
    }
  }
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* EventBrokerService::DeleteGroup(
    grpc::CallbackServerContext* context, const v1::DeleteGroupRequest* request,
    v1::DeleteGroupResponse* /*response*/) {
  absl::StatusOr<const SubscriberGrant*> caller = Authenticate(*context);
  if (!caller.ok()) return Reply(context, caller.status());
  if (absl::Status s = CheckManageGroup(*caller, request->group()); !s.ok()) {
    return Reply(context, s);
  }
  return Reply(context, groups_->DeleteGroup(request->group()));
}

grpc::ServerUnaryReactor* EventBrokerService::ListDeadLetters(
    grpc::CallbackServerContext* context,
    const v1::ListDeadLettersRequest* request,
    v1::ListDeadLettersResponse* response) {
  absl::StatusOr<const SubscriberGrant*> caller = Authenticate(*context);
  if (!caller.ok()) return Reply(context, caller.status());
  if (absl::Status s = CheckManageGroup(*caller, request->group()); !s.ok()) {
    return Reply(context, s);
  }
  size_t limit =
      request->limit() == 0 ? 100 : std::min<uint32_t>(request->limit(), 1000);
  absl::StatusOr<std::vector<v1::DeadLetter>> dead = groups_->ListDeadLetters(
      request->group(), request->after_sequence(), limit);
  if (dead.ok()) {
    // Cut by bytes like Subscribe batches (the client pages on after the
    // last one it got); the first is always sent, alone if it must be.
    size_t bytes = 0;
    for (v1::DeadLetter& d : *dead) {
      bytes += d.ByteSizeLong();
      if (response->dead_letters_size() > 0 && bytes > options_.max_batch_bytes) break;
      *response->add_dead_letters() = std::move(d);
    }
  }
  return Reply(context, dead.status());
}

grpc::ServerUnaryReactor* EventBrokerService::RedriveDeadLetters(
    grpc::CallbackServerContext* context,
    const v1::RedriveDeadLettersRequest* request,
    v1::RedriveDeadLettersResponse* response) {
  absl::StatusOr<const SubscriberGrant*> caller = Authenticate(*context);
  if (!caller.ok()) return Reply(context, caller.status());
  if (absl::Status s = CheckManageGroup(*caller, request->group()); !s.ok()) {
    return Reply(context, s);
  }
  absl::StatusOr<uint64_t> n =
      groups_->Redrive(request->group(), request->sequences());
  if (n.ok()) response->set_redriven(*n);
  return Reply(context, n.status());
}

}  // namespace hookfan::broker
