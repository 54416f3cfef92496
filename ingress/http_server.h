#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "ingress/tls_certificate.h"
#include "ingress/webhook_handler.h"

namespace httplib {
struct Request;
class Server;
}

namespace hookfan::ingress {

struct ConnectionCounts;

// HttpServer is the HTTP ingress: cpp-httplib glue that routes requests to
// a WebhookHandler and serves the health endpoints. Every error answer is
// JSON. Thread-safe; `handler` must outlive it.
//
// It holds at most Options::max_connections connections (see
// ConnectionPool); a request on a connection accepted beyond that, whatever
// its path, is answered 503 with Retry-After: 1 before its body is read,
// and the connection is closed.
//
//   POST <any source path>             → WebhookHandler::Handle
//   GET  /healthz                      → 200 while the process serves
//   GET  /readyz                       → 200 when `ready` returns OK, else 503
//   GET  /metrics                      → Options::metrics, Prometheus text format
class HttpServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 8080;                  // 0: any free port
    int threads = 64;                 // one per keep-alive connection served at once
    int max_connections = 1024;       // served + waiting for a thread; ≥ threads
    int read_timeout_seconds = 10;    // slow senders are cut off
    size_t keep_alive_max_requests = 10000;
    // GET /metrics answers this (Prometheus text format); null: 404.
    std::function<std::string()> metrics = nullptr;
    // HTTPS when set (must outlive the server); plain HTTP when null.
    TlsCertificate* tls = nullptr;
    // With tls: require client certificates signed by these CAs (mTLS).
    std::string tls_client_ca_file = {};
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
  // Serves until Stop; call after Bind, typically on its own thread.
  void Serve();
  // Stops accepting, lets requests in progress finish, and makes Serve
  // return. Safe to call from any thread, more than once.
  void Stop();

  // For the metrics: connections held now (served or waiting for a
  // thread), and connections refused so far.
  int64_t open_connections() const;
  uint64_t refused_connections() const;

 private:
  // The error message for answers httplib makes itself.
  std::string DefaultMessage(int status) const;
  // Hands `req`, with `body`, to the webhook handler.
  HttpAnswer Handle(const httplib::Request& req, std::string_view body);

  WebhookHandler* const handler_;
  const std::function<absl::Status()> ready_;
  const Options options_;
  const std::unique_ptr<ConnectionCounts> connections_;  // outlives server_ and its pools
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
};

}  // namespace hookfan::ingress
