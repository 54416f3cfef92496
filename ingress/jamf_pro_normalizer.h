#pragma once

// The Jamf Pro normalizer: one Jamf Pro webhook body (JSON) in, one
// hookfan.v1.Event out. Jamf posts {"event": {...}, "webhook": {"id",
// "name", "webhookEvent", "eventTimestamp" (epoch ms)}}
// (https://developer.jamf.com/developer-guide/docs/webhooks;
// tests/fixtures/jamf_pro/README.md). No HTTP types, no I/O, no clock.

#include <string_view>

#include "absl/status/statusor.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/normalizer.h"

namespace hookfan::ingress {

// NormalizeJamfPro turns one Jamf Pro webhook body into an Event. Pure and
// thread-safe.
//
// Sets source ("/webhooks/jamf_pro"), type (by webhook.webhookEvent, e.g.
// ComputerCheckIn → "jamf_pro.computer.checked_in"; the table is in the
// README's "Event types"; an event Jamf may add later is
// "jamf_pro.unrecognized"), action (webhookEvent verbatim), source_time
// (eventTimestamp: epoch milliseconds, or seconds from senders that imitate
// Jamf), platform (Apple for device events), subject ("computers/<jssID>",
// "mobile-devices/<jssID>", "smart-groups/<jssid>",
// "patch-software-titles/<jssID>", "dep-devices/<serial>", else empty),
// device (provider "jamf_pro", id the jssID, serial number, UDID, name,
// Apple, OS version, user name or else e-mail; read from event.computer
// where Jamf nests the computer, else from event), key (the UDID, else the
// serial number, else the subject), data_content_type ("application/json"),
// data (`body` byte for byte) and the payload jamf_pro. Leaves id,
// sequence and time unset: the caller mints them.
//
// Only webhook.webhookEvent is required; every other field is read when
// present with the expected JSON type, else left empty.
//
// Errors, all kInvalidArgument with a message in printable ASCII, fit to
// return to the sender:
//   "body is not valid JSON: at byte N: <parser detail>"
//   "JSON nested too deeply (more than 32 levels)"
//   "body must be a JSON object, got array" (string, number, boolean, null)
//   "missing required object \"webhook\"" (or "field \"webhook\" must be
//     an object, got string")
//   "missing required field \"webhook.webhookEvent\"" (must be a string,
//     must not be empty)
//   "webhookEvent SCEPChallenge asks for a SCEP challenge in the answer,
//     which hookfan does not give: point this webhook at your challenge
//     service" (the event carries a user's password; nothing is stored)
absl::StatusOr<hookfan::v1::Event> NormalizeJamfPro(std::string_view body);

// The "jamf_pro" kind: a JSON body (else 415, saying to choose JSON in the
// Jamf Pro webhook's settings: Jamf sends XML unless told otherwise)
// normalized by NormalizeJamfPro, with the source's path as the event's
// source, answered 200 (the status receivers documented with Jamf give;
// Jamf does not say which it takes). Dedup unless configured: body hash
// for 24 hours (the body holds webhook.id and eventTimestamp, so two events
// never share one). Jamf authenticates with Basic or with header
// authentication (auth type header).
extern const NormalizerKind kJamfProNormalizer;

}  // namespace hookfan::ingress
