#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/event_log.h"
#include "common/clock.h"
#include "common/uuid.h"

namespace hookfan::ingress {

// A transport-neutral HTTP answer: status, JSON body, extra headers.
struct HttpAnswer {
  int status = 200;
  std::string body;  // JSON
  std::vector<std::pair<std::string, std::string>> headers;
};

// Builds the JSON error body every 4xx/5xx carries:
//   {"error": {"code": <status>, "message": "<message>"}}
HttpAnswer ErrorAnswer(int status, absl::string_view message);

// WebhookHandler turns one webhook request into a stored event and the
// answer for the sender. It knows no HTTP library: the server passes it the
// parts of the request it needs. Thread-safe; `log` must outlive it.
//
// Answers (the order of checks is the order below):
//   404  wrong or missing path token (indistinguishable from any unknown path)
//   415  Content-Type is not JSON
//   413  body larger than the limit
//   400  body is not a JSON object with a string "action"
//   503  the log cannot take the write now (Retry-After set): nothing stored
//   202  {id, sequence, type}: only after the event is durable
class WebhookHandler {
 public:
  struct Options {
    std::string applivery_token;      // required, non-empty
    size_t max_body_bytes = 1 << 20;
    Clock* clock = Clock::Real();
  };

  WebhookHandler(broker::EventLog* log, Options options);
  WebhookHandler(const WebhookHandler&) = delete;
  WebhookHandler& operator=(const WebhookHandler&) = delete;

  // POST /webhooks/applivery/{token}.
  HttpAnswer HandleApplivery(std::string_view path_token, std::string_view content_type,
                             std::string_view body);

 private:
  broker::EventLog* const log_;
  const Options options_;
  UuidV7Generator ids_;
};

// True if the media type of `content_type` is application/json or
// application/<something>+json (parameters such as charset are ignored).
bool IsJsonContentType(std::string_view content_type);

// Compares two secrets in time that does not depend on where they differ
// (nor on their lengths beyond a SHA-256 of each).
bool SecretEquals(std::string_view a, std::string_view b);

}  // namespace hookfan::ingress
