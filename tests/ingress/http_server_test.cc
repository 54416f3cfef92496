#include "ingress/http_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/ingest.h"
#include "tests/store/forwarding_event_log.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/raw_http.h"

namespace hookfan::ingress {
namespace {

using ::hookfan::testing::ClosedWithin;
using ::hookfan::testing::ReadAnswers;
using ::hookfan::testing::ReadUntil;
using ::hookfan::testing::SendAll;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kBody[] = R"({"action":"emm_device_enrolled","data":{"id":"d1"}})";

// An event log whose appends wait while `hold` is set (an injected stall
// of the store), otherwise the memory log's.
class StallableLog final : public broker::ForwardingEventLog {
 public:
  absl::Status Append(absl::Span<v1::Event> events) override {
    Wait();
    return ForwardingEventLog::Append(events);
  }
  absl::StatusOr<broker::AppendOnceResult> AppendOnce(v1::Event event, std::string_view key,
                                              absl::Duration window) override {
    Wait();
    return ForwardingEventLog::AppendOnce(std::move(event), key, window);
  }

  void Hold(bool hold) {
    MutexLock lock(&mu_);
    hold_ = hold;
  }

 private:
  void Wait() {
    MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* hold) { return !*hold; }, &hold_));
  }
  Mutex mu_;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServer::Options options) {
    SourceConfig source{
        .name = "applivery",
        .path = "/webhooks/applivery",
        .normalizer = "applivery",
        .auth = {.mode = AuthMode::kPathToken, .secrets = {"tok"}},
        .max_body_bytes = 64 * 1024,
    };
    auto handler = WebhookHandler::Create(&sink_, {source}, {});
    ASSERT_TRUE(handler.ok()) << handler.status();
    handler_ = std::move(*handler);
    options.host = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<HttpServer>(handler_.get(), [] { return absl::OkStatus(); },
                                           std::move(options));
    ASSERT_TRUE(server_->Bind().ok());
    thread_ = std::thread([this] { server_->Serve(); });
  }
  void TearDown() override {
    log_.Hold(false);
    if (server_ != nullptr) server_->Stop(absl::ZeroDuration());
    if (thread_.joinable()) thread_.join();
  }

  int Connect() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    fds_.push_back(fd);
    return fd;
  }
  static std::string Post(const std::string& body = kBody, const std::string& extra = "") {
    return absl::StrCat("POST /webhooks/applivery/tok HTTP/1.1\r\nHost: x\r\n",
                        "Content-Type: application/json\r\nContent-Length: ", body.size(),
                        "\r\n", extra, "\r\n", body);
  }

  StallableLog log_;
  broker::Ingestor sink_{&log_, {}};
  std::unique_ptr<WebhookHandler> handler_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::vector<int> fds_;

  ~HttpServerTest() override {
    for (int fd : fds_) close(fd);
  }
};

TEST_F(HttpServerTest, PipelinedRequestsAreEachAnsweredInOrder) {
  // RFC 9112 9.3.2: three requests in one write get three answers, in order.
  Start({});
  const int fd = Connect();
  SendAll(fd, Post() + "GET /healthz HTTP/1.1\r\n\r\n" + Post(R"({"action":"x"})"));
  const std::string in = ReadAnswers(fd, 3);
  const size_t first = in.find("HTTP/1.1 202 ");
  const size_t second = in.find("HTTP/1.1 200 ");
  const size_t third = in.find("HTTP/1.1 202 ", first + 1);
  ASSERT_NE(first, std::string::npos) << in;
  ASSERT_NE(second, std::string::npos) << in;
  ASSERT_NE(third, std::string::npos) << in;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
  EXPECT_EQ(log_.LastSequence(), 2u);
}

TEST_F(HttpServerTest, SmugglingShapesAre400AndClose) {
  // Disagreeing Content-Lengths, or Content-Length with Transfer-Encoding:
  // 400, and the connection is closed (its framing cannot be trusted).
  Start({});
  for (const std::string& extra : {std::string("Content-Length: 3\r\n"),
                                   std::string("Transfer-Encoding: chunked\r\n")}) {
    const int fd = Connect();
    SendAll(fd, Post(kBody, extra));
    const std::string in = ReadAnswers(fd);
    EXPECT_THAT(in, StartsWith("HTTP/1.1 400 ")) << extra;
    EXPECT_THAT(in, HasSubstr("Connection: close")) << extra;
    EXPECT_TRUE(ClosedWithin(fd, absl::Seconds(2))) << extra;
  }
  EXPECT_EQ(log_.LastSequence(), 0u);
}

