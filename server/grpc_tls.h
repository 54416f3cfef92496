#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "ingress/tls_certificate.h"

namespace grpc {
class ServerCredentials;
}

namespace hookfan::server {

// TLS on the gRPC port from PEM files, with the HTTPS port's reload rules:
// the certificate and key (and the client CA, with mTLS) are re-read when
// they change, checked at most once a second as new connections arrive, or
// at once on Reload (SIGHUP). Files that do not make a valid pair (garbage,
// half-written, a key that does not match, a CA file without a
// certificate) keep the previous pair and CA serving until valid files
// appear; the error is logged once per change of the files.
//
// gRPC 1.51's FileWatcherCertificateProvider took the files' text as it
// found it, so a bad file stopped every new handshake; here gRPC is handed
// only a pair and CA that parsed and matched (through its certificate
// config fetcher, asked at each new connection).
//
// Thread-safe. Must outlive the gRPC server using credentials().
class GrpcTls {
 public:
  // Reads the files. `client_ca` empty: no client certificate is asked
  // for; else one signed by it is required. Errors: kInvalidArgument
  // naming the file (missing, not PEM, a key that does not match).
  static absl::StatusOr<std::unique_ptr<GrpcTls>> Load(const std::string& cert,
                                                       const std::string& key,
                                                       const std::string& client_ca);
  ~GrpcTls();
  GrpcTls(const GrpcTls&) = delete;
  GrpcTls& operator=(const GrpcTls&) = delete;

  // Server credentials serving the current pair.
  std::shared_ptr<grpc::ServerCredentials> credentials() const { return credentials_; }

  // Re-reads the files now (SIGHUP). Errors as Load; the previous pair and
  // CA stay.
  absl::Status Reload();

 private:
  GrpcTls() = default;
  // The client CA bundle now, re-read when its file changed (checked at
  // most once a second). Null without mTLS.
  std::shared_ptr<const std::string> CurrentCa();
  absl::Status ReadCa() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::unique_ptr<ingress::TlsCertificate> certificate_;
  std::string ca_file_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;

  std::mutex mu_;
  std::shared_ptr<const std::string> ca_ ABSL_GUARDED_BY(mu_);
  std::string ca_stamp_ ABSL_GUARDED_BY(mu_);  // of the file last read, valid or not
  int64_t ca_checked_ms_ ABSL_GUARDED_BY(mu_) = 0;
  // What gRPC was last handed, so the fetcher says "unchanged" otherwise.
  std::shared_ptr<const ingress::TlsCertificate::PemPair> served_pair_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const std::string> served_ca_ ABSL_GUARDED_BY(mu_);

  friend struct GrpcTlsFetcher;
};

}  // namespace hookfan::server
