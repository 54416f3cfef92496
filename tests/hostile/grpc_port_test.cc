// Hostile clients on the gRPC port (issue #24, items 2 and 4), against the
// real binary on loopback: silent connections by the thousand at a low
// open-file limit, the process out of descriptors, silent and half-sent
// HTTP/2 prefaces, and bad certificate files. Each test bounds its own time.

#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/hookfan_process.h"
#include "tests/raw_http.h"

namespace hookfan::testing {
namespace {

using ::testing::HasSubstr;

// Replaces `path` in one step (write beside it, rename), as a careful
// writer does: hookfan sees the old file or the new one, never a mix.
void Replace(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::trunc) << text;
  ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0) << path;
}

// `n` TCP connections to `port` on loopback that never send a byte. The
// connects are not waited for: beyond what the server accepts they sit in
// its listen backlog.
void OpenSilent(int port, int n, Fds* fds) {
  for (int i = 0; i < n; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0) << "socket " << i << ": " << strerror(errno);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << "connect " << i << ": " << strerror(errno);
    fds->fds.push_back(fd);
  }
}

// Raises this process's soft open-file limit to its hard one; false if
// that is below `needed`.
bool RaiseOwnOpenFileLimit(rlim_t needed) {
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  return files.rlim_cur >= needed;
}

// How one call went, and the common name of the certificate the server
// presented.
struct CallResult {
  grpc::Status status;
  std::string server_cn;
};

class GrpcPortTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }

  void Start(HookfanProcess::Options options) {
    hookfan_ = std::make_unique<HookfanProcess>(std::move(options));
    ASSERT_TRUE(hookfan_->Start());
  }

  // One unary call (ListGroups) on a new connection, over TLS verified
  // against the test CA when `tls`, presenting <client>.pem/.key when not
  // empty.
  CallResult Call(bool tls, const std::string& client = "") {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (tls) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = ReadFile(certs_->path("ca.pem"));
      if (!client.empty()) {
        ssl.pem_cert_chain = ReadFile(certs_->path(client + ".pem"));
        ssl.pem_private_key = ReadFile(certs_->path(client + ".key"));
      }
      credentials = grpc::SslCredentials(ssl);
      args.SetSslTargetNameOverride("localhost");
    }
    auto stub = v1::EventBroker::NewStub(
        grpc::CreateCustomChannel(hookfan_->grpc_address(), credentials, args));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
    v1::ListGroupsResponse response;
    CallResult result{stub->ListGroups(&context, v1::ListGroupsRequest(), &response), ""};
    if (result.status.ok() && tls && context.auth_context() != nullptr) {
      for (const grpc::string_ref& cn :
           context.auth_context()->FindPropertyValues("x509_common_name")) {
        result.server_cn.assign(cn.data(), cn.size());
      }
    }
    return result;
  }

  // GET `path` on the HTTP port (HTTPS when https_, verified against the
  // test CA): the status (0: no answer) and the body.
  std::pair<int, std::string> Get(const std::string& path) {
    auto res = Client()->Get(path);
    return res ? std::make_pair(res->status, res->body) : std::make_pair(0, std::string());
  }

  // Posts the enrollment fixture as a webhook, as Get does; the status, 0
  // for no answer.
  int PostWebhook() {
    auto res = Client()->Post(hookfan_->webhook_path(), ReadFixture("emm_device_enrolled.json"),
                              "application/json");
    return res ? res->status : 0;
  }

  std::unique_ptr<httplib::ClientImpl> Client() {
    std::unique_ptr<httplib::ClientImpl> client;
    if (https_) {
      auto ssl = std::make_unique<httplib::SSLClient>("localhost", hookfan_->http_port());
      ssl->set_ca_cert_path(certs_->path("ca.pem").c_str());
      ssl->enable_server_certificate_verification(true);
      client = std::move(ssl);
    } else {
      client = std::make_unique<httplib::ClientImpl>("127.0.0.1", hookfan_->http_port());
    }
    client->set_connection_timeout(5, 0);
    client->set_read_timeout(5, 0);
    return client;
  }

  // A gauge or counter from /metrics; -1 if absent.
  double Metric(const std::string& name) {
    return MetricValue(Get("/metrics").second, name);
  }

  // The log lines whose message is `msg`.
  std::vector<nlohmann::json> LogLines(const std::string& msg) {
    std::vector<nlohmann::json> found;
    for (const std::string& line : hookfan_->Lines()) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("msg", "") == msg) found.push_back(std::move(j));
    }
    return found;
  }

  std::string dir_;
  std::unique_ptr<Certificates> certs_;
  std::unique_ptr<HookfanProcess> hookfan_;
  bool https_ = false;  // the HTTP port serves HTTPS
};

