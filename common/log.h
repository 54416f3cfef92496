#pragma once

// Structured logging: one JSON object per line on stderr,
//   {"time":"…","level":"info","msg":"…", <fields>}
// Thread-safe; each line is written with one write(2).

#include <string_view>

#include "nlohmann/json.hpp"

namespace hookfan::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Lines below `level` are dropped. Default kInfo.
void SetLevel(Level level);
// Parses "debug", "info", "warn", "error"; false for anything else.
bool ParseLevel(std::string_view name, Level* level);

void Write(Level level, std::string_view msg,
           const nlohmann::json& fields = nlohmann::json::object());

inline void Debug(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) { Write(Level::kDebug, msg, f); }
inline void Info(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) { Write(Level::kInfo, msg, f); }
inline void Warn(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) { Write(Level::kWarn, msg, f); }
inline void Error(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) { Write(Level::kError, msg, f); }

}  // namespace hookfan::log
