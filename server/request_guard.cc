#include "server/request_guard.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace hookfan::server {

namespace {

using grpc::experimental::InterceptionHookPoints;

// Headroom over --max-event-bytes: a Publish's attributes and extensions
// (bounded far below this) and a margin in which hookfan, not gRPC, words
// the refusal.
constexpr size_t kRequestHeadroomBytes = 4 << 20;

class RequestInterceptor : public grpc::experimental::Interceptor {
 public:
  RequestInterceptor(std::string method, size_t max_request_bytes)
      : method_(std::move(method)), max_request_bytes_(max_request_bytes) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      missing_ = methods->GetRecvMessage() == nullptr;
    }
    if (missing_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      // What gRPC's handler answers a call it could not give a request; any
      // other status is the method's own and stays.
      const grpc::Status sent = methods->GetSendStatus();
      if (sent.error_code() == grpc::StatusCode::UNIMPLEMENTED && sent.error_message().empty()) {
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat(method_,
                         ": no whole, valid request message arrived (the stream ended before "
                         "the bytes its length prefix declared, or they do not parse); a request "
                         "message is at most ",
                         max_request_bytes_, " bytes (--max-event-bytes plus ",
                         kRequestHeadroomBytes >> 20, " MiB)")));
      }
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  const size_t max_request_bytes_;
  bool missing_ = false;
};

}  // namespace

size_t MaxGrpcRequestBytes(size_t max_event_bytes) {
  return max_event_bytes + kRequestHeadroomBytes;
}

grpc::experimental::Interceptor* RequestGuard::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  // Streams of requests (Consume) end with a read that finds no message;
  // that is their normal end, not a missing request.
  if (info->type() != grpc::experimental::ServerRpcInfo::Type::UNARY &&
      info->type() != grpc::experimental::ServerRpcInfo::Type::SERVER_STREAMING) {
    return nullptr;
  }
  return new RequestInterceptor(info->method(), max_request_bytes_);
}

}  // namespace hookfan::server
