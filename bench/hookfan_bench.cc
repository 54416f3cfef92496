// hookfan-bench: load generator for hookfan. Each subcommand runs one
// scenario against a running hookfan (or an anchor: nats-server,
// redis-server, the bare HTTP server) and prints one JSON object with its
// results; bench/run orchestrates them into tables.
//
//   ingress  --http H:P --token T --connections N --seconds S
//   fanout   --http H:P --token T --grpc H:P --subscribers N --events E --connections C
//   latency  --http H:P --token T --grpc H:P --subscribers N --rate R --seconds S --connections C
//   idle     --grpc H:P --streams N --pid PID
//   abuse    --http H:P --token T --grpc H:P --streams N --pid PID --seconds S --connections C
//   client   --http H:P --token T --grpc H:P --subscribers N --events E
//   fill     --db PATH | --nats URL  --events N [--keys K --types T]
//   snapshot --grpc H:P --expect N --pid PID
//   nats     --url URL --subscribers N --events E --payload-bytes B
//   bare-server                       (the ingress baseline; prints its port)
//   redis-ingest   --port P --connections N --seconds S
//   redis-latency  --port P --subscribers N --rate R --seconds S --connections C
//
// fanout, latency, idle and abuse also take --streams-per-channel N
// (HOOKFAN_BENCH_STREAMS_PER_CHANNEL, default 10). ingress, fanout, latency,
// nats and redis-* take --server-pid PID (repeatable) and then report the
// CPU those processes spent per event. --help lists defaults.

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <latch>
#include <limits>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/cpu.h"
#include "bench/nats_baseline.h"
#include "bench/redis_baseline.h"
#include "nats/nats_connection.h"
#include "nats/nats_event_log.h"
#include "store/sqlite_event_log.h"
#include "common/status_macros.h"
#include "common/sync.h"
#include "grpcpp/grpcpp.h"
#include "hookfan/subscriber.h"
#include "hookfan/v1/broker.grpc.pb.h"
#include "ingress/applivery_normalizer.h"
#include "nlohmann/json.hpp"

namespace hookfan::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// The Applivery "device enrolled" sample, with a unique counter and the send
// time (steady clock, ns) so subscribers can measure end-to-end latency.
constexpr char kPayloadHead[] =
    R"({"action":"emm_device_enrolled","organization":{"id":"5d4d1391cd523c15f50df235",)"
    R"("name":"Applivery Test","url":"https://dashboard.applivery.io/test"},)"
    R"("emmDevice":{"type":"Fully Managed","url":"https://dashboard.applivery.io/test/mdm/)"
    R"(users/5e9099ee4da32b180204770e?id=)";
constexpr char kPayloadDevice[] = "5f634c11034824062256e38c";  // the sample's device
constexpr char kPayloadTail[] =
    R"("},"mdmUser":{"id":)"
    R"("5e9099ee4da32b180204770e","email":"[email protected]","url":)"
    R"("https://dashboard.applivery.io/test/mdm/users/5e9099ee4da32b180204770e"},"bench_n":)";

// Device k of a fleet, as 24 hex digits like Applivery's ids.
std::string DeviceId(uint64_t k) { return absl::StrFormat("%024x", k); }

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Webhook n; with devices > 1, about a device of a fleet that size, in a
// scattered order as a fleet's check-ins come (else the sample's one
// device). Same size either way.
std::string Payload(uint64_t n, uint64_t devices = 1) {
  const uint64_t device = (n * 0x9E3779B97F4A7C15ull >> 16) % std::max<uint64_t>(devices, 1);
  return absl::StrCat(kPayloadHead, devices > 1 ? DeviceId(device) : kPayloadDevice,
                      kPayloadTail, n, ",\"bench_sent_ns\":", NowNs(), "}");
}

