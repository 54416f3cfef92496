#include "rpc/caller_identity.h"

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "grpc/grpc_security_constants.h"

namespace hookfan::broker {

absl::string_view BearerToken(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return {};
  absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::StartsWithIgnoreCase(value, kScheme))
    return {};
  return absl::StripAsciiWhitespace(value.substr(kScheme.size()));
}

std::vector<std::string> PeerIdentities(
    const grpc::CallbackServerContext& context) {
  std::vector<std::string> out;
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return out;
  for (const grpc::string_ref& id : auth->GetPeerIdentity())
    out.emplace_back(id.data(), id.size());
  for (const char* property :
       {GRPC_X509_CN_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME,
        GRPC_PEER_URI_PROPERTY_NAME, GRPC_PEER_DNS_PROPERTY_NAME}) {
    for (const grpc::string_ref& id : auth->FindPropertyValues(property)) {
      out.emplace_back(id.data(), id.size());
    }
  }
  return out;
}

}  // namespace hookfan::broker
