#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "ingress/tls_certificate.h"
#include "ingress/webhook_handler.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace hookfan {
class Executor;
}

namespace hookfan::ingress {

// HttpServer is the HTTP ingress: the public edge that webhook senders
// reach, routing requests to a WebhookHandler and serving the health
// endpoints. Every error answer is JSON. Thread-safe; `handler` must
// outlive it.
//
//   POST <any source path>   → WebhookHandler::Handle, on a worker thread
//   GET  /healthz            → 200 while the process serves
//   GET  /readyz             → 200 when `ready` returns OK, else 503
//   GET  /metrics            → Options::metrics, Prometheus text format
//   GET  <any other path>    → WebhookHandler::Handle, on a worker thread
//                              (a sender's connection test; 404 elsewhere)
// HEAD is GET without the body; other methods get 405.
//
// One event-loop thread (the one that calls Serve) owns every connection:
// it accepts, does TLS handshakes, and reads each request whole, without
// blocking on any one sender. Only a complete request reaches one of
// Options::threads workers, so silent, slow or dribbling connections never
// occupy a worker, and the health endpoints are answered on the loop
// thread whatever the workers are doing.
//
// Every connection has one deadline at a time (the connection-deadline
// rule, the same for HTTP and HTTPS):
//   - a TLS handshake must finish within Options::handshake_timeout;
//   - a request, head and body, must arrive whole within
//     Options::read_timeout of its first byte (a new connection: of its
//     accept), however slowly the bytes come; else 408 and close;
//   - between requests a keep-alive connection may be idle for
//     Options::idle_timeout;
//   - an answer must be taken by the sender within Options::write_timeout.
//
// At most Options::max_connections are open. A new connection beyond that
// makes room by closing the connection that has been idle longest (a
// keep-alive connection between requests, or one that has sent nothing);
// when every connection is mid-request, the new one is refused: its
// request is answered 503 with Retry-After: 1 (JSON error naming the cap),
// and it is closed. At most 64 refusals are open at once; beyond that a new
// connection is closed at once.
//
// With TLS (1.2 and up): sessions resume, by ticket or by session id (the
// last 1,024 kept), with client certificates too; a client's Certificate
// message is at most 32 KiB and its chain at most 8 deep, so a junk chain
// is refused before it is parsed; plain HTTP gets a plain 400 saying so.
//
// Request heads over Options::max_head_bytes or with more than
// Options::max_headers fields get 431, bodies over the handler's largest
// source limit 413 (from Content-Length, before the body is read), broken
// framing 400; each closes the connection (see HttpRequestParser).
// Content-Encoding gzip and deflate are inflated, stopping at the body
// limit (413); other encodings get 415. Pipelined requests are answered in
// order, one at a time.
class HttpServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 8080;                 // 0: any free port
    int threads = 64;                // workers running the webhook handler
    int max_connections = 1024;      // connections open at once; ≥ threads
    int read_timeout_seconds = 10;   // a whole request, from its first byte
    int handshake_timeout_seconds = 5;
    int idle_timeout_seconds = 30;   // keep-alive between requests
    int write_timeout_seconds = 10;  // an answer, from when it is ready
    size_t max_head_bytes = 64 * 1024;
    size_t max_headers = 100;
    size_t keep_alive_max_requests = 10000;
    // GET /metrics answers this (Prometheus text format); null: 404.
    std::function<std::string()> metrics = nullptr;
    // HTTPS when set (must outlive the server); plain HTTP when null.
    TlsCertificate* tls = nullptr;
    // With tls: require client certificates signed by these CAs (mTLS).
    std::string tls_client_ca_file = {};
  };

  // What the server counts, for the metrics. Lock-free; any thread.
  struct Counts {
    std::atomic<int64_t> open{0};         // connections open now
    std::atomic<uint64_t> refused{0};     // answered 503: over max_connections
    std::atomic<uint64_t> evicted{0};     // idle, closed to make room for a new one
    std::atomic<uint64_t> timed_out{0};   // a deadline above passed
  };

  HttpServer(WebhookHandler* handler, std::function<absl::Status()> ready, Options options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket. Errors: kUnavailable naming the address;
  // kInvalidArgument when the TLS client CA file cannot be used.
  absl::Status Bind();
  // The bound port (after Bind).
  int port() const { return port_; }
  // Serves until Stop; call once after Bind, typically on its own thread.
  void Serve();
  // Stops accepting and closes idle connections; requests being read get
  // until their own deadline or `grace`, whichever comes first, and
  // requests being handled are answered (their appends complete); then
  // every connection is closed and Serve returns. Safe to call from any
  // thread, more than once; the first call's grace counts.
  void Stop(absl::Duration grace = absl::Seconds(10));

  const Counts& counts() const { return *counts_; }

 private:
  class Loop;

  WebhookHandler* const handler_;
  const std::function<absl::Status()> ready_;
  const Options options_;
  const std::unique_ptr<Counts> counts_;
  SSL_CTX* ssl_ctx_ = nullptr;  // owned; null for plain HTTP
  std::unique_ptr<Loop> loop_;
  int port_ = 0;
};

}  // namespace hookfan::ingress
