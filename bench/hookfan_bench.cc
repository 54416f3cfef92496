// hookfan-bench: load generator for hookfan. Each subcommand runs one
// scenario against a running hookfan (or nats-server) and prints one JSON
// object with its results; bench/run orchestrates them into a table.
//
//   ingress  --http H:P --token T --connections N --seconds S
//   fanout   --http H:P --token T --grpc H:P --subscribers N --events E --connections C
//   latency  --http H:P --token T --grpc H:P --subscribers N --rate R --seconds S --connections C
//   idle     --grpc H:P --streams N --pid PID
//   abuse    --http H:P --token T --grpc H:P --streams N --pid PID --seconds S --connections C
//   fill     --db PATH --events N
//   nats     --url URL --subscribers N --events E --payload-bytes B

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <latch>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/nats_baseline.h"
#include "broker/sqlite_event_log.h"
#include "common/sync.h"
#include "grpcpp/grpcpp.h"
#include "hookfan/v1/broker.grpc.pb.h"
#include "ingress/applivery_normalizer.h"
#include "nlohmann/json.hpp"

namespace hookfan::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// The Applivery "device enrolled" sample, with a unique counter and the send
// time (steady clock, ns) so subscribers can measure end-to-end latency.
constexpr char kPayloadPrefix[] =
    R"({"action":"emm_device_enrolled","organization":{"id":"5d4d1391cd523c15f50df235",)"
    R"("name":"Applivery Test","url":"https://dashboard.applivery.io/test"},)"
    R"("emmDevice":{"type":"Fully Managed","url":"https://dashboard.applivery.io/test/mdm/)"
    R"(users/5e9099ee4da32b180204770e?id=5f634c11034824062256e38c"},"mdmUser":{"id":)"
    R"("5e9099ee4da32b180204770e","email":"[email protected]","url":)"
    R"("https://dashboard.applivery.io/test/mdm/users/5e9099ee4da32b180204770e"},"bench_n":)";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

std::string Payload(uint64_t n) {
  return absl::StrCat(kPayloadPrefix, n, ",\"bench_sent_ns\":", NowNs(), "}");
}

// Parses --name value pairs.
class Args {
 public:
  Args(int argc, char** argv) {
    for (int i = 2; i + 1 < argc; i += 2) values_[argv[i]] = argv[i + 1];
  }
  std::string Str(const std::string& name, const std::string& def = "") const {
    auto it = values_.find("--" + name);
    return it == values_.end() ? def : it->second;
  }
  int64_t Int(const std::string& name, int64_t def) const {
    int64_t v;
    return absl::SimpleAtoi(Str(name), &v) ? v : def;
  }

 private:
  std::map<std::string, std::string> values_;
};

struct HostPort {
  std::string host;
  int port;
};
HostPort Split(const std::string& address) {
  size_t colon = address.rfind(':');
  return {address.substr(0, colon), std::stoi(address.substr(colon + 1))};
}

json Percentiles(std::vector<int64_t> ns) {
  if (ns.empty()) return {{"p50_ms", nullptr}, {"p99_ms", nullptr}, {"p999_ms", nullptr}};
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    return ns[std::min(ns.size() - 1, static_cast<size_t>(q * ns.size()))] / 1e6;
  };
  return {{"p50_ms", at(0.50)}, {"p99_ms", at(0.99)}, {"p999_ms", at(0.999)}};
}