// Issue: under an open-file limit of 2,048, 2,300 silent connections made
// gRPC 1.51 log "Failed accept4: Too many open files" and never accept
// again. Now the soft limit is raised to the hard one, gRPC connections
// stop at a cap that leaves the HTTP edge its room, those beyond it wait in
// the backlog while /readyz says why, and once they are gone a TLS call
// gets through within 10 s while HTTPS webhooks were answered throughout.
TEST_F(GrpcPortTest, SilentConnectionsAtTheOpenFileLimitLeaveThePortServing) {
  ASSERT_TRUE(RaiseOwnOpenFileLimit(3000)) << "this test needs 3,000 file descriptors";
  certs_ = std::make_unique<Certificates>(dir_);
  Start({.data_dir = dir_ + "/data",
         .extra_args = {"--grpc-tls-cert=" + certs_->path("server.pem"),
                        "--grpc-tls-key=" + certs_->path("server.key"),
                        "--http-tls-cert=" + certs_->path("server.pem"),
                        "--http-tls-key=" + certs_->path("server.key")},
         .open_file_limit = 2048,
         .open_file_soft_limit = 1024});
  https_ = true;
  std::vector<nlohmann::json> limit = LogLines("open-file limit");
  EXPECT_EQ(limit.size(), 1u);
  if (!limit.empty()) {
    EXPECT_EQ(limit[0]["soft_was"], 1024);
    EXPECT_EQ(limit[0]["soft"], 2048);
    EXPECT_EQ(limit[0]["hard"], 2048);
    // 2048 - 1024 (--http-max-connections) - 256 spare.
    EXPECT_EQ(limit[0]["grpc_max_connections"], 768);
  }
  ASSERT_TRUE(Call(/*tls=*/true).status.ok());

  Fds silent;
  OpenSilent(hookfan_->grpc_port(), 2300, &silent);
  std::pair<int, std::string> ready;
  EXPECT_TRUE(Eventually([&] { return (ready = Get("/readyz")).first == 503; }, absl::Seconds(5)))
      << ready.first << " " << ready.second;
  EXPECT_THAT(ready.second, HasSubstr("the gRPC port cannot accept new connections"));
  EXPECT_THAT(ready.second, HasSubstr("--grpc-max-connections"));
  EXPECT_EQ(Metric("hookfan_grpc_connections"), 768);
  EXPECT_EQ(PostWebhook(), 202);

  silent.Release();
  const absl::Time released = absl::Now();
  CallResult call;
  EXPECT_TRUE(Eventually([&] { return (call = Call(/*tls=*/true)).status.ok(); }, absl::Seconds(10)))
      << call.status.error_code() << " " << call.status.error_message();
  const absl::Duration recovered = absl::Now() - released;
  EXPECT_LT(recovered, absl::Seconds(10));
  std::cerr << "TLS call served " << absl::FormatDuration(recovered) << " after the release\n";
  EXPECT_EQ(PostWebhook(), 202);
  EXPECT_TRUE(Eventually([&] { return (ready = Get("/readyz")).first == 200; }, absl::Seconds(5)))
      << ready.first << " " << ready.second;
}

