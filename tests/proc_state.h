#pragma once

// The scheduler state of a thread as /proc shows it, for tests that wait
// until a thread is parked or stopped.

#include <fcntl.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <string_view>

namespace hookfan::testing {

// The state letter ('R' running, 'S' sleeping, 'T' stopped, …) in the
// /proc stat file at `stat_path` (e.g. "/proc/self/task/<tid>/stat"), or
// nullopt when the thread has ended or the file cannot be read. Read with
// read(2): a thread that ends mid-read makes it fail with ESRCH, which an
// ifstream would throw as ios_failure.
inline std::optional<char> ProcState(const std::string& stat_path) {
  const int fd = open(stat_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buffer[1024];
  const ssize_t n = read(fd, buffer, sizeof(buffer));
  close(fd);
  if (n <= 0) return std::nullopt;
  const std::string_view stat(buffer, static_cast<size_t>(n));
  // The state follows the command name, which ends at the last ')'.
  const size_t paren = stat.rfind(')');
  if (paren == std::string_view::npos || paren + 2 >= stat.size()) return std::nullopt;
  return stat[paren + 2];
}

}  // namespace hookfan::testing
