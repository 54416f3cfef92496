#pragma once

// `hookfan backup`: the command line around broker::BackupSqlite
// (store/sqlite_backup.h).

#include <iosfwd>
#include <string>
#include <vector>


namespace hookfan::server {

// `hookfan backup [--data-dir DIR | --store sqlite://PATH] --out FILE
// [--force]`; `args` are the arguments after "backup". The store is found
// as the server finds it: flags, else HOOKFAN_DATA_DIR / HOOKFAN_STORE from
// the environment, else ./data. Writes one JSON line to `out` on success
// ({"path","bytes","first_sequence","last_sequence","seconds"}) and a
// message to `err` otherwise. Returns the exit code: 0 done, 1 the backup
// failed, 2 usage (bad flags, or a store that this command cannot back up:
// NATS JetStream).
int BackupCommand(const std::vector<std::string>& args, std::ostream& out,
                  std::ostream& err);

}  // namespace hookfan::server
