// Prints device events from hookfan until stopped, each with its trace id
// (to find it in a tracer):
//   print_devices [TARGET] [MAX]
#include <cstdlib>
#include <iostream>

#include "hookfan/subscriber.h"
#include "hookfan/trace_context.h"

int main(int argc, char** argv) {
  hookfan::Subscriber::Options options;
  options.connection.target = argc > 1 ? argv[1] : "127.0.0.1:9090";
  options.filter.add_types("applivery.device.*");
  options.start.set_earliest(true);
  long max = argc > 2 ? std::atol(argv[2]) : 0;

  hookfan::Subscriber subscriber(options);
  long seen = 0;
  absl::Status end = subscriber.Run([&](const hookfan::v1::Event& event) {
    std::cout << event.sequence() << " " << event.type() << " " << event.subject();
    if (std::optional<hookfan::TraceContext> trace = hookfan::TraceContextOf(event)) {
      std::cout << " trace " << trace->trace_id();
    }
    std::cout << std::endl;
    return max == 0 || ++seen < max;
  });
  if (!end.ok()) std::cerr << "print_devices: " << end << "\n";
  return end.ok() ? 0 : 1;
}
