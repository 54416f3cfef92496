#include "bench/nats_baseline.h"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/cpu.h"

namespace hookfan::bench {
namespace {

constexpr char kSubject[] = "hookfan.bench.fanout";

struct Subscriber {
  natsConnection* conn = nullptr;
  natsSubscription* sub = nullptr;
  std::atomic<uint64_t> received{0};
  ~Subscriber() {
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(conn);
  }
};

void OnMessage(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  static_cast<Subscriber*>(closure)->received.fetch_add(1, std::memory_order_relaxed);
  natsMsg_Destroy(msg);
}

absl::Status Connect(natsOptions* opts, const std::string& url, natsConnection** conn) {
  natsStatus s = natsConnection_Connect(conn, opts);
  if (s != NATS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", url, ": ", natsStatus_GetText(s)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FanoutResult> RunNatsFanout(const std::string& url, int subscribers,
                                           uint64_t messages, size_t payload_bytes,
                                           const std::function<void()>& before_publishing,
                                           absl::Duration timeout) {
  nats_SetMessageDeliveryPoolSize(2);
  natsOptions* opts = nullptr;
  natsOptions_Create(&opts);
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> opts_owner(opts, natsOptions_Destroy);
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_UseGlobalMessageDelivery(opts, true);

  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < subscribers; ++i) {
    auto s = std::make_unique<Subscriber>();
    if (absl::Status st = Connect(opts, url, &s->conn); !st.ok()) return st;
    natsConnection_Subscribe(&s->sub, s->conn, kSubject, OnMessage, s.get());
    natsSubscription_SetPendingLimits(s->sub, -1, -1);
    natsConnection_FlushTimeout(s->conn, 5000);  // the server knows the subscription
    subs.push_back(std::move(s));
  }
  natsConnection* pub = nullptr;
  if (absl::Status st = Connect(opts, url, &pub); !st.ok()) return st;
  std::unique_ptr<natsConnection, void (*)(natsConnection*)> pub_owner(pub, natsConnection_Destroy);

  auto received = [&] {
    uint64_t total = 0;
    for (const auto& s : subs) total += s->received.load(std::memory_order_relaxed);
    return total;
  };
  std::string payload(payload_bytes, 'x');
  FanoutResult result;
  if (before_publishing) before_publishing();
  const OtherThreadsCpu subscriber_cpu;  // this thread publishes and waits
  auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < messages; ++i) {
    if (natsConnection_Publish(pub, kSubject, payload.data(), payload.size()) == NATS_OK) {
      ++result.published;
    }
  }
  natsConnection_FlushTimeout(pub, 30000);
  for (const auto& s : subs) {
    result.worst_lag = std::max(result.worst_lag,
                                result.published - std::min(result.published, s->received.load()));
  }
  auto deadline = start + absl::ToChronoNanoseconds(timeout);
  uint64_t want = result.published * subscribers;
  while (received() < want && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.subscriber_cpu_seconds = subscriber_cpu.Seconds();
  result.deliveries = received();
  result.deliveries_per_second = result.deliveries / result.seconds;
  for (const auto& s : subs) {
    int64_t dropped = 0;
    natsSubscription_GetDropped(s->sub, &dropped);
    result.dropped += static_cast<uint64_t>(dropped);
  }
  return result;
}

}  // namespace hookfan::bench
