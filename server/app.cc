#include "server/app.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/group_manager.h"
#include "core/fanout.h"
#include "rpc/event_broker_service.h"
#include "core/ingest.h"
#include "nats/nats_consumer_groups.h"
#include "nats/nats_event_log.h"
#include "store/sqlite_event_log.h"
#include "store/sqlite_group_store.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "ingress/applivery_normalizer.h"
#include "ingress/http_server.h"
#include "ingress/tls_certificate.h"
#include "ingress/webhook_handler.h"
#include "server/call_rate.h"
#include "server/config_file.h"
#include "server/grpc_listener.h"
#include "server/grpc_tls.h"
#include "server/memory_trimmer.h"
#include "server/request_guard.h"
#include "server/store_location.h"

namespace hookfan::server {

namespace {
// How long new connections from an address are closed at accept after one
// of its connections went over --grpc-max-reset-rate: a client that
// reconnects at once would otherwise cost a burst of calls each time.
constexpr absl::Duration kResetRatePenalty = absl::Seconds(10);
}  // namespace

absl::Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", address, "\" is not host:port"));
  }
  std::string h = address.substr(0, colon);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int p;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", address, "\" has no valid port"));
  }
  *host = h;
  *port = p;
  return absl::OkStatus();
}

int GrpcConnectionBudget(int flag, int64_t open_file_limit, int http_max_connections) {
  const int64_t left = open_file_limit - http_max_connections - kReservedFileDescriptors;
  return static_cast<int>(
      std::clamp<int64_t>(std::max(left, open_file_limit / 4), 1, std::max(flag, 1)));
}

namespace {

// The open-file limit before and after RaiseOpenFileLimit.
struct OpenFileLimit {
  int64_t soft_was;
  int64_t soft;
  int64_t hard;
};

int64_t LimitValue(rlim_t value) {
  return value == RLIM_INFINITY || value > static_cast<rlim_t>(std::numeric_limits<int32_t>::max())
             ? std::numeric_limits<int32_t>::max()
             : static_cast<int64_t>(value);
}

// Raises the soft open-file limit to the hard one: every connection is a
// descriptor, and distributions start services at 1024.
OpenFileLimit RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return {1024, 1024, 1024};
  OpenFileLimit result{LimitValue(limit.rlim_cur), LimitValue(limit.rlim_cur),
                       LimitValue(limit.rlim_max)};
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised{limit.rlim_max, limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) result.soft = LimitValue(limit.rlim_max);
  }
  return result;
}

// The source the --applivery-token / --max-body-bytes flags describe.
ingress::SourceConfig AppliveryShorthand(const Config& config) {
  ingress::SourceConfig source{
      .name = "applivery",
      .path = "/webhooks/applivery",
      .normalizer = std::string(ingress::kAppliveryNormalizer.name),
      .auth = {.mode = ingress::AuthMode::kPathToken, .secrets = {config.applivery_token}},
      .max_body_bytes = config.max_body_bytes,
  };
  source.dedup = ingress::DefaultDedup(source);
  source.dedup.window = config.applivery_dedup_window;
  if (config.applivery_dedup_window <= absl::ZeroDuration()) {
    source.dedup.key = ingress::DedupKey::kNone;
  }
  return source;
}

}  // namespace

App::App() = default;

