#include "ingress/webhook_handler.h"

#include <openssl/sha.h>

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/ingest.h"
#include "core/trace_context.h"
#include "common/log.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {

// A configured source with what it needs at run time.
struct WebhookHandler::Source {
  SourceConfig config;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<SenderAuth> auth;
  std::unique_ptr<RateLimiter> limiter;
  int success_status = 202;  // for a newly stored event (SuccessStatus)
  bool answers_get = false;  // NormalizerKind::answers_get
  std::map<int, metrics::Counter*> answers;  // by HTTP status; empty without metrics
};

namespace {

// Every status Handle answers with.
constexpr int kStatuses[] = {200, 202, 400, 401, 403, 404, 405, 413, 415, 429, 503};
constexpr char kWebhooksMetric[] = "hookfan_webhooks_total";
constexpr char kWebhooksHelp[] = "Webhook requests answered, by source and HTTP status.";

HttpAnswer Retryable(int status, absl::string_view message, int64_t retry_after_seconds) {
  HttpAnswer answer = ErrorAnswer(status, message);
  answer.headers.emplace_back("Retry-After", absl::StrCat(retry_after_seconds));
  return answer;
}

std::string Sha256Hex(std::string_view body) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

}  // namespace

HttpAnswer ErrorAnswer(int status, absl::string_view message) {
  nlohmann::json body = {{"error", {{"code", status}, {"message", std::string(message)}}}};
  return HttpAnswer{status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), {}};
}

absl::StatusOr<std::unique_ptr<WebhookHandler>> WebhookHandler::Create(
    broker::EventSink* sink, std::vector<SourceConfig> sources, Options options) {
  std::unique_ptr<WebhookHandler> handler(new WebhookHandler(sink, options));
  for (SourceConfig& config : sources) {
    if (config.path.empty()) config.path = absl::StrCat("/webhooks/", config.name);
    for (const auto& other : handler->sources_) {
      if (other->config.path == config.path) {
        return absl::InvalidArgumentError(absl::StrCat("sources ", other->config.name, " and ",
                                                       config.name, " share the path ",
                                                       config.path));
      }
    }
    const NormalizerKind* kind = FindNormalizerKind(config.normalizer);
    if (kind == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("source ", config.name,
                                                     ": unknown normalizer \"", config.normalizer,
                                                     "\" (want ", NormalizerKindNames(), ")"));
    }
    auto source = std::make_unique<Source>();
    source->normalizer = kind->create(config);
    source->success_status = SuccessStatus(config);
    source->answers_get = kind->answers_get;
    absl::StatusOr<std::unique_ptr<SenderAuth>> auth =
        SenderAuth::Create(config.auth, options.clock);
    if (!auth.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("source ", config.name, ": ", auth.status().message()));
    }
    source->auth = *std::move(auth);
    source->limiter = std::make_unique<RateLimiter>(config.rate_limit, options.clock);
    handler->max_body_bytes_ = std::max(handler->max_body_bytes_, config.max_body_bytes);
    if (options.metrics != nullptr) {
      for (int status : kStatuses) {
        source->answers[status] = options.metrics->AddCounter(
            kWebhooksMetric, kWebhooksHelp, {{"source", config.name}, {"code", absl::StrCat(status)}});
      }
    }
    source->config = std::move(config);
    handler->sources_.push_back(std::move(source));
  }
  if (options.metrics != nullptr) {
    handler->unrouted_ = options.metrics->AddCounter(kWebhooksMetric, kWebhooksHelp,
                                                     {{"source", ""}, {"code", "404"}});
  }
  std::sort(handler->sources_.begin(), handler->sources_.end(),
            [](const auto& a, const auto& b) { return a->config.path.size() > b->config.path.size(); });
  return handler;
}

WebhookHandler::WebhookHandler(broker::EventSink* sink, Options options)
    : sink_(sink), options_(options) {}

WebhookHandler::~WebhookHandler() = default;

WebhookHandler::Source* WebhookHandler::Route(std::string_view path,
                                              std::string_view* token) const {
  for (const auto& source : sources_) {
    const std::string& prefix = source->config.path;
    if (path == prefix) {
      *token = {};
      return source.get();
    }
    // One more segment: the path token (SenderAuth refuses it for other modes).
    if (path.size() > prefix.size() + 1 && path.starts_with(prefix) &&
        path[prefix.size()] == '/' && path.find('/', prefix.size() + 1) == std::string_view::npos) {
      *token = path.substr(prefix.size() + 1);
      return source.get();
    }
  }
  return nullptr;
}

HttpAnswer WebhookHandler::Handle(const IngressRequest& request) {
  std::string_view token;
  Source* source = Route(request.path, &token);
  HttpAnswer answer =
      source == nullptr ? ErrorAnswer(404, "not found") : HandleSource(*source, token, request);
  Count(source, answer.status);
  return answer;
}

void WebhookHandler::Count(Source* source, int status) {
  if (source == nullptr) {
    if (unrouted_ != nullptr) unrouted_->Add();
    return;
  }
  if (auto it = source->answers.find(status); it != source->answers.end()) it->second->Add();
}

