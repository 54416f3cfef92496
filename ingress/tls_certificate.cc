#include "ingress/tls_certificate.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace hookfan::ingress {

// A loaded certificate chain and its key.
struct TlsCertificate::Pair {
  X509* leaf = nullptr;
  STACK_OF(X509)* chain = nullptr;  // intermediates, may be empty
  EVP_PKEY* key = nullptr;
  std::shared_ptr<const PemPair> pem;
  ~Pair() {
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
  }
};

namespace {

std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM data";
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof(buffer));
  return buffer;
}

// "mtime:size" of each file, to notice a change cheaply.
std::string Stamp(const std::string& a, const std::string& b) {
  return absl::StrCat(FileStamp(a), ";", FileStamp(b));
}

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;

// PEM text written by `write` into a memory BIO.
template <typename Write>
std::string ToPem(Write write) {
  BioPtr bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (bio == nullptr || write(bio.get()) != 1) return "";
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

absl::StatusOr<BioPtr> OpenFile(const std::string& path, const char* what) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"), &BIO_free);
  if (bio == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("cannot read TLS ", what, " ", path));
  }
  return bio;
}


}  // namespace

absl::StatusOr<std::unique_ptr<TlsCertificate>> TlsCertificate::Load(std::string cert_file,
                                                                       std::string key_file,
                                                                       Clock* clock) {
  std::unique_ptr<TlsCertificate> certificate(
      new TlsCertificate(std::move(cert_file), std::move(key_file), clock));
  RETURN_IF_ERROR(certificate->Reload());
  return certificate;
}

TlsCertificate::TlsCertificate(std::string cert_file, std::string key_file, Clock* clock)
    : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)), clock_(clock) {}

TlsCertificate::~TlsCertificate() = default;

absl::StatusOr<std::shared_ptr<const TlsCertificate::Pair>> TlsCertificate::Read() const {
  auto pair = std::make_shared<Pair>();
  {
    ASSIGN_OR_RETURN(BioPtr bio, OpenFile(cert_file_, "certificate"));
    pair->leaf = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (pair->leaf == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS certificate ", cert_file_, ": ", OpenSslError()));
    }
    pair->chain = sk_X509_new_null();
    while (X509* next = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      sk_X509_push(pair->chain, next);
    }
    // The end of the file reads as "no start line"; anything else is a
    // chain certificate cut short (a file caught half-written).
    const unsigned long end = ERR_peek_last_error();
    ERR_clear_error();
    if (ERR_GET_LIB(end) != ERR_LIB_PEM || ERR_GET_REASON(end) != PEM_R_NO_START_LINE) {
      return absl::InvalidArgumentError(absl::StrCat(
          "TLS certificate ", cert_file_, ": certificate ", sk_X509_num(pair->chain) + 2,
          " of the chain is unreadable (a file still being written?)"));
    }
  }
  {
    ASSIGN_OR_RETURN(BioPtr bio, OpenFile(key_file_, "key"));
    pair->key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    if (pair->key == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS key ", key_file_, ": ", OpenSslError()));
    }
  }
  if (X509_check_private_key(pair->leaf, pair->key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", key_file_, " does not match the certificate ", cert_file_));
  }
  auto pem = std::make_shared<PemPair>();
  pem->cert_chain = ToPem([&](BIO* b) { return PEM_write_bio_X509(b, pair->leaf); });
  for (int i = 0; i < sk_X509_num(pair->chain); ++i) {
    pem->cert_chain += ToPem([&](BIO* b) { return PEM_write_bio_X509(b, sk_X509_value(pair->chain, i)); });
  }
  pem->private_key = ToPem([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, pair->key, nullptr, nullptr, 0, nullptr, nullptr);
  });
  pair->pem = std::move(pem);
  return pair;
}

absl::Status TlsCertificate::Reload() {
  std::string stamp = Stamp(cert_file_, key_file_);
  absl::StatusOr<std::shared_ptr<const Pair>> pair = Read();
  std::lock_guard lock(mu_);
  // Good or bad, these files have been read: the check at handshakes reads
  // them again only once they change again, so each bad change is reported
  // once, by whoever read it first.
  read_stamp_ = std::move(stamp);
  last_check_ = clock_->Now();
  if (!pair.ok()) return pair.status();
  pair_ = *std::move(pair);
  return absl::OkStatus();
}

std::shared_ptr<const TlsCertificate::Pair> TlsCertificate::Current() {
  bool check = false;
  {
    std::lock_guard lock(mu_);
    absl::Time now = clock_->Now();
    if (now - last_check_ >= absl::Seconds(1)) {
      last_check_ = now;
      check = Stamp(cert_file_, key_file_) != read_stamp_;
    }
  }
  if (check) {
    if (absl::Status s = Reload(); s.ok()) {
      log::Info("TLS certificate reloaded", {{"cert", cert_file_}});
    } else {
      log::Error("TLS certificate reload failed; serving the previous one",
                 {{"error", std::string(s.message())}});
    }
  }
  std::lock_guard lock(mu_);
  return pair_;
}

std::shared_ptr<const TlsCertificate::PemPair> TlsCertificate::CurrentPem() {
  return Current()->pem;
}

int TlsCertificate::OnHandshake(SSL* ssl, void* self) {
  std::shared_ptr<const Pair> pair = static_cast<TlsCertificate*>(self)->Current();
  if (SSL_use_certificate(ssl, pair->leaf) != 1 || SSL_use_PrivateKey(ssl, pair->key) != 1 ||
      SSL_set1_chain(ssl, pair->chain) != 1) {
    ERR_clear_error();
    return 0;
  }
  return 1;
}

void TlsCertificate::Install(SSL_CTX* ctx) { SSL_CTX_set_cert_cb(ctx, &OnHandshake, this); }

absl::Status TlsCertificate::RequireClientCertificates(SSL_CTX* ctx, const std::string& ca_file) {
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS client CA ", ca_file, ": ", OpenSslError()));
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return absl::OkStatus();
}

}  // namespace hookfan::ingress
