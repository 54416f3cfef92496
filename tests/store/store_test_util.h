#pragma once

// Helpers shared by the store tests.

#include <sqlite3.h>

#include <string>

#include "gtest/gtest.h"
#include "hookfan/v1/event.pb.h"

namespace hookfan::broker {

// A minimal valid event with this id.
inline v1::Event NewEvent(std::string id) {
  v1::Event event;
  event.set_id(std::move(id));
  event.set_type("test.thing.happened");
  return event;
}

// Runs `sql` on the database through a connection of its own.
inline void ExecRaw(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
}

// The one integer `sql` yields from the database at `path` (-1 if none).
inline int64_t QueryRawInt(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int64_t value = -1;
  if (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

}  // namespace hookfan::broker
