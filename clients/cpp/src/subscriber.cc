#include "hookfan/subscriber.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "grpcpp/grpcpp.h"
#include "hookfan/v1/broker.grpc.pb.h"
#include "src/reconnect.h"

namespace hookfan {

using client_internal::Reconnect;

// One gRPC call of the logical subscription.
class Subscriber::Stream {
 public:
  grpc::ClientContext* context = nullptr;  // owned by Reconnect
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
  bool accepted = false;
};

Subscriber::Subscriber(Options options)
    : options_(std::move(options)),
      reconnect_(std::make_unique<Reconnect>(options_.connection)) {}

Subscriber::~Subscriber() {
  Cancel();
  if (stream_) stream_->reader->Finish();
}

void Subscriber::Cancel() { reconnect_->Cancel(); }

bool Subscriber::Open() {
  grpc::ClientContext* context = reconnect_->NewCall();
  if (context == nullptr) return false;
  v1::SubscribeRequest request;
  *request.mutable_filter() = options_.filter;
  request.set_max_batch_size(options_.max_batch_size);
  uint64_t resume = std::max(last_sequence_, resume_after_);
  // Cut off inside a snapshot: a new snapshot holds what this one had yet
  // to send (an entry superseded since comes later, live), and Next skips
  // what was already handed out.
  const bool inside_snapshot =
      options_.start.position_case() == v1::StartPosition::kSnapshot && resume < snapshot_through_;
  if (resume > 0 && !inside_snapshot) {
    request.mutable_start()->set_after_sequence(resume);
  } else {
    *request.mutable_start() = options_.start;
  }
  stream_ = std::make_unique<Stream>();
  stream_->context = context;
  stream_->reader = v1::EventBroker::NewStub(reconnect_->shared_channel())->Subscribe(context, request);
  return true;
}

// Reads "hookfan-start-after" (initial metadata: where the stream starts)
// or "hookfan-resume-after" (trailer: how far a draining server got).
static bool ReadSequence(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                         const char* key, uint64_t* sequence) {
  auto it = metadata.find(key);
  return it != metadata.end() &&
         absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), sequence);
}

absl::Status Subscriber::ReadResponse() {
  while (true) {
    if (stream_ == nullptr && !Open()) return absl::CancelledError("cancelled");

    if (!stream_->accepted) {
      stream_->reader->WaitForInitialMetadata();
      uint64_t start_after = 0;
      if (ReadSequence(stream_->context->GetServerInitialMetadata(), "hookfan-start-after",
                       &start_after)) {
        stream_->accepted = true;
        reconnect_->Accepted();
        resume_after_ = std::max(resume_after_, start_after);
      }
      uint64_t through = 0;
      if (ReadSequence(stream_->context->GetServerInitialMetadata(), "hookfan-snapshot-through",
                       &through)) {
        snapshot_through_ = through;
      }
    }
    if (stream_->reader->Read(&response_)) {
      if (!stream_->accepted) {  // a server that sends no start metadata
        stream_->accepted = true;
        reconnect_->Accepted();
      }
      return absl::OkStatus();
    }
    grpc::Status status = stream_->reader->Finish();
    uint64_t resume_after = 0;
    if (ReadSequence(stream_->context->GetServerTrailingMetadata(), "hookfan-resume-after",
                     &resume_after)) {
      resume_after_ = std::max(resume_after_, resume_after);
    }
    bool was_accepted = stream_->accepted;
    stream_.reset();
    if (absl::Status retry = reconnect_->AfterEnd(status, was_accepted, "subscription");
        !retry.ok()) {
      return retry;
    }
  }
}

absl::StatusOr<v1::Event> Subscriber::Next() {
  while (true) {
    while (!buffered_.empty()) {
      v1::Event event = std::move(buffered_.front());
      buffered_.pop_front();
      if (event.sequence() <= last_sequence_) continue;  // overlap after a resume
      last_sequence_ = event.sequence();
      return event;
    }
    if (absl::Status read = ReadResponse(); !read.ok()) return read;
    for (v1::Event& event : *response_.mutable_events()) buffered_.push_back(std::move(event));
  }
}

// Hands each event to `handler` where it was parsed, in the reused
// response: no copy or allocation per event (Next moves each out).
absl::Status Subscriber::Run(const std::function<bool(const v1::Event&)>& handler) {
  while (!buffered_.empty()) {  // what an earlier Next read
    absl::StatusOr<v1::Event> event = Next();
    if (!event.ok()) return event.status();
    if (!handler(*event)) return absl::OkStatus();
  }
  while (true) {
    if (absl::Status read = ReadResponse(); !read.ok()) return read;
    auto& events = *response_.mutable_events();
    for (int i = 0; i < events.size(); ++i) {
      const v1::Event& event = events[i];
      if (event.sequence() <= last_sequence_) continue;  // overlap after a resume
      last_sequence_ = event.sequence();
      if (!handler(event)) {
        // The rest of the response stays for the next Next or Run.
        for (int j = i + 1; j < events.size(); ++j) buffered_.push_back(std::move(events[j]));
        return absl::OkStatus();
      }
    }
  }
}

}  // namespace hookfan
