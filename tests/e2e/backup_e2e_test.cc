// End-to-end: `hookfan backup` of a running hookfan's SQLite store, and the
// restore documented in README "Backup and restore".

#include <httplib.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

namespace fs = std::filesystem;

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

std::string Backup(const std::string& args) {
  return std::string(HOOKFAN_BINARY) + " backup " + args;
}

// Files in `dir` whose name contains ".tmp-": what a failed backup must not
// leave behind.
std::vector<std::string> TempFiles(const std::string& dir) {
  std::vector<std::string> found;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.find(".tmp-") != std::string::npos) found.push_back(name);
  }
  return found;
}

// The documented restore: with hookfan stopped, drop the old -wal and -shm
// (they belong to the old file) and copy the backup in as hookfan.db.
void Restore(const std::string& backup, const std::string& data_dir) {
  fs::remove(data_dir + "/hookfan.db-wal");
  fs::remove(data_dir + "/hookfan.db-shm");
  fs::copy_file(backup, data_dir + "/hookfan.db",
                fs::copy_options::overwrite_existing);
}

v1::SubscribeRequest FromEarliest() {
  v1::SubscribeRequest r;
  r.mutable_start()->set_earliest(true);
  return r;
}

// Acks every delivery of `group` from the start until `n` were acked.
void ConsumeAndAck(v1::EventBroker::Stub* stub, const std::string& group,
                   size_t n) {
  grpc::ClientContext ctx;
  auto stream = stub->Consume(&ctx);
  v1::ConsumeRequest open;
  open.mutable_open()->set_group(group);
  open.mutable_open()->mutable_start()->set_earliest(true);
  open.mutable_open()->set_max_in_flight(16);
  ASSERT_TRUE(stream->Write(open));
  size_t acked = 0;
  v1::ConsumeResponse response;
  while (acked < n && stream->Read(&response)) {
    v1::ConsumeRequest ack;
    for (const v1::Delivery& d : response.deliveries()) {
      ack.mutable_ack()->add_sequences(d.event().sequence());
      ++acked;
    }
    ASSERT_TRUE(stream->Write(ack));
  }
  ASSERT_EQ(acked, n);
  // Half-close and wait for the server's status: it reads the acks before
  // the close, in order. (A cancel could overtake the last ack: under ASan
  // the ack floor then stayed 0.)
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// The group's ack floor, once it reached `floor` (or whatever it is after
// a few seconds).
uint64_t AckFloor(v1::EventBroker::Stub* stub, const std::string& group,
                  uint64_t floor) {
  uint64_t seen = 0;
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext ctx;
    v1::ListGroupsResponse groups;
    if (stub->ListGroups(&ctx, {}, &groups).ok()) {
      for (const v1::GroupInfo& g : groups.groups()) {
        if (g.name() == group) seen = g.ack_floor();
      }
    }
    if (seen >= floor) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return seen;
}

TEST(BackupE2ETest, BackupUnderLoadRestoresEveryEventAckedBeforeItStarted) {
  // Issue #9's acceptance: a backup taken while senders post restores to a
  // store that replays every event acknowledged before the backup started,
  // with contiguous sequences and the groups' acks, and goes on from there.
  std::string data_dir = MakeTempDir();
  HookfanProcess hookfan({.data_dir = data_dir});
  ASSERT_TRUE(hookfan.Start());
  auto stub = hookfan.NewStub();
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(hookfan.PostWebhook(ReadFixture("emm_device_enrolled.json")),
              202);
  }
  ConsumeAndAck(stub.get(), "billing", 10);
  ASSERT_EQ(AckFloor(stub.get(), "billing", 10), 10u);

  Senders senders(hookfan);
  // The backup starts under load.
  ASSERT_TRUE(Eventually([&] { return senders.Acked().size() > 200; },
                         absl::Seconds(30)));
  std::set<std::string> acked_before = senders.Acked();
  std::string out = MakeTempDir() + "/hookfan-backup.db";
  CommandResult backup =
      RunCommand(Backup("--data-dir " + data_dir + " --out " + out));
  // Webhooks are still taken once it is done.
  const size_t acked_by_then = senders.Acked().size();
  EXPECT_TRUE(Eventually([&] { return senders.Acked().size() > acked_by_then; },
                         absl::Seconds(10)))
      << "posting stopped";
  std::set<std::string> acked_all = senders.Stop();
  ASSERT_EQ(backup.exit_code, 0) << backup.output;
  ASSERT_GT(acked_before.size(), 50u) << "too little load to mean anything";
  ASSERT_GT(acked_all.size(), acked_before.size()) << "posting stopped";

  nlohmann::json result = nlohmann::json::parse(backup.output, nullptr, false);
  ASSERT_TRUE(result.is_object()) << backup.output;
  EXPECT_EQ(result["path"], out);
  EXPECT_EQ(result["bytes"].get<int64_t>(),
            static_cast<int64_t>(fs::file_size(out)));
  EXPECT_EQ(result["first_sequence"], 1);
  uint64_t last = result["last_sequence"].get<uint64_t>();
  EXPECT_GE(last, 10 + acked_before.size());
  EXPECT_GE(result["seconds"].get<double>(), 0.0);
  EXPECT_THAT(ReadFile(out), StartsWith("SQLite format 3"));
  EXPECT_THAT(TempFiles(fs::path(out).parent_path()), IsEmpty());
  ASSERT_EQ(WEXITSTATUS(hookfan.Terminate()), 0);

  std::string restored_dir = MakeTempDir();
  Restore(out, restored_dir);
  HookfanProcess restored({.data_dir = restored_dir});
  ASSERT_TRUE(restored.Start());
  auto restored_stub = restored.NewStub();
  StreamCollector replay(restored_stub.get(), FromEarliest());
  ASSERT_TRUE(replay.WaitFor(last));
  // New events continue the sequence. The new one closes the replay: an
  // event past the backup's last_sequence would come before it.
  httplib::Client c("127.0.0.1", restored.http_port());
  auto res =
      c.Post(restored.webhook_path(), ReadFixture("emm_device_enrolled.json"),
             "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 202);
  const nlohmann::json posted = nlohmann::json::parse(res->body);
  EXPECT_EQ(posted["sequence"], last + 1);
  ASSERT_TRUE(replay.WaitFor(last + 1));
  std::vector<v1::Event> events = replay.events();
  ASSERT_EQ(events.size(), last + 1)
      << "more events than the backup's last_sequence";
  EXPECT_EQ(events.back().id(), posted["id"].get<std::string>());
  std::set<std::string> ids;
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].sequence(), i + 1) << "gap or duplicate at " << i;
    ids.insert(events[i].id());
  }
  for (const std::string& id : acked_before)
    EXPECT_TRUE(ids.contains(id)) << id;

  // The group kept its acks.
  EXPECT_EQ(AckFloor(restored_stub.get(), "billing", 10), 10u);
}