void App::RegisterMetrics() {
  auto one = [](double v) { return std::vector<metrics::Sample>{{{}, v}}; };
  metrics_.AddCallback("hookfan_events_appended_total", "Events committed to the log (its last sequence).",
                       [this, one] { return one(static_cast<double>(log_->LastSequence())); },
                       "counter");
  metrics_.AddCallback("hookfan_store_up",
                       "1 while the event store takes appends (NATS reachable), else 0.",
                       [this, one] { return one(log_->Ready().ok() ? 1 : 0); });
  metrics_.AddCallback(
      "hookfan_store_refusals_total",
      "Writes the event store refused (NATS JetStream), by reason: out_of_storage, no_quorum, "
      "timeout, disconnected, other.",
      [this] {
        std::vector<metrics::Sample> samples;
        for (const auto& [reason, count] : log_->RefusalCounts()) {
          samples.push_back({{{"reason", reason}}, static_cast<double>(count)});
        }
        return samples;
      },
      "counter");
  metrics_.AddCallback("hookfan_subscriptions", "Open Subscribe streams and group readers.",
                       [this, one] { return one(fanout_->stats().subscriptions); });
  metrics_.AddCallback("hookfan_delivered_events_total",
                       "Events handed to subscriptions (Subscribe streams and group readers).",
                       [this, one] { return one(fanout_->stats().events); }, "counter");
  metrics_.AddCallback("hookfan_delivered_bytes_total", "Wire bytes of the events handed out.",
                       [this, one] { return one(fanout_->stats().bytes); }, "counter");
  metrics_.AddCallback("hookfan_catchup_reads_total",
                       "Store reads for subscriptions behind the in-memory window.",
                       [this, one] { return one(fanout_->stats().catchup_reads); }, "counter");
  metrics_.AddCallback("hookfan_subscription_max_lag_events",
                       "Committed events the furthest-behind subscription has not examined yet.",
                       [this, one] { return one(fanout_->stats().max_lag); });
  metrics_.AddCallback("hookfan_group_deliveries_total", "Leases handed to group members.",
                       [this, one] { return one(groups_->stats().deliveries); }, "counter");
  metrics_.AddCallback("hookfan_group_redeliveries_total",
                       "Leases of events delivered before (attempt > 1).",
                       [this, one] { return one(groups_->stats().redeliveries); }, "counter");
  metrics_.AddCallback("hookfan_group_dead_lettered_total",
                       "Events moved to a group's dead letters after max_deliveries.",
                       [this, one] { return one(groups_->stats().dead_lettered); }, "counter");
  // Scrapes are served by http_, which exists by then.
  metrics_.AddCallback(
      "hookfan_http_connections", "HTTP connections open (--http-max-connections).",
      [this, one] { return one(static_cast<double>(http_->counts().open.load())); });
  metrics_.AddCallback(
      "hookfan_http_connections_refused_total",
      "HTTP connections answered 503 (or closed) because --http-max-connections were busy.",
      [this, one] { return one(static_cast<double>(http_->counts().refused.load())); },
      "counter");
  metrics_.AddCallback(
      "hookfan_http_connections_evicted_total",
      "Idle HTTP connections closed to make room for a new one at --http-max-connections.",
      [this, one] { return one(static_cast<double>(http_->counts().evicted.load())); },
      "counter");
  metrics_.AddCallback(
      "hookfan_http_connections_timed_out_total",
      "HTTP connections closed because a handshake, request or answer outlived its deadline "
      "(--http-handshake-timeout, --http-read-timeout).",
      [this, one] { return one(static_cast<double>(http_->counts().timed_out.load())); },
      "counter");
  metrics_.AddCallback(
      "hookfan_grpc_connections",
      "gRPC connections open, as of the listener's last check (--grpc-max-connections).",
      [this, one] { return one(static_cast<double>(grpc_listener_->open_connections())); });
  metrics_.AddCallback(
      "hookfan_grpc_accept_pauses_total",
      "100 ms pauses of accepting on the gRPC port with connections waiting: at "
      "--grpc-max-connections, or out of file descriptors.",
      [this, one] { return one(static_cast<double>(grpc_listener_->pauses())); }, "counter");
  metrics_.AddCallback(
      "hookfan_grpc_send_queued_bytes",
      "Bytes of Subscribe and Consume responses handed to gRPC and not yet taken by their "
      "clients (--grpc-send-buffer-bytes).",
      [this, one] { return one(static_cast<double>(service_->send_budget().queued_bytes())); });
  metrics_.AddCallback(
      "hookfan_grpc_streams_stalled_total",
      "Subscribe and Consume streams ended because their client took nothing for "
      "--grpc-stall-timeout.",
      [this, one] { return one(static_cast<double>(service_->send_budget().stalled_total())); },
      "counter");
  // Per group, from one ListGroups per field (a scrape is rare).
  auto per_group = [this](uint64_t (v1::GroupInfo::*field)() const) {
    return [this, field] {
      std::vector<metrics::Sample> samples;
      for (const v1::GroupInfo& g : groups_->ListGroups()) {
        samples.push_back({{{"group", g.name()}}, static_cast<double>((g.*field)())});
      }
      return samples;
    };
  };
  metrics_.AddCallback("hookfan_group_lag_events",
                       "Events in the log after a group's read position.",
                       per_group(&v1::GroupInfo::lag));
  metrics_.AddCallback("hookfan_group_pending_events", "Events a group has read and not acked.",
                       per_group(&v1::GroupInfo::pending));
  metrics_.AddCallback("hookfan_group_dead_letters", "Events in a group's dead-letter list.",
                       per_group(&v1::GroupInfo::dead_letters));
  // Retention: how far the oldest event held has advanced, and for each
  // group how many events retention may still delete before it reaches the
  // group's oldest unacked one (at 0 the group is about to get OUT_OF_RANGE).
  metrics_.AddCallback("hookfan_log_first_sequence",
                       "Sequence of the oldest event the store holds.", [this, one] {
                         absl::StatusOr<uint64_t> first = log_->FirstSequence();
                         return first.ok() ? one(static_cast<double>(*first))
                                           : std::vector<metrics::Sample>{};
                       });
  // The latest view: how far it holds every event (it trails the log on
  // NATS), and on NATS whether this replica is the one writing it.
  metrics_.AddCallback("hookfan_latest_view_through_sequence",
                       "Sequence up to which the latest view holds every event.", [this, one] {
                         if (!log_->LatestView().ok()) return std::vector<metrics::Sample>{};
                         // NATS: as last seen, without a round trip per scrape.
                         if (nats_log_ != nullptr) {
                           return one(static_cast<double>(nats_log_->LatestViewKnownThrough()));
                         }
                         absl::StatusOr<uint64_t> through = log_->LatestThrough();
                         return through.ok() ? one(static_cast<double>(*through))
                                             : std::vector<metrics::Sample>{};
                       });
  metrics_.AddCallback("hookfan_latest_view_writing",
                       "1 while this replica writes the NATS store's latest view.", [this, one] {
                         return nats_log_ != nullptr && nats_log_->LatestView().ok()
                                    ? one(nats_log_->LatestViewWriterLeads() ? 1 : 0)
                                    : std::vector<metrics::Sample>{};
                       });
  metrics_.AddCallback(
      "hookfan_group_retention_margin_events",
      "Events between the oldest held and a group's oldest unacked event.", [this] {
        std::vector<metrics::Sample> samples;
        absl::StatusOr<uint64_t> first = log_->FirstSequence();
        if (!first.ok()) return samples;
        for (const v1::GroupInfo& g : groups_->ListGroups()) {
          double margin = g.ack_floor() + 1 >= *first
                              ? static_cast<double>(g.ack_floor() + 1 - *first)
                              : 0;
          samples.push_back({{{"group", g.name()}}, margin});
        }
        return samples;
      });
}