// The CPU the server processes (--server-pid, repeatable) spend from
// construction to Stop(): what a scenario divides by its events.
class ServerCpu {
 public:
  explicit ServerCpu(const std::vector<int64_t>& pids) : pids_(pids) {
    for (int64_t pid : pids_) start_.push_back(ProcessCpuSeconds(pid));
  }
  // Adds "server_cpu_us_per_<unit>" (all servers) and, per server in
  // --server-pid order, "server_cpu_us_per_<unit>_each" to `out`,
  // dividing by `count`.
  void Stop(uint64_t count, const std::string& unit, nlohmann::json& out) const {
    if (pids_.empty()) return;
    double total = 0;
    nlohmann::json each = nlohmann::json::array();
    for (size_t i = 0; i < pids_.size(); ++i) {
      double used = ProcessCpuSeconds(pids_[i]) - start_[i];
      total += used;
      each.push_back(count == 0 ? 0.0 : used * 1e6 / count);
    }
    out["server_cpu_us_per_" + unit] = count == 0 ? 0.0 : total * 1e6 / count;
    out["server_cpu_us_per_" + unit + "_each"] = each;
  }

 private:
  std::vector<int64_t> pids_;
  std::vector<double> start_;
};

// The latency a webhook body carried from its sending (Payload) to now;
// -1 when it carries no send time.
int64_t SinceSent(std::string_view body, int64_t now) {
  constexpr std::string_view kKey = "\"bench_sent_ns\":";
  size_t p = body.find(kKey);
  if (p == std::string_view::npos) return -1;
  int64_t sent = 0;
  for (p += kKey.size(); p < body.size() && body[p] >= '0' && body[p] <= '9'; ++p) {
    sent = sent * 10 + (body[p] - '0');
  }
  return now - sent;
}

// A scenario's flags. Each subcommand registers those it reads, on its own
// Flags with its own defaults (main).
struct Flags {
  std::string http;   // hookfan's HTTP address, HOST:PORT
  std::string token;  // the Applivery webhook token
  std::string grpc;   // hookfan's gRPC address, HOST:PORT
  int connections = 16;
  int subscribers = 10;
  int streams = 10000;
  // Streams per gRPC channel (one HTTP/2 connection each), as a fleet of
  // subscribing services would spread them.
  int streams_per_channel = 10;
  int64_t events = 10000;
  int64_t seconds = 10;
  int64_t rate = 1000;  // webhooks/s offered
  int64_t pid = 0;      // hookfan's, to sample its RSS
  std::string db;       // fill: the SQLite store to create
  std::string fill_nats;  // fill: or the NATS server whose stream to fill
  std::string url;      // nats: the nats-server
  int redis_port = 0;   // redis-*: the redis-server on 127.0.0.1
  int64_t payload_bytes = 0;
  int64_t devices = 1;  // ingress: the fleet the webhooks are about
  int64_t keys = 0;     // fill: devices (0: the sample's one)
  int64_t types = 1;    // fill: event types per device
  int64_t expect = 0;   // snapshot: events the snapshot holds
  int64_t through = 0;  // snapshot: wait until a snapshot covers this sequence
  std::vector<int64_t> server_pids;  // whose CPU per event to report
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
  double poster_cpu_seconds = 0;  // the posting threads' own CPU
};
PostResult PostLoad(const std::string& http, const std::string& token, int connections,
                    uint64_t limit, double seconds, double rate, uint64_t devices = 1) {
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
      const double cpu_start = ThreadCpuSeconds();
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
        auto res = client.Post(path, Payload(n, devices), "application/json");
        lat.push_back((Clock::now() - t0).count());
        (res && (res->status == 202 || res->status == 204)) ? ++ok : ++bad;
      }
      const double cpu = ThreadCpuSeconds() - cpu_start;
      std::lock_guard<std::mutex> l(mu);
      result.poster_cpu_seconds += cpu;
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

int Ingress(const Flags& f) {
  ServerCpu cpu(f.server_pids);
  PostResult r = PostLoad(f.http, f.token, f.connections, UINT64_MAX, f.seconds, 0, f.devices);
  json out = {{"scenario", "ingress"},
              {"connections", f.connections},
              {"devices", f.devices},
              {"webhooks_per_second", r.accepted / r.seconds},
              {"accepted", r.accepted},
              {"non_202", r.other}};
  cpu.Stop(r.accepted + r.other, "request", out);
  out.update(Percentiles(r.latency_ns));
  std::cout << out.dump() << std::endl;
  return 0;
}