// Posts webhooks on `connections` keep-alive connections. With rate == 0,
// each connection posts as fast as it is answered until `stop` or `limit`
// posts in all; with rate > 0, posts are paced to rate/s in all.
struct PostResult {
  uint64_t accepted = 0, other = 0;
  std::vector<int64_t> latency_ns;
  double seconds = 0;
};
PostResult PostLoad(const std::string& http, const std::string& token, int connections,
                    uint64_t limit, double seconds, double rate) {
  HostPort hp = Split(http);
  std::string path = "/webhooks/applivery/" + token;
  std::atomic<uint64_t> next{0};
  std::mutex mu;
  PostResult result;
  // Every connection is open (one GET /healthz each) before the clock
  // starts: connection setup is not what this measures.
  std::latch connected(connections + 1);
  Clock::time_point start, end;
  Notification go;
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client(hp.host, hp.port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(30, 0);
      client.Get("/healthz");
      connected.count_down();
      go.WaitForNotification();
      std::vector<int64_t> lat;
      uint64_t ok = 0, bad = 0;
      auto slot = start + std::chrono::duration<double>(rate > 0 ? c / rate : 0);
      while (Clock::now() < end) {
        uint64_t n = next++;
        if (n >= limit) break;
        if (rate > 0) {
          std::this_thread::sleep_until(slot);
          slot += std::chrono::duration<double>(connections / rate);
        }
        auto t0 = Clock::now();
        auto res = client.Post(path, Payload(n), "application/json");
        lat.push_back((Clock::now() - t0).count());
        (res && res->status == 202) ? ++ok : ++bad;
      }
      std::lock_guard<std::mutex> l(mu);
      result.accepted += ok;
      result.other += bad;
      result.latency_ns.insert(result.latency_ns.end(), lat.begin(), lat.end());
    });
  }
  connected.arrive_and_wait();
  start = Clock::now();
  end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go.Notify();
  for (auto& t : threads) t.join();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

int Ingress(const Args& a) {
  PostResult r = PostLoad(a.Str("http"), a.Str("token"), a.Int("connections", 50), UINT64_MAX,
                          a.Int("seconds", 10), 0);
  json out = {{"scenario", "ingress"},
              {"connections", a.Int("connections", 50)},
              {"webhooks_per_second", r.accepted / r.seconds},
              {"accepted", r.accepted},
              {"non_202", r.other}};
  out.update(Percentiles(r.latency_ns));
  std::cout << out.dump() << std::endl;
  return 0;
}

// Streams per gRPC channel (one HTTP/2 connection each), as a fleet of
// subscribing services would spread them; HOOKFAN_BENCH_STREAMS_PER_CHANNEL
// overrides it.
int PerChannel() {
  const char* v = std::getenv("HOOKFAN_BENCH_STREAMS_PER_CHANNEL");
  int n = v ? std::atoi(v) : 0;
  return n > 0 ? n : 10;
}

// A pool of Subscribe streams on a few channels, counting what arrives.
class Subscribers {
 public:
  // `type` (a filter pattern; empty: every event) is what each stream asks for.
  Subscribers(const std::string& grpc, int n, bool measure_latency, const std::string& type = "")
      : measure_latency_(measure_latency) {
    int channels = std::max(1, n / PerChannel());
    for (int i = 0; i < channels; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("hookfan.bench.channel", i);  // distinct connections
      args.SetMaxReceiveMessageSize(64 << 20);
      stubs_.push_back(v1::EventBroker::NewStub(
          grpc::CreateCustomChannel(grpc, grpc::InsecureChannelCredentials(), args)));
    }
    for (int i = 0; i < n; ++i) {
      streams_.push_back(std::make_unique<Stream>(this, stubs_[i % stubs_.size()].get(), type));
    }
    for (auto& s : streams_) s->started.WaitForNotification();
  }
  ~Subscribers() {
    for (auto& s : streams_) s->context.TryCancel();
    for (auto& s : streams_) s->done.WaitForNotification();
  }

  uint64_t total() const { return total_.load(); }
  uint64_t min_received() const {
    uint64_t m = UINT64_MAX;
    for (const auto& s : streams_) m = std::min<uint64_t>(m, s->received.load());
    return m;
  }
  std::vector<int64_t> latencies() {
    std::lock_guard<std::mutex> l(mu_);
    return latency_ns_;
  }

