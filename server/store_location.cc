#include "server/store_location.h"

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace hookfan::server {

absl::StatusOr<StoreLocation> ParseStoreLocation(std::string_view store,
                                                 std::string_view data_dir) {
  constexpr std::string_view kSqlite = "sqlite://";
  if (store.starts_with("nats://") || store.starts_with("tls://")) {
    return StoreLocation{.kind = StoreLocation::Kind::kNats};
  }
  if (store.empty()) {
    return StoreLocation{
        .sqlite_path = (std::filesystem::path(data_dir) / kSqliteFileName).string(),
        .in_data_dir = true};
  }
  if (store.starts_with(kSqlite)) {
    if (store.size() == kSqlite.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--store \"", absl::string_view(store.data(), store.size()),
                       "\" names no file"));
    }
    return StoreLocation{.sqlite_path = std::string(store.substr(kSqlite.size()))};
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--store \"", absl::string_view(store.data(), store.size()),
                   "\" is neither sqlite://PATH nor nats://host:port[,host:port...]"));
}

}  // namespace hookfan::server
