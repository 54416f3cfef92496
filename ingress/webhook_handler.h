#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/ingest.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "ingress/normalizer.h"
#include "ingress/rate_limiter.h"
#include "ingress/sender_auth.h"
#include "ingress/source_config.h"

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

// One request to the ingress, as the HTTP layer hands it over: a webhook
// (POST), or a sender's connection test (GET or HEAD). Views into the
// caller's request, valid for the duration of Handle.
struct IngressRequest {
  std::string_view method = "POST";  // "POST", "GET" or "HEAD"
  std::string_view path;          // e.g. "/webhooks/applivery/<token>"
  std::string_view remote_ip;     // the peer's address
  std::string_view content_type;  // the Content-Type header, "" if none
  HeaderLookup header;            // every header, by lowercase name
  std::vector<std::string_view> header_names = {};  // as sent (any case), for ce-* extensions
  std::string_view body;
};

// WebhookHandler turns one request to a configured source into an event,
// hands it to an EventSink (which stores it) and answers the sender. It
// knows no HTTP library and no store. Thread-safe; `sink` must outlive it.
//
// Answers, in the order they are checked:
//   404  no source has this path, or a wrong/missing path token (the two
//        are indistinguishable)
//   403  the peer is outside the source's allowed_cidrs
//   401  sender authentication failed (no detail; the log says why)
//   200  {"status": "ok", "source": <name>}: a GET or HEAD (a sender's
//        connection test) on a source whose kind answers it
//        (NormalizerKind::answers_get, e.g. workspace_one): nothing stored
//   405  a GET or HEAD on any other source (Allow: POST)
//   413  body larger than the source's limit
//   429  over the source's rate limit (Retry-After set)
//   415  a content type the source's normalizer does not take
//   400  a body the normalizer rejects (the message says why)
//   413  the event the body makes is larger than the sink's
//        --max-event-bytes (envelope, typed payload and the raw body; see
//        broker::CheckEvent): nothing stored
//   503  the sink cannot take the write now (Retry-After set): nothing stored
//   200  {id, sequence, type, duplicate: true}: a duplicate of an event
//        stored within the source's dedup window; nothing new is stored
//   202  {id, sequence, type}: only after the event is durable (200 for a
//        source whose success_status says so, e.g. jamf_pro, nanomdm and
//        workspace_one
//        sources by default)
class WebhookHandler {
 public:
  struct Options {
    Clock* clock = Clock::Real();
    // Where to count webhooks by source and status; null: not counted.
    // Must outlive the handler.
    metrics::Registry* metrics = nullptr;
  };

  // Errors: kInvalidArgument when two sources share a path, a source names
  // an unknown normalizer, or its auth cannot work (see SenderAuth::Create).
  static absl::StatusOr<std::unique_ptr<WebhookHandler>> Create(
      broker::EventSink* sink, std::vector<SourceConfig> sources, Options options);
  ~WebhookHandler();
  WebhookHandler(const WebhookHandler&) = delete;
  WebhookHandler& operator=(const WebhookHandler&) = delete;

  HttpAnswer Handle(const IngressRequest& request);

  // The largest body any source takes: the HTTP layer's hard limit.
  size_t max_body_bytes() const { return max_body_bytes_; }

 private:
  struct Source;

  WebhookHandler(broker::EventSink* sink, Options options);
  // The source for `path` and the path token after it ("" if none).
  Source* Route(std::string_view path, std::string_view* token) const;
  // Everything after routing.
  HttpAnswer HandleSource(Source& source, std::string_view token, const IngressRequest& request);
  // Counts an answer for `source` (null: no source matched).
  void Count(Source* source, int status);
  // The dedup key of a request, "" when it has none.
  std::string DedupKeyOf(const Source& source, const IngressRequest& request,
                       const v1::Event& event) const;

  broker::EventSink* const sink_;
  const Options options_;
  std::vector<std::unique_ptr<Source>> sources_;  // longest path first
  size_t max_body_bytes_ = 0;
  metrics::Counter* unrouted_ = nullptr;  // 404s for paths no source has
};

}  // namespace hookfan::ingress
