#pragma once

// The sources file: webhook sources and the subscribers allowed to receive
// their events, in YAML (usually a Kubernetes ConfigMap):
//
//   sources:
//     - name: applivery              # [a-z0-9_-]+, unique; required
//       path: /webhooks/applivery    # default /webhooks/<name>; unique
//       normalizer: applivery        # applivery | cloudevents | jamf_pro |
//                                    # json | nanomdm | workspace_one
//       json: {type_pointer: /type, type_prefix: acme., id_pointer: /id}
//                                    # json only: type_pointer or
//                                    # type_header, optional type_prefix
//                                    # and id_pointer
//       auth:                        # required
//         type: path_token           # none | path_token | basic | bearer |
//                                    # hmac | standard_webhooks | header
//         secrets: [{env: TOKEN}, {file: /etc/hookfan/old-token}]
//                                    # or secret: {env: TOKEN}; never a
//                                    # literal value; all but none need one
//         username: hookfan          # basic only, required
//         header: X-Signature        # hmac and header only, required
//         encoding: hex              # hmac only: hex | base64
//         prefix: "sha256="          # hmac only
//         tolerance: 5m              # standard_webhooks only
//       allowed_cidrs: [10.0.0.0/8, "::1/128"]   # default: any peer
//       max_body_bytes: 1048576
//       rate_limit: {per_second: 50, burst: 100} # default: unlimited
//       dedup: {key: body_hash, window: 24h}
//                 # none | idempotency_key | webhook_id | body_hash |
//                 # event_id | event_id_or_body_hash (the event's id, the
//                 # body's hash for a body with none); the default is the
//                 # normalizer's (body_hash for applivery, jamf_pro and
//                 # workspace_one, event_id_or_body_hash for nanomdm,
//                 # event_id for cloudevents and json with id_pointer,
//                 # else none)
//       success_status: 202          # 200 | 202: the answer to a stored
//                                    # webhook; default 200 for jamf_pro,
//                                    # nanomdm and workspace_one, 202 otherwise
//   subscribers:
//     - name: inventory-service      # [a-z0-9_-]+, unique; required
//       tokens: [{env: INVENTORY_TOKEN}]   # tokens and/or identities
//       identities: ["spiffe://cluster.local/ns/inv/sa/inventory"]
//       types: ["applivery.device.*"]       # required; ">" for all
//
// Unknown fields are errors, as are fields that the chosen type does not
// use. A secret from a file has one trailing newline removed.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/authz.h"
#include "ingress/source_config.h"
#include "server/yaml_reader.h"

namespace hookfan::server {


struct ConfigFile {
  std::vector<ingress::SourceConfig> sources;
  std::vector<broker::SubscriberGrant> subscribers;
};

// Parses and checks the sources file `yaml`, resolving its secrets from
// `env`. The result is complete and valid: every source can be served
// (SenderAuth::Create accepts its auth), every type pattern is valid.
// Errors: kInvalidArgument, the message naming the place, the field and the
// problem, e.g.
//   sources.yaml:7:9: sources[0].auth.type: unknown auth type "token" (want
//   none|path_token|basic|bearer|hmac|standard_webhooks|header)
// where `file_name` is used as given. A message names the environment
// variable or file a secret should come from, never a secret's value.
absl::StatusOr<ConfigFile> ParseConfigFile(std::string_view yaml,
                                           std::string_view file_name,
                                           const SecretEnv& env);

// Reads the file at `path` with `env` and parses it as ParseConfigFile
// does. Errors: kInvalidArgument, also when the file cannot be read.
absl::StatusOr<ConfigFile> LoadConfigFile(
    const std::string& path, const SecretEnv& env = SecretEnv::Real());

}  // namespace hookfan::server
