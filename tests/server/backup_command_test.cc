// `hookfan backup`'s command line (server/backup.cc BackupCommand): where the
// store comes from, and the usage errors. The copy itself is covered
// end to end in tests/e2e/backup_e2e_test.cc.

#include <stdlib.h>

#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backup.h"

namespace hookfan::server {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Sets an environment variable for one scope, restoring what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class BackupCommandTest : public ::testing::Test {
 protected:
  BackupCommandTest()
      : no_store_env_("HOOKFAN_STORE", ""), no_data_dir_env_("HOOKFAN_DATA_DIR", "") {
    std::string dir = (std::filesystem::path(::testing::TempDir()) / "backup-XXXXXX").string();
    dir_ = mkdtemp(dir.data());
    missing_ = dir_ + "/missing";
  }
  ~BackupCommandTest() override { std::filesystem::remove_all(dir_); }

  // Runs `hookfan backup args...`; out_ and err_ hold what it printed.
  int Run(const std::vector<std::string>& args) {
    out_.str("");
    err_.str("");
    return BackupCommand(args, out_, err_);
  }

  // Empty counts as unset: the tests start from neither variable.
  ScopedEnv no_store_env_;
  ScopedEnv no_data_dir_env_;
  std::string dir_;
  std::string missing_;  // a data dir that does not exist
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(BackupCommandTest, StoreComesFromTheEnvironmentWithoutTheFlag) {
  ScopedEnv store("HOOKFAN_STORE", "nats://127.0.0.1:4222");
  EXPECT_EQ(Run({"--out", dir_ + "/b.db"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--store nats://127.0.0.1:4222 is NATS JetStream"));
}

TEST_F(BackupCommandTest, StoreFlagWinsOverTheEnvironment) {
  ScopedEnv store("HOOKFAN_STORE", "nats://127.0.0.1:4222");
  EXPECT_EQ(Run({"--store", "sqlite://" + missing_ + "/hookfan.db", "--out", dir_ + "/b.db"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("no hookfan store at " + missing_ + "/hookfan.db"));
}

TEST_F(BackupCommandTest, DataDirComesFromTheEnvironmentAndFlagWins) {
  ScopedEnv data_dir("HOOKFAN_DATA_DIR", missing_.c_str());
  EXPECT_EQ(Run({"--out", dir_ + "/b.db"}), 1);
  EXPECT_EQ(err_.str(), "hookfan backup: data dir " + missing_ + " does not exist\n");
  EXPECT_EQ(Run({"--data-dir", missing_ + "2", "--out", dir_ + "/b.db"}), 1);
  EXPECT_EQ(err_.str(), "hookfan backup: data dir " + missing_ + "2 does not exist\n");
}

TEST_F(BackupCommandTest, DataDirDefaultsToDotData) {
  // The test's working directory has no ./data.
  ASSERT_FALSE(std::filesystem::exists("./data"));
  EXPECT_EQ(Run({"--out", dir_ + "/b.db"}), 1);
  EXPECT_EQ(err_.str(), "hookfan backup: data dir ./data does not exist\n");
}

TEST_F(BackupCommandTest, FlagsTakeUnderscoresEqualsAndTheLastValue) {
  // As the server's own flags do.
  EXPECT_EQ(Run({"--data_dir=" + missing_ + "1", "--data-dir", missing_, "--out=" + dir_ + "/b"}),
            1);
  EXPECT_EQ(err_.str(), "hookfan backup: data dir " + missing_ + " does not exist\n");
}

TEST_F(BackupCommandTest, StoreThatIsNeitherSqliteNorNatsIsAUsageError) {
  EXPECT_EQ(Run({"--store", "redis://x", "--out", dir_ + "/b.db"}), 2);
  EXPECT_THAT(err_.str(), StartsWith("hookfan backup: --store \"redis://x\" is neither"));
}

TEST_F(BackupCommandTest, UsageErrorsExit2NamingTheProblemAndPrintTheUsage) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--data-dir", dir_}, "--out FILE is required"},
      {{"--out", "x.db", "--verbose"}, "unknown flag --verbose"},
      {{"--out", "x.db", "--verbose=2"}, "unknown flag --verbose"},
      {{"--out", "x.db", "extra"}, "unexpected argument extra"},
      {{"--out", "x.db", "--force=maybe"}, "--force takes no value"},
      {{"--out"}, "--out"},
  };
  for (const auto& [args, message] : cases) {
    EXPECT_EQ(Run(args), 2) << message;
    EXPECT_THAT(err_.str(), StartsWith("hookfan backup: "));
    EXPECT_THAT(err_.str(), HasSubstr(message));
    EXPECT_THAT(err_.str(), HasSubstr("Usage: hookfan backup"));
    EXPECT_EQ(out_.str(), "");
  }
}

TEST_F(BackupCommandTest, HelpPrintsTheUsageListingEveryFlag) {
  for (const char* help : {"--help", "-h", "-help"}) {
    EXPECT_EQ(Run({help}), 0) << help;
    EXPECT_THAT(out_.str(), StartsWith("Usage: hookfan backup")) << help;
    for (const char* flag : {"--data-dir", "--store", "--out", "--force"}) {
      EXPECT_THAT(out_.str(), HasSubstr(flag));
    }
    EXPECT_EQ(err_.str(), "");
  }
}

}  // namespace
}  // namespace hookfan::server
