#include "server/app.h"

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "broker/consumer_group.h"
#include "broker/fanout.h"
#include "broker/grpc_service.h"
#include "broker/sqlite_event_log.h"
#include "broker/sqlite_group_store.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "ingress/http_server.h"
#include "ingress/webhook_handler.h"

namespace hookfan::server {

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

App::App() = default;

App::~App() { Drain(); }

absl::Status App::Start(Config config) {
  config_ = std::move(config);
  std::string http_host, grpc_host;
  int http_port, grpc_port;
  RETURN_IF_ERROR(SplitHostPort(config_.http_listen, &http_host, &http_port));
  RETURN_IF_ERROR(SplitHostPort(config_.grpc_listen, &grpc_host, &grpc_port));

  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create data dir ", config_.data_dir, ": ", ec.message()));
  }
  std::string db_path = (std::filesystem::path(config_.data_dir) / "hookfan.db").string();
  ASSIGN_OR_RETURN(log_, broker::SqliteEventLog::Open(db_path, {}));
  fanout_ = std::make_unique<broker::Fanout>(log_.get(), broker::Fanout::Options{});
  log_->SetCommitListener(fanout_.get());
  ASSIGN_OR_RETURN(group_store_, broker::SqliteGroupStore::Open(db_path));
  ASSIGN_OR_RETURN(groups_, broker::GroupManager::Create(log_.get(), fanout_.get(),
                                                         group_store_.get(), {}));

  // gRPC: EventBroker, grpc.health.v1 and reflection.
  service_ = std::make_unique<broker::EventBrokerService>(
      log_.get(), fanout_.get(), groups_.get(), broker::EventBrokerService::Options{});
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Two servers must never share a port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(config_.grpc_listen, grpc::InsecureServerCredentials(),
                           &grpc_port_);
  builder.RegisterService(service_.get());
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", config_.grpc_listen));
  }

  bool generated_token = config_.applivery_token.empty();
  if (generated_token) config_.applivery_token = RandomHex(16);
  webhooks_ = std::make_unique<ingress::WebhookHandler>(
      log_.get(), ingress::WebhookHandler::Options{
                      .applivery_token = config_.applivery_token,
                      .max_body_bytes = config_.max_body_bytes,
                  });
  http_ = std::make_unique<ingress::HttpServer>(
      webhooks_.get(), [this] { return Ready(); },
      ingress::HttpServer::Options{
          .host = http_host,
          .port = http_port,
          .max_body_bytes = config_.max_body_bytes,
          .threads = config_.http_threads,
      });
  RETURN_IF_ERROR(http_->Bind());
  http_port_ = http_->port();
  http_thread_ = std::thread([this] { http_->Serve(); });

  std::string http_address = absl::StrCat(http_host, ":", http_port_);
  if (generated_token) {
    log::Warn("no --applivery-token set; generated one for this run. Point Applivery at:",
              {{"webhook_url", absl::StrCat("http://", http_address, "/webhooks/applivery/",
                                            config_.applivery_token)}});
  }
  // The last start-up line: tests and scripts wait for it.
  log::Info("hookfan listening",
            {{"http", http_address},
             {"grpc", absl::StrCat(grpc_host, ":", grpc_port_)},
             {"store", absl::StrCat("sqlite://", db_path)},
             {"last_sequence", log_->LastSequence()}});
  return absl::OkStatus();
}

absl::Status App::Ready() const {
  if (draining_.load()) return absl::UnavailableError("draining");
  return absl::OkStatus();
}

void App::Drain() {
  if (draining_.exchange(true)) return;
  if (grpc_server_ != nullptr) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
  }
  if (http_ != nullptr) {
    http_->Stop();  // returns once webhooks in progress have been answered
    if (http_thread_.joinable()) http_thread_.join();
    log::Info("drain: webhooks finished");
  }
  if (groups_ != nullptr) groups_->Shutdown();  // members end UNAVAILABLE; unacked redeliver
  if (fanout_ != nullptr) fanout_->Shutdown();  // streams end UNAVAILABLE + resume
  log::Info("drain: streams told to end");
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           absl::ToChronoSeconds(config_.drain_timeout));
    grpc_server_->Wait();
    log::Info("drain: gRPC stopped");
  }
  service_.reset();
  groups_.reset();
  group_store_.reset();
  if (log_ != nullptr) log_->SetCommitListener(nullptr);
  fanout_.reset();
  log_.reset();
  log::Info("hookfan stopped");
}

}  // namespace hookfan::server
