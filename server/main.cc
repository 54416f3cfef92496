// hookfan: receives webhooks, stores them durably, streams them over gRPC.
// This file only wires: flags and env into a Config, signals into Drain.

#include <signal.h>

#include <cctype>
#include <cstdlib>
#include <iostream>
#include <string_view>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "server/app.h"
#include "server/backup.h"

ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080",
          "HTTP ingress address, host:port (port 0 picks a free one). Env HOOKFAN_HTTP_LISTEN.");
ABSL_FLAG(std::string, grpc_listen, "127.0.0.1:9090",
          "gRPC address, host:port (port 0 picks a free one). Env HOOKFAN_GRPC_LISTEN.");
ABSL_FLAG(std::string, data_dir, "./data",
          "Directory of the embedded SQLite store (created if missing). Env HOOKFAN_DATA_DIR.");
ABSL_FLAG(std::string, store, "",
          "Event store: sqlite://PATH (default sqlite://<data-dir>/hookfan.db), or "
          "nats://host:port[,host:port...] for NATS JetStream shared by several replicas. "
          "Env HOOKFAN_STORE.");
ABSL_FLAG(absl::Duration, retention_max_age, absl::ZeroDuration(),
          "Events older than this (by event time) are deleted; 0: kept. "
          "Env HOOKFAN_RETENTION_MAX_AGE.");
ABSL_FLAG(int64_t, retention_max_bytes, 0,
          "Store size above which the oldest events are deleted; 0: no limit. "
          "Env HOOKFAN_RETENTION_MAX_BYTES.");
ABSL_FLAG(int64_t, retention_max_events, 0,
          "Events kept at most (the oldest go first); 0: no limit. "
          "Env HOOKFAN_RETENTION_MAX_EVENTS.");
ABSL_FLAG(bool, retention_keep_latest, false,
          "Compacted retention: the limits above never delete the newest event of a "
          "(key, type), so snapshots stay complete (the NATS store's view keeps its own copy: "
          "always so there). "
          "Env HOOKFAN_RETENTION_KEEP_LATEST.");
ABSL_FLAG(bool, latest_view, true,
          "Keep the newest event of each (key, type) for snapshot subscriptions, GetLatest and "
          "ListKeys (SQLite: a table, kept with the appends; NATS: the stream <stream>_LATEST). "
          "Env HOOKFAN_LATEST_VIEW.");
ABSL_FLAG(std::string, nats_stream, "HOOKFAN",
          "JetStream stream of the events (created if missing). Env HOOKFAN_NATS_STREAM.");
ABSL_FLAG(std::string, nats_subject_prefix, "hookfan.events",
          "Events of type T are published on <prefix>.T. Env HOOKFAN_NATS_SUBJECT_PREFIX.");
ABSL_FLAG(int32_t, nats_replicas, 1,
          "Replicas of the streams hookfan creates (1, 3 or 5 on a NATS cluster). "
          "Env HOOKFAN_NATS_REPLICAS.");
ABSL_FLAG(absl::Duration, nats_duplicate_window, absl::Minutes(2),
          "JetStream drops a republished event id within this window. "
          "Env HOOKFAN_NATS_DUPLICATE_WINDOW.");
ABSL_FLAG(absl::Duration, store_timeout, absl::Seconds(5),
          "Every append to the NATS store is answered within this: a webhook gets 2xx if "
          "stored, else 503 with Retry-After; a gRPC Publish UNAVAILABLE. Also bounds every "
          "other JetStream request. Must be positive. Env HOOKFAN_STORE_TIMEOUT.");
ABSL_FLAG(std::string, nats_creds, "",
          "NATS credentials file (.creds: user JWT and NKey seed). Env HOOKFAN_NATS_CREDS.");
ABSL_FLAG(std::string, nats_tls_ca, "",
          "CA bundle to verify NATS servers with (turns on TLS). Env HOOKFAN_NATS_TLS_CA.");
ABSL_FLAG(std::string, nats_tls_cert, "",
          "Client certificate for NATS mutual TLS. Env HOOKFAN_NATS_TLS_CERT.");
ABSL_FLAG(std::string, nats_tls_key, "",
          "Private key of --nats-tls-cert. Env HOOKFAN_NATS_TLS_KEY.");
ABSL_FLAG(std::string, sources, "",
          "YAML file of webhook sources (paths, normalizers, auth, limits, dedup) and "
          "subscriber grants; see README \"Securing hookfan\". Empty: one Applivery source "
          "from --applivery-token. Env HOOKFAN_SOURCES.");