TEST_F(HttpServerTest, OversizedHeadIs431AndClose) {
  Start({.max_head_bytes = 4096, .max_headers = 10});
  int fd = Connect();
  SendAll(fd, "POST /webhooks/applivery/tok HTTP/1.1\r\nX-Big: " + std::string(10000, 'a'));
  std::string in = ReadAnswers(fd);
  EXPECT_THAT(in, StartsWith("HTTP/1.1 431 "));
  EXPECT_THAT(in, HasSubstr("request head is larger than the limit of 4096 bytes"));
  EXPECT_TRUE(ClosedWithin(fd, absl::Seconds(2)));
  fd = Connect();
  std::string many;
  for (int i = 0; i < 11; ++i) many += absl::StrCat("X-", i, ": v\r\n");
  SendAll(fd, Post(kBody, many));
  in = ReadAnswers(fd);
  EXPECT_THAT(in, StartsWith("HTTP/1.1 431 "));
  EXPECT_THAT(in, HasSubstr("more than 10 header fields"));
}

TEST_F(HttpServerTest, SilentConnectionsMakeRoomForASender) {
  // 2 workers, 4 connections: 12 connections that send nothing do not keep a
  // sender out; the longest idle ones are closed to make room.
  Start({.threads = 2, .max_connections = 4});
  for (int i = 0; i < 12; ++i) Connect();
  const absl::Time start = absl::Now();
  const int fd = Connect();
  SendAll(fd, Post());
  EXPECT_THAT(ReadAnswers(fd), StartsWith("HTTP/1.1 202 "));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_GE(server_->counts().evicted.load(), 9u);
  EXPECT_LE(server_->counts().open.load(), 4);
}

