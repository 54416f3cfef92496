#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace hookfan::ingress {

// A server certificate chain and private key read from PEM files, re-read
// when the files change (checked at most once a second, at handshakes) or
// when Reload is called (SIGHUP), so a renewed certificate (cert-manager,
// a rotated Secret) is served without a restart. A reload that fails
// (garbage, a half-written file or chain, a key that does not match) keeps
// the previous pair and logs why, once per change of the files.
//
// Thread-safe: handshakes on many threads read it while Reload replaces it.
class TlsCertificate {
 public:
  // Reads both files. Errors: kInvalidArgument naming the file that is
  // missing, not PEM, or a key that does not match the certificate.
  static absl::StatusOr<std::unique_ptr<TlsCertificate>> Load(std::string cert_file,
                                                              std::string key_file,
                                                              Clock* clock = Clock::Real());
  ~TlsCertificate();
  TlsCertificate(const TlsCertificate&) = delete;
  TlsCertificate& operator=(const TlsCertificate&) = delete;

  // Makes `ctx` present the current pair at every handshake. The context
  // must not outlive this object.
  void Install(SSL_CTX* ctx);

  // Re-reads the files now; the caller reports an error. Errors as Load
  // (the previous pair stays). Either way the files count as read: the
  // check at handshakes reads (and logs) them again only once they change.
  absl::Status Reload();

  // The pair served now in PEM, for TLS stacks that take PEM text (gRPC):
  // the leaf then its chain, and the key. The files are checked as at a
  // handshake (at most once a second); a new pointer means a new pair.
  struct PemPair {
    std::string cert_chain;
    std::string private_key;
  };
  std::shared_ptr<const PemPair> CurrentPem();

  // Requires and verifies client certificates signed by the CAs in
  // `ca_file` (mTLS). Errors: kInvalidArgument naming the file.
  static absl::Status RequireClientCertificates(SSL_CTX* ctx, const std::string& ca_file);

 private:
  struct Pair;
  TlsCertificate(std::string cert_file, std::string key_file, Clock* clock);
  // Reads both files into a new pair.
  absl::StatusOr<std::shared_ptr<const Pair>> Read() const;
  static int OnHandshake(SSL* ssl, void* self);
  std::shared_ptr<const Pair> Current();

  const std::string cert_file_;
  const std::string key_file_;
  Clock* const clock_;
  std::mutex mu_;
  std::shared_ptr<const Pair> pair_ ABSL_GUARDED_BY(mu_);
  absl::Time last_check_ ABSL_GUARDED_BY(mu_);
  std::string read_stamp_ ABSL_GUARDED_BY(mu_);  // the files' mtimes and sizes when last read
};

}  // namespace hookfan::ingress
