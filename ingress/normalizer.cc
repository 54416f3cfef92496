#include "ingress/normalizer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "ingress/applivery_normalizer.h"
#include "ingress/cloudevents.h"
#include "ingress/jamf_pro_normalizer.h"
#include "ingress/json_normalizer.h"
#include "ingress/nanomdm_normalizer.h"
#include "ingress/workspace_one_normalizer.h"

namespace hookfan::ingress {
namespace {

// Every kind a source may name: one line each.
const NormalizerKind* const kKinds[] = {
    &kAppliveryNormalizer,
    &kCloudEventsNormalizer,
    &kJamfProNormalizer,
    &kJsonNormalizer,
    &kNanoMdmNormalizer,
    &kWorkspaceOneNormalizer,
};

absl::string_view View(std::string_view s) { return {s.data(), s.size()}; }

class JsonBodyNormalizer final : public Normalizer {
 public:
  using NormalizeFn = absl::StatusOr<v1::Event> (*)(std::string_view body);
  JsonBodyNormalizer(NormalizeFn normalize, std::string source, std::string not_json_hint)
      : normalize_(normalize), source_(std::move(source)), not_json_hint_(std::move(not_json_hint)) {}

  absl::StatusOr<v1::Event> Normalize(const NormalizerInput& input) const override {
    if (absl::Status json = RequireJsonContentType(input.content_type); !json.ok()) {
      if (not_json_hint_.empty()) return json;
      return absl::FailedPreconditionError(absl::StrCat(json.message(), not_json_hint_));
    }
    ASSIGN_OR_RETURN(v1::Event event, normalize_(input.body));
    event.set_source(source_);
    return event;
  }

 private:
  const NormalizeFn normalize_;
  const std::string source_;
  const std::string not_json_hint_;
};

}  // namespace

std::unique_ptr<Normalizer> MakeJsonBodyNormalizer(
    absl::StatusOr<v1::Event> (*normalize)(std::string_view body), std::string source,
    std::string_view not_json_hint) {
  return std::make_unique<JsonBodyNormalizer>(normalize, std::move(source),
                                              std::string(not_json_hint));
}

const NormalizerKind* FindNormalizerKind(std::string_view name) {
  for (const NormalizerKind* kind : kKinds) {
    if (kind->name == name) return kind;
  }
  return nullptr;
}

std::string NormalizerKindNames() {
  return absl::StrJoin(kKinds, "|", [](std::string* out, const NormalizerKind* kind) {
    out->append(kind->name.data(), kind->name.size());
  });
}

DedupConfig DefaultDedup(const SourceConfig& source) {
  const NormalizerKind* kind = FindNormalizerKind(source.normalizer);
  return kind != nullptr ? kind->default_dedup(source) : DedupConfig{DedupKey::kNone};
}

bool HasEventId(const SourceConfig& source) {
  const NormalizerKind* kind = FindNormalizerKind(source.normalizer);
  return kind != nullptr && kind->has_event_id(source);
}

int SuccessStatus(const SourceConfig& source) {
  if (source.success_status.has_value()) return *source.success_status;
  const NormalizerKind* kind = FindNormalizerKind(source.normalizer);
  return kind != nullptr ? kind->success_status : 202;
}

std::string DeviceKey(const v1::Event& event) {
  if (!event.device().udid().empty()) return event.device().udid();
  if (!event.device().serial_number().empty()) return event.device().serial_number();
  return event.subject();
}

bool IsJsonContentType(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  std::string media = absl::AsciiStrToLower(absl::StripAsciiWhitespace(View(type)));
  if (media == "application/json") return true;
  return media.starts_with("application/") && media.ends_with("+json");
}

absl::Status RequireJsonContentType(std::string_view content_type) {
  if (IsJsonContentType(content_type)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "Content-Type must be application/json, got ",
      content_type.empty() ? "none" : absl::StrCat("\"", View(content_type), "\"")));
}

}  // namespace hookfan::ingress
