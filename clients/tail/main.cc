// hookfan-tail: prints the events of a hookfan subscription (or consumer
// group), reconnecting and resuming without gaps when the server restarts.

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "clients/tail/options.h"
#include "clients/tail/printer.h"
#include "grpcpp/grpcpp.h"
#include "hookfan/group_consumer.h"
#include "hookfan/subscriber.h"

namespace {

using hookfan::tail::Options;

// Prints events in the chosen format; counts them against --max.
class Printer {
 public:
  explicit Printer(const Options& options) : max_(options.max_events), body_(options.body) {
    bool terminal = isatty(STDOUT_FILENO) == 1;
    pretty_ = options.output == hookfan::tail::Output::kPretty ||
              (options.output == hookfan::tail::Output::kAuto && terminal);
    color_ = options.color == hookfan::tail::Color::kAlways ||
             (options.color == hookfan::tail::Color::kAuto && terminal &&
              std::getenv("NO_COLOR") == nullptr);
  }

  // Returns false once --max events are printed.
  bool Print(const hookfan::v1::Event& event) {
    std::cout << (pretty_ ? hookfan::tail::FormatPretty(event, color_)
                          : hookfan::tail::FormatJson(event, body_))
              << std::endl;
    return !(max_ && ++printed_ >= *max_);
  }

 private:
  std::optional<uint64_t> max_;
  const hookfan::tail::Body body_;
  uint64_t printed_ = 0;
  bool pretty_ = false;
  bool color_ = false;
};

void LogReconnect(absl::string_view line) { std::cerr << "hookfan-tail: " << line << "\n"; }

int Finish(const absl::Status& status) {
  if (status.ok()) return 0;
  std::cerr << "hookfan-tail: stream refused: " << absl::StatusCodeToString(status.code())
            << ": " << status.message() << "\n";
  return status.code() == absl::StatusCode::kUnavailable ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<Options> options = hookfan::tail::ParseOptions(args);
  if (!options.ok()) {
    std::cerr << "hookfan-tail: " << options.status().message() << "\n\n"
              << hookfan::tail::kUsage;
    return 2;
  }
  if (options->help) {
    std::cout << hookfan::tail::kUsage;
    return 0;
  }

  // Reachable at start, or a clear error; later outages are retried.
  hookfan::ConnectionOptions connection;
  connection.target = options->server;
  connection.bearer_token = options->token;
  connection.log = LogReconnect;
  connection.channel = hookfan::CreateChannel(connection);
  auto deadline = std::chrono::system_clock::now() +
                  std::chrono::seconds(options->connect_timeout_seconds);
  if (!connection.channel->WaitForConnected(deadline)) {
    std::cerr << "hookfan-tail: cannot connect to " << options->server << " within "
              << options->connect_timeout_seconds << "s (is hookfan running there?)\n";
    return 2;
  }

  Printer printer(*options);
  if (options->group.empty()) {
    hookfan::Subscriber::Options subscriber;
    subscriber.connection = connection;
    subscriber.filter = options->request.filter();
    subscriber.start = options->request.start();
    hookfan::Subscriber stream(subscriber);
    return Finish(stream.Run([&](const hookfan::v1::Event& event) { return printer.Print(event); }));
  }
  hookfan::GroupConsumer::Options consumer;
  consumer.connection = connection;
  consumer.open.set_group(options->group);
  *consumer.open.mutable_filter() = options->request.filter();
  *consumer.open.mutable_start() = options->request.start();
  hookfan::GroupConsumer group(consumer);
  while (true) {  // ack after printing, so a crash mid-print redelivers
    absl::StatusOr<hookfan::v1::Delivery> delivery = group.Next();
    if (!delivery.ok()) return Finish(delivery.status());
    bool more = printer.Print(delivery->event());
    group.Ack(delivery->event().sequence()).IgnoreError();  // lost: redelivered
    if (!more) return Finish(group.Close());
  }
}
