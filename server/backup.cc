#include "server/backup.h"

#include <filesystem>
#include <ostream>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/store_location.h"
#include "store/sqlite_backup.h"

namespace hookfan::server {
namespace {

namespace fs = std::filesystem;

constexpr char kUsage[] =
    "Usage: hookfan backup [--data-dir DIR | --store sqlite://PATH] --out FILE "
    "[--force]\n"
    "Copies a consistent snapshot of the SQLite store to FILE while hookfan "
    "keeps running.\n"
    "  --data-dir DIR   the server's data dir; the store is DIR/hookfan.db "
    "(env HOOKFAN_DATA_DIR, default ./data)\n"
    "  --store URL      sqlite://PATH, as given to the server (env "
    "HOOKFAN_STORE); wins over --data-dir\n"
    "  --out FILE       where the copy goes; refused if it exists\n"
    "  --force          replace an existing FILE\n"
    "Prints {\"path\",\"bytes\",\"first_sequence\",\"last_sequence\","
    "\"seconds\"}. Restore: stop hookfan, remove hookfan.db-wal and "
    "hookfan.db-shm,\n"
    "copy FILE to <data-dir>/hookfan.db, start hookfan (README \"Backup and "
    "restore\").\n"
    "Exit status: 0 done, 1 the backup failed, 2 usage.\n";

}  // namespace

int BackupCommand(const std::vector<std::string>& args, std::ostream& out,
                  std::ostream& err) {
  auto usage_error = [&err](const std::string& message) {
    err << "hookfan backup: " << message << "\n" << kUsage;
    return 2;
  };
  // The store is found as the server finds it: flag, else environment
  // (an empty variable counts as unset), else ./data.
  std::string data_dir = "./data";
  std::string store;
  std::string out_path;
  broker::BackupOptions options;
  CLI::App app;
  app.set_help_flag("-h,--help");
  app.allow_extras();  // reported below, naming the first one
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  // The server's flags take underscores for dashes; so do these.
  app.add_option("--data-dir,--data_dir", data_dir)
      ->envname("HOOKFAN_DATA_DIR");
  app.add_option("--store", store)->envname("HOOKFAN_STORE");
  app.add_option("--out", out_path);
  // --force=true|false as well, as the server's boolean flags take them.
  app.add_flag("--force", options.overwrite)
      ->check(CLI::Validator(
          [](std::string& value) {
            return value == "true" || value == "false" ? "" : "takes no value";
          },
          ""));
  // CLI11 takes the arguments last first.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << kUsage;
    return 0;
  } catch (const CLI::ValidationError&) {
    return usage_error("--force takes no value");  // the only flag with a check
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }
  if (!app.remaining().empty()) {
    const std::string arg = app.remaining().front();
    if (!arg.starts_with("--")) {
      return usage_error("unexpected argument " + arg);
    }
    return usage_error("unknown flag " + arg.substr(0, arg.find('=')));
  }
  if (out_path.empty()) return usage_error("--out FILE is required");

  absl::StatusOr<StoreLocation> location = ParseStoreLocation(store, data_dir);
  if (!location.ok()) return usage_error(std::string(location.status().message()));
  if (location->kind == StoreLocation::Kind::kNats) {
    err << "hookfan backup: --store " << store
        << " is NATS JetStream, which hookfan backup cannot copy: back up its "
           "streams with NATS' own tools, e.g. `nats stream backup HOOKFAN "
           "DIR` for the events (the stream named by --nats-stream), and "
           "likewise HOOKFAN_DEAD (dead letters) and KV_HOOKFAN_DEDUP (dedup "
           "keys)\n";
    return 2;
  }
  if (location->in_data_dir) {
    std::error_code ec;
    if (!fs::is_directory(data_dir, ec)) {
      err << "hookfan backup: data dir " << data_dir
          << (fs::exists(data_dir, ec) ? " is not a directory\n"
                                       : " does not exist\n");
      return 1;
    }
  }
  const std::string& db_path = location->sqlite_path;

  absl::StatusOr<broker::BackupResult> result =
      broker::BackupSqlite(db_path, out_path, options);
  if (!result.ok()) {
    err << "hookfan backup: " << result.status().message();
    if (absl::IsAlreadyExists(result.status())) err << " (--force replaces it)";
    err << "\n";
    return 1;
  }
  out << nlohmann::json{{"path", result->path},
                        {"bytes", result->bytes},
                        {"first_sequence", result->first_sequence},
                        {"last_sequence", result->last_sequence},
                        {"seconds", absl::ToDoubleSeconds(result->elapsed)}}
             .dump()
      << "\n";
  return 0;
}

}  // namespace hookfan::server
