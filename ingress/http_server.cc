#include "ingress/http_server.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"
#include "common/log.h"

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
      server_(MakeServer(options_)) {
  httplib::Server& s = *server_;
  int threads = options_.threads;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.set_payload_max_length(handler_->max_body_bytes());
  s.set_read_timeout(options_.read_timeout_seconds, 0);
  s.set_keep_alive_max_count(options_.keep_alive_max_requests);
  // Answers are written as headers then body: without TCP_NODELAY, Nagle
  // and the sender's delayed ACK add ~40 ms to every keep-alive request.
  s.set_tcp_nodelay(true);

  // Every POST goes to the handler, which routes by source path.
  s.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
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
        .body = req.body};
    for (const auto& [name, value] : req.headers) request.header_names.push_back(name);
    Send(handler_->Handle(request), res);
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
  // request that does not parse) gets the same JSON shape.
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        Send(ErrorAnswer(res.status, DefaultMessage(res.status)), res);
        return httplib::Server::HandlerResponse::Handled;
      }));
}

HttpServer::~HttpServer() { Stop(); }

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