TEST(BackupE2ETest, RestoreInPlaceAfterACrashDropsTheOldWal) {
  // The documented restore over a data dir that hookfan was SIGKILLed in
  // (its -wal still holds later events) brings back the backup's state.
  std::string data_dir = MakeTempDir();
  HookfanProcess hookfan({.data_dir = data_dir});
  ASSERT_TRUE(hookfan.Start());
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(hookfan.PostWebhook(ReadFixture("emm_device_enrolled.json")),
              202);
  }
  std::string out = MakeTempDir() + "/backup.db";
  CommandResult backup = RunCommand(
      Backup("--store sqlite://" + data_dir + "/hookfan.db --out=" + out));
  ASSERT_EQ(backup.exit_code, 0) << backup.output;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(hookfan.PostWebhook(ReadFixture("emm_device_enrolled.json")),
              202);
  }
  hookfan.Kill();
  ASSERT_TRUE(fs::exists(data_dir + "/hookfan.db-wal"));

  Restore(out, data_dir);
  ASSERT_TRUE(hookfan.Start());
  auto stub = hookfan.NewStub();
  StreamCollector replay(stub.get(), FromEarliest());
  ASSERT_TRUE(replay.WaitFor(5));
  // A new event closes the replay: one the old WAL held past the backup
  // would come before it, and take its sequence.
  httplib::Client c("127.0.0.1", hookfan.http_port());
  auto res =
      c.Post(hookfan.webhook_path(), ReadFixture("emm_device_enrolled.json"),
             "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 202);
  const nlohmann::json posted = nlohmann::json::parse(res->body);
  EXPECT_EQ(posted["sequence"], 6);
  ASSERT_TRUE(replay.WaitFor(6));
  std::vector<v1::Event> events = replay.events();
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[5].id(), posted["id"].get<std::string>());
  EXPECT_EQ(events[5].sequence(), 6u);
}

