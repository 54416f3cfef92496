#pragma once

#include <cstddef>
#include <string>

#include "grpcpp/support/server_interceptor.h"

namespace hookfan::server {

// The largest request message the gRPC port reads: one event of
// --max-event-bytes (`max_event_bytes`) with room to spare, so a Publish a
// little over that limit reaches hookfan's own refusal (which names the
// flag) rather than gRPC's. Larger messages are refused by gRPC 1.51 once
// they have arrived whole, with RESOURCE_EXHAUSTED "Received message larger
// than max (N vs. LIMIT)".
size_t MaxGrpcRequestBytes(size_t max_event_bytes);

// A gRPC server interceptor factory for the calls that take one request
// message (unary and server-streaming). gRPC 1.51 answers such a call whose
// message never arrived whole (the client ended the stream first, e.g. after
// a length prefix promising more than it sent) or does not parse with
// UNIMPLEMENTED and no message, as if the method did not exist. The
// interceptor rewrites that answer to INVALID_ARGUMENT saying what was
// missing and the request limit. gRPC gives the server no earlier look: its
// HTTP/2 layer waits for the whole message the prefix declares
// (chttp2 frame_data.cc) and checks the size only then.
class RequestGuard : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RequestGuard(size_t max_request_bytes) : max_request_bytes_(max_request_bytes) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  const size_t max_request_bytes_;
};

}  // namespace hookfan::server
