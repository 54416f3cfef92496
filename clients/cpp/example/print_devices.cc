// Prints device events from hookfan until stopped:
//   print_devices [TARGET] [MAX]
#include <cstdlib>
#include <iostream>

#include "hookfan/subscriber.h"

int main(int argc, char** argv) {
  hookfan::Subscriber::Options options;
  options.connection.target = argc > 1 ? argv[1] : "127.0.0.1:9090";
  options.filter.add_types("applivery.device.*");
  options.start.set_earliest(true);
  long max = argc > 2 ? std::atol(argv[2]) : 0;

  hookfan::Subscriber subscriber(options);
  long seen = 0;
  absl::Status end = subscriber.Run([&](const hookfan::v1::Event& event) {
    std::cout << event.sequence() << " " << event.type() << " " << event.subject() << std::endl;
    return max == 0 || ++seen < max;
  });
  if (!end.ok()) std::cerr << "print_devices: " << end << "\n";
  return end.ok() ? 0 : 1;
}