ABSL_FLAG(std::string, applivery_token, "",
          "Secret path token of POST /webhooks/applivery/{token}; empty generates one and "
          "logs the URL. Env HOOKFAN_APPLIVERY_TOKEN.");
ABSL_FLAG(absl::Duration, applivery_dedup_window, absl::Minutes(10),
          "One-source shorthand: a body identical to one received this recently is a sender "
          "retry, answered 200 with the first event's id and stored once (Applivery sends no "
          "id); 0 turns this off. Env HOOKFAN_APPLIVERY_DEDUP_WINDOW.");
ABSL_FLAG(int64_t, max_body_bytes, 1 << 20,
          "Largest webhook body accepted; larger ones get 413. Env HOOKFAN_MAX_BODY_BYTES.");
ABSL_FLAG(int64_t, max_event_bytes, 1 << 20,
          "Largest stored event (its Protobuf encoding: envelope, typed payload and the raw "
          "body), for webhooks (413) and Publish (RESOURCE_EXHAUSTED) alike; at least 4096 and "
          "at most 4177920, so every event reaches a client with gRPC's default 4 MiB receive "
          "limit. Env HOOKFAN_MAX_EVENT_BYTES.");
ABSL_FLAG(int32_t, http_read_timeout, 10,
          "Seconds a request, head and body, may take to arrive from its first byte (and a new "
          "connection to send its first byte), however slowly; then 408 and close. "
          "Env HOOKFAN_HTTP_READ_TIMEOUT.");
ABSL_FLAG(int32_t, http_handshake_timeout, 5,
          "Seconds a TLS handshake on the HTTPS port may take. Env HOOKFAN_HTTP_HANDSHAKE_TIMEOUT.");
ABSL_FLAG(int32_t, http_idle_timeout, 30,
          "Seconds a keep-alive HTTP connection may stay idle between requests. "
          "Env HOOKFAN_HTTP_IDLE_TIMEOUT.");
ABSL_FLAG(int32_t, http_threads, 64,
          "HTTP worker threads running the webhook handler (store writes); connections never "
          "hold one while they send. Env HOOKFAN_HTTP_THREADS.");
ABSL_FLAG(int32_t, http_max_connections, 1024,
          "HTTP connections open at once; at least --http-threads. A new one beyond it closes "
          "the longest idle one, or when none is idle is answered 503 with Retry-After: 1. "
          "Env HOOKFAN_HTTP_MAX_CONNECTIONS.");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(20),
          "On SIGTERM, how long streams may take to end before they are cut. "
          "Env HOOKFAN_DRAIN_TIMEOUT.");
ABSL_FLAG(std::string, http_tls_cert, "",
          "PEM certificate chain: serve HTTPS (re-read on change or SIGHUP). "
          "Env HOOKFAN_HTTP_TLS_CERT.");
ABSL_FLAG(std::string, http_tls_key, "", "PEM private key of --http-tls-cert. Env HOOKFAN_HTTP_TLS_KEY.");
ABSL_FLAG(std::string, http_tls_client_ca, "",
          "PEM CA bundle: HTTPS clients must present a certificate it signed (mTLS). "
          "Env HOOKFAN_HTTP_TLS_CLIENT_CA.");
ABSL_FLAG(std::string, grpc_tls_cert, "",
          "PEM certificate chain: serve gRPC over TLS (re-read on change or SIGHUP; a bad file "
          "keeps the previous one). Env HOOKFAN_GRPC_TLS_CERT.");
ABSL_FLAG(std::string, grpc_tls_key, "", "PEM private key of --grpc-tls-cert. Env HOOKFAN_GRPC_TLS_KEY.");
ABSL_FLAG(std::string, grpc_tls_client_ca, "",
          "PEM CA bundle: gRPC clients must present a certificate it signed (mTLS); their "
          "identity can be granted in the sources file. Env HOOKFAN_GRPC_TLS_CLIENT_CA.");
ABSL_FLAG(absl::Duration, grpc_keepalive_time, absl::Seconds(30),
          "Ping idle gRPC connections this often to find dead peers. "
          "Env HOOKFAN_GRPC_KEEPALIVE_TIME.");
ABSL_FLAG(absl::Duration, grpc_max_connection_age, absl::Minutes(30),
          "Close gRPC connections gracefully after this long so streams rebalance across "
          "replicas (clients resume by sequence); 0: never. Env HOOKFAN_GRPC_MAX_CONNECTION_AGE.");
