#pragma once

// Who may receive and publish what on the EventBroker, as read from the
// sources file (server/config_file.h), and the checks that enforce it.
// Transport-free: the gRPC service extracts the bearer token and the TLS
// peer identities from a call and maps the statuses returned here.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "hookfan/v1/broker.pb.h"

namespace hookfan::broker {

// One subscriber (an internal service) and the event types it may receive.
// A client is this subscriber if it presents one of `tokens` as a bearer
// token or authenticates with mTLS as one of `identities`.
struct SubscriberGrant {
  std::string name = {};  // [a-z0-9_-]+, unique among subscribers; for logs
  // Resolved bearer token values (never their references); several allow
  // rotating without downtime.
  std::vector<std::string> tokens = {};
  // mTLS client identities: a certificate's subject CN or a SAN URI/DNS
  // name, e.g. "spiffe://cluster.local/ns/inv/sa/inventory".
  std::vector<std::string> identities = {};
  // Type patterns it may receive, NATS-style as in core/filter.h
  // ("applivery.device.*", "applivery.>"). Each is valid. Empty: it may
  // receive nothing.
  std::vector<std::string> types = {};
  // Type patterns it may Publish, same syntax. Empty: it may publish
  // nothing.
  std::vector<std::string> publish = {};
};

// Two grants that claim the same name, bearer token or TLS identity: a
// name, token or identity belongs to one grant only.
struct GrantClash {
  enum class What { kName, kToken, kIdentity };
  What what;
  size_t grant;  // the later grant's index
  size_t other;  // the earlier grant's index
  size_t item;   // kToken, kIdentity: the index in the later grant's list
};

// The first clash in `grants` (each grant against those before it, in
// order: name, tokens, identities); nullopt if there is none. Tokens are
// compared as they are (the caller must not log them).
std::optional<GrantClash> FindGrantClash(absl::Span<const SubscriberGrant> grants);

// True if every type the pattern `requested` matches is also matched by the
// pattern `granted`: "*" matches one token, ">" (last token only) one or
// more. Both must be valid (ValidateTypePattern); a literal type is a
// pattern matching itself. Examples: "applivery.>" covers
// "applivery.device.*" and "applivery.device.enrolled"; "applivery.device.*"
// covers "applivery.device.enrolled" but neither "applivery.>" nor
// "applivery.device.x.y"; ">" covers everything.
bool PatternCovers(absl::string_view granted, absl::string_view requested);

// Authorizer decides who a caller is and what it may do, from the grants of
// the sources file.
//
// With no grants it is open: every caller is let in and every check passes
// (the server warns about that at start-up). Otherwise a caller is the grant
// whose token it presents as a bearer token; if it presents none, the grant
// that lists one of its authenticated TLS peer identities. Tokens are
// compared in constant time (over SHA-256 digests, so neither content nor
// length leaks), and no error ever echoes one.
//
// Only type patterns are authorized: the other parts of a filter (actions,
// platforms, organizations) only narrow what a type pattern selects.
//
// Immutable after construction; thread-safe.
class Authorizer {
 public:
  // The caller an open Authorizer lets in: every check passes for it.
  static constexpr const SubscriberGrant* kAnyone = nullptr;

  // Preconditions (the config parser checks them; violating one is a
  // start-up bug and aborts): every pattern is valid, and FindGrantClash
  // finds nothing.
  explicit Authorizer(std::vector<SubscriberGrant> grants);
  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  // True when there are no grants: everything is allowed.
  bool open() const { return grants_.empty(); }

  // Identifies the caller from its bearer token (empty: none presented) and
  // its authenticated TLS peer identities (certificate CN and SANs; empty
  // without mTLS). Returns its grant, which lives as long as this
  // Authorizer; kAnyone when open(). A presented token alone decides: an
  // unknown token is refused even if an identity would match.
  //
  // Errors: kUnauthenticated "missing or unknown bearer token".
  absl::StatusOr<const SubscriberGrant*> Authenticate(
      absl::string_view bearer_token,
      absl::Span<const std::string> identities) const;

  // Checks that `caller` may receive every event `filter` can select: each
  // of its type patterns must be covered by one of the grant's `types`; a
  // filter without type patterns selects every type and needs ">".
  //
  // Errors: kInvalidArgument for an invalid type pattern (as
  // ValidateTypePattern); kPermissionDenied naming the first pattern not
  // covered and the grant, e.g. `client "inventory" may not receive
  // "applivery.>" (granted: applivery.device.*)`.
  absl::Status CheckReceive(const SubscriberGrant* caller,
                            const v1::Filter& filter) const;

  // Checks that `caller` may receive a stored event of type `type`. The
  // error does not name the type, so a refused caller learns nothing about
  // the event. Errors: kPermissionDenied.
  absl::Status CheckReceiveEvent(const SubscriberGrant* caller,
                                 absl::string_view type) const;

  // Checks that `caller` may publish an event of the (valid, literal) type
  // `type`: one of the grant's `publish` patterns must match it.
  // Errors: kPermissionDenied naming the type and the grant.
  absl::Status CheckPublish(const SubscriberGrant* caller,
                            absl::string_view type) const;

  // Checks that `caller` may see and manage (list, delete, read and redrive
  // the dead letters of) the consumer group `group` with filter `filter`:
  // it must be allowed to receive everything the group receives.
  // Errors: kPermissionDenied naming the group and the grant.
  absl::Status CheckManageGroup(const SubscriberGrant* caller,
                                absl::string_view group,
                                const v1::Filter& filter) const;

 private:
  using Digest = std::array<uint8_t, 32>;  // SHA-256

  std::vector<SubscriberGrant> grants_;
  // One entry per token of every grant: its digest and grants_ index.
  std::vector<std::pair<Digest, size_t>> token_digests_;
};

}  // namespace hookfan::broker