TEST_F(HttpServerTest, DribblingSendersDoNotHoldWorkers) {
  // 1 worker: 8 senders each trickling a head, a byte every 50 ms, do not
  // delay a whole request.
  Start({.threads = 1, .max_connections = 64});
  std::vector<int> slow;
  for (int i = 0; i < 8; ++i) slow.push_back(Connect());
  const std::string head = Post();
  std::atomic<bool> done = false;
  std::atomic<size_t> trickled = 0;
  std::thread dribble([&] {
    for (size_t i = 0; i < head.size() && !done; ++i) {
      for (int fd : slow) SendAll(fd, head.substr(i, 1));
      trickled = i + 1;
      absl::SleepFor(absl::Milliseconds(50));  // the pace of the attack
    }
  });
  // Every trickler has begun its request.
  for (absl::Time deadline = absl::Now() + absl::Seconds(5);
       trickled < 3 && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_GE(trickled, 3u);
  const absl::Time start = absl::Now();
  const int fd = Connect();
  SendAll(fd, Post());
  EXPECT_THAT(ReadAnswers(fd), StartsWith("HTTP/1.1 202 "));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  done = true;
  dribble.join();
}

TEST_F(HttpServerTest, ReadTimeoutBoundsTheWholeRequest) {
  // A request trickled a byte every 100 ms never outlives --http-read-timeout
  // (1 s here), although no single read waits that long: 408, then close.
  Start({.read_timeout_seconds = 1});
  const int fd = Connect();
  const std::string request = Post();
  const absl::Time start = absl::Now();
  std::string in;
  for (size_t i = 0; i < request.size(); ++i) {
    SendAll(fd, request.substr(i, 1));
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, 100) > 0) {
      in = ReadAnswers(fd);
      break;
    }
  }
  EXPECT_THAT(in, StartsWith("HTTP/1.1 408 "));
  EXPECT_THAT(in, HasSubstr("did not arrive whole within 1 s (--http-read-timeout)"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(ClosedWithin(fd, absl::Seconds(2)));
  EXPECT_GE(server_->counts().timed_out.load(), 1u);
}

TEST_F(HttpServerTest, BusyConnectionsAtTheCapGet503) {
  // When every connection is mid-request, a new one is refused after its
  // head (before its body), with Retry-After, and closed.
  Start({.threads = 1, .max_connections = 2});
  for (int i = 0; i < 2; ++i) {
    // "100 Continue" proves the server has read the head: the connection is
    // mid-request, which eviction never touches.
    const int fd = Connect();
    SendAll(fd, absl::StrCat("POST /webhooks/applivery/tok HTTP/1.1\r\nContent-Length: 10\r\n",
                             "Expect: 100-continue\r\n\r\n"));
    ASSERT_THAT(ReadUntil(fd, "\r\n\r\n"), StartsWith("HTTP/1.1 100 Continue\r\n"));
  }
  const int fd = Connect();
  SendAll(fd, "GET /healthz HTTP/1.1\r\n\r\n");
  const std::string in = ReadAnswers(fd);
  EXPECT_THAT(in, StartsWith("HTTP/1.1 503 "));
  EXPECT_THAT(in, HasSubstr("Retry-After: 1\r\n"));
  EXPECT_THAT(in, HasSubstr("too many connections: hookfan serves at most 2 at once; retry"));
  EXPECT_TRUE(ClosedWithin(fd, absl::Seconds(2)));
  EXPECT_EQ(server_->counts().refused.load(), 1u);
  EXPECT_EQ(server_->counts().evicted.load(), 0u);
}

TEST_F(HttpServerTest, HealthIsAnsweredWhileEveryWorkerWaitsForTheStore) {
  // The store stalls: webhooks wait with the workers, /healthz and /readyz do not.
  Start({.threads = 2});
  log_.Hold(true);
  std::vector<int> waiting;
  for (int i = 0; i < 4; ++i) {
    waiting.push_back(Connect());
    SendAll(waiting.back(), Post(absl::StrCat(R"({"action":"a)", i, R"("})")));
  }
  for (const char* path : {"/healthz", "/readyz"}) {
    const absl::Time start = absl::Now();
    const int fd = Connect();
    SendAll(fd, absl::StrCat("GET ", path, " HTTP/1.1\r\n\r\n"));
    EXPECT_THAT(ReadAnswers(fd), StartsWith("HTTP/1.1 200 ")) << path;
    EXPECT_LT(absl::Now() - start, absl::Milliseconds(500)) << path;
  }
  log_.Hold(false);
  for (int fd : waiting) EXPECT_THAT(ReadAnswers(fd), StartsWith("HTTP/1.1 202 "));
}

TEST_F(HttpServerTest, CompressedBombStopsAtTheBodyLimit) {
  // 32 KiB of gzip that inflates to 32 MiB is refused 413 at the 64 KiB
  // limit, having inflated no more than that.
  Start({});
  std::string zeros(1 << 20, '\0');
  z_stream z{};
  deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY);
  std::string gz(1 << 20, '\0');
  z.next_out = reinterpret_cast<Bytef*>(gz.data());
  z.avail_out = static_cast<uInt>(gz.size());
  for (int i = 0; i < 32; ++i) {
    z.next_in = reinterpret_cast<Bytef*>(zeros.data());
    z.avail_in = static_cast<uInt>(zeros.size());
    deflate(&z, i == 31 ? Z_FINISH : Z_NO_FLUSH);
  }
  gz.resize(z.total_out);
  deflateEnd(&z);
  ASSERT_LT(gz.size(), 64u * 1024);  // fits the wire limit; the inflated body does not
  const int fd = Connect();
  SendAll(fd, Post(gz, "Content-Encoding: gzip\r\n"));
  const std::string in = ReadAnswers(fd);
  EXPECT_THAT(in, StartsWith("HTTP/1.1 413 "));
  EXPECT_THAT(in, HasSubstr("once gzip-decoded"));
  SendAll(fd, Post(kBody, "Content-Encoding: br\r\n"));
  EXPECT_THAT(ReadAnswers(fd), HasSubstr("HTTP/1.1 415 "));
}

TEST_F(HttpServerTest, StopCutsASlowSenderAfterTheGrace) {
  // A sender trickling a body does not hold a drain past its grace.
  Start({.read_timeout_seconds = 60});
  const int fd = Connect();
  SendAll(fd, "POST /webhooks/applivery/tok HTTP/1.1\r\nContent-Length: 100\r\n\r\n{");
  // Let the server read those bytes (the connection is then mid-request).
  const int probe = Connect();
  SendAll(probe, "GET /healthz HTTP/1.1\r\n\r\n");
  ASSERT_THAT(ReadAnswers(probe), StartsWith("HTTP/1.1 200 "));
  const absl::Time start = absl::Now();
  server_->Stop(absl::Milliseconds(500));
  thread_.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(ClosedWithin(fd, absl::Seconds(1)));
}

}  // namespace
}  // namespace hookfan::ingress