ABSL_FLAG(absl::Duration, grpc_handshake_timeout, absl::Seconds(10),
          "A gRPC connection must finish its TLS handshake and send its HTTP/2 preface within "
          "this, else it is closed (1s to 10m). Env HOOKFAN_GRPC_HANDSHAKE_TIMEOUT.");
ABSL_FLAG(int32_t, grpc_max_connections, 10000,
          "gRPC connections open at once; more wait in the listen backlog until one closes. "
          "Lowered at start to what the open-file limit leaves after --http-max-connections and "
          "256 spare descriptors. Env HOOKFAN_GRPC_MAX_CONNECTIONS.");
ABSL_FLAG(int32_t, grpc_max_streams, 20000,
          "Subscribe and Consume streams served at once; more are refused with "
          "RESOURCE_EXHAUSTED. 0: no limit. Env HOOKFAN_GRPC_MAX_STREAMS.");
ABSL_FLAG(int64_t, grpc_send_buffer_bytes, 64 << 20,
          "Bytes of responses queued to all Subscribe and Consume streams together, not yet "
          "taken by their clients; past it each stream's batches shrink to 16 KiB (or one "
          "event). At least 1048576. Env HOOKFAN_GRPC_SEND_BUFFER_BYTES.");
ABSL_FLAG(absl::Duration, grpc_stall_timeout, absl::Seconds(30),
          "A Subscribe or Consume stream whose client takes none of its response for this "
          "long ends with RESOURCE_EXHAUSTED (clients resume by sequence); 0: never. "
          "Env HOOKFAN_GRPC_STALL_TIMEOUT.");
ABSL_FLAG(int32_t, grpc_max_concurrent_streams, 100,
          "HTTP/2 streams open at once on one gRPC connection (advertised to clients; more are "
          "refused). Env HOOKFAN_GRPC_MAX_CONCURRENT_STREAMS.");
ABSL_FLAG(int64_t, grpc_memory_limit, int64_t{256} << 20,
          "Bytes gRPC may take for reads and calls on all its connections; at the limit it stops "
          "reading from clients until memory is freed. Env HOOKFAN_GRPC_MEMORY_LIMIT.");
ABSL_FLAG(int32_t, grpc_max_reset_rate, 2000,
          "Calls the client of one gRPC connection may cancel (reset) per second; a connection "
          "whose client cancels more is closed (rapid reset). 0: no limit. Env "
          "HOOKFAN_GRPC_MAX_RESET_RATE.");
ABSL_FLAG(std::string, log_level, "info",
          "Least severe log level written: debug, info, warn, error. Env HOOKFAN_LOG_LEVEL.");

namespace {

// Each flag of this file may also come from HOOKFAN_<FLAG NAME IN
// CAPITALS>; the command line wins over the environment. Every flag defined
// here is covered, so a new flag cannot miss its variable.
void ApplyEnvironment() {
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::EndsWith(flag->Filename(), "server/main.cc")) continue;
    std::string env = "HOOKFAN_";
    for (char c : name) env.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::cerr << "hookfan: " << env << "=\"" << value << "\": " << error << "\n";
      std::exit(2);
    }
  }
}