// Issue: gRPC 1.51's accept loop stopped for good at its first EMFILE. Here
// silent HTTP connections take every descriptor the process has; the gRPC
// port's accepts fail, /readyz says so, and once descriptors are free again
// the port serves.
TEST_F(GrpcPortTest, GrpcPortAcceptsAgainAfterTheProcessRanOutOfDescriptors) {
  ASSERT_TRUE(RaiseOwnOpenFileLimit(1000)) << "this test needs 1,000 file descriptors";
  // UBSan's vptr check probes memory through a pipe it opens: in a process
  // out of descriptors it cannot, and it takes every virtual call for one
  // on a bad object ("<memory cannot be printed>"). That check is off for
  // this process; ASan and UBSan's other checks stay on.
  std::vector<std::string> env;
  if (kUnderSanitizer) {
    const std::string suppressions = dir_ + "/ubsan.supp";
    std::ofstream(suppressions) << "vptr:*\n";  // the check's name, any source file
    const char* inherited = getenv("UBSAN_OPTIONS");
    env.push_back(absl::StrCat("UBSAN_OPTIONS=", inherited != nullptr ? inherited : "",
                               inherited != nullptr && *inherited != '\0' ? ":" : "",
                               "suppressions=", suppressions));
  }
  Start({.data_dir = dir_ + "/data", .env = env, .open_file_limit = 512});
  Fds http_flood, grpc_waiting;
  OpenSilent(hookfan_->http_port(), 700, &http_flood);
  // The HTTP edge evicts idle connections only at EMFILE here (its own cap
  // is 1,024): then the process is out of descriptors.
  // Under ASan on a loaded machine the first eviction once came after 5 s.
  const absl::Duration wait = kUnderSanitizer ? absl::Seconds(20) : absl::Seconds(5);
  ASSERT_TRUE(Eventually([&] { return Metric("hookfan_http_connections_evicted_total") > 0; },
                        wait));
  OpenSilent(hookfan_->grpc_port(), 50, &grpc_waiting);
  std::pair<int, std::string> ready;
  EXPECT_TRUE(Eventually(
      [&] {
        ready = Get("/readyz");
        return ready.first == 503 && absl::StrContains(ready.second, "Too many open files");
      },
      wait))
      << ready.first << " " << ready.second;
  EXPECT_THAT(ready.second, HasSubstr("the open-file limit is reached"));

  http_flood.Release();
  grpc_waiting.Release();
  const absl::Time released = absl::Now();
  CallResult call;
  EXPECT_TRUE(Eventually([&] { return (call = Call(/*tls=*/false)).status.ok(); }, absl::Seconds(10)))
      << call.status.error_code() << " " << call.status.error_message();
  std::cerr << "call served " << absl::FormatDuration(absl::Now() - released)
            << " after the release\n";
  EXPECT_TRUE(Eventually([&] { return (ready = Get("/readyz")).first == 200; }, absl::Seconds(5)))
      << ready.first << " " << ready.second;
  EXPECT_EQ(hookfan_->PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
  EXPECT_GE(Metric("hookfan_grpc_accept_pauses_total"), 1);
}

// Issue: gRPC held a silent connection for its default 120 s handshake
// timeout. With --grpc-handshake-timeout=2s, connections that send nothing,
// or only half the HTTP/2 preface, are closed by the server at 2 s, not
// before; a real client meanwhile is served.
TEST_F(GrpcPortTest, SilentConnectionsAreClosedAtTheHandshakeDeadline) {
  Start({.data_dir = dir_ + "/data",
         .extra_args = {"--grpc-handshake-timeout=2s"}});
  Fds conns;
  const absl::Time opened = absl::Now();
  for (int i = 0; i < 20; ++i) {
    const int fd = ConnectTo(hookfan_->grpc_port());
    ASSERT_GE(fd, 0);
    conns.fds.push_back(fd);
    if (i % 2 == 1) {
      const std::string half_preface = "PRI * HTTP/2.0\r\n";
      ASSERT_EQ(send(fd, half_preface.data(), half_preface.size(), 0),
                static_cast<ssize_t>(half_preface.size()));
    }
  }
  EXPECT_TRUE(Call(/*tls=*/false).status.ok());
  // Each connection reads EOF (or a reset) when the server closes it.
  std::vector<absl::Duration> closed_after(conns.fds.size(), absl::InfiniteDuration());
  size_t open = conns.fds.size();
  const absl::Time deadline = opened + absl::Seconds(8);
  while (open > 0 && absl::Now() < deadline) {
    std::vector<pollfd> pfds;
    for (int fd : conns.fds) pfds.push_back({.fd = fd, .events = POLLIN, .revents = 0});
    poll(pfds.data(), pfds.size(), 100);
    for (size_t i = 0; i < pfds.size(); ++i) {
      if (pfds[i].revents == 0 || closed_after[i] != absl::InfiniteDuration()) continue;
      char buf[256];
      const ssize_t n = recv(conns.fds[i], buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN)) {
        closed_after[i] = absl::Now() - opened;
        --open;
      }
    }
  }
  EXPECT_EQ(open, 0u) << "connections still open 8 s after they were made";
  const auto [first, last] = std::minmax_element(closed_after.begin(), closed_after.end());
  std::cerr << "closed after " << absl::FormatDuration(*first) << " to "
            << absl::FormatDuration(*last) << "\n";
  EXPECT_GE(*first, absl::Milliseconds(1500));
  EXPECT_LE(*last, absl::Seconds(4));
}

