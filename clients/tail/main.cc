// hookfan-tail: prints the events of a hookfan subscription, one JSON object
// per line.

#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "clients/tail/options.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "hookfan/v1/broker.grpc.pb.h"

namespace {

// Prints one event as a JSON line. Returns false once --max is reached.
class Printer {
 public:
  explicit Printer(std::optional<uint64_t> max) : max_(max) { json_.add_whitespace = false; }

  bool Print(const hookfan::v1::Event& event) {
    std::string line;
    google::protobuf::util::MessageToJsonString(event, &line, json_);
    std::cout << line << "\n";
    return !(max_ && ++printed_ >= *max_);
  }
  bool done() const { return max_ && printed_ >= *max_; }

 private:
  google::protobuf::util::JsonPrintOptions json_;
  std::optional<uint64_t> max_;
  uint64_t printed_ = 0;
};

grpc::Status Subscribe(hookfan::v1::EventBroker::Stub& stub, grpc::ClientContext* context,
                       const hookfan::tail::Options& options, Printer& printer) {
  auto reader = stub.Subscribe(context, options.request);
  hookfan::v1::SubscribeResponse response;
  while (reader->Read(&response)) {
    for (const hookfan::v1::Event& event : response.events()) {
      if (!printer.Print(event)) {
        std::cout.flush();
        context->TryCancel();
        break;
      }
    }
    std::cout.flush();
  }
  return reader->Finish();
}

// Joins the group and acks each batch once it is printed.
grpc::Status Consume(hookfan::v1::EventBroker::Stub& stub, grpc::ClientContext* context,
                     const hookfan::tail::Options& options, Printer& printer) {
  auto stream = stub.Consume(context);
  hookfan::v1::ConsumeRequest open;
  open.mutable_open()->set_group(options.group);
  *open.mutable_open()->mutable_filter() = options.request.filter();
  *open.mutable_open()->mutable_start() = options.request.start();
  stream->Write(open);
  hookfan::v1::ConsumeResponse response;
  bool more = true;
  while (more && stream->Read(&response)) {
    hookfan::v1::ConsumeRequest ack;
    for (const hookfan::v1::Delivery& d : response.deliveries()) {
      more = printer.Print(d.event());
      ack.mutable_ack()->add_sequences(d.event().sequence());
      if (!more) break;
    }
    std::cout.flush();
    stream->Write(ack);
  }
  if (!more) {
    stream->WritesDone();  // the server finishes the stream after the last ack
  }
  return stream->Finish();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<hookfan::tail::Options> options = hookfan::tail::ParseOptions(args);
  if (!options.ok()) {
    std::cerr << "hookfan-tail: " << options.status().message() << "\n\n"
              << hookfan::tail::kUsage;
    return 2;
  }
  if (options->help) {
    std::cout << hookfan::tail::kUsage;
    return 0;
  }

  auto channel = grpc::CreateChannel(options->server, grpc::InsecureChannelCredentials());
  auto deadline = std::chrono::system_clock::now() +
                  std::chrono::seconds(options->connect_timeout_seconds);
  if (!channel->WaitForConnected(deadline)) {
    std::cerr << "hookfan-tail: cannot connect to " << options->server << " within "
              << options->connect_timeout_seconds << "s (is hookfan running there?)\n";
    return 2;
  }
  auto stub = hookfan::v1::EventBroker::NewStub(channel);
  grpc::ClientContext context;
  Printer printer(options->max_events);
  grpc::Status status = options->group.empty() ? Subscribe(*stub, &context, *options, printer)
                                               : Consume(*stub, &context, *options, printer);
  if (printer.done()) return 0;
  std::cerr << "hookfan-tail: stream ended: " << status.error_code() << " "
            << status.error_message() << "\n";
  return status.ok() ? 0 : 1;
}