 private:
  struct Stream : grpc::ClientReadReactor<v1::SubscribeResponse> {
    Stream(Subscribers* owner, v1::EventBroker::Stub* stub, const std::string& type)
        : owner(owner) {
      v1::SubscribeRequest request;
      request.set_max_batch_size(1024);
      if (!type.empty()) request.mutable_filter()->add_types(type);
      stub->async()->Subscribe(&context, &request, this);
      StartCall();
      StartRead(&response);
    }
    void OnReadInitialMetadataDone(bool) override { started.Notify(); }
    void OnReadDone(bool ok) override {
      if (!ok) return;
      int64_t now = NowNs();
      received += response.events_size();
      owner->total_ += response.events_size();
      if (owner->measure_latency_) {
        std::vector<int64_t> lat;
        for (const v1::Event& e : response.events()) {
          size_t p = e.data().find("\"bench_sent_ns\":");
          if (p != std::string::npos) lat.push_back(now - std::stoll(e.data().substr(p + 16)));
        }
        std::lock_guard<std::mutex> l(owner->mu_);
        owner->latency_ns_.insert(owner->latency_ns_.end(), lat.begin(), lat.end());
      }
      StartRead(&response);
    }
    void OnDone(const grpc::Status&) override {
      if (!started.HasBeenNotified()) started.Notify();
      done.Notify();
    }
    Subscribers* owner;
    grpc::ClientContext context;
    v1::SubscribeResponse response;
    std::atomic<uint64_t> received{0};
    Notification started, done;
  };

  const bool measure_latency_;
  std::vector<std::unique_ptr<v1::EventBroker::Stub>> stubs_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::atomic<uint64_t> total_{0};
  std::mutex mu_;
  std::vector<int64_t> latency_ns_;
};

