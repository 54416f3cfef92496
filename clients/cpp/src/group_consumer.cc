#include "hookfan/group_consumer.h"

#include <utility>

#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "hookfan/v1/broker.grpc.pb.h"
#include "src/reconnect.h"

namespace hookfan {

using client_internal::Reconnect;

namespace {

constexpr size_t kAckHistory = 4096;  // acked sequences remembered

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  *out = google::protobuf::util::TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

}  // namespace

// One gRPC call of the member's logical stream.
class GroupConsumer::Stream {
 public:
  grpc::ClientContext* context = nullptr;  // owned by Reconnect
  std::unique_ptr<grpc::ClientReaderWriter<v1::ConsumeRequest, v1::ConsumeResponse>> stream;
  bool accepted = false;
};

GroupConsumer::GroupConsumer(Options options)
    : options_(std::move(options)),
      reconnect_(std::make_unique<Reconnect>(options_.connection)) {}

GroupConsumer::~GroupConsumer() {
  Cancel();
  std::lock_guard<std::mutex> lock(mu_);
  if (stream_) stream_->stream->Finish();
}

void GroupConsumer::Cancel() { reconnect_->Cancel(); }

absl::Status GroupConsumer::Close() {
  std::unique_ptr<Stream> stream;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream = std::move(stream_);
  }
  buffered_.clear();
  if (stream == nullptr) return absl::OkStatus();
  stream->stream->WritesDone();
  v1::ConsumeResponse ignored;  // leases that arrive now lapse back to the group
  while (stream->stream->Read(&ignored)) {
  }
  grpc::Status status = stream->stream->Finish();
  reconnect_->Cancel();
  return client_internal::ToAbsl(status);
}

bool GroupConsumer::Open() {
  grpc::ClientContext* context = reconnect_->NewCall();
  if (context == nullptr) return false;
  auto stream = std::make_unique<Stream>();
  stream->context = context;
  stream->stream = v1::EventBroker::NewStub(reconnect_->shared_channel())->Consume(context);
  v1::ConsumeRequest open;
  *open.mutable_open() = options_.open;
  stream->stream->Write(open);  // a failure shows up as the first Read failing
  std::lock_guard<std::mutex> lock(mu_);
  stream_ = std::move(stream);
  return true;
}

absl::StatusOr<v1::Delivery> GroupConsumer::Next() {
  while (true) {
    while (!buffered_.empty()) {
      v1::Delivery delivery = std::move(buffered_.front());
      buffered_.pop_front();
      if (WasAcked(delivery.event().sequence())) {  // our ack was lost with a stream
        v1::ConsumeRequest ack;
        ack.mutable_ack()->add_sequences(delivery.event().sequence());
        Write(ack).IgnoreError();  // if this one is lost too, it comes back again
        continue;
      }
      return delivery;
    }
    if (stream_ == nullptr && !Open()) return absl::CancelledError("cancelled");

    if (!stream_->accepted) {
      stream_->stream->WaitForInitialMetadata();
      if (stream_->context->GetServerInitialMetadata().count("hookfan-group") > 0) {
        stream_->accepted = true;
        reconnect_->Accepted();
      }
    }
    v1::ConsumeResponse response;
    if (stream_->stream->Read(&response)) {
      if (!stream_->accepted) {  // a server that sends no group metadata
        stream_->accepted = true;
        reconnect_->Accepted();
      }
      for (v1::Delivery& d : *response.mutable_deliveries()) buffered_.push_back(std::move(d));
      continue;
    }
    grpc::Status status;
    bool was_accepted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      status = stream_->stream->Finish();
      was_accepted = stream_->accepted;
      stream_.reset();
    }
    if (absl::Status retry = reconnect_->AfterEnd(status, was_accepted, "group stream");
        !retry.ok()) {
      return retry;
    }
  }
}

absl::Status GroupConsumer::Write(const v1::ConsumeRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stream_ == nullptr || !stream_->stream->Write(request)) {
    return absl::UnavailableError("the group stream is down; the event will be redelivered");
  }
  return absl::OkStatus();
}

absl::Status GroupConsumer::Ack(uint64_t sequence) {
  RememberAck(sequence);
  v1::ConsumeRequest request;
  request.mutable_ack()->add_sequences(sequence);
  return Write(request);
}

absl::Status GroupConsumer::Nack(uint64_t sequence, absl::Duration delay) {
  v1::ConsumeRequest request;
  request.mutable_nack()->add_sequences(sequence);
  if (delay > absl::ZeroDuration()) SetDuration(delay, request.mutable_nack()->mutable_delay());
  return Write(request);
}

absl::Status GroupConsumer::Extend(uint64_t sequence, absl::Duration extension) {
  v1::ConsumeRequest request;
  request.mutable_extend()->add_sequences(sequence);
  SetDuration(extension, request.mutable_extend()->mutable_extension());
  return Write(request);
}

absl::Status GroupConsumer::Run(
    const std::function<absl::Status(const v1::Delivery&)>& handler) {
  while (true) {
    absl::StatusOr<v1::Delivery> delivery = Next();
    if (!delivery.ok()) return delivery.status();
    uint64_t sequence = delivery->event().sequence();
    // A lost ack or nack is recovered by redelivery; nothing to do here.
    if (handler(*delivery).ok()) {
      Ack(sequence).IgnoreError();
    } else {
      Nack(sequence).IgnoreError();
    }
  }
}

void GroupConsumer::RememberAck(uint64_t sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!acked_.insert(sequence).second) return;
  acked_order_.push_back(sequence);
  if (acked_order_.size() > kAckHistory) {
    acked_.erase(acked_order_.front());
    acked_order_.pop_front();
  }
}

bool GroupConsumer::WasAcked(uint64_t sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_.count(sequence) > 0;
}

}  // namespace hookfan