TEST(BackupE2ETest, ExistingOutIsRefusedWithoutForce) {
  // An existing FILE is left alone unless --force, which replaces it.
  std::string data_dir = MakeTempDir();
  HookfanProcess hookfan({.data_dir = data_dir});
  ASSERT_TRUE(hookfan.Start());
  ASSERT_EQ(hookfan.PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
  std::string out_dir = MakeTempDir();
  std::string out = out_dir + "/backup.db";
  std::ofstream(out) << "precious";

  CommandResult refused =
      RunCommand(Backup("--data-dir " + data_dir + " --out " + out));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output, HasSubstr(out + " exists (--force replaces it)"));
  EXPECT_EQ(ReadFile(out), "precious");

  CommandResult forced = RunCommand(
      Backup("--data-dir " + data_dir + " --out " + out + " --force"));
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_THAT(ReadFile(out), StartsWith("SQLite format 3"));
  EXPECT_EQ(nlohmann::json::parse(forced.output)["last_sequence"], 1);
  EXPECT_THAT(TempFiles(out_dir), IsEmpty());
}

TEST(BackupE2ETest, MissingDataDirOrStoreIsAClearError) {
  // Nothing to back up: exit 1 naming what is missing, no file written.
  std::string out_dir = MakeTempDir();
  CommandResult no_dir = RunCommand(
      Backup("--data-dir " + out_dir + "/nope --out " + out_dir + "/b.db"));
  EXPECT_EQ(no_dir.exit_code, 1);
  EXPECT_THAT(no_dir.output,
              HasSubstr("data dir " + out_dir + "/nope does not exist"));

  std::string empty_dir = MakeTempDir();
  CommandResult no_store = RunCommand(
      Backup("--data-dir " + empty_dir + " --out " + out_dir + "/b.db"));
  EXPECT_EQ(no_store.exit_code, 1);
  EXPECT_THAT(no_store.output,
              HasSubstr("no hookfan store at " + empty_dir + "/hookfan.db"));
  EXPECT_FALSE(fs::exists(empty_dir + "/hookfan.db"));

  std::string not_db = empty_dir + "/hookfan.db";
  std::ofstream(not_db) << std::string(4096, 'x');
  CommandResult bad = RunCommand(
      Backup("--data-dir " + empty_dir + " --out " + out_dir + "/b.db"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("file is not a database"));
  EXPECT_FALSE(fs::exists(out_dir + "/b.db"));
  EXPECT_THAT(TempFiles(out_dir), IsEmpty());
}

TEST(BackupE2ETest, NatsStoreIsRefusedPointingAtNatsBackup) {
  // JetStream is not a file: the command says so and names NATS' tool.
  std::string out_dir = MakeTempDir();
  CommandResult r = RunCommand(
      Backup("--store nats://127.0.0.1:4222 --out " + out_dir + "/b.db"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("hookfan backup cannot copy"));
  EXPECT_THAT(r.output, HasSubstr("nats stream backup"));
  EXPECT_FALSE(fs::exists(out_dir + "/b.db"));
}

TEST(BackupE2ETest, BadUsageExits2WithTheUsage) {
  // No --out, an unknown flag: exit 2 and the usage; --help exits 0, and
  // the server's --help names the subcommand.
  EXPECT_THAT(RunCommand(std::string(HOOKFAN_BINARY) + " --help").output,
              HasSubstr("hookfan backup --data-dir DIR --out FILE"));
  CommandResult no_out = RunCommand(Backup("--data-dir " + MakeTempDir()));
  EXPECT_EQ(no_out.exit_code, 2);
  EXPECT_THAT(no_out.output, HasSubstr("--out FILE is required"));
  EXPECT_THAT(no_out.output, HasSubstr("Usage: hookfan backup"));
  CommandResult unknown = RunCommand(Backup("--out x.db --verbose"));
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.output, HasSubstr("unknown flag --verbose"));
  CommandResult help = RunCommand(Backup("--help"));
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.output, HasSubstr("Usage: hookfan backup"));
}

}  // namespace
}  // namespace hookfan::testing