// Issue: a garbage, half-written or mismatched certificate or key made
// every new gRPC TLS handshake fail until the files were fixed. Now each
// bad change is refused (logged once) while the previous pair keeps
// serving, and the next valid pair is served.
TEST_F(GrpcPortTest, BadCertificateFilesKeepThePreviousPairServing) {
  certs_ = std::make_unique<Certificates>(dir_);
  certs_->Issue("renewed", "renewed.localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
  const std::string cert = certs_->path("served.pem"), key = certs_->path("served.key");
  Replace(cert, ReadFile(certs_->path("server.pem")));
  Replace(key, ReadFile(certs_->path("server.key")));
  Start({.data_dir = dir_ + "/data",
         .extra_args = {"--grpc-tls-cert=" + cert, "--grpc-tls-key=" + key}});
  CallResult call = Call(/*tls=*/true);
  ASSERT_TRUE(call.status.ok()) << call.status.error_message();
  EXPECT_EQ(call.server_cn, "localhost");

  // Calls on new connections (each one makes hookfan look at the files, at
  // most once a second) until the refusal is logged; every one is served
  // with the previous certificate.
  auto refusals = [&] { return LogLines("TLS certificate reload failed; serving the previous one"); };
  auto expect_refused = [&](const std::string& error) {
    const size_t before = refusals().size();
    int calls = 0;
    EXPECT_TRUE(Eventually(
        [&] {
          CallResult c = Call(/*tls=*/true);
          ++calls;
          EXPECT_TRUE(c.status.ok()) << c.status.error_message();
          EXPECT_EQ(c.server_cn, "localhost");
          return refusals().size() > before;
        },
        absl::Seconds(5)))
        << "no refusal logged for: " << error;
    std::vector<nlohmann::json> now = refusals();
    ASSERT_EQ(now.size(), before + 1);
    EXPECT_THAT(now.back()["error"].get<std::string>(), HasSubstr(error));
    // More handshakes, more than a second later: served, not logged again.
    const absl::Time later = absl::Now() + absl::Milliseconds(1100);
    EXPECT_TRUE(Eventually(
        [&] {
          CallResult c = Call(/*tls=*/true);
          EXPECT_TRUE(c.status.ok()) << c.status.error_message();
          EXPECT_EQ(c.server_cn, "localhost");
          return absl::Now() >= later;
        },
        absl::Seconds(3)));
    EXPECT_EQ(refusals().size(), before + 1) << "the refusal was logged again";
  };

  Replace(cert, "this is not a certificate\n");
  expect_refused("TLS certificate " + cert + ": ");
  const std::string renewed = ReadFile(certs_->path("renewed.pem"));
  Replace(cert, renewed.substr(0, renewed.size() / 2));  // a writer caught halfway
  expect_refused("TLS certificate " + cert + ": ");
  Replace(cert, renewed);  // the renewed certificate, the old key
  expect_refused("does not match the certificate");
  Replace(key, ReadFile(certs_->path("renewed.key")));  // the pair is whole again
  EXPECT_TRUE(Eventually(
      [&] {
        call = Call(/*tls=*/true);
        return call.status.ok() && call.server_cn == "renewed.localhost";
      },
      absl::Seconds(5)))
      << call.status.error_message() << " " << call.server_cn;
  EXPECT_EQ(LogLines("TLS certificate reloaded").size(), 1u);
}

// The client CA file is re-read as the certificate is: a client of a new
// CA is admitted once the file names it, a garbage file keeps the previous
// CA (logged once per change), and a client of no configured CA is refused
// throughout.
TEST_F(GrpcPortTest, ClientCaFileIsReloadedAndABadOneKeepsThePrevious) {
  certs_ = std::make_unique<Certificates>(dir_);
  certs_->MakeCa("new-ca", "new-ca");
  certs_->Issue("new-client", "new-client", "extendedKeyUsage=clientAuth", "new-ca");
  const std::string client_ca = certs_->path("client-ca.pem");
  Replace(client_ca, ReadFile(certs_->path("ca.pem")));
  Start({.data_dir = dir_ + "/data",
         .extra_args = {"--grpc-tls-cert=" + certs_->path("server.pem"),
                        "--grpc-tls-key=" + certs_->path("server.key"),
                        "--grpc-tls-client-ca=" + client_ca}});
  CallResult call = Call(/*tls=*/true, "client");
  ASSERT_TRUE(call.status.ok()) << call.status.error_message();
  EXPECT_FALSE(Call(/*tls=*/true, "new-client").status.ok());
  EXPECT_FALSE(Call(/*tls=*/true).status.ok()) << "a client without a certificate was served";

  // Garbage: the previous CA keeps admitting its clients; logged once.
  Replace(client_ca, "not a CA bundle\n");
  auto refusals = [&] { return LogLines("TLS client CA reload failed; using the previous one"); };
  EXPECT_TRUE(Eventually(
      [&] {
        EXPECT_TRUE(Call(/*tls=*/true, "client").status.ok());
        return refusals().size() == 1;
      },
      absl::Seconds(5)));
  EXPECT_THAT(refusals().front()["error"].get<std::string>(), HasSubstr(client_ca));
  EXPECT_FALSE(Call(/*tls=*/true, "new-client").status.ok());

  // The new CA: its client is admitted, the old CA's is not.
  Replace(client_ca, ReadFile(certs_->path("new-ca.pem")));
  EXPECT_TRUE(Eventually([&] { return (call = Call(/*tls=*/true, "new-client")).status.ok(); },
                         absl::Seconds(5)))
      << call.status.error_message();
  EXPECT_FALSE(Call(/*tls=*/true, "client").status.ok());
  EXPECT_EQ(refusals().size(), 1u) << "the refusal was logged again";
}

}  // namespace
}  // namespace hookfan::testing
