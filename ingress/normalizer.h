#pragma once

// How a webhook's body becomes an event: the Normalizer interface and the
// registry of kinds a source may name in the sources file
// (`normalizer: applivery`). Adding a kind is one normalizer file (its
// class and NormalizerKind), its fixtures, and one line in normalizer.cc.

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/header_lookup.h"
#include "ingress/source_config.h"

namespace hookfan::ingress {

// What a normalizer reads of one request. Views into the caller's request,
// valid for the duration of Normalize.
struct NormalizerInput {
  std::string_view content_type;  // the Content-Type header, "" if none
  const HeaderLookup& header;
  std::span<const std::string_view> header_names;  // as sent (any case)
  std::string_view body;
};

// A Normalizer turns one request of its source into an event. Thread-safe.
class Normalizer {
 public:
  virtual ~Normalizer() = default;

  // The event `input` describes: everything but id, sequence and receive
  // time, which the sink sets (broker::EventSink). Errors, with a message
  // fit to return to the sender:
  //   kFailedPrecondition  a content type this normalizer does not take (415)
  //   kInvalidArgument     a body it rejects (400)
  virtual absl::StatusOr<v1::Event> Normalize(const NormalizerInput& input) const = 0;
};

// The normalizer of a provider whose webhooks are one JSON body: a content
// type other than JSON is kFailedPrecondition (RequireJsonContentType's
// message, then `not_json_hint` if any: what to change at the sender), else
// the event `normalize` makes of the body, with `source` (the source's
// path) as its source.
std::unique_ptr<Normalizer> MakeJsonBodyNormalizer(
    absl::StatusOr<v1::Event> (*normalize)(std::string_view body), std::string source,
    std::string_view not_json_hint = "");

// A kind of normalizer, as the sources file names it.
struct NormalizerKind {
  std::string_view name;  // "applivery", "cloudevents", "jamf_pro", "json", "nanomdm", "workspace_one"
  // The normalizer for `source` (its path, its settings); the sources file
  // parser has checked them.
  std::unique_ptr<Normalizer> (*create)(const SourceConfig& source);
  // The dedup a source of this kind gets when its config names none.
  DedupConfig (*default_dedup)(const SourceConfig& source);
  // Whether events of `source` carry the sender's own event id
  // (Event.source_event_id), which dedup key event_id needs.
  bool (*has_event_id)(const SourceConfig& source) = [](const SourceConfig&) { return false; };
  // The status a newly stored webhook is answered with when its source sets
  // no success_status: 202, or what the provider's sender insists on.
  int success_status = 202;
  // Whether a GET (or HEAD) on a source's path that passes its checks
  // (allowed_cidrs, auth) is answered 200, storing nothing: the provider's
  // console tests the URL that way. Otherwise it is answered 405.
  bool answers_get = false;
};

// The kind named `name`; null if none is.
const NormalizerKind* FindNormalizerKind(std::string_view name);

// Every kind's name, joined by "|" (for error messages).
std::string NormalizerKindNames();

// The dedup `source` gets when its config names none: its kind's
// (default_dedup); none for an unknown kind.
DedupConfig DefaultDedup(const SourceConfig& source);

// Whether events of `source` carry the sender's event id: its kind's
// has_event_id; false for an unknown kind.
bool HasEventId(const SourceConfig& source);

// The status a newly stored webhook of `source` is answered with: its
// success_status, else its kind's; 202 for an unknown kind.
int SuccessStatus(const SourceConfig& source);

// The ordering key of an event an MDM sent: its device's UDID, else the
// device's serial number, else its subject. So key-ordered consumer groups
// keep one device's events in order whichever MDM sent them.
std::string DeviceKey(const v1::Event& event);

// True if the media type of `content_type` is application/json or
// application/<something>+json (parameters such as charset are ignored).
bool IsJsonContentType(std::string_view content_type);

// OK for a JSON content type (IsJsonContentType), else kFailedPrecondition
// "Content-Type must be application/json, got \"text/plain\"" (or "got none").
absl::Status RequireJsonContentType(std::string_view content_type);

}  // namespace hookfan::ingress