// A pool of Subscribe streams on a few channels, counting what arrives.
class Subscribers {
 public:
  // `n` streams, `per_channel` to a channel. `type` (a filter pattern;
  // empty: every event) is what each stream asks for.
  Subscribers(const std::string& grpc, int n, int per_channel, bool measure_latency,
              const std::string& type = "")
      : measure_latency_(measure_latency) {
    int channels = std::max(1, n / per_channel);
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
          if (int64_t ns = SinceSent(e.data(), now); ns >= 0) lat.push_back(ns);
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

int Fanout(const Flags& f) {
  int n = f.subscribers;
  uint64_t events = f.events;
  Subscribers subs(f.grpc, n, f.streams_per_channel, false);
  ServerCpu server(f.server_pids);
  const OtherThreadsCpu others;
  auto start = Clock::now();
  PostResult posted = PostLoad(f.http, f.token, f.connections, events, 3600, 0);
  uint64_t worst_lag = posted.accepted - std::min(posted.accepted, subs.min_received());
  auto deadline = Clock::now() + std::chrono::seconds(120);
  while (subs.total() < posted.accepted * n && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // What the Subscribe streams cost this process: all of its CPU but the
  // posters' and this thread's.
  const double subscriber_cpu = others.Seconds() - posted.poster_cpu_seconds;
  const uint64_t deliveries = subs.total();
  json out = {{"scenario", "fanout"},
              {"subscribers", n},
              {"events", posted.accepted},
              {"deliveries", deliveries},
              {"seconds", seconds},
              {"deliveries_per_second", deliveries / seconds},
              {"worst_lag_events", worst_lag},
              {"complete", deliveries == posted.accepted * n},
              {"subscriber_cpu_us_per_delivery",
               deliveries == 0 ? 0.0 : subscriber_cpu * 1e6 / deliveries}};
  server.Stop(deliveries, "delivery", out);
  std::cout << out.dump() << std::endl;
  return 0;
}

int Latency(const Flags& f) {
  double rate = f.rate;
  double seconds = f.seconds;
  Subscribers subs(f.grpc, f.subscribers, f.streams_per_channel, true);
  ServerCpu server(f.server_pids);
  PostResult posted = PostLoad(f.http, f.token, f.connections, UINT64_MAX, seconds, rate);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  uint64_t want = posted.accepted * f.subscribers;
  while (subs.total() < want && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  json out = {{"scenario", "latency"},
              {"offered_per_second", rate},
              {"achieved_per_second", posted.accepted / posted.seconds},
              {"subscribers", f.subscribers},
              {"delivered", subs.total()},
              {"non_202", posted.other}};
  server.Stop(posted.accepted, "event", out);
  out.update(Percentiles(subs.latencies()));
  std::cout << out.dump() << std::endl;
  return 0;
}

// Subscriber-side cost of the C++ client library: `subscribers` threads,
// each with a hookfan::Subscriber (one channel for all) counting events.
// One webhook first shows every stream live; then --events webhooks, and
// the CPU this process spent outside the posters and the main thread
// until every subscriber has them, per event received.
int Client(const Flags& f) {
  const int n = f.subscribers;
  const uint64_t events = f.events;
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(f.grpc, grpc::InsecureChannelCredentials());
  std::vector<std::unique_ptr<Subscriber>> subs;
  std::vector<std::atomic<uint64_t>> received(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    Subscriber::Options options;
    options.connection.channel = channel;
    subs.push_back(std::make_unique<Subscriber>(options));
    threads.emplace_back([&, i] {
      (void)subs[i]->Run([&](const v1::Event&) {
        received[i].fetch_add(1, std::memory_order_relaxed);
        return true;
      });
    });
  }
  // Each subscriber's count from `base` on; done once all have `want`.
  std::vector<uint64_t> base(n, 0);
  auto wait_for = [&](uint64_t want, std::chrono::seconds limit) {
    auto all = [&] {
      for (int i = 0; i < n; ++i) {
        if (received[i].load(std::memory_order_relaxed) - base[i] < want) return false;
      }
      return true;
    };
    auto deadline = Clock::now() + limit;
    while (!all() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return all();
  };
  // Streams start at the latest event: post one until all have it.
  bool live = false;
  for (int attempt = 0; attempt < 100 && !live; ++attempt) {
    PostLoad(f.http, f.token, 1, 1, 60, 0);
    live = wait_for(1, std::chrono::seconds(1));
  }
  uint64_t before = 0;
  for (int i = 0; i < n; ++i) before += base[i] = received[i].load();
  const OtherThreadsCpu others;
  PostResult posted = PostLoad(f.http, f.token, f.connections, events, 3600, 0);
  const bool complete = wait_for(posted.accepted, std::chrono::seconds(120));
  const double cpu = others.Seconds() - posted.poster_cpu_seconds;
  uint64_t delivered = 0;
  for (const auto& r : received) delivered += r.load();
  delivered -= before;
  for (auto& s : subs) s->Cancel();
  for (auto& t : threads) t.join();
  json out = {{"scenario", "client"},
              {"subscribers", n},
              {"live", live},
              {"events", posted.accepted},
              {"delivered", delivered},
              {"complete", complete},
              {"client_cpu_us_per_event", delivered == 0 ? 0.0 : cpu * 1e6 / delivered}};
  std::cout << out.dump() << std::endl;
  return 0;
}

// The ingress baseline: a bare cpp-httplib server that parses each POST's
// body as JSON and answers 204 (400 when it does not parse), with a worker
// per connection so 50 keep-alive connections are all served. Prints
// {"port": P} once listening; runs until killed.
int BareServer(const Flags& f) {
  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(128); };
  server.set_keep_alive_max_count(std::numeric_limits<int>::max());
  server.Post(".*", [](const httplib::Request& request, httplib::Response& response) {
    json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    response.status = body.is_discarded() ? 400 : 204;
  });
  int port = server.bind_to_any_port(f.http.empty() ? "127.0.0.1" : f.http);
  if (port < 0) {
    std::cerr << "cannot listen\n";
    return 1;
  }
  std::cout << json{{"port", port}}.dump() << std::endl;
  return server.listen_after_bind() ? 0 : 1;
}

int64_t RssKb(int64_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

int Idle(const Flags& f) {
  int64_t pid = f.pid;
  int n = f.streams;
  int64_t before = RssKb(pid);
  Subscribers subs(f.grpc, n, f.streams_per_channel, false);
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
int Abuse(const Flags& f) {
  const int64_t pid = f.pid;
  const int n = f.streams;
  const int connections = f.connections;
  const double seconds = f.seconds;
  PostResult alone = PostLoad(f.http, f.token, connections, UINT64_MAX, seconds, 0);
  const int64_t rss_before = RssKb(pid);
  Subscribers idle(f.grpc, n, f.streams_per_channel, false, "bench.idle.never");
  auto stub = v1::EventBroker::NewStub(
      grpc::CreateChannel(f.grpc, grpc::InsecureChannelCredentials()));
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
  PostResult loaded = PostLoad(f.http, f.token, connections, UINT64_MAX, seconds, 0);
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

// The fill's event number `n`: device n % keys, type (n / keys) % types.
v1::Event FillEvent(const Flags& f, uint64_t n) {
  v1::Event e = *ingress::NormalizeApplivery(Payload(n));
  e.set_id(absl::StrCat("bench-", n));
  if (f.keys > 0) {
    e.set_key(DeviceId(n % f.keys));
    e.set_type(absl::StrCat("bench.device.state", (n / f.keys) % f.types));
  }
  e.mutable_time()->set_seconds(1767225600 + n / 1000);
  return e;
}

// Fills the stream of a NATS store as hookfan's own log writes it (without
// its latest view: the hookfan started on it next builds that), from 8
// appenders at once.
absl::Status FillNats(const Flags& f) {
  broker::NatsOptions options;
  options.servers = {f.fill_nats};
  options.latest_view = false;
  ASSIGN_OR_RETURN(std::unique_ptr<broker::NatsConnection> connection,
                   broker::NatsConnection::Connect(options));
  ASSIGN_OR_RETURN(std::unique_ptr<broker::NatsEventLog> log,
                   broker::NatsEventLog::Open(connection.get()));
  std::atomic<uint64_t> next{0};
  std::vector<absl::Status> failed(8);
  std::vector<std::thread> appenders;
  for (size_t t = 0; t < failed.size(); ++t) {
    appenders.emplace_back([&, t] {
      for (uint64_t n = next++; n < static_cast<uint64_t>(f.events) && failed[t].ok(); n = next++) {
        v1::Event e = FillEvent(f, n);
        failed[t] = log->Append(absl::MakeSpan(&e, 1));
      }
    });
  }
  for (std::thread& t : appenders) t.join();
  for (const absl::Status& s : failed) RETURN_IF_ERROR(s);
  return absl::OkStatus();
}

int Fill(const Flags& f) {
  uint64_t events = f.events;
  auto start = Clock::now();
  if (!f.fill_nats.empty()) {
    if (absl::Status s = FillNats(f); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  } else {
    absl::StatusOr<std::unique_ptr<broker::SqliteEventLog>> log =
        broker::SqliteEventLog::Open(f.db, {});
    if (!log.ok()) {
      std::cerr << log.status() << "\n";
      return 1;
    }
    constexpr size_t kBatch = 2000;
    for (uint64_t done = 0; done < events;) {
      std::vector<v1::Event> batch;
      for (size_t i = 0; i < kBatch && done < events; ++i, ++done) {
        batch.push_back(FillEvent(f, done));
      }
      if (absl::Status s = (*log)->Append(absl::MakeSpan(batch)); !s.ok()) {
        std::cerr << s << "\n";
        return 1;
      }
    }
  }
  json out = {{"scenario", "fill"},
              {"events", events},
              {"seconds", std::chrono::duration<double>(Clock::now() - start).count()}};
  std::cout << out.dump() << std::endl;
  return 0;
}

// Subscribes from a snapshot of a store holding `expect` (key, type)
// entries and reads until the last of them: time to the last snapshot event
// and the server's RSS meanwhile (sampled every 20 ms), which must not grow
// with the number of keys.
int Snapshot(const Flags& f) {
  auto stub = v1::EventBroker::NewStub(
      grpc::CreateChannel(f.grpc, grpc::InsecureChannelCredentials()));
  const int64_t rss_before = RssKb(f.pid);
  std::atomic<int64_t> rss_peak = rss_before;
  std::atomic<bool> done = false;
  std::thread sampler([&] {
    while (!done) {
      int64_t rss = RssKb(f.pid);
      if (rss > rss_peak) rss_peak = rss;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  v1::SubscribeRequest request;
  request.mutable_start()->set_snapshot(true);
  request.set_max_batch_size(4096);
  // A view that trails the log (NATS) is waited for: until a snapshot
  // covers --through.
  const auto wait_start = Clock::now();
  while (f.through > 0) {
    grpc::ClientContext probe;
    auto r = stub->Subscribe(&probe, request);
    r->WaitForInitialMetadata();
    auto found = probe.GetServerInitialMetadata().find("hookfan-snapshot-through");
    uint64_t covered = 0;
    bool ok = found != probe.GetServerInitialMetadata().end() &&
              absl::SimpleAtoi(absl::string_view(found->second.data(), found->second.size()),
                               &covered);
    probe.TryCancel();
    r->Finish();
    if (ok && covered >= static_cast<uint64_t>(f.through)) break;
    if (Clock::now() - wait_start > std::chrono::minutes(10)) {
      std::cerr << "no snapshot covered sequence " << f.through << " within 10 minutes\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double view_wait = std::chrono::duration<double>(Clock::now() - wait_start).count();
  ServerCpu cpu({f.pid});
  const auto start = Clock::now();
  grpc::ClientContext context;
  auto reader = stub->Subscribe(&context, request);
  v1::SubscribeResponse response;
  int64_t got = 0;
  uint64_t last = 0;
  bool ordered = true;
  while (got < f.expect && reader->Read(&response)) {
    for (const v1::Event& e : response.events()) {
      ordered &= e.sequence() > last;
      last = e.sequence();
    }
    got += response.events_size();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  done = true;
  sampler.join();
  context.TryCancel();
  reader->Finish();
  json out = {{"scenario", "snapshot"},
              {"events", got},
              {"complete", got == f.expect && ordered},
              {"seconds", seconds},
              {"events_per_second", got / seconds},
              {"rss_before_mb", rss_before / 1024.0},
              {"rss_peak_mb", rss_peak / 1024.0},
              {"view_wait_seconds", view_wait}};
  cpu.Stop(got, "event", out);
  std::cout << out.dump() << std::endl;
  return 0;
}

int Nats(const Flags& f) {
  std::optional<ServerCpu> server;
  absl::StatusOr<FanoutResult> r = RunNatsFanout(f.url, f.subscribers, f.events, f.payload_bytes,
                                                 [&] { server.emplace(f.server_pids); });
  if (!r.ok()) {
    std::cerr << r.status() << "\n";
    return 1;
  }
  json out = {{"scenario", "nats_fanout"},
              {"subscribers", f.subscribers},
              {"events", r->published},
              {"deliveries", r->deliveries},
              {"dropped", r->dropped},
              {"seconds", r->seconds},
              {"deliveries_per_second", r->deliveries_per_second},
              {"worst_lag_events", r->worst_lag},
              {"subscriber_cpu_us_per_delivery",
               r->deliveries == 0 ? 0.0 : r->subscriber_cpu_seconds * 1e6 / r->deliveries}};
  server->Stop(r->deliveries, "delivery", out);
  std::cout << out.dump() << std::endl;
  return 0;
}

// Redis Streams, the durable baseline: XADDs of the same webhook bodies
// from --connections connections at full speed, as `ingress` posts them.
int RedisIngest(const Flags& f) {
  ServerCpu server(f.server_pids);
  absl::StatusOr<RedisIngestResult> r = RunRedisIngest(
      "127.0.0.1", f.redis_port, "bench-ingest", f.connections, f.seconds, UINT64_MAX, 0,
      [](uint64_t n) { return Payload(n); });
  if (!r.ok()) {
    std::cerr << r.status() << "\n";
    return 1;
  }
  json out = {{"scenario", "redis_ingest"},
              {"connections", f.connections},
              {"events_per_second", r->added / r->seconds},
              {"added", r->added},
              {"errors", r->errors}};
  server.Stop(r->added + r->errors, "request", out);
  out.update(Percentiles(std::move(r->latency_ns)));
  std::cout << out.dump() << std::endl;
  return 0;
}

// Redis Streams end to end: XADDs at --rate, --subscribers consumers on
// XREAD BLOCK, latency from XADD sent to entry read.
int RedisLatency(const Flags& f) {
  std::mutex mu;
  std::vector<int64_t> latency_ns;
  const std::string stream = absl::StrCat("bench-latency-", NowNs());
  absl::StatusOr<std::unique_ptr<RedisConsumers>> consumers = RedisConsumers::Start(
      "127.0.0.1", f.redis_port, stream, f.subscribers, [&](std::string_view data) {
        int64_t ns = SinceSent(data, NowNs());
        if (ns < 0) return;
        std::lock_guard<std::mutex> l(mu);
        latency_ns.push_back(ns);
      });
  if (!consumers.ok()) {
    std::cerr << consumers.status() << "\n";
    return 1;
  }
  ServerCpu server(f.server_pids);
  absl::StatusOr<RedisIngestResult> r =
      RunRedisIngest("127.0.0.1", f.redis_port, stream, f.connections, f.seconds, UINT64_MAX,
                     f.rate, [](uint64_t n) { return Payload(n); });
  if (!r.ok()) {
    std::cerr << r.status() << "\n";
    return 1;
  }
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while ((*consumers)->total() < r->added * f.subscribers && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  json out = {{"scenario", "redis_latency"},
              {"offered_per_second", f.rate},
              {"achieved_per_second", r->added / r->seconds},
              {"subscribers", f.subscribers},
              {"delivered", (*consumers)->total()},
              {"errors", r->errors}};
  server.Stop(r->added, "event", out);
  consumers->reset();
  std::lock_guard<std::mutex> l(mu);
  out.update(Percentiles(latency_ns));
  std::cout << out.dump() << std::endl;
  return 0;
}

// --http, --token and --connections: the webhook posters.
void AddPosting(CLI::App* cmd, Flags& f) {
  cmd->add_option("--http", f.http, "hookfan's HTTP address, HOST:PORT");
  cmd->add_option("--token", f.token, "the Applivery webhook token");
  cmd->add_option("--connections", f.connections, "keep-alive HTTP connections posting")
      ->capture_default_str();
}

// --grpc and --streams-per-channel: the Subscribe streams.
void AddStreaming(CLI::App* cmd, Flags& f) {
  cmd->add_option("--grpc", f.grpc, "hookfan's gRPC address, HOST:PORT");
  cmd->add_option("--streams-per-channel", f.streams_per_channel,
                  "Subscribe streams per gRPC connection")
      ->envname("HOOKFAN_BENCH_STREAMS_PER_CHANNEL")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()))
      ->capture_default_str();
}

// --server-pid: whose CPU per event the scenario reports.
void AddServerPids(CLI::App* cmd, Flags& f) {
  cmd->add_option("--server-pid", f.server_pids,
                  "a server process whose CPU per event to report (repeatable)");
}

}  // namespace
}  // namespace hookfan::bench

int main(int argc, char** argv) {
  using namespace hookfan::bench;
  CLI::App app{"hookfan-bench: load generator for hookfan. Each subcommand runs one scenario "
               "and prints one JSON object with its results."};
  app.require_subcommand(1);
  int code = 0;
  // One Flags per scenario: their defaults differ.
  Flags ingress{.connections = 50};
  CLI::App* cmd = app.add_subcommand("ingress", "webhooks/s posting at full speed");
  AddPosting(cmd, ingress);
  cmd->add_option("--seconds", ingress.seconds, "how long to post")->capture_default_str();
  cmd->add_option("--devices", ingress.devices,
                  "devices the webhooks are about, scattered (1: one device)")
      ->capture_default_str();
  AddServerPids(cmd, ingress);
  cmd->callback([&] { code = Ingress(ingress); });

  Flags fanout;
  cmd = app.add_subcommand("fanout", "deliveries/s of --events to --subscribers streams");
  AddPosting(cmd, fanout);
  AddStreaming(cmd, fanout);
  cmd->add_option("--subscribers", fanout.subscribers, "Subscribe streams")->capture_default_str();
  cmd->add_option("--events", fanout.events, "webhooks to post")->capture_default_str();
  AddServerPids(cmd, fanout);
  cmd->callback([&] { code = Fanout(fanout); });

  Flags latency{.connections = 32, .subscribers = 100};
  cmd = app.add_subcommand("latency", "webhook sent to event received, at a fixed --rate");
  AddPosting(cmd, latency);
  AddStreaming(cmd, latency);
  cmd->add_option("--subscribers", latency.subscribers, "Subscribe streams")
      ->capture_default_str();
  cmd->add_option("--rate", latency.rate, "webhooks/s offered")->capture_default_str();
  cmd->add_option("--seconds", latency.seconds, "how long to post")->capture_default_str();
  AddServerPids(cmd, latency);
  cmd->callback([&] { code = Latency(latency); });

  Flags client{.connections = 16, .events = 20000};
  cmd = app.add_subcommand("client", "subscriber-side CPU per event of the C++ client library");
  AddPosting(cmd, client);
  cmd->add_option("--grpc", client.grpc, "hookfan's gRPC address, HOST:PORT");
  cmd->add_option("--subscribers", client.subscribers, "hookfan::Subscriber threads")
      ->capture_default_str();
  cmd->add_option("--events", client.events, "webhooks to post")->capture_default_str();
  cmd->callback([&] { code = Client(client); });

  Flags redis_ingest{.connections = 50};
  cmd = app.add_subcommand("redis-ingest", "XADDs/s of webhook bodies to Redis Streams");
  cmd->add_option("--port", redis_ingest.redis_port, "the redis-server on 127.0.0.1")->required();
  cmd->add_option("--connections", redis_ingest.connections, "connections adding")
      ->capture_default_str();
  cmd->add_option("--seconds", redis_ingest.seconds, "how long to add")->capture_default_str();
  AddServerPids(cmd, redis_ingest);
  cmd->callback([&] { code = RedisIngest(redis_ingest); });

  Flags redis_latency{.connections = 32, .subscribers = 100};
  cmd = app.add_subcommand("redis-latency", "XADD sent to entry read, at a fixed --rate");
  cmd->add_option("--port", redis_latency.redis_port, "the redis-server on 127.0.0.1")
      ->required();
  cmd->add_option("--connections", redis_latency.connections, "connections adding")
      ->capture_default_str();
  cmd->add_option("--subscribers", redis_latency.subscribers, "XREAD BLOCK consumers")
      ->capture_default_str();
  cmd->add_option("--rate", redis_latency.rate, "XADDs/s offered")->capture_default_str();
  cmd->add_option("--seconds", redis_latency.seconds, "how long to add")->capture_default_str();
  AddServerPids(cmd, redis_latency);
  cmd->callback([&] { code = RedisLatency(redis_latency); });

  Flags bare;
  cmd = app.add_subcommand("bare-server",
                           "ingress baseline: cpp-httplib parsing each POST as JSON, answering 204");
  cmd->add_option("--http", bare.http, "the address to listen on (an OS-chosen port)")
      ->default_str("127.0.0.1");
  cmd->callback([&] { code = BareServer(bare); });

  Flags idle;
  cmd = app.add_subcommand("idle", "server memory per idle Subscribe stream");
  AddStreaming(cmd, idle);
  cmd->add_option("--streams", idle.streams, "idle streams to open")->capture_default_str();
  cmd->add_option("--pid", idle.pid, "hookfan's pid, to read its RSS");
  cmd->callback([&] { code = Idle(idle); });

  Flags abuse{.seconds = 5};
  cmd = app.add_subcommand("abuse", "ingest alone, then beside idle streams and a stalled one");
  AddPosting(cmd, abuse);
  AddStreaming(cmd, abuse);
  cmd->add_option("--streams", abuse.streams, "idle streams to open")->capture_default_str();
  cmd->add_option("--pid", abuse.pid, "hookfan's pid, to read its RSS");
  cmd->add_option("--seconds", abuse.seconds, "how long to post, each time")
      ->capture_default_str();
  cmd->callback([&] { code = Abuse(abuse); });

  Flags fill{.events = 1000000};
  cmd = app.add_subcommand("fill", "writes --events events to a new SQLite store or a NATS one");
  cmd->add_option("--db", fill.db, "the SQLite store to create");
  cmd->add_option("--nats", fill.fill_nats, "or the nats-server to fill, nats://HOST:PORT");
  cmd->add_option("--events", fill.events, "events to write")->capture_default_str();
  cmd->add_option("--keys", fill.keys,
                  "devices, round-robin, each with --types types in turn (0: one device)")
      ->capture_default_str();
  cmd->add_option("--types", fill.types, "event types per device")->capture_default_str();
  cmd->callback([&] { code = Fill(fill); });

  Flags snapshot;
  cmd = app.add_subcommand("snapshot", "time and server memory to read a snapshot");
  cmd->add_option("--grpc", snapshot.grpc, "hookfan's gRPC address, HOST:PORT");
  cmd->add_option("--expect", snapshot.expect, "(key, type) entries the store holds")
      ->required();
  cmd->add_option("--pid", snapshot.pid, "hookfan's pid, to read its RSS and CPU")->required();
  cmd->add_option("--through", snapshot.through,
                  "first wait until a snapshot covers this sequence (a view that trails the log)");
  cmd->callback([&] { code = Snapshot(snapshot); });

  Flags nats{.payload_bytes = static_cast<int64_t>(Payload(0).size())};
  cmd = app.add_subcommand("nats", "NATS core pub/sub fan-out: fanout's baseline");
  cmd->add_option("--url", nats.url, "the nats-server, nats://HOST:PORT");
  cmd->add_option("--subscribers", nats.subscribers, "subscribers")->capture_default_str();
  cmd->add_option("--events", nats.events, "messages to publish")->capture_default_str();
  cmd->add_option("--payload-bytes", nats.payload_bytes,
                  "bytes per message (default: a webhook's)");
  AddServerPids(cmd, nats);
  cmd->callback([&] { code = Nats(nats); });

  cmd = app.add_subcommand("payload-size", "prints the bytes of one webhook body");
  cmd->callback([] { std::cout << Payload(0).size() << std::endl; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the help, or the error
    return e.get_exit_code() == 0 ? 0 : 2;
  }
  return code;
}
