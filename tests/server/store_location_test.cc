#include "server/store_location.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::server {
namespace {

using ::testing::HasSubstr;

TEST(StoreLocationTest, NoStoreIsTheFileInTheDataDir) {
  absl::StatusOr<StoreLocation> location = ParseStoreLocation("", "/var/lib/hookfan");
  ASSERT_TRUE(location.ok());
  EXPECT_EQ(location->kind, StoreLocation::Kind::kSqlite);
  EXPECT_EQ(location->sqlite_path, "/var/lib/hookfan/hookfan.db");
  EXPECT_TRUE(location->in_data_dir);
}

TEST(StoreLocationTest, SqliteUrlNamesTheFileAndIgnoresTheDataDir) {
  absl::StatusOr<StoreLocation> location = ParseStoreLocation("sqlite:///tmp/x.db", "/data");
  ASSERT_TRUE(location.ok());
  EXPECT_EQ(location->sqlite_path, "/tmp/x.db");
  EXPECT_FALSE(location->in_data_dir);
}

TEST(StoreLocationTest, NatsAndTlsUrlsAreNats) {
  for (const char* store : {"nats://a:4222,b:4222", "tls://nats.example:4222"}) {
    absl::StatusOr<StoreLocation> location = ParseStoreLocation(store, "/data");
    ASSERT_TRUE(location.ok()) << store;
    EXPECT_EQ(location->kind, StoreLocation::Kind::kNats) << store;
  }
}

TEST(StoreLocationTest, AnythingElseIsRefusedNamingTheForms) {
  absl::StatusOr<StoreLocation> location = ParseStoreLocation("redis://x", "/data");
  EXPECT_TRUE(absl::IsInvalidArgument(location.status()));
  EXPECT_EQ(location.status().message(),
            "--store \"redis://x\" is neither sqlite://PATH nor nats://host:port[,host:port...]");
  EXPECT_THAT(ParseStoreLocation("sqlite://", "/data").status().message(),
              HasSubstr("names no file"));
}

}  // namespace
}  // namespace hookfan::server
