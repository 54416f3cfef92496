#pragma once

// Raw HTTP/1.1 over a socket, for tests that must send what no HTTP client
// library would (half requests, smuggling shapes, pipelines, header bombs)
// and see exactly what comes back. Every wait has a deadline.

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace hookfan::testing {

// Closes every fd it holds when the test ends (or at Release).
struct Fds {
  ~Fds() { Release(); }
  int Add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  void Release() {
    for (int fd : fds) close(fd);
    fds.clear();
  }
  std::vector<int> fds;
};

// Sends all of `bytes`; false if the connection failed first.
inline bool SendAll(int fd, absl::string_view bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Receives what is there within 50 ms into `in`; false once the connection
// has ended (or failed).
inline bool ReceiveSome(int fd, std::string* in) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  if (poll(&p, 1, 50) <= 0) return true;
  char buf[16 * 1024];
  const ssize_t n = recv(fd, buf, sizeof(buf), 0);
  if (n <= 0) return false;
  in->append(buf, static_cast<size_t>(n));
  return true;
}

// How many whole answers (head and Content-Length body) `in` holds; an
// interim "100 Continue" is not one.
inline int WholeAnswers(absl::string_view in) {
  int whole = 0;
  size_t start = 0;
  for (size_t end; (end = in.find("\r\n\r\n", start)) != absl::string_view::npos;) {
    const absl::string_view head = in.substr(start, end + 4 - start);
    size_t length = 0;
    if (const size_t cl = head.find("Content-Length: "); cl != absl::string_view::npos) {
      const absl::string_view digits = head.substr(cl + 16, head.find("\r\n", cl) - cl - 16);
      if (!absl::SimpleAtoi(digits, &length)) return whole;
    }
    if (in.size() < end + 4 + length) break;
    if (!absl::StartsWith(head, "HTTP/1.1 100 ")) ++whole;
    start = end + 4 + length;
  }
  return whole;
}

// Reads until `count` whole answers have arrived, the connection ends, or
// `timeout` passes; returns what arrived.
inline std::string ReadAnswers(int fd, int count = 1, absl::Duration timeout = absl::Seconds(5)) {
  std::string in;
  for (const absl::Time deadline = absl::Now() + timeout;
       WholeAnswers(in) < count && absl::Now() < deadline && ReceiveSome(fd, &in);) {
  }
  return in;
}

// Reads until `needle` has arrived, the connection ends, or `timeout` passes.
inline std::string ReadUntil(int fd, absl::string_view needle,
                             absl::Duration timeout = absl::Seconds(5)) {
  std::string in;
  for (const absl::Time deadline = absl::Now() + timeout;
       !absl::StrContains(in, needle) && absl::Now() < deadline && ReceiveSome(fd, &in);) {
  }
  return in;
}

// True if the peer closes `fd` within `timeout` (what arrives is dropped).
inline bool ClosedWithin(int fd, absl::Duration timeout) {
  std::string ignored;
  for (const absl::Time deadline = absl::Now() + timeout; absl::Now() < deadline;) {
    if (!ReceiveSome(fd, &ignored)) return true;
    ignored.clear();
  }
  return false;
}

}  // namespace hookfan::testing
