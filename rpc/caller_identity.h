#pragma once

// Who is calling: what a call carries to authenticate it (Authorizer, in
// core/authz.h, decides what it may do).

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"

namespace hookfan::broker {

// The token of an "authorization: Bearer <token>" header; empty when the
// call has none (or another scheme).
absl::string_view BearerToken(const grpc::CallbackServerContext& context);

// The names an authenticated TLS peer goes by: its certificate's common
// name and subject alternative names. Empty without a verified client
// certificate.
std::vector<std::string> PeerIdentities(const grpc::CallbackServerContext& context);

}  // namespace hookfan::broker
