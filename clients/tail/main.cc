// hookfan-tail: prints the events of a hookfan subscription, one JSON object
// per line.

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "clients/tail/options.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "hookfan/v1/broker.grpc.pb.h"

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
  std::unique_ptr<grpc::ClientReader<hookfan::v1::SubscribeResponse>> reader =
      stub->Subscribe(&context, options->request);

  google::protobuf::util::JsonPrintOptions json;
  json.add_whitespace = false;
  uint64_t printed = 0;
  hookfan::v1::SubscribeResponse response;
  while (reader->Read(&response)) {
    for (const hookfan::v1::Event& event : response.events()) {
      std::string line;
      google::protobuf::util::MessageToJsonString(event, &line, json);
      std::cout << line << "\n";
      if (options->max_events && ++printed >= *options->max_events) {
        std::cout.flush();
        context.TryCancel();
        return 0;
      }
    }
    std::cout.flush();
  }
  grpc::Status status = reader->Finish();
  std::cerr << "hookfan-tail: stream ended: " << status.error_code() << " "
            << status.error_message() << "\n";
  return status.ok() ? 0 : 1;
}
