#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/authz.h"
#include "nats/nats_connection.h"
#include "common/metrics.h"

namespace grpc {
class Server;
}

namespace hookfan {
namespace broker {
class ConsumerGroups;
class EventBrokerService;
class EventLog;
class Ingestor;
class Fanout;
class GroupStore;
class NatsEventLog;
}  // namespace broker
namespace server {
class CallRate;
class GrpcListener;
class GrpcTls;
class MemoryTrimmer;
}  // namespace server
namespace ingress {
class HttpServer;
class TlsCertificate;
class WebhookHandler;
}  // namespace ingress

namespace server {

// Config is everything the service needs to start, from flags and env.
struct Config {
  std::string http_listen = "127.0.0.1:8080";  // host:port; port 0 = any
  std::string grpc_listen = "127.0.0.1:9090";
  std::string data_dir = "./data";
  // Where events live: "sqlite://PATH" (empty: sqlite://<data_dir>/hookfan.db)
  // or "nats://host:port[,host:port...]" (JetStream, shared by replicas;
  // the rest of the NATS settings are in `nats`, whose servers it fills).
  std::string store;
  // How much of the log is kept, on either store (0: no limit). Subscribers
  // and groups behind it get OUT_OF_RANGE naming the oldest sequence held.
  struct Retention {
    absl::Duration max_age = absl::ZeroDuration();
    int64_t max_bytes = 0;
    int64_t max_events = 0;
    // Never delete the newest event of a (key, type) (SQLite store only).
    bool keep_latest = false;
  } retention;
  // Keep the latest-per-key view (SQLite store only).
  bool latest_view = true;
  broker::NatsOptions nats;
  // Sources and subscriber grants (YAML, see server/config_file.h). Empty:
  // one Applivery source at /webhooks/applivery/{applivery_token}.
  std::string sources_file;
  std::string applivery_token;  // empty: a random one is generated and logged
  absl::Duration applivery_dedup_window = absl::Minutes(10);  // 0: no dedup
  size_t max_body_bytes = 1 << 20;  // of the one-source shorthand
  // Largest stored event, for every ingest path (core/ingest.h); within
  // [kMinMaxEventBytes, kMaxMaxEventBytes] and at least every source's
  // max_body_bytes, else start-up fails.
  int64_t max_event_bytes = 1 << 20;
  // Connection deadlines (see ingress::HttpServer): a whole request, a TLS
  // handshake, keep-alive idle time.
  int http_read_timeout_seconds = 10;
  int http_handshake_timeout_seconds = 5;
  int http_idle_timeout_seconds = 30;
  int http_threads = 64;  // workers running the webhook handler
  // HTTP connections open at once, ≥ http_threads; beyond it the longest
  // idle one is closed to make room, or the new one answered 503.
  int http_max_connections = 1024;
  absl::Duration drain_timeout = absl::Seconds(20);
  // HTTPS on the ingress when both are set; with the CA, clients must
  // present a certificate it signed (mTLS).
  std::string http_tls_cert, http_tls_key, http_tls_client_ca;
  // TLS on gRPC likewise (see GrpcTls: re-read on change, a bad file keeps
  // the previous pair).
  std::string grpc_tls_cert, grpc_tls_key, grpc_tls_client_ca;
  // A gRPC connection must finish its TLS handshake and send HTTP/2's
  // preface and SETTINGS within this, else gRPC closes it.
  absl::Duration grpc_handshake_timeout = absl::Seconds(10);
  // gRPC connections open at once (see GrpcListener); lowered at start to
  // what the open-file limit leaves (GrpcConnectionBudget).
  int grpc_max_connections = 10000;
  // gRPC keepalive pings on idle connections; connections older than the
  // max age are closed gracefully so streams rebalance (0: never).
  absl::Duration grpc_keepalive_time = absl::Seconds(30);
  absl::Duration grpc_max_connection_age = absl::Minutes(30);
  int grpc_max_streams = 20000;  // Subscribe + Consume at once; 0: no limit
  // Bytes queued to all Subscribe and Consume streams (see
  // broker::SendBudget), at least 1 MiB; a stream whose response is not
  // written out within the stall timeout is ended (0: never).
  int64_t grpc_send_buffer_bytes = 64 << 20;
  absl::Duration grpc_stall_timeout = absl::Seconds(30);
  // HTTP/2 streams open at once on one gRPC connection: advertised as
  // SETTINGS_MAX_CONCURRENT_STREAMS, and streams past it are refused.
  int grpc_max_concurrent_streams = 100;
  // Memory gRPC may take for its connections' reads and calls
  // (grpc::ResourceQuota); at the limit it stops reading from sockets.
  int64_t grpc_memory_limit = int64_t{256} << 20;
  // Calls the client of one gRPC connection may cancel per second; a
  // connection whose client cancels more is closed (see ResetRateGuard).
  // 0: no limit.
  int grpc_max_reset_rate = 2000;
};

// Splits "host:port" (IPv6 as "[::1]:port"). Errors: kInvalidArgument.
absl::Status SplitHostPort(const std::string& address, std::string* host, int* port);

// Descriptors kept free under the open-file limit for everything but
// connections: the store's files, gRPC's own (epoll, wake-ups), reads of
// certificate files.
inline constexpr int kReservedFileDescriptors = 256;

// The least --grpc-memory-limit accepted.
inline constexpr int64_t kMinGrpcMemoryLimit = int64_t{16} << 20;

// The gRPC connections allowed at once: `flag`, but no more than the
// open-file limit leaves after the HTTP edge's connections and
// kReservedFileDescriptors, and no less than a quarter of the limit (a
// limit too low for both edges is shared; each edge handles EMFILE).
int GrpcConnectionBudget(int flag, int64_t open_file_limit, int http_max_connections);

// App is one running hookfan: store, fan-out, gRPC and HTTP listeners.
// Start, then Drain once (from the thread that handles signals).
class App {
 public:
  App();
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Opens the store and starts both listeners. Errors name what failed
  // (bad address, port in use, store that cannot open).
  absl::Status Start(Config config);

