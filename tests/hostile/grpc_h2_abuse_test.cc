// Raw HTTP/2 abuse of the gRPC port (issue #23, items 1 to 3), against the
// real binary on loopback: the frames come from tests/hostile/h2_attack.py
// (python3-h2's HPACK encoder, frames written by hand), costs are read from
// /proc. Each test bounds its own time.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

using ::testing::HasSubstr;

constexpr long long kMiB = 1 << 20;

// One run of h2_attack.py: its stdout is read line by line, its stdin
// stays open until CloseInput (half-open holds its streams until then).
class AttackTool {
 public:
  explicit AttackTool(const std::vector<std::string>& args) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      std::vector<std::string> argv = {"/usr/bin/python3",
                                       std::string(HOOKFAN_SOURCE_DIR) + "/tests/hostile/h2_attack.py"};
      argv.insert(argv.end(), args.begin(), args.end());
      std::vector<char*> c_argv;
      for (std::string& a : argv) c_argv.push_back(a.data());
      c_argv.push_back(nullptr);
      execv(c_argv[0], c_argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    input_ = in[1];
    output_ = fdopen(out[0], "r");
  }
  ~AttackTool() {
    CloseInput();
    if (output_ != nullptr) fclose(output_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // The next line the tool printed, parsed; a discarded value at its end.
  nlohmann::json ReadResult() {
    char* line = nullptr;
    size_t cap = 0;
    nlohmann::json result;
    if (output_ != nullptr && getline(&line, &cap, output_) > 0) {
      result = nlohmann::json::parse(line, nullptr, false);
    }
    free(line);
    return result;
  }

  void CloseInput() {
    if (input_ >= 0) close(input_);
    input_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int input_ = -1;
  FILE* output_ = nullptr;
};

class GrpcH2AbuseTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }

  void Start(std::vector<std::string> args = {}) {
    hookfan_ = std::make_unique<HookfanProcess>(
        HookfanProcess::Options{
            .data_dir = dir_ + "/data", .extra_args = std::move(args), .measures_memory = true});
    ASSERT_TRUE(hookfan_->Start());
  }

  std::string Port() const { return absl::StrCat("--port=", hookfan_->grpc_port()); }
  long long Rss() const { return ProcStatusBytes(hookfan_->pid(), "VmRSS"); }

  // The end of the first 250 ms window, from now, in which the server
  // burnt less than 50 ms of CPU; absl::InfiniteFuture() if none ended
  // by `deadline`.
  absl::Time IdleFrom(absl::Time deadline) {
    do {
      const double before = ProcCpuSeconds(hookfan_->pid());
      absl::SleepFor(absl::Milliseconds(250));  // the measuring window
      if (ProcCpuSeconds(hookfan_->pid()) - before < 0.05) return absl::Now();
    } while (absl::Now() < deadline);
    return absl::InfiniteFuture();
  }

  bool Logged(const std::string& text) {
    for (const std::string& line : hookfan_->Lines()) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

  std::string dir_;
  std::unique_ptr<HookfanProcess> hookfan_;
};

// Issue: 10 s of rapid reset (HEADERS + request + RST_STREAM, CVE-2023-44487)
// took RSS +2.2 GB that stayed, both cores for ~30 s after the client left,
// and delayed a live subscriber by 33 s. Now a connection whose client
// cancels calls faster than --grpc-max-reset-rate is closed (the attacker reconnects at
// once, for 10 s): every webhook reaches a live subscriber within 1 s (3 s
// in the attack's first second, see below), the CPU is idle within 2 s of
// the client leaving, and 7 s after, RSS is within 64 MB of where it
// started.
TEST_F(GrpcH2AbuseTest, RapidResetLeavesLiveSubscribersServedAndMemoryReturned) {
  Start();
  const std::string webhook = ReadFixture("emm_device_enrolled.json");
  ASSERT_EQ(hookfan_->PostWebhook(webhook), 202);
  auto stub = hookfan_->NewStub();
  v1::SubscribeRequest from_earliest;
  from_earliest.mutable_start()->set_earliest(true);
  StreamCollector subscriber(stub.get(), from_earliest);
  ASSERT_TRUE(subscriber.WaitFor(1, absl::Seconds(10)));
  const long long rss_before = Rss();

  std::atomic<bool> attacking = true;
  nlohmann::json attack;
  absl::Time left;
  std::thread attacker([&] {
    AttackTool tool({"rapid-reset", Port(), "--seconds=10", "--reconnect"});
    attack = tool.ReadResult();
    left = absl::Now();
    attacking = false;
  });
  // Webhooks while the attack lasts, each timed to the subscriber. They
  // are paced at about 20 a second, a busy MDM's rate: this is load, not
  // a wait for anything (two cores hold the server, the attacker and us).
  // The first second is timed apart: until the first connection trips the
  // reset rate, gRPC 1.51's transport parses whole reads of streams ahead
  // of the count and a delivery can wait behind them (up to 1.6 s measured
  // in about 1 run in 6; docs/security.md). From then on, each is bounded.
  absl::Duration worst, worst_first_second;
  size_t delivered = 1;
  const absl::Time attack_start = absl::Now();
  while (attacking) {
    const absl::Time posted = absl::Now();
    ASSERT_EQ(hookfan_->PostWebhook(webhook), 202);
    ++delivered;
    EXPECT_TRUE(subscriber.WaitFor(delivered, absl::Seconds(5)));
    absl::Duration& slowest =
        posted - attack_start < absl::Seconds(1) ? worst_first_second : worst;
    slowest = std::max(slowest, absl::Now() - posted);
    absl::SleepFor(posted + absl::Milliseconds(50) - absl::Now());
  }
  attacker.join();
  std::cerr << "attack: " << attack.dump() << "; " << delivered - 1
            << " webhooks during it, the slowest delivered in " << absl::FormatDuration(worst)
            << " (in the attack's first second: " << absl::FormatDuration(worst_first_second)
            << ")\n";
  ASSERT_TRUE(attack.is_object());
  EXPECT_GT(attack["streams"].get<int64_t>(), 10000) << "the attack did not get going";
  EXPECT_GT(delivered, 5u);
  EXPECT_LT(worst, absl::Seconds(1) * kTimeFactor);
  EXPECT_LT(worst_first_second, absl::Seconds(3) * kTimeFactor);
  EXPECT_TRUE(Logged("--grpc-max-reset-rate"));

  // Idle within 2 s of the client leaving: a quiet window that ends by then
  // (give or take the window).
  const absl::Time idle_deadline = left + absl::Seconds(2) * kTimeFactor;
  const absl::Time idle = IdleFrom(idle_deadline);
  EXPECT_LE(idle, idle_deadline + absl::Milliseconds(250));
  std::cerr << "CPU idle " << absl::FormatDuration(idle - left) << " after the client left\n";
  long long rss = 0;
  EXPECT_TRUE(Eventually([&] { return (rss = Rss()) - rss_before <= 64 * kMiB * kMemoryFactor; },
                         absl::Seconds(7)))
      << "RSS " << rss / kMiB << " MiB, " << rss_before / kMiB << " MiB before the attack";
  std::cerr << "RSS " << rss / kMiB << " MiB, " << rss_before / kMiB << " MiB before, "
            << absl::FormatDuration(absl::Now() - left) << " after the client left\n";
  // The port still serves.
  ASSERT_EQ(hookfan_->PostWebhook(webhook), 202);
  EXPECT_TRUE(subscriber.WaitFor(delivered + 1, absl::Seconds(5)));
}

// Only cancelled calls count toward --grpc-max-reset-rate: a producer that
// publishes far faster on one connection, each call answered, is never cut.
TEST_F(GrpcH2AbuseTest, CallsThatFinishAreNotCountedAsResets) {
  Start({"--grpc-max-reset-rate=20"});
  auto stub = hookfan_->NewStub();
  const absl::Time start = absl::Now();
  constexpr int kCalls = 400;
  for (int i = 0; i < kCalls; ++i) {
    v1::PublishRequest request;
    request.set_type("internal.burst");
    v1::PublishResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::Status status = stub->Publish(&context, request, &response);
    ASSERT_TRUE(status.ok()) << "call " << i << ": " << status.error_message();
  }
  // Far over 20 a second, or the test proved nothing.
  EXPECT_LT(absl::Now() - start, absl::Seconds(kCalls / 20) / 2);
  EXPECT_FALSE(Logged("--grpc-max-reset-rate"));
}

// Issue: streams with HEADERS but no request message were not counted by
// --grpc-max-streams and no SETTINGS_MAX_CONCURRENT_STREAMS was advertised;
// 20,000 of them took +674 MB. Now the server advertises
// --grpc-max-concurrent-streams (100) and refuses streams past it (gRPC 1.51
// closes a connection that exceeds it): 20 connections that each try 1,000
// cost at most 64 MB.
TEST_F(GrpcH2AbuseTest, HalfOpenStreamsPastTheAdvertisedCapAreRefused) {
  Start();
  const long long rss_before = Rss();
  AttackTool tool({"half-open", Port(), "--connections=20", "--streams=1000"});
  const nlohmann::json result = tool.ReadResult();
  // The tool has each connection's answer to its PING (or its end): every
  // frame sent before has been handled, and the streams are held open.
  const long long rss = Rss();
  std::cerr << "half-open: " << result.dump() << "; RSS " << rss / kMiB << " MiB, "
            << rss_before / kMiB << " MiB before\n";
  ASSERT_TRUE(result.is_object());
  EXPECT_EQ(result["settings"].value("max_concurrent_streams", -1), 100);
  // Refused: RST_STREAM for each stream past the cap, or the connection
  // closed with every stream on it.
  const int kCap = 100;
  int refusing = 0;
  for (const nlohmann::json& connection : result["per_connection"]) {
    refusing += connection["closed"].get<bool>() || connection["refused"].get<int>() >= 1000 - kCap;
  }
  EXPECT_EQ(refusing, 20);
  EXPECT_LE(rss - rss_before, 64 * kMiB * kMemoryFactor);
  tool.CloseInput();
  // Within its limit a client is served as before.
  ASSERT_EQ(hookfan_->PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
  auto stub = hookfan_->NewStub();
  v1::SubscribeRequest from_earliest;
  from_earliest.mutable_start()->set_earliest(true);
  StreamCollector subscriber(stub.get(), from_earliest);
  EXPECT_TRUE(subscriber.WaitFor(1, absl::Seconds(10)));
}

// Issue: one huge header in CONTINUATION frames costs CPU that grows with
// the square of its size, and no setting of gRPC 1.51 bounds it (4 x 4 MiB
// in 16 KiB frames: 4.6 s of CPU on plain gRPC, 10 s over TLS). What bounds
// it is the deployment: with --grpc-tls-client-ca a client without a
// certificate from that CA ends in the handshake, before any HTTP/2 frame
// is read, so the same attack costs what four refused handshakes do.
TEST_F(GrpcH2AbuseTest, ContinuationHeadersNeedAClientCertificateUnderMutualTls) {
  Certificates certs(dir_);
  Start({"--grpc-tls-cert=" + certs.path("server.pem"), "--grpc-tls-key=" + certs.path("server.key"),
         "--grpc-tls-client-ca=" + certs.path("ca.pem")});
  const double cpu_before = ProcCpuSeconds(hookfan_->pid());
  AttackTool tool({"continuation", Port(), "--tls", "--connections=4", "--bytes=4194304",
                   "--frame=16384"});
  const nlohmann::json result = tool.ReadResult();
  const double cpu = ProcCpuSeconds(hookfan_->pid()) - cpu_before;
  std::cerr << "continuation over TLS without a client certificate: " << cpu
            << " s of server CPU; " << result.dump() << "\n";
  ASSERT_TRUE(result.is_object());
  ASSERT_EQ(result["connections"].size(), 4u);
  for (const nlohmann::json& connection : result["connections"]) {
    // Refused in the handshake (TLS 1.2), or right after it (TLS 1.3: the
    // client's side ends first): the server never spoke HTTP/2.
    EXPECT_TRUE(connection.value("settings", nlohmann::json::object()).empty()) << connection;
    EXPECT_FALSE(connection.value("answered", false)) << connection;
  }
  EXPECT_LE(cpu, 1.0 * kTimeFactor);
}

// Issue: a Publish whose length prefix declares 100 MB waits silently for
// the bytes and, cut short by END_STREAM, was answered UNIMPLEMENTED with
// no message. gRPC 1.51's HTTP/2 layer reads the prefix but checks the size
// only once the whole message is in (chttp2 frame_data.cc, message_size
// filter), and never shows a partial message to the server's code, so the
// answer cannot come before the stream ends or the bytes arrive. When it
// ends, the answer says what was missing and names the limit and its flag.
TEST_F(GrpcH2AbuseTest, CutShortPublishIsAnsweredNamingTheLimit) {
  Start();
  AttackTool tool({"huge-prefix", Port(), "--declared=104857600", "--wait-seconds=0.5"});
  const nlohmann::json result = tool.ReadResult();
  std::cerr << "huge-prefix: " << result.dump() << "\n";
  ASSERT_TRUE(result.is_object());
  EXPECT_EQ(result.value("grpc_status", ""), "3");  // INVALID_ARGUMENT
  const std::string message = result.value("grpc_message", "");
  EXPECT_THAT(message, HasSubstr("/hookfan.v1.EventBroker/Publish: no whole, valid request"));
  EXPECT_THAT(message, HasSubstr("at most 5242880 bytes (--max-event-bytes plus 4 MiB)"));
  // At once when the stream ends; before it, only if gRPC ever checks.
  if (!result.value("answered_before_end", false)) {
    EXPECT_LT(result.value("seconds_after_end", 99.0), 1.0 * kTimeFactor);
  }
  EXPECT_FALSE(result.value("closed", true));  // the connection serves on
}

}  // namespace
}  // namespace hookfan::testing