void App::ReloadCertificates() {
  if (http_tls_ != nullptr) {
    if (absl::Status s = http_tls_->Reload(); s.ok()) {
      log::Info("HTTPS certificate reloaded");
    } else {
      log::Error("HTTPS certificate reload failed; serving the previous one",
                 {{"error", std::string(s.message())}});
    }
  }
  if (grpc_tls_ != nullptr) {
    if (absl::Status s = grpc_tls_->Reload(); s.ok()) {
      log::Info("gRPC certificate reloaded");
    } else {
      log::Error("gRPC certificate reload failed; serving the previous one",
                 {{"error", std::string(s.message())}});
    }
  }
}

App::~App() { Drain(); }

absl::Status App::Start(Config config) {
  config_ = std::move(config);
  std::string http_host, grpc_host;
  int http_port, grpc_port;
  RETURN_IF_ERROR(SplitHostPort(config_.http_listen, &http_host, &http_port));
  RETURN_IF_ERROR(SplitHostPort(config_.grpc_listen, &grpc_host, &grpc_port));

  // Configuration errors stop start-up before anything touches the disk.
  if (config_.retention.max_age < absl::ZeroDuration() || config_.retention.max_bytes < 0 ||
      config_.retention.max_events < 0) {
    return absl::InvalidArgumentError("retention limits must not be negative");
  }
  for (const auto& [flag, seconds] :
       {std::pair<const char*, int>{"--http-read-timeout", config_.http_read_timeout_seconds},
        {"--http-handshake-timeout", config_.http_handshake_timeout_seconds},
        {"--http-idle-timeout", config_.http_idle_timeout_seconds}}) {
    if (seconds < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " is ", seconds, "; it must be at least 1 (seconds)"));
    }
  }
  if (config_.http_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-threads is ", config_.http_threads, "; it must be at least 1"));
  }
  if (config_.http_max_connections < config_.http_threads) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http-max-connections (", config_.http_max_connections,
        ") must be at least --http-threads (", config_.http_threads, ")"));
  }
  if (config_.grpc_handshake_timeout < absl::Seconds(1) ||
      config_.grpc_handshake_timeout > absl::Minutes(10)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--grpc-handshake-timeout is ", absl::FormatDuration(config_.grpc_handshake_timeout),
                     "; it must be from 1s to 10m"));
  }
  if (config_.grpc_max_connections < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--grpc-max-connections is ", config_.grpc_max_connections, "; it must be at least 1"));
  }
  if (config_.grpc_max_concurrent_streams < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--grpc-max-concurrent-streams is ", config_.grpc_max_concurrent_streams,
        "; it must be at least 1"));
  }
  if (config_.grpc_max_reset_rate < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--grpc-max-reset-rate is ", config_.grpc_max_reset_rate, "; it must be 0 (no limit) or more"));
  }
  if (config_.grpc_memory_limit < kMinGrpcMemoryLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--grpc-memory-limit is ", config_.grpc_memory_limit, "; it must be at least ",
        kMinGrpcMemoryLimit, " bytes (gRPC needs room for its connections' reads)"));
  }
  if (config_.grpc_send_buffer_bytes < (1 << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--grpc-send-buffer-bytes is ", config_.grpc_send_buffer_bytes,
        "; it must be at least 1048576 (1 MiB)"));
  }
  if (config_.nats.request_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--store-timeout is ", absl::FormatDuration(config_.nats.request_timeout),
        "; it must be positive"));
  }
  if (config_.grpc_stall_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--grpc-stall-timeout is ", absl::FormatDuration(config_.grpc_stall_timeout),
                     "; it must be positive, or 0 for never"));
  }
  if (config_.grpc_tls_cert.empty() && config_.grpc_tls_key.empty() &&
      !config_.grpc_tls_client_ca.empty()) {
    return absl::InvalidArgumentError("--grpc-tls-client-ca needs --grpc-tls-cert and --grpc-tls-key");
  }
  const OpenFileLimit files = RaiseOpenFileLimit();
  const int grpc_max_connections =
      GrpcConnectionBudget(config_.grpc_max_connections, files.soft, config_.http_max_connections);
  log::Info("open-file limit", {{"soft_was", files.soft_was},
                                {"soft", files.soft},
                                {"hard", files.hard},
                                {"grpc_max_connections", grpc_max_connections}});
  std::vector<ingress::SourceConfig> sources;
  bool generated_token = false;
  if (!config_.sources_file.empty()) {
    if (!config_.applivery_token.empty()) {
      return absl::InvalidArgumentError(
          "--applivery-token and --sources both given: put the Applivery source in the file");
    }
    ASSIGN_OR_RETURN(ConfigFile file, LoadConfigFile(config_.sources_file));
    sources = std::move(file.sources);
    grants_ = std::move(file.subscribers);
  } else {
    generated_token = config_.applivery_token.empty();
    if (generated_token) config_.applivery_token = RandomHex(16);
    sources.push_back(AppliveryShorthand(config_));
  }
  if (config_.max_event_bytes < static_cast<int64_t>(broker::kMinMaxEventBytes) ||
      config_.max_event_bytes > static_cast<int64_t>(broker::kMaxMaxEventBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-event-bytes is ", config_.max_event_bytes, "; it must be from ",
        broker::kMinMaxEventBytes, " to ", broker::kMaxMaxEventBytes,
        " (larger events would not reach clients with gRPC's default 4 MiB receive limit)"));
  }
  const broker::IngestRules rules{.max_event_bytes = static_cast<size_t>(config_.max_event_bytes)};
  for (const ingress::SourceConfig& source : sources) {
    // A body is stored whole in its event, so a larger one could never be.
    if (source.max_body_bytes > rules.max_event_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "source ", source.name, ": max_body_bytes (", source.max_body_bytes,
          ") is larger than --max-event-bytes (", rules.max_event_bytes,
          "); such bodies could never be stored: lower one or raise the other"));
    }
  }
  for (const ingress::SourceConfig& source : sources) {
    log::Info("webhook source", {{"name", source.name},
                                 {"path", source.path},
                                 {"auth", std::string(ingress::AuthModeName(source.auth.mode))}});
  }
  trimmer_ = std::make_unique<MemoryTrimmer>(MemoryTrimmer::Options{});
  std::string store;
  RETURN_IF_ERROR(OpenStore(&store));

  // gRPC: EventBroker, grpc.health.v1 and reflection.
  authorizer_ = std::make_unique<broker::Authorizer>(grants_);
  if (authorizer_->open()) {
    log::Warn("no subscriber grants configured: any client that reaches the gRPC port may "
              "subscribe to and publish every event type (add subscribers to --sources)");
  }
  ingestor_ = std::make_unique<broker::Ingestor>(
      log_.get(), broker::Ingestor::Options{.rules = rules, .metrics = &metrics_});
  service_ = std::make_unique<broker::EventBrokerService>(
      log_.get(), fanout_.get(), groups_.get(),
      broker::EventBrokerService::Options{.authorizer = authorizer_.get(),
                                          .max_streams = config_.grpc_max_streams,
                                          .send_buffer_bytes = static_cast<size_t>(
                                              config_.grpc_send_buffer_bytes),
                                          .stall_timeout = config_.grpc_stall_timeout,
                                          .rules = rules,
                                          .ingestor = ingestor_.get()});
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Two servers must never share a port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Keepalive finds dead peers behind NATs and L4 balancers; a maximum
  // connection age makes long streams rebalance across replicas (clients
  // resume by sequence), after a grace period for the stream to move.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(config_.grpc_keepalive_time)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  if (config_.grpc_max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(config_.grpc_max_connection_age)));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 30000);
  }
  // A connection's streams are bounded where HTTP/2 bounds them: the limit
  // is advertised in SETTINGS, and gRPC 1.51 closes a connection that opens
  // more (its streams are reset; no GOAWAY). Without it, streams that sent
  // HEADERS but no request (~11 KB each) piled up unseen by
  // --grpc-max-streams, which counts only calls we serve.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, config_.grpc_max_concurrent_streams);
  // All connections together: gRPC charges its socket reads to this quota
  // and stops reading while it is spent. A backstop only: measured alone it
  // did not bound rapid reset (the calls gRPC builds are what cost); the
  // call rate below does.
  grpc::ResourceQuota quota("hookfan-grpc");
  quota.Resize(static_cast<size_t>(config_.grpc_memory_limit));
  builder.SetResourceQuota(quota);
  // Requests are small but for Publish, which carries one event: gRPC's
  // limit sits above --max-event-bytes, so hookfan's refusal (naming the
  // flag) answers events a little over it.
  const size_t max_request_bytes = MaxGrpcRequestBytes(rules.max_event_bytes);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_request_bytes));
  builder.SetMaxSendMessageSize(64 << 20);
  // A connection that has not finished TLS and sent its HTTP/2 preface and
  // SETTINGS by then is closed (gRPC's default: 120 s, so silent
  // connections piled up).
  builder.AddChannelArgument(
      GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(config_.grpc_handshake_timeout)));
  // Plaintext, or TLS (mTLS with a client CA) from files checked here, so a
  // typo stops start-up.
  std::shared_ptr<grpc::ServerCredentials> grpc_credentials = grpc::InsecureServerCredentials();
  if (!config_.grpc_tls_cert.empty() || !config_.grpc_tls_key.empty()) {
    ASSIGN_OR_RETURN(grpc_tls_, GrpcTls::Load(config_.grpc_tls_cert, config_.grpc_tls_key,
                                              config_.grpc_tls_client_ca));
    grpc_credentials = grpc_tls_->credentials();
  }
  // hookfan accepts the port's connections itself (GrpcListener: a
  // connection limit, and an accept loop that outlives EMFILE) and hands
  // them to gRPC, which handshakes as on a port of its own.
  ASSIGN_OR_RETURN(grpc_listener_, GrpcListener::Bind({.host = grpc_host,
                                                       .port = grpc_port,
                                                       .max_connections = grpc_max_connections}));
  grpc_port_ = grpc_listener_->port();
  // A connection whose client cancels calls faster than
  // --grpc-max-reset-rate is closed (rapid reset; see ResetRateGuard). The
  // listener owns the descriptors.
  grpc_reset_rate_ = std::make_unique<CallRate>(config_.grpc_max_reset_rate);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> guards;
  if (config_.grpc_max_reset_rate > 0) {
    guards.push_back(std::make_unique<ResetRateGuard>(
        grpc_reset_rate_.get(), [listener = grpc_listener_.get()](const std::string& peer) {
          if (listener->Disconnect(peer, kResetRatePenalty)) {
            log::Warn(absl::StrCat("gRPC connection closed: its client cancelled calls faster "
                                   "than --grpc-max-reset-rate; new connections from its "
                                   "address are closed for ",
                                   absl::FormatDuration(kResetRatePenalty)),
                      {{"peer", peer}});
          }
        }));
  }
  // A call whose request never arrived whole is answered with what was
  // missing and the limit, not gRPC's bare UNIMPLEMENTED.
  guards.push_back(std::make_unique<RequestGuard>(max_request_bytes));
  builder.experimental().SetInterceptorCreators(std::move(guards));
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor =
      builder.experimental().AddExternalConnectionAcceptor(
          grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
          grpc_credentials);
  builder.RegisterService(service_.get());
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot start gRPC on ", config_.grpc_listen));
  }
  grpc_listener_->Start(std::move(acceptor));

  if (!config_.http_tls_cert.empty() || !config_.http_tls_key.empty()) {
    ASSIGN_OR_RETURN(http_tls_,
                     ingress::TlsCertificate::Load(config_.http_tls_cert, config_.http_tls_key));
  }
  ASSIGN_OR_RETURN(webhooks_, ingress::WebhookHandler::Create(ingestor_.get(), std::move(sources),
                                                              {.metrics = &metrics_}));
  RegisterMetrics();
  http_ = std::make_unique<ingress::HttpServer>(
      webhooks_.get(), [this] { return Ready(); },
      ingress::HttpServer::Options{
          .host = http_host,
          .port = http_port,
          .threads = config_.http_threads,
          .max_connections = config_.http_max_connections,
          .read_timeout_seconds = config_.http_read_timeout_seconds,
          .handshake_timeout_seconds = config_.http_handshake_timeout_seconds,
          .idle_timeout_seconds = config_.http_idle_timeout_seconds,
          .metrics = [this] { return metrics_.Render(); },
          .tls = http_tls_.get(),
          .tls_client_ca_file = config_.http_tls_client_ca,
      });
  RETURN_IF_ERROR(http_->Bind());
  http_port_ = http_->port();
  http_thread_ = std::thread([this] { http_->Serve(); });

  std::string http_address = absl::StrCat(http_host, ":", http_port_);
  if (generated_token) {
    log::Warn("no --applivery-token set; generated one for this run. Point Applivery at:",
              {{"webhook_url", absl::StrCat(http_tls_ ? "https://" : "http://", http_address,
                                            "/webhooks/applivery/",
                                            config_.applivery_token)}});
  }
  // The last start-up line: tests and scripts wait for it.
  log::Info("hookfan listening",
            {{"http", http_address},
             {"https", http_tls_ != nullptr},
             {"grpc_tls", !config_.grpc_tls_cert.empty()},
             {"grpc", absl::StrCat(grpc_host, ":", grpc_port_)},
             {"store", store},
             {"last_sequence", log_->LastSequence()}});
  return absl::OkStatus();
}

