#include "broker/grpc_service.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
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

// One Subscribe stream. Lifetime: deleted once gRPC has called OnDone and no
// pump task is queued or running. At most one pump runs at a time and no
// pump runs while a write is outstanding.
class SubscribeReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  SubscribeReactor(grpc::CallbackServerContext* context, Executor* executor,
                   size_t batch_events, size_t batch_bytes)
      : context_(context),
        executor_(executor),
        batch_events_(batch_events),
        batch_bytes_(batch_bytes) {}

  ~SubscribeReactor() override {
    subscription_.reset();  // first: no wake can reach us after this
  }

  // Sends the initial metadata at once, so a client can tell the
  // subscription is registered before any event arrives.
  void Start(std::unique_ptr<Subscription> subscription) {
    subscription_ = std::move(subscription);
    StartSendInitialMetadata();
    absl::MutexLock lock(&mu_);
    ScheduleLocked();
  }

  // Called by Fanout when new matching events exist.
  void Wake() {
    absl::MutexLock lock(&mu_);
    wake_pending_ = true;
    ScheduleLocked();
  }

  void FinishNow(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (finished_) {
      if (pending_finish_) {
        Finish(*pending_finish_);
        pending_finish_.reset();
      }
      return;
    }
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed by the client"));
      return;
    }
    ScheduleLocked();
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

 private:
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (pumping_ || writing_ || finished_ || subscription_ == nullptr) return;
    pumping_ = true;
    wake_pending_ = false;
    ++pumps_;
    executor_->Schedule([this] { Pump(); });
  }

  void Pump() {
    absl::StatusOr<std::vector<EventPtr>> batch =
        subscription_->Poll(batch_events_, batch_bytes_);
    bool remove;
    {
      absl::MutexLock lock(&mu_);
      pumping_ = false;
      if (!finished_) {
        if (!batch.ok()) {
          FinishLocked(StatusFor(batch.status()));
        } else if (!batch->empty()) {
          buffer_ = EncodeSubscribeResponse(*batch);
          writing_ = true;
          StartWrite(&buffer_);
        } else if (wake_pending_) {
          ScheduleLocked();
        }
      }
      --pumps_;
      remove = done_ && pumps_ == 0;
    }
    if (remove) delete this;
  }

  // Adds the resume point to streams that end because the server goes away.
  grpc::Status StatusFor(const absl::Status& status) {
    if (absl::IsUnavailable(status)) {
      uint64_t resume = subscription_->cursor();
      context_->AddTrailingMetadata(kResumeAfterKey, absl::StrCat(resume));
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat(status.message(), "; resume after sequence ", resume));
    }
    return ToGrpcStatus(status);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    if (writing_) {
      pending_finish_ = status;  // finished from OnWriteDone
    } else {
      Finish(status);
    }
  }

  grpc::CallbackServerContext* const context_;
  Executor* const executor_;
  const size_t batch_events_;
  const size_t batch_bytes_;
  std::unique_ptr<Subscription> subscription_;  // set once by Start

  absl::Mutex mu_;
  grpc::ByteBuffer buffer_ ABSL_GUARDED_BY(mu_);
  bool pumping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int pumps_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<grpc::Status> pending_finish_ ABSL_GUARDED_BY(mu_);
};

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

EventBrokerService::EventBrokerService(EventLog* log, Fanout* fanout, Options options)
    : log_(log), fanout_(fanout), options_(options), executor_(options.pump_threads) {}

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
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
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
  reactor->Finish(ToGrpcStatus(found.status()));
  return reactor;
}

}  // namespace hookfan::broker
