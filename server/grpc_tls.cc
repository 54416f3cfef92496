#include "server/grpc_tls.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>


#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "grpcpp/security/server_credentials.h"

namespace hookfan::server {

namespace {

// The certificates of a PEM bundle, re-encoded (nothing else of the file
// reaches gRPC). Errors: kInvalidArgument naming the file when it cannot
// be read, holds no certificate, or one is cut short.
absl::StatusOr<std::string> ReadCaBundle(const std::string& path) {
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_file(path.c_str(), "r"), &BIO_free);
  if (in == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("cannot read TLS client CA ", path));
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr)) {
    PEM_write_bio_X509(out.get(), cert);
    X509_free(cert);
    ++count;
  }
  const unsigned long end = ERR_peek_last_error();
  ERR_clear_error();
  if (count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS client CA ", path, ": no PEM certificate"));
  }
  if (ERR_GET_LIB(end) != ERR_LIB_PEM || ERR_GET_REASON(end) != PEM_R_NO_START_LINE) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS client CA ", path, ": certificate ", count + 1,
        " is unreadable (a file still being written?)"));
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

// grpc::ServerCredentials around core SSL credentials (the C++ API has no
// way to build them with a certificate config fetcher).
class FetchingServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit FetchingServerCredentials(grpc_server_credentials* credentials)
      : credentials_(credentials) {}
  ~FetchingServerCredentials() override { grpc_server_credentials_release(credentials_); }
  // hookfan authenticates callers in its service (core/authz.h), never
  // with a metadata processor.
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), credentials_);
  }
  grpc_server_credentials* const credentials_;
};

}  // namespace

// gRPC asks at every new connection whether the certificate changed.
struct GrpcTlsFetcher {
  static grpc_ssl_certificate_config_reload_status Fetch(
      void* user_data, grpc_ssl_server_certificate_config** config) {
    auto* tls = static_cast<GrpcTls*>(user_data);
    std::shared_ptr<const ingress::TlsCertificate::PemPair> pair = tls->certificate_->CurrentPem();
    std::shared_ptr<const std::string> ca = tls->CurrentCa();
    std::lock_guard lock(tls->mu_);
    if (pair == tls->served_pair_ && ca == tls->served_ca_) {
      return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    }
    grpc_ssl_pem_key_cert_pair pem{pair->private_key.c_str(), pair->cert_chain.c_str()};
    // gRPC 1.51 asserts that a fetched config has roots, even when no
    // client certificate is asked for; then they are never used, and the
    // server's own chain serves.
    *config = grpc_ssl_server_certificate_config_create(
        ca != nullptr ? ca->c_str() : pair->cert_chain.c_str(), &pem, 1);
    tls->served_pair_ = std::move(pair);
    tls->served_ca_ = std::move(ca);
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
  }
};

absl::StatusOr<std::unique_ptr<GrpcTls>> GrpcTls::Load(const std::string& cert,
                                                       const std::string& key,
                                                       const std::string& client_ca) {
  std::unique_ptr<GrpcTls> tls(new GrpcTls());
  ASSIGN_OR_RETURN(tls->certificate_, ingress::TlsCertificate::Load(cert, key));
  tls->ca_file_ = client_ca;
  if (!client_ca.empty()) {
    std::lock_guard lock(tls->mu_);
    RETURN_IF_ERROR(tls->ReadCa());
  }
  grpc_ssl_server_credentials_options* options =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(
          client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
          &GrpcTlsFetcher::Fetch, tls.get());
  tls->credentials_ = std::make_shared<FetchingServerCredentials>(
      grpc_ssl_server_credentials_create_with_options(options));
  return tls;
}

GrpcTls::~GrpcTls() = default;

absl::Status GrpcTls::Reload() {
  absl::Status status = certificate_->Reload();
  if (!ca_file_.empty()) {
    std::lock_guard lock(mu_);
    if (absl::Status s = ReadCa(); status.ok()) status = s;
  }
  return status;
}

absl::Status GrpcTls::ReadCa() {
  ca_stamp_ = FileStamp(ca_file_);
  ca_checked_ms_ = SteadyNowMs();
  ASSIGN_OR_RETURN(std::string bundle, ReadCaBundle(ca_file_));
  if (ca_ == nullptr || *ca_ != bundle) ca_ = std::make_shared<const std::string>(std::move(bundle));
  return absl::OkStatus();
}

std::shared_ptr<const std::string> GrpcTls::CurrentCa() {
  if (ca_file_.empty()) return nullptr;
  std::lock_guard lock(mu_);
  const int64_t now = SteadyNowMs();
  if (now - ca_checked_ms_ < 1000) return ca_;
  ca_checked_ms_ = now;
  if (FileStamp(ca_file_) == ca_stamp_) return ca_;
  // ReadCa records the new stamp either way: a bad file is reported once.
  if (absl::Status s = ReadCa(); s.ok()) {
    log::Info("TLS client CA reloaded", {{"ca", ca_file_}});
  } else {
    log::Error("TLS client CA reload failed; using the previous one",
               {{"error", std::string(s.message())}});
  }
  return ca_;
}

}  // namespace hookfan::server