absl::Status App::OpenStore(std::string* store) {
  ASSIGN_OR_RETURN(const StoreLocation location,
                   ParseStoreLocation(config_.store, config_.data_dir));
  if (location.kind == StoreLocation::Kind::kNats) {
    // The NATS store's latest view keeps its own copy of each key's newest
    // events: the stream's limits never take them (--retention-keep-latest
    // is what it does anyway), unless there is no view.
    if (config_.retention.keep_latest && !config_.latest_view) {
      return absl::InvalidArgumentError("--retention-keep-latest needs --latest-view");
    }
    config_.nats.latest_view = config_.latest_view;
    ASSIGN_OR_RETURN(config_.nats.servers, broker::ParseNatsServers(config_.store));
    config_.nats.max_age = config_.retention.max_age;
    config_.nats.max_bytes = config_.retention.max_bytes > 0 ? config_.retention.max_bytes : -1;
    config_.nats.max_events = config_.retention.max_events > 0 ? config_.retention.max_events : -1;
    if (config_.nats.max_bytes < 0) {
      // nats-server 2.9 with a full store stops answering, and freeing
      // space does not bring it back: only a restart does.
      log::Warn("the NATS store has no byte limit; set --retention-max-bytes so that hookfan's "
                "streams (under 1.7 times it) stay under JetStream's max_file_store",
                {{"stream", config_.nats.stream}});
    }
    ASSIGN_OR_RETURN(nats_, broker::NatsConnection::Connect(config_.nats));
    ASSIGN_OR_RETURN(std::unique_ptr<broker::NatsEventLog> log,
                     broker::NatsEventLog::Open(nats_.get()));
    nats_log_ = log.get();
    log_ = std::move(log);
    fanout_ = std::make_unique<broker::Fanout>(log_.get(), broker::Fanout::Options{});
    log_->SetCommitListener(fanout_.get());
    ASSIGN_OR_RETURN(groups_, broker::NatsConsumerGroups::Create(nats_.get(), log_.get(), {}));
    *store = absl::StrCat(config_.store, " stream ", config_.nats.stream);
    return absl::OkStatus();
  }
  const std::string& db_path = location.sqlite_path;
  if (location.in_data_dir) {
    std::error_code ec;
    std::filesystem::create_directories(config_.data_dir, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot create data dir ", config_.data_dir, ": ", ec.message()));
    }
  }
  ASSIGN_OR_RETURN(log_, broker::SqliteEventLog::Open(
                             db_path, {.retention_max_events =
                                           static_cast<uint64_t>(config_.retention.max_events),
                                       .retention_max_age = config_.retention.max_age,
                                       .retention_max_bytes = config_.retention.max_bytes,
                                       .latest_view = config_.latest_view,
                                       .retention_keep_latest = config_.retention.keep_latest}));
  fanout_ = std::make_unique<broker::Fanout>(log_.get(), broker::Fanout::Options{});
  log_->SetCommitListener(fanout_.get());
  ASSIGN_OR_RETURN(group_store_, broker::SqliteGroupStore::Open(db_path));
  ASSIGN_OR_RETURN(groups_, broker::GroupManager::Create(log_.get(), fanout_.get(),
                                                         group_store_.get(), {}));
  *store = absl::StrCat("sqlite://", db_path);
  return absl::OkStatus();
}

