#include "ingress/normalizer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ingress/applivery_normalizer.h"
#include "ingress/cloudevents.h"
#include "ingress/json_normalizer.h"

namespace hookfan::ingress {
namespace {

// Every kind a source may name: one line each.
const NormalizerKind* const kKinds[] = {
    &kAppliveryNormalizer,
    &kCloudEventsNormalizer,
    &kJsonNormalizer,
};

absl::string_view View(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

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