int Fanout(const Args& a) {
  int n = a.Int("subscribers", 10);
  uint64_t events = a.Int("events", 10000);
  Subscribers subs(a.Str("grpc"), n, false);
  auto start = Clock::now();
  PostResult posted = PostLoad(a.Str("http"), a.Str("token"), a.Int("connections", 16), events,
                               3600, 0);
  uint64_t worst_lag = posted.accepted - std::min(posted.accepted, subs.min_received());
  auto deadline = Clock::now() + std::chrono::seconds(120);
  while (subs.total() < posted.accepted * n && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  json out = {{"scenario", "fanout"},
              {"subscribers", n},
              {"events", posted.accepted},
              {"deliveries", subs.total()},
              {"seconds", seconds},
              {"deliveries_per_second", subs.total() / seconds},
              {"worst_lag_events", worst_lag},
              {"complete", subs.total() == posted.accepted * n}};
  std::cout << out.dump() << std::endl;
  return 0;
}

int Latency(const Args& a) {
  double rate = a.Int("rate", 1000);
  double seconds = a.Int("seconds", 10);
  Subscribers subs(a.Str("grpc"), a.Int("subscribers", 100), true);
  PostResult posted = PostLoad(a.Str("http"), a.Str("token"), a.Int("connections", 32),
                               UINT64_MAX, seconds, rate);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  uint64_t want = posted.accepted * a.Int("subscribers", 100);
  while (subs.total() < want && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  json out = {{"scenario", "latency"},
              {"offered_per_second", rate},
              {"achieved_per_second", posted.accepted / posted.seconds},
              {"subscribers", a.Int("subscribers", 100)},
              {"non_202", posted.other}};
  out.update(Percentiles(subs.latencies()));
  std::cout << out.dump() << std::endl;
  return 0;
}

int64_t RssKb(int64_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

int Idle(const Args& a) {
  int64_t pid = a.Int("pid", 0);
  int n = a.Int("streams", 10000);
  int64_t before = RssKb(pid);
  Subscribers subs(a.Str("grpc"), n, false);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  int64_t after = RssKb(pid);
  json out = {{"scenario", "idle"},
              {"streams", n},
              {"rss_before_mb", before / 1024.0},
              {"rss_after_mb", after / 1024.0},
              {"kb_per_stream", static_cast<double>(after - before) / n}};
  std::cout << out.dump() << std::endl;
  return 0;
}

// Ingest at full speed twice: alone, then with N idle streams (a type no
// event has) and one stream that never reads; server RSS sampled
// throughout. Memory must stay bounded and webhook latency unchanged.
int Abuse(const Args& a) {
  const int64_t pid = a.Int("pid", 0);
  const int n = a.Int("streams", 10000);
  const int connections = a.Int("connections", 16);
  const double seconds = a.Int("seconds", 5);
  PostResult alone = PostLoad(a.Str("http"), a.Str("token"), connections, UINT64_MAX, seconds, 0);
  const int64_t rss_before = RssKb(pid);
  Subscribers idle(a.Str("grpc"), n, false, "bench.idle.never");
  auto stub = v1::EventBroker::NewStub(
      grpc::CreateChannel(a.Str("grpc"), grpc::InsecureChannelCredentials()));
  grpc::ClientContext stalled_context;
  v1::SubscribeRequest everything;
  everything.mutable_start()->set_earliest(true);
  auto stalled = stub->Subscribe(&stalled_context, everything);  // never read
  stalled->WaitForInitialMetadata();
  const int64_t rss_streams = RssKb(pid);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> rss_max{rss_streams};
  std::thread sampler([&] {
    while (!stop) {
      rss_max = std::max<int64_t>(rss_max, RssKb(pid));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  PostResult loaded = PostLoad(a.Str("http"), a.Str("token"), connections, UINT64_MAX, seconds, 0);
  stop = true;
  sampler.join();
  const int64_t rss_after = RssKb(pid);
  stalled_context.TryCancel();
  json out = {{"scenario", "abuse"},
              {"idle_streams", n},
              {"alone_per_second", alone.accepted / alone.seconds},
              {"loaded_per_second", loaded.accepted / loaded.seconds},
              {"non_202", alone.other + loaded.other},
              {"rss_before_mb", rss_before / 1024.0},
              {"rss_with_streams_mb", rss_streams / 1024.0},
              {"rss_max_under_load_mb", rss_max / 1024.0},
              {"rss_after_load_mb", rss_after / 1024.0}};
  for (const auto& [name, run] : {std::pair<const char*, PostResult*>{"alone", &alone},
                                  {"loaded", &loaded}}) {
    json p = Percentiles(run->latency_ns);
    for (auto& [k, v] : p.items()) out[absl::StrCat(name, "_", k)] = v;
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

int Fill(const Args& a) {
  absl::StatusOr<std::unique_ptr<broker::SqliteEventLog>> log =
      broker::SqliteEventLog::Open(a.Str("db"), {});
  if (!log.ok()) {
    std::cerr << log.status() << "\n";
    return 1;
  }
  uint64_t events = a.Int("events", 1000000);
  auto start = Clock::now();
  constexpr size_t kBatch = 2000;
  for (uint64_t done = 0; done < events;) {
    std::vector<v1::Event> batch;
    for (size_t i = 0; i < kBatch && done < events; ++i, ++done) {
      v1::Event e = *ingress::NormalizeApplivery(Payload(done));
      e.set_id(absl::StrCat("bench-", done));
      e.mutable_time()->set_seconds(1767225600 + done / 1000);
      batch.push_back(std::move(e));
    }
    if (absl::Status s = (*log)->Append(absl::MakeSpan(batch)); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  json out = {{"scenario", "fill"},
              {"events", events},
              {"seconds", std::chrono::duration<double>(Clock::now() - start).count()}};
  std::cout << out.dump() << std::endl;
  return 0;
}

int Nats(const Args& a) {
  size_t payload = a.Int("payload-bytes", Payload(0).size());
  absl::StatusOr<FanoutResult> r = RunNatsFanout(a.Str("url"), a.Int("subscribers", 10),
                                                 a.Int("events", 10000), payload);
  if (!r.ok()) {
    std::cerr << r.status() << "\n";
    return 1;
  }
  json out = {{"scenario", "nats_fanout"},
              {"subscribers", a.Int("subscribers", 10)},
              {"events", r->published},
              {"deliveries", r->deliveries},
              {"dropped", r->dropped},
              {"seconds", r->seconds},
              {"deliveries_per_second", r->deliveries_per_second},
              {"worst_lag_events", r->worst_lag}};
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace
}  // namespace hookfan::bench

int main(int argc, char** argv) {
  using namespace hookfan::bench;
  std::string cmd = argc > 1 ? argv[1] : "";
  Args args(argc, argv);
  if (cmd == "ingress") return Ingress(args);
  if (cmd == "fanout") return Fanout(args);
  if (cmd == "latency") return Latency(args);
  if (cmd == "idle") return Idle(args);
  if (cmd == "abuse") return Abuse(args);
  if (cmd == "fill") return Fill(args);
  if (cmd == "nats") return Nats(args);
  if (cmd == "payload-size") {
    std::cout << Payload(0).size() << std::endl;
    return 0;
  }
  std::cerr << "usage: hookfan-bench ingress|fanout|latency|idle|abuse|fill|nats|payload-size --flag value ...\n";
  return 2;
}
