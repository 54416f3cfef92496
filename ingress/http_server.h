#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "ingress/tls_certificate.h"
#include "ingress/webhook_handler.h"

namespace httplib {
class Server;
}

namespace hookfan::ingress {

// HttpServer is the HTTP ingress: cpp-httplib glue that routes requests to
// a WebhookHandler and serves the health endpoints. Every error answer is
// JSON. Thread-safe; `handler` must outlive it.
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

 private:
  // The error message for answers httplib makes itself.
  std::string DefaultMessage(int status) const;

  WebhookHandler* const handler_;
  const std::function<absl::Status()> ready_;
  const Options options_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
};

}  // namespace hookfan::ingress