absl::Status App::Ready() const {
  if (draining_.load()) return absl::UnavailableError("draining");
  if (log_ != nullptr) RETURN_IF_ERROR(log_->Ready());
  if (grpc_listener_ != nullptr) RETURN_IF_ERROR(grpc_listener_->Health());
  return absl::OkStatus();
}

void App::Drain() {
  if (draining_.exchange(true)) return;
  // One deadline for the whole drain: HTTP, then the streams.
  const absl::Time deadline = absl::Now() + config_.drain_timeout;
  if (grpc_server_ != nullptr) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
  }
  if (http_ != nullptr) {
    // Requests being read get until the drain timeout; those with a
    // worker are answered (their appends complete); the rest are cut.
    http_->Stop(config_.drain_timeout);
    if (http_thread_.joinable()) http_thread_.join();
    log::Info("drain: webhooks finished");
  }
  if (groups_ != nullptr) groups_->Shutdown();  // members end UNAVAILABLE; unacked redeliver
  if (fanout_ != nullptr) fanout_->Shutdown();  // streams end UNAVAILABLE + resume
  log::Info("drain: streams told to end");
  if (grpc_server_ != nullptr) {
    // Once our streams have ended and publishes are answered, nothing is
    // left to be graceful for: a graceful shutdown would wait for every
    // connected client to read the GOAWAY and answer its PING, and an idle
    // client reads only when its channel polls (gRPC's backup poller: every
    // 5 s). Closing at once ends idle connections and health Watch streams.
    if (!service_->AwaitIdle(deadline)) {
      log::Warn("drain: streams still open at the drain timeout; cancelling them");
    }
    if (grpc_listener_ != nullptr) grpc_listener_->Stop();
    grpc_server_->Shutdown(std::chrono::system_clock::now());
    grpc_server_->Wait();
    log::Info("drain: gRPC stopped");
  }
  service_.reset();
  groups_.reset();
  group_store_.reset();
  if (log_ != nullptr) log_->SetCommitListener(nullptr);
  fanout_.reset();
  nats_log_ = nullptr;
  log_.reset();
  nats_.reset();
  log::Info("hookfan stopped");
}

}  // namespace hookfan::server