// Flags are documented with dashes (--http-listen); abseil spells them with
// underscores. Rewrites the name part of each "--flag[=value]" argument.
void DashesToUnderscores(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") break;
    if (!arg.starts_with("--")) continue;
    for (char* c = argv[i] + 2; *c != '\0' && *c != '='; ++c) {
      if (*c == '-') *c = '_';
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "backup") {
    return hookfan::server::BackupCommand(std::vector<std::string>(argv + 2, argv + argc),
                                          std::cout, std::cerr);
  }
  absl::SetProgramUsageMessage(
      "receives webhooks, stores them durably and streams them over gRPC.\n"
      "Usage: hookfan [--http-listen HOST:PORT] [--grpc-listen HOST:PORT] "
      "[--data-dir DIR] [--applivery-token TOKEN] ...\n"
      "       hookfan backup --data-dir DIR --out FILE [--force]  "
      "(online backup of the SQLite store; hookfan backup --help)\n"
      "Every flag can also be set as HOOKFAN_<FLAG> in the environment.");
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  ApplyEnvironment();
  DashesToUnderscores(argc, argv);
  absl::ParseCommandLine(argc, argv);

  hookfan::log::Level level;
  if (!hookfan::log::ParseLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::cerr << "hookfan: --log_level must be debug, info, warn or error\n";
    return 2;
  }
  hookfan::log::SetLevel(level);

  // Signals are taken by sigwait below, never by another thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  hookfan::server::Config config{
      .http_listen = absl::GetFlag(FLAGS_http_listen),
      .grpc_listen = absl::GetFlag(FLAGS_grpc_listen),
      .data_dir = absl::GetFlag(FLAGS_data_dir),
      .store = absl::GetFlag(FLAGS_store),
      .retention = {.max_age = absl::GetFlag(FLAGS_retention_max_age),
                    .max_bytes = absl::GetFlag(FLAGS_retention_max_bytes),
                    .max_events = absl::GetFlag(FLAGS_retention_max_events),
                    .keep_latest = absl::GetFlag(FLAGS_retention_keep_latest)},
      .latest_view = absl::GetFlag(FLAGS_latest_view),
      .nats = {.servers = {},  // from --store
               .stream = absl::GetFlag(FLAGS_nats_stream),
               .subject_prefix = absl::GetFlag(FLAGS_nats_subject_prefix),
               .replicas = absl::GetFlag(FLAGS_nats_replicas),
               .duplicate_window = absl::GetFlag(FLAGS_nats_duplicate_window),
               .credentials_file = absl::GetFlag(FLAGS_nats_creds),
               .tls_ca_file = absl::GetFlag(FLAGS_nats_tls_ca),
               .tls_cert_file = absl::GetFlag(FLAGS_nats_tls_cert),
               .tls_key_file = absl::GetFlag(FLAGS_nats_tls_key),
               .request_timeout = absl::GetFlag(FLAGS_store_timeout)},
      .sources_file = absl::GetFlag(FLAGS_sources),
      .applivery_token = absl::GetFlag(FLAGS_applivery_token),
      .applivery_dedup_window = absl::GetFlag(FLAGS_applivery_dedup_window),
      .max_body_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_body_bytes)),
      .max_event_bytes = absl::GetFlag(FLAGS_max_event_bytes),
      .http_read_timeout_seconds = absl::GetFlag(FLAGS_http_read_timeout),
      .http_handshake_timeout_seconds = absl::GetFlag(FLAGS_http_handshake_timeout),
      .http_idle_timeout_seconds = absl::GetFlag(FLAGS_http_idle_timeout),
      .http_threads = absl::GetFlag(FLAGS_http_threads),
      .http_max_connections = absl::GetFlag(FLAGS_http_max_connections),
      .drain_timeout = absl::GetFlag(FLAGS_drain_timeout),
      .http_tls_cert = absl::GetFlag(FLAGS_http_tls_cert),
      .http_tls_key = absl::GetFlag(FLAGS_http_tls_key),
      .http_tls_client_ca = absl::GetFlag(FLAGS_http_tls_client_ca),
      .grpc_tls_cert = absl::GetFlag(FLAGS_grpc_tls_cert),
      .grpc_tls_key = absl::GetFlag(FLAGS_grpc_tls_key),
      .grpc_tls_client_ca = absl::GetFlag(FLAGS_grpc_tls_client_ca),
      .grpc_handshake_timeout = absl::GetFlag(FLAGS_grpc_handshake_timeout),
      .grpc_max_connections = absl::GetFlag(FLAGS_grpc_max_connections),
      .grpc_keepalive_time = absl::GetFlag(FLAGS_grpc_keepalive_time),
      .grpc_max_connection_age = absl::GetFlag(FLAGS_grpc_max_connection_age),
      .grpc_max_streams = absl::GetFlag(FLAGS_grpc_max_streams),
      .grpc_send_buffer_bytes = absl::GetFlag(FLAGS_grpc_send_buffer_bytes),
      .grpc_stall_timeout = absl::GetFlag(FLAGS_grpc_stall_timeout),
      .grpc_max_concurrent_streams = absl::GetFlag(FLAGS_grpc_max_concurrent_streams),
      .grpc_memory_limit = absl::GetFlag(FLAGS_grpc_memory_limit),
      .grpc_max_reset_rate = absl::GetFlag(FLAGS_grpc_max_reset_rate),
  };
  hookfan::server::App app;
  if (absl::Status s = app.Start(config); !s.ok()) {
    hookfan::log::Error("start-up failed", {{"error", std::string(s.message())}});
    return 1;
  }
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) app.ReloadCertificates();
  hookfan::log::Info("draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  app.Drain();
  return 0;
}