HttpAnswer WebhookHandler::HandleSource(Source& source, std::string_view token,
                                        const IngressRequest& request) {
  const SourceConfig& config = source.config;
  auto refuse = [&](int status, absl::string_view reason, absl::string_view message) {
    log::Warn("webhook refused", {{"source", config.name},
                                  {"status", status},
                                  {"reason", std::string(reason)},
                                  {"remote", std::string(request.remote_ip)}});
    return ErrorAnswer(status, message);
  };

  if (!config.allowed_cidrs.empty() &&
      std::none_of(config.allowed_cidrs.begin(), config.allowed_cidrs.end(),
                   [&](const Cidr& c) { return c.Contains(request.remote_ip); })) {
    return refuse(403, "peer outside allowed_cidrs", "forbidden");
  }
  AuthDecision decision = source.auth->Verify({token, request.header, request.body});
  switch (decision.outcome) {
    case AuthDecision::Outcome::kAllowed:
      break;
    case AuthDecision::Outcome::kNotFound:
      return refuse(404, decision.reason, "not found");
    case AuthDecision::Outcome::kUnauthorized: {
      HttpAnswer answer = refuse(401, decision.reason, "unauthorized");
      if (config.auth.mode == AuthMode::kBasic) {
        answer.headers.emplace_back("WWW-Authenticate", "Basic realm=\"hookfan\"");
      } else if (config.auth.mode == AuthMode::kBearer) {
        answer.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"hookfan\"");
      }
      return answer;
    }
  }
  if (request.method != "POST") {
    // A connection test (Workspace ONE's "Test Connection" is an
    // authenticated GET): it has passed the checks a webhook would.
    if (source.answers_get) {
      return HttpAnswer{200, nlohmann::json{{"status", "ok"}, {"source", config.name}}.dump(), {}};
    }
    HttpAnswer answer = ErrorAnswer(405, "method not allowed: webhooks are POSTed here");
    answer.headers.emplace_back("Allow", "POST");
    return answer;
  }
  if (request.body.size() > config.max_body_bytes) {
    return ErrorAnswer(413, absl::StrCat("body is ", request.body.size(),
                                         " bytes; the limit is ", config.max_body_bytes));
  }
  if (std::optional<absl::Duration> wait = source.limiter->Acquire()) {
    log::Warn("webhook rate limited", {{"source", config.name}});
    return Retryable(429, absl::StrCat("source ", config.name, " is over its rate limit"),
                     RetryAfterSeconds(*wait));
  }

  absl::StatusOr<v1::Event> event = source.normalizer->Normalize(
      {.content_type = request.content_type,
       .header = request.header,
       .header_names = request.header_names,
       .body = request.body});
  if (!event.ok()) {
    int status = absl::IsFailedPrecondition(event.status()) ? 415 : 400;
    return ErrorAnswer(status, event.status().message());
  }
  // The sender's W3C trace context, unless the event carries its own (a
  // CloudEvent's traceparent attribute); Stamp keeps it if valid and starts
  // a trace otherwise.
  auto& extensions = *event->mutable_extensions();
  if (extensions.count(broker::kTraceparent) == 0) {
    for (const char* name : {broker::kTraceparent, broker::kTracestate}) {
      if (std::optional<std::string_view> value = request.header(name)) {
        extensions[name] = std::string(*value);
      }
    }
  }
  sink_->Stamp(&*event);
  const std::string traceparent = event->extensions().at(broker::kTraceparent);
  const std::string dedup_key = DedupKeyOf(source, request, *event);
  const std::string type = event->type();
  absl::StatusOr<broker::AppendOnceResult> stored =
      sink_->Ingest(*std::move(event), dedup_key, config.dedup.window);
  if (absl::IsResourceExhausted(stored.status())) {
    return refuse(413, "event over --max-event-bytes", stored.status().message());
  }
  if (absl::IsInvalidArgument(stored.status())) {
    return ErrorAnswer(400, stored.status().message());
  }
  if (!stored.ok()) {
    // An unavailable store logs why itself (once per change or reason, not
    // once per webhook); anything else is news.
    log::Write(absl::IsUnavailable(stored.status()) ? log::Level::kDebug : log::Level::kError,
               "append failed",
               {{"source", config.name},
                {"trace_id", std::string(broker::TraceIdOf(traceparent))},
                {"error", stored.status().ToString()}});
    return Retryable(503, broker::kStoreUnavailable, 1);
  }
  nlohmann::json ok = {{"id", stored->id}, {"sequence", stored->sequence}, {"type", type}};
  if (stored->duplicate) {
    // The original is stored with its own trace; this request's is not.
    ok["duplicate"] = true;
    return HttpAnswer{200, ok.dump(), {}};
  }
  ok["traceparent"] = traceparent;
  return HttpAnswer{source.success_status, ok.dump(), {}};
}

std::string WebhookHandler::DedupKeyOf(const Source& source, const IngressRequest& request,
                                     const v1::Event& event) const {
  const auto body_hash = [&] { return absl::StrCat("sha256:", Sha256Hex(request.body)); };
  std::string value;
  switch (source.config.dedup.key) {
    case DedupKey::kNone:
      return "";
    case DedupKey::kIdempotencyKey:
      value = std::string(request.header("idempotency-key").value_or(""));
      break;
    case DedupKey::kWebhookId:
      value = std::string(request.header("webhook-id").value_or(""));
      break;
    case DedupKey::kBodyHash:
      value = body_hash();
      break;
    case DedupKey::kEventId:
    case DedupKey::kEventIdOrBodyHash:
      if (!event.source_event_id().empty()) {
        value = absl::StrCat(event.source(), "\n", event.source_event_id());
      } else if (source.config.dedup.key == DedupKey::kEventIdOrBodyHash) {
        value = body_hash();
      }
      break;
  }
  // Keys are per source: two sources may use the same ids.
  return value.empty() ? "" : absl::StrCat(source.config.name, "\n", value);
}

}  // namespace hookfan::ingress
