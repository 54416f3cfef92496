#include "ingress/webhook_handler.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>


#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "ingress/applivery_normalizer.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {
HttpAnswer ErrorAnswer(int status, absl::string_view message) {
  nlohmann::json body = {{"error", {{"code", status}, {"message", std::string(message)}}}};
  return HttpAnswer{status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), {}};
}

bool IsJsonContentType(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  std::string media =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(absl::string_view(type.data(), type.size())));
  if (media == "application/json") return true;
  return media.starts_with("application/") && media.ends_with("+json");
}

bool SecretEquals(std::string_view a, std::string_view b) {
  unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof(da)) == 0;
}

WebhookHandler::WebhookHandler(broker::EventLog* log, Options options)
    : log_(log), options_(std::move(options)), ids_(options_.clock) {}

HttpAnswer WebhookHandler::HandleApplivery(std::string_view path_token,
                                           std::string_view content_type,
                                           std::string_view body) {
  if (!SecretEquals(path_token, options_.applivery_token)) {
    log::Warn("webhook rejected: wrong path token", {{"source", "applivery"}});
    return ErrorAnswer(404, "not found");
  }
  if (!IsJsonContentType(content_type)) {
    return ErrorAnswer(415, absl::StrCat("Content-Type must be application/json, got ",
                                         content_type.empty() ? "none"
                                                              : absl::StrCat("\"", std::string(content_type), "\"")));
  }
  if (body.size() > options_.max_body_bytes) {
    return ErrorAnswer(413, absl::StrCat("body is ", body.size(), " bytes; the limit is ",
                                         options_.max_body_bytes));
  }
  absl::StatusOr<v1::Event> event = NormalizeApplivery(body);
  if (!event.ok()) return ErrorAnswer(400, event.status().message());

  event->set_id(ids_.Next());
  SetTimestamp(options_.clock->Now(), event->mutable_time());

  if (absl::Status s = log_->Append(absl::MakeSpan(&*event, 1)); !s.ok()) {
    log::Error("append failed", {{"source", "applivery"}, {"error", s.ToString()}});
    HttpAnswer answer = ErrorAnswer(503, "the event log cannot take writes now; retry later");
    answer.headers.emplace_back("Retry-After", "1");
    return answer;
  }
  nlohmann::json ok = {{"id", event->id()}, {"sequence", event->sequence()}, {"type", event->type()}};
  return HttpAnswer{202, ok.dump(), {}};
}

}  // namespace hookfan::ingress
