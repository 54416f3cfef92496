#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace hookfan::server {

// Where `--store` (with `--data-dir`) puts the events: the one reading of
// those flags, for `hookfan` and `hookfan backup` alike.
struct StoreLocation {
  enum class Kind { kSqlite, kNats };
  Kind kind = Kind::kSqlite;
  // kSqlite: the database file.
  std::string sqlite_path;
  // kSqlite: no --store was given, so the file is <data-dir>/hookfan.db
  // (the server creates the directory; a backup needs it to exist).
  bool in_data_dir = false;
};

// The file name of the embedded store inside --data-dir.
inline constexpr char kSqliteFileName[] = "hookfan.db";

// Reads `store`: "" (then <data_dir>/hookfan.db), "sqlite://PATH", or
// "nats://host:port[,...]" / "tls://..." (broker::ParseNatsServers reads
// the servers). Errors: kInvalidArgument
//   --store "redis://x" is neither sqlite://PATH nor nats://host:port[,host:port...]
//   --store "sqlite://" names no file
absl::StatusOr<StoreLocation> ParseStoreLocation(std::string_view store,
                                                 std::string_view data_dir);

}  // namespace hookfan::server
