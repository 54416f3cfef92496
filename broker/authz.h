#pragma once

// Who may subscribe to what, as read from the sources file
// (server/config_file.h). Plain data; enforcement is the gRPC service's.

#include <string>
#include <vector>

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
  // Type patterns it may receive, NATS-style as in broker/filter.h
  // ("applivery.device.*", "applivery.>"). Each is valid.
  std::vector<std::string> types = {};
};

}  // namespace hookfan::broker