  // Graceful stop: readiness goes false, the HTTP listener stops and
  // webhooks in progress finish (their appends complete), then streams end
  // with UNAVAILABLE and their resume sequence, then gRPC stops (forcing
  // what is left after the drain timeout) and the store closes.
  void Drain();

  // Re-reads the HTTPS and gRPC certificates and keys now (SIGHUP); a bad
  // file keeps the previous pair.
  void ReloadCertificates();

  int http_port() const { return http_port_; }
  int grpc_port() const { return grpc_port_; }

 private:
  absl::Status Ready() const;
  // Opens the store named by config_.store with its groups; `store` is
  // set to its canonical name for the log.
  absl::Status OpenStore(std::string* store);
  // The metrics read from the store, fan-out and groups at scrape time.
  void RegisterMetrics();

  Config config_;
  metrics::Registry metrics_;  // outlives everything that counts into it
  std::vector<broker::SubscriberGrant> grants_;  // from the sources file
  std::unique_ptr<broker::Authorizer> authorizer_;  // outlives service_
  std::atomic<bool> draining_{false};
  std::unique_ptr<broker::NatsConnection> nats_;  // with a nats:// store
  broker::NatsEventLog* nats_log_ = nullptr;       // log_, on a nats:// store
  std::unique_ptr<broker::EventLog> log_;
  std::unique_ptr<broker::Ingestor> ingestor_;  // into log_: webhooks and Publish
  std::unique_ptr<broker::Fanout> fanout_;
  std::unique_ptr<broker::GroupStore> group_store_;  // with an sqlite:// store
  std::unique_ptr<broker::ConsumerGroups> groups_;
  std::unique_ptr<broker::EventBrokerService> service_;
  std::unique_ptr<GrpcTls> grpc_tls_;  // outlives grpc_server_, which asks it
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<GrpcListener> grpc_listener_;  // hands connections to grpc_server_
  std::unique_ptr<CallRate> grpc_reset_rate_;     // counted by grpc_server_'s calls
  std::unique_ptr<ingress::TlsCertificate> http_tls_;
  std::unique_ptr<ingress::WebhookHandler> webhooks_;
  std::unique_ptr<ingress::HttpServer> http_;
  std::thread http_thread_;
  int http_port_ = 0;
  int grpc_port_ = 0;
  std::unique_ptr<MemoryTrimmer> trimmer_;
};

}  // namespace server
}  // namespace hookfan
