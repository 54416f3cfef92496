#pragma once

// The Workspace ONE UEM normalizer: one event notification (JSON) in, one
// hookfan.v1.Event out. Workspace ONE (formerly AirWatch) posts one flat
// object per device event (Groups & Settings > All Settings > System >
// Advanced > API > Event Notifications; tests/fixtures/workspace_one/README.md):
//   {"EventId": 178, "EventType": "Compromised Status Changed", "DeviceId": 10000,
//    "DeviceFriendlyName", "EnrollmentEmailAddress", "EnrollmentUserName",
//    "EventTime" ("2022-01-16T09:13:59.5720125Z"; "/Date(<ms>)/" from old
//    servers), "EnrollmentStatus", "CompromisedStatus", "CompromisedTimeStamp",
//    "ComplianceStatus", "PhoneNumber", "Udid", "SerialNumber", "MACAddress",
//    "DeviceIMEI", "EnrollmentUserId", "AssetNumber", "Platform",
//    "OperatingSystem", "Ownership", "SIMMCC", "CurrentMCC",
//    "OrganizationGroupName", "DeviceUUID", "EnrollmentUserUUID"}
// EventId is the code of the event's kind, the same for every event of it:
// not an event id. No HTTP types, no I/O, no clock.

#include <string_view>

#include "absl/status/statusor.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/normalizer.h"

namespace hookfan::ingress {

// NormalizeWorkspaceOne turns one Workspace ONE event notification body
// into an Event. Pure and thread-safe.
//
// Sets source ("/webhooks/workspace_one"), type (by EventType, compared
// without spaces and in any letter case, since older servers send
// "MDMEnrollmentComplete" where newer ones send "MDM Enrollment Complete";
// the table is in the README's "Event types"; an EventType hookfan does not
// know is "workspace_one.unrecognized"), action (EventType verbatim),
// source_time (EventTime), platform (from Platform: "Apple…" Apple,
// "Android…" Android, "Win…" Windows, another non-empty value other),
// subject ("devices/<DeviceId>"), device (provider "workspace_one", id the
// DeviceId, serial number, UDID, friendly name, platform, OperatingSystem,
// EnrollmentUserName or else EnrollmentEmailAddress), key (the UDID, else
// the serial number, else the subject: DeviceKey), data_content_type
// ("application/json"), data (`body` byte for byte) and the payload
// workspace_one. Leaves id, sequence and time unset: the caller mints them.
//
// An Apple device's UDID is given in Apple's spelling, which Jamf Pro and
// NanoMDM send and Workspace ONE strips of its dashes: 32 hex digits (a
// Mac) as 8-4-4-4-12, 24 (an iPhone or iPad since 2018) as 8-16, in
// uppercase, whatever dashes and case it came with; so one device's UDID
// is the same from every MDM. Any other value is kept as sent; the value
// "System.Byte[]" (sent by old servers) is no UDID.
//
// Only EventType is required; every other field is read when present with
// the expected JSON type, else left empty.
//
// Errors, all kInvalidArgument with a message in printable ASCII, fit to
// return to the sender:
//   "body is not valid JSON: at byte N: <parser detail>"
//   "JSON nested too deeply (more than 32 levels)"
//   "body must be a JSON object, got array" (string, number, boolean, null)
//   "missing required field \"EventType\"" (must be a non-empty string)
absl::StatusOr<hookfan::v1::Event> NormalizeWorkspaceOne(std::string_view body);

// The "workspace_one" kind: a JSON body (else 415, saying to choose JSON as
// the event notification's Format: Workspace ONE can send XML) normalized
// by NormalizeWorkspaceOne, with the source's path as the event's source,
// answered 200. An authenticated GET on the source's path (the console's
// "Test Connection") is answered 200 and stores nothing. Dedup unless
// configured: body hash for 24 hours (EventTime has 100 ns steps, so two
// events never share a body). Workspace ONE authenticates with Basic.
extern const NormalizerKind kWorkspaceOneNormalizer;

}  // namespace hookfan::ingress
