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

}  // namespace hookfan::broker
