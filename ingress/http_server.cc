#include "ingress/http_server.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "ingress/connection_pool.h"

namespace hookfan::ingress {
namespace {

void Send(const HttpAnswer& answer, httplib::Response& res) {
  res.status = answer.status;
  for (const auto& [name, value] : answer.headers) res.set_header(name, value);
  res.set_content(answer.body, "application/json");
}

std::unique_ptr<httplib::Server> MakeServer(const HttpServer::Options& options) {
  if (options.tls == nullptr) return std::make_unique<httplib::Server>();
  return std::make_unique<httplib::SSLServer>([&options](SSL_CTX& ctx) {
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    options.tls->Install(&ctx);
    if (options.tls_client_ca_file.empty()) return true;
    absl::Status s = TlsCertificate::RequireClientCertificates(&ctx, options.tls_client_ca_file);
    if (!s.ok()) log::Error("HTTPS setup failed", {{"error", std::string(s.message())}});
    return s.ok();
  });
}

// Makes `answer` the answer to a request whose body is never read, then
// closes the connection (the unread body must not be taken for the next
// request). httplib 0.11 sends a Connection: close set here but does not act
// on it (only the request's own header or the keep-alive count end a
// connection), so the body is written by a content provider that then
// reports failure: httplib drops the connection right after the answer. (A
// HEAD request gets no body, so its connection stays open.) A sender still
// writing a body larger than the socket buffers may see the connection
// reset instead of the answer.
void SendAndClose(HttpAnswer answer, httplib::Response& res) {
  res.status = answer.status;
  for (const auto& [name, value] : answer.headers) res.set_header(name, value);
  res.set_header("Connection", "close");
  res.set_header("Content-Length", std::to_string(answer.body.size()));
  res.set_content_provider(
      "application/json", [body = std::move(answer.body)](size_t, httplib::DataSink& sink) {
        sink.write(body.data(), body.size());
        return false;  // closes the connection
      });
}

// Makes `res` the answer to a request on a refused connection: 503, the
// usual JSON error and Retry-After: 1; the refusal thread is then free for
// the next one. The request body is never read (the sender retries a reset
// all the same).
void Refuse(int max_connections, httplib::Response& res) {
  HttpAnswer answer = ErrorAnswer(
      503, absl::StrCat("too many connections: hookfan serves at most ", max_connections,
                        " at once; retry"));
  answer.headers.emplace_back("Retry-After", "1");
  SendAndClose(std::move(answer), res);
}

}  // namespace

std::string HttpServer::DefaultMessage(int status) const {
  switch (status) {
    case 400: return "the request does not parse as HTTP";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 413:
      return absl::StrCat("body is larger than the limit of ", handler_->max_body_bytes(),
                          " bytes");
    case 414: return "URI too long";
    default: return absl::StrCat("HTTP ", status);
  }
}

HttpServer::HttpServer(WebhookHandler* handler, std::function<absl::Status()> ready,
                       Options options)
    : handler_(handler),
      ready_(std::move(ready)),
      options_(std::move(options)),
      connections_(std::make_unique<ConnectionCounts>()),
      server_(MakeServer(options_)) {
  httplib::Server& s = *server_;
  s.new_task_queue = [this] {
    return new ConnectionPool(
        {.threads = options_.threads, .max_connections = options_.max_connections},
        connections_.get());
  };
  s.set_payload_max_length(handler_->max_body_bytes());
  s.set_read_timeout(options_.read_timeout_seconds, 0);
  s.set_keep_alive_max_count(options_.keep_alive_max_requests);
  // Answers are written as headers then body: without TCP_NODELAY, Nagle
  // and the sender's delayed ACK add ~40 ms to every keep-alive request.
  s.set_tcp_nodelay(true);

  // Connections over the cap: every request is refused after its headers,
  // before its body is read (or sent, with Expect: 100-continue). The error
  // handler below writes the answer.
  //
  // httplib parses a multipart/form-data body itself (answering 400 when it
  // is not well-formed multipart) and hands the handler none: no source
  // takes one, so such a POST is answered here, before its body is read,
  // by the handler with an empty body (415 once routed and authenticated),
  // and its connection is closed.
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (ConnectionPool::Refusing()) {
      res.status = 503;
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method == "POST" && req.is_multipart_form_data()) {
      SendAndClose(Handle(req, {}), res);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_expect_100_continue_handler([](const httplib::Request&, httplib::Response& res) {
    if (!ConnectionPool::Refusing()) return 100;
    res.status = 503;  // httplib answers `res` as it is, not the status returned
    return 503;
  });
  // httplib adds Keep-Alive to answers the request did not ask to close.
  s.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    if (ConnectionPool::Refusing()) res.headers.erase("Keep-Alive");
  });

  // Every POST goes to the handler, which routes by source path.
  s.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
    Send(Handle(req, req.body), res);
  });
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  if (options_.metrics) {
    s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(options_.metrics(), "text/plain; version=0.0.4; charset=utf-8");
    });
  }
  s.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    absl::Status st = ready_();
    if (st.ok()) {
      res.set_content(R"({"status":"ready"})", "application/json");
    } else {
      Send(ErrorAnswer(503, st.message()), res);
    }
  });
  // Every other error (404, 405, 413 from the body limit, 400 from a
  // request that does not parse) gets the same JSON shape. On a refused
  // connection every answer is the refusal.
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request&, httplib::Response& res) {
        if (ConnectionPool::Refusing()) {
          Refuse(options_.max_connections, res);
          return httplib::Server::HandlerResponse::Handled;
        }
        // Answers already made (by the handler, or SendAndClose) stand.
        if (!res.body.empty() || res.content_provider_) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        Send(ErrorAnswer(res.status, DefaultMessage(res.status)), res);
        return httplib::Server::HandlerResponse::Handled;
      }));
}

HttpServer::~HttpServer() { Stop(); }

HttpAnswer HttpServer::Handle(const httplib::Request& req, std::string_view body) {
  const std::string content_type = req.get_header_value("Content-Type");
  IngressRequest request{
      .path = req.path,
      .remote_ip = req.remote_addr,
      .content_type = content_type,
      .header = [&req](std::string_view name) -> std::optional<std::string_view> {
        auto it = req.headers.find(std::string(name));  // case-insensitive
        if (it == req.headers.end()) return std::nullopt;
        return it->second;
      },
      .body = body};
  for (const auto& [name, value] : req.headers) request.header_names.push_back(name);
  return handler_->Handle(request);
}

int64_t HttpServer::open_connections() const { return connections_->open.load(); }

uint64_t HttpServer::refused_connections() const { return connections_->refused.load(); }

absl::Status HttpServer::Bind() {
  if (!server_->is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot set up HTTPS with client CA ", options_.tls_client_ca_file));
  }
  if (options_.port == 0) {
    port_ = server_->bind_to_any_port(options_.host);
  } else if (server_->bind_to_port(options_.host, options_.port)) {
    port_ = options_.port;
  } else {
    port_ = -1;
  }
  if (port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", options_.host, ":", options_.port));
  }
  return absl::OkStatus();
}

void HttpServer::Serve() { server_->listen_after_bind(); }

void HttpServer::Stop() {
  if (server_->is_running()) server_->stop();
}

}  // namespace hookfan::ingress
