#include "server/call_rate.h"

#include <utility>

#include "grpcpp/server_context.h"

namespace hookfan::server {

namespace {
constexpr absl::Duration kWindow = absl::Seconds(1);
}  // namespace

CallRate::CallRate(int max_per_second, Clock* clock)
    : max_per_second_(max_per_second), clock_(clock), last_prune_(clock->Now()) {}

bool CallRate::Admit(const std::string& peer) {
  if (max_per_second_ <= 0) return true;
  const absl::Time now = clock_->Now();
  MutexLock lock(&mu_);
  Prune(now);
  Window& w = windows_[peer];
  if (w.calls == 0 || now - w.start >= kWindow) w = Window{.start = now};
  return ++w.calls <= max_per_second_;
}

void CallRate::Prune(absl::Time now) {
  if (now - last_prune_ < 10 * kWindow) return;
  last_prune_ = now;
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (now - it->second.start >= kWindow) {
      windows_.erase(it++);
    } else {
      ++it;
    }
  }
}

namespace {

// Watches one call's end: gRPC reports the close to interceptors with the
// call's cancelled flag already final.
class CancelWatcher : public grpc::experimental::Interceptor {
 public:
  CancelWatcher(grpc::experimental::ServerRpcInfo* info, ResetRateGuard* guard)
      : info_(info), guard_(guard) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::POST_RECV_CLOSE) &&
        info_->server_context()->IsCancelled()) {
      guard_->CountCancelled(info_->server_context()->peer());
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* const info_;
  ResetRateGuard* const guard_;
};

}  // namespace

grpc::experimental::Interceptor* ResetRateGuard::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new CancelWatcher(info, this);
}

void ResetRateGuard::CountCancelled(const std::string& peer) {
  if (!rate_->Admit(peer)) close_connection_(peer);
}

}  // namespace hookfan::server
