#include "broker/event_log.h"

namespace hookfan::broker {

EventPtr MakeStoredEvent(v1::Event event) {
  auto stored = std::make_shared<StoredEvent>();
  stored->event = std::move(event);
  stored->wire = stored->event.SerializeAsString();
  return stored;
}

}  // namespace hookfan::broker
