#include "ingress/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/executor.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/sync.h"
#include "ingress/content_encoding.h"
#include "ingress/http_request_parser.h"

namespace hookfan::ingress {
namespace {

constexpr uint64_t kListenerId = 0;
constexpr uint64_t kWakeId = 1;
constexpr int kMaxOpenRefusals = 64;
// A refused connection gets this long for its handshake and its head.
constexpr int64_t kRefusalDeadlineMs = 2000;
// After an answer that closes the connection, what the sender still sends
// is read and dropped for this long, so the close does not turn into a
// reset that destroys the answer before the sender reads it.
constexpr int64_t kLingerMs = 1000;
constexpr size_t kMaxLingerBytes = 1 << 20;
// The client's Certificate message and chain. OpenSSL's default (100 KiB)
// lets a client with no valid credential make every handshake parse ~90
// junk certificates: 10-40x the CPU of a plain refusal. 32 KiB holds a
// leaf and several intermediates; a longer message is refused from the
// length in its header, before it is parsed.
constexpr long kMaxClientCertificateBytes = 32 * 1024;
constexpr int kMaxClientChainDepth = 8;
// Sessions the server keeps for resumption by session id (TLS 1.2 clients
// without tickets; tickets and TLS 1.3 need no server memory), oldest
// dropped first: ~10 KiB each with a client certificate, so OpenSSL's
// default of 20,480 could hold 200 MiB.
constexpr long kSessionCacheSize = 1024;

enum class Phase {
  kHandshake,  // TLS handshake
  kIdle,       // waiting for the first byte of a request
  kReading,    // a request has begun; reading until it is whole
  kHandling,   // a worker has the request
  kWriting,    // writing an answer
  kLinger,     // answered and half-closed; dropping what still comes
};

struct Connection {
  uint64_t id = 0;
  int fd = -1;
  SSL* ssl = nullptr;
  std::string peer;
  Phase phase = Phase::kIdle;
  bool refused = false;        // over the cap: its request is answered 503
  bool close_after_write = false;
  bool read_eof = false;
  bool sent_continue = false;  // "100 Continue" sent for the current request
  bool tls_wants_write = false;  // the last TLS call waits for writability
  size_t requests = 0;
  size_t lingered = 0;
  int64_t deadline_ms = 0;     // 0: none
  uint32_t events = 0;         // epoll interest now
  std::string in;              // received, not yet parsed
  std::string out;             // to send, from out_pos
  size_t out_pos = 0;
  HttpRequestParser parser;
  std::list<uint64_t>::iterator evictable;  // into Loop::evictable_, when in it
  bool in_evictable = false;

  explicit Connection(HttpRequestParser::Limits limits) : parser(limits) {}
};

// A worker's answer, handed back to the loop thread.
struct Completion {
  uint64_t id;
  HttpAnswer answer;
  std::string content_type;
  bool head_only = false;  // a HEAD request: the answer's head only
};

std::string ErrorJson(int status, absl::string_view message) {
  return ErrorAnswer(status, message).body;
}

}  // namespace

class HttpServer::Loop {
 public:
  explicit Loop(HttpServer* server)
      : server_(server),
        options_(server->options_),
        counts_(server->counts_.get()),
        limits_{.max_head_bytes = options_.max_head_bytes,
                .max_headers = options_.max_headers,
                .max_body_bytes = server->handler_->max_body_bytes()},
        // Bytes read ahead of the parser: one request whole plus some
        // pipelined bytes. Past it, reading pauses until the parser catches up.
        read_cap_(limits_.max_head_bytes + limits_.max_body_bytes + 64 * 1024) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0) {
      log::Error("cannot set up the HTTP event loop", {{"error", strerror(errno)}});
      std::abort();
    }
    epoll_event ev{.events = EPOLLIN, .data = {.u64 = kWakeId}};
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  }

  ~Loop() {
    workers_.reset();  // runs what is queued; completions then go nowhere
    for (auto& [id, c] : connections_) CloseSocket(*c);
    if (listen_fd_ >= 0) close(listen_fd_);
    close(wake_fd_);
    close(epoll_fd_);
  }

  absl::Status Bind(const std::string& host, int port, int* bound_port);
  void Run();
  void Stop(absl::Duration grace) {
    {
      MutexLock lock(&mu_);
      if (stop_requested_) return;
      stop_requested_ = true;
      stop_grace_ms_ = absl::ToInt64Milliseconds(grace);
    }
    Wake();
  }

 private:
  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }

  void Accept();
  void Add(int fd, const sockaddr_storage& addr, bool refused);
  void OnEvent(Connection& c, uint32_t events);
  // Moves a connection on as far as it goes without waiting: writes what
  // is queued, reads, parses and answers requests in order. `c` may be
  // closed (and freed) when it returns. Not recursive, so any number of
  // pipelined requests cost no stack.
  void Drive(Connection& c);
  // The TLS handshake; false when it closed `c`.
  bool Handshake(Connection& c);
  // Reads what the socket has into c.in. False when the connection broke.
  bool ReadInput(Connection& c);
  enum class Step { kProgress, kWait, kClosed };
  // Parses c.in and acts on what it finds: at most one request.
  Step ProcessOne(Connection& c);
  void Route(Connection& c, HttpRequest request);
  void Dispatch(Connection& c, HttpRequest request);
  // Queues an answer (Drive writes it).
  void Answer(Connection& c, int status, std::string body, absl::string_view content_type,
              const std::vector<std::pair<std::string, std::string>>& headers, bool close,
              bool head_only = false);
  void AnswerError(Connection& c, int status, absl::string_view message, bool close) {
    Answer(c, status, ErrorJson(status, message), "application/json", {}, close);
  }
  void AnswerRefusal(Connection& c) {
    Answer(c, 503,
           ErrorJson(503, absl::StrCat("too many connections: hookfan serves at most ",
                                       options_.max_connections, " at once; retry")),
           "application/json", {{"Retry-After", "1"}}, /*close=*/true);
  }
  // Writes c.out: kProgress when all of it is written.
  Step Flush(Connection& c);
  void Linger(Connection& c);
  void OnCompletions();
  void OnStopRequested();
  void ExpireDeadlines();
  bool EvictOne();

  void SetDeadline(Connection& c, int64_t deadline_ms);
  void SetEvictable(Connection& c, bool evictable);
  void SetInterest(Connection& c);
  void Close(Connection& c);
  void CloseSocket(Connection& c);
  Connection* Find(uint64_t id) {
    auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : it->second.get();
  }

  // Raw I/O through TLS or not: bytes moved, 0 at end of stream, -1 on an
  // error, or -2 when the call would block.
  ssize_t Recv(Connection& c, char* buf, size_t n);
  ssize_t Send(Connection& c, const char* buf, size_t n);

  HttpServer* const server_;
  const Options& options_;
  Counts* const counts_;
  const HttpRequestParser::Limits limits_;
  const size_t read_cap_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int listen_fd_ = -1;
  bool accepting_ = true;
  int64_t accept_paused_until_ms_ = 0;
  int64_t emfile_logged_ms_ = 0;
  uint64_t next_id_ = 2;
  int open_refusals_ = 0;
  int handling_ = 0;  // requests with a worker
  bool stopping_ = false;
  int64_t stop_deadline_ms_ = 0;
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::set<std::pair<int64_t, uint64_t>> deadlines_;  // (deadline, id)
  std::list<uint64_t> evictable_;  // idle or handshaking, oldest first
  std::unique_ptr<Executor> workers_ = std::make_unique<Executor>(options_.threads);

  Mutex mu_;
  std::vector<Completion> completions_ ABSL_GUARDED_BY(mu_);
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  int64_t stop_grace_ms_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::Status HttpServer::Loop::Bind(const std::string& host, int port, int* bound_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints,
                           &result);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", host, ":", port, ": ", gai_strerror(rc)));
  }
  int fd = -1;
  std::string error = "no address";
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    // The backlog holds bursts of new connections while the loop is busy;
    // the kernel caps it at net.core.somaxconn.
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        listen(fd, std::max(options_.max_connections, 128)) == 0) {
      break;
    }
    error = strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(result);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", host, ":", port, ": ", error));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *bound_port = ntohs(addr.ss_family == AF_INET6
                          ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                          : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  listen_fd_ = fd;
  epoll_event ev{.events = EPOLLIN, .data = {.u64 = kListenerId}};
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  return absl::OkStatus();
}

void HttpServer::Loop::Run() {
  epoll_event events[256];
  while (true) {
    const int64_t now = SteadyNowMs();
    if (stopping_ && (connections_.empty() || now >= stop_deadline_ms_) && handling_ == 0) break;
    int64_t wait_ms = 1000;
    if (!deadlines_.empty()) wait_ms = std::clamp<int64_t>(deadlines_.begin()->first - now, 0, wait_ms);
    if (stopping_ && now < stop_deadline_ms_) {
      wait_ms = std::clamp<int64_t>(stop_deadline_ms_ - now, 0, wait_ms);
    }
    if (!accepting_) wait_ms = std::clamp<int64_t>(accept_paused_until_ms_ - now, 0, wait_ms);
    const int n = epoll_wait(epoll_fd_, events, 256, static_cast<int>(wait_ms));
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == kListenerId) {
        Accept();
      } else if (id == kWakeId) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = read(wake_fd_, &count, sizeof(count));
        OnCompletions();
        OnStopRequested();
      } else if (Connection* c = Find(id)) {
        OnEvent(*c, events[i].events);
      }
    }
    ExpireDeadlines();
    if (!accepting_ && !stopping_ && SteadyNowMs() >= accept_paused_until_ms_) {
      accepting_ = true;
      epoll_event ev{.events = EPOLLIN, .data = {.u64 = kListenerId}};
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
      Accept();
    }
    if (stopping_ && SteadyNowMs() >= stop_deadline_ms_) {
      // The grace is over: whatever is not with a worker is cut.
      std::vector<uint64_t> ids;
      for (auto& [id, c] : connections_) {
        if (c->phase != Phase::kHandling) ids.push_back(id);
      }
      for (uint64_t id : ids) Close(*Find(id));
    }
  }
  // Answers of requests that were with a worker at the end are written if
  // the socket takes them at once; then everything closes.
  std::vector<uint64_t> ids;
  for (auto& [id, c] : connections_) ids.push_back(id);
  for (uint64_t id : ids) Close(*Find(id));
}

void HttpServer::Loop::OnStopRequested() {
  int64_t grace_ms;
  {
    MutexLock lock(&mu_);
    if (!stop_requested_ || stopping_) return;
    grace_ms = stop_grace_ms_;
  }
  stopping_ = true;
  stop_deadline_ms_ = SteadyNowMs() + grace_ms;
  if (accepting_) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
  accepting_ = false;
  close(listen_fd_);
  listen_fd_ = -1;
  // Idle and handshaking connections have nothing to finish.
  std::vector<uint64_t> idle(evictable_.begin(), evictable_.end());
  for (uint64_t id : idle) Close(*Find(id));
  for (auto& [id, c] : connections_) {
    if (c->phase == Phase::kReading && c->deadline_ms > stop_deadline_ms_) {
      SetDeadline(*c, stop_deadline_ms_);
    }
  }
}

void HttpServer::Loop::Accept() {
  for (int i = 0; i < 256 && accepting_; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of file descriptors: an idle connection makes room, or
        // accepting pauses briefly (the listener would wake the loop in a
        // busy circle otherwise). New connections wait in the backlog.
        if (EvictOne()) continue;
        const int64_t now = SteadyNowMs();
        if (now - emfile_logged_ms_ > 10000) {
          emfile_logged_ms_ = now;
          log::Warn("HTTP: cannot accept a connection; pausing accepts for 100 ms",
                    {{"error", strerror(errno)}});
        }
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
        accepting_ = false;
        accept_paused_until_ms_ = now + 100;
      }
      return;
    }
    bool refused = false;
    if (counts_->open.load(std::memory_order_relaxed) >= options_.max_connections &&
        !EvictOne()) {
      counts_->refused.fetch_add(1, std::memory_order_relaxed);
      if (open_refusals_ >= kMaxOpenRefusals) {
        close(fd);
        continue;
      }
      refused = true;
    }
    Add(fd, addr, refused);
  }
}

void HttpServer::Loop::Add(int fd, const sockaddr_storage& addr, bool refused) {
  int one = 1;
  // Answers are written as soon as they are whole; Nagle would hold them
  // for the sender's delayed ACK.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto owned = std::make_unique<Connection>(limits_);
  Connection& c = *owned;
  c.id = next_id_++;
  c.fd = fd;
  c.refused = refused;
  char text[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, text, sizeof(text));
  } else if (addr.ss_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
      inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], text, sizeof(text));
    } else {
      inet_ntop(AF_INET6, &a6->sin6_addr, text, sizeof(text));
    }
  }
  c.peer = text;
  if (refused) {
    ++open_refusals_;
  } else {
    counts_->open.fetch_add(1, std::memory_order_relaxed);
  }
  const int64_t now = SteadyNowMs();
  if (server_->ssl_ctx_ != nullptr) {
    c.ssl = SSL_new(server_->ssl_ctx_);
    if (c.ssl == nullptr || SSL_set_fd(c.ssl, fd) != 1) {
      ERR_clear_error();
      if (c.ssl != nullptr) SSL_free(c.ssl);
      c.ssl = nullptr;
      close(fd);
      if (refused) --open_refusals_; else counts_->open.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    SSL_set_accept_state(c.ssl);
    c.phase = Phase::kHandshake;
  } else {
    c.phase = Phase::kIdle;
  }
  connections_.emplace(c.id, std::move(owned));
  if (refused) {
    SetDeadline(c, now + kRefusalDeadlineMs);
  } else if (c.phase == Phase::kHandshake) {
    SetDeadline(c, now + int64_t{options_.handshake_timeout_seconds} * 1000);
    SetEvictable(c, true);
  } else {
    SetDeadline(c, now + int64_t{options_.read_timeout_seconds} * 1000);
    SetEvictable(c, true);
  }
  c.events = EPOLLIN;
  epoll_event ev{.events = c.events, .data = {.u64 = c.id}};
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
}

bool HttpServer::Loop::EvictOne() {
  if (evictable_.empty()) return false;
  Connection* c = Find(evictable_.front());
  counts_->evicted.fetch_add(1, std::memory_order_relaxed);
  Close(*c);
  return true;
}

void HttpServer::Loop::OnEvent(Connection& c, uint32_t events) {
  if ((events & EPOLLERR) || ((events & EPOLLHUP) && c.phase == Phase::kHandling)) {
    Close(c);  // a reset; with a worker, the answer has no one to go to
    return;
  }
  switch (c.phase) {
    case Phase::kHandshake:
      if (Handshake(c)) Drive(c);
      return;
    case Phase::kIdle:
    case Phase::kReading:
      if (!ReadInput(c)) {
        Close(c);
        return;
      }
      Drive(c);
      return;
    case Phase::kWriting:
      Drive(c);
      return;
    case Phase::kLinger: {
      char buf[16 * 1024];
      while (true) {
        const ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
        if (n > 0 && (c.lingered += static_cast<size_t>(n)) < kMaxLingerBytes) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        Close(c);
        return;
      }
    }
    case Phase::kHandling:
      return;
  }
}

void HttpServer::Loop::Drive(Connection& c) {
  while (true) {
    switch (c.phase) {
      case Phase::kWriting: {
        const Step s = Flush(c);
        if (s == Step::kClosed) return;
        if (s == Step::kWait) {
          SetInterest(c);
          return;
        }
        if (c.close_after_write) {
          Linger(c);
          return;
        }
        // Back to keep-alive; a pipelined request may already be here.
        c.phase = Phase::kIdle;
        SetDeadline(c, SteadyNowMs() + int64_t{options_.idle_timeout_seconds} * 1000);
        SetEvictable(c, true);
        if (!ReadInput(c)) {
          Close(c);
          return;
        }
        break;
      }
      case Phase::kIdle:
      case Phase::kReading: {
        if (c.out_pos < c.out.size()) {  // "100 Continue"
          const Step s = Flush(c);
          if (s == Step::kClosed) return;
        }
        const Step s = ProcessOne(c);
        if (s == Step::kClosed) return;
        if (s == Step::kWait) {
          SetInterest(c);
          return;
        }
        break;
      }
      case Phase::kHandshake:
      case Phase::kHandling:
      case Phase::kLinger:
        SetInterest(c);
        return;
    }
  }
}

bool HttpServer::Loop::Handshake(Connection& c) {
  if (SSL_in_before(c.ssl)) {
    // Plain HTTP on the HTTPS port gets a plain answer saying so, instead
    // of a TLS alert no HTTP client shows.
    unsigned char first = 0;
    const ssize_t n = recv(c.fd, &first, 1, MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      Close(c);
      return false;
    }
    if (n < 0) return true;
    if (first != 0x16 && absl::ascii_isalpha(first)) {
      SSL_free(c.ssl);
      c.ssl = nullptr;
      SetEvictable(c, false);
      AnswerError(c, 400, "this port speaks HTTPS: send the request with https://", true);
      return true;
    }
  }
  ERR_clear_error();
  const int rc = SSL_do_handshake(c.ssl);
  if (rc == 1) {
    c.phase = Phase::kIdle;
    c.tls_wants_write = false;
    const int64_t now = SteadyNowMs();
    SetDeadline(c, c.refused ? std::min(c.deadline_ms, now + kRefusalDeadlineMs)
                             : now + int64_t{options_.read_timeout_seconds} * 1000);
    SetEvictable(c, false);
    SetEvictable(c, true);  // idle now: its place in line starts again
    if (!ReadInput(c)) {
      Close(c);
      return false;
    }
    return true;
  }
  const int err = SSL_get_error(c.ssl, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    c.tls_wants_write = err == SSL_ERROR_WANT_WRITE;
    SetInterest(c);
    return true;
  }
  const char* reason = ERR_reason_error_string(ERR_peek_last_error());
  log::Debug("TLS handshake failed",
             {{"peer", c.peer}, {"error", reason != nullptr ? reason : "connection closed"}});
  ERR_clear_error();
  Close(c);
  return false;
}

ssize_t HttpServer::Loop::Recv(Connection& c, char* buf, size_t n) {
  if (c.ssl == nullptr) {
    const ssize_t r = recv(c.fd, buf, n, 0);
    if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -2 : -1;
    return r;
  }
  ERR_clear_error();
  const int r = SSL_read(c.ssl, buf, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
  if (r > 0) return r;
  switch (SSL_get_error(c.ssl, r)) {
    case SSL_ERROR_WANT_READ: c.tls_wants_write = false; return -2;
    case SSL_ERROR_WANT_WRITE: c.tls_wants_write = true; return -2;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default: ERR_clear_error(); return -1;
  }
}

ssize_t HttpServer::Loop::Send(Connection& c, const char* buf, size_t n) {
  if (c.ssl == nullptr) {
    const ssize_t r = send(c.fd, buf, n, MSG_NOSIGNAL);
    if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -2 : -1;
    return r;
  }
  ERR_clear_error();
  const int r = SSL_write(c.ssl, buf, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
  if (r > 0) return r;
  switch (SSL_get_error(c.ssl, r)) {
    case SSL_ERROR_WANT_WRITE: c.tls_wants_write = true; return -2;
    case SSL_ERROR_WANT_READ: c.tls_wants_write = false; return -2;
    default: ERR_clear_error(); return -1;
  }
}

bool HttpServer::Loop::ReadInput(Connection& c) {
  char buf[16 * 1024];
  while (!c.read_eof && c.in.size() < read_cap_) {
    const ssize_t n = Recv(c, buf, std::min(sizeof(buf), read_cap_ - c.in.size()));
    if (n == -2) break;
    if (n < 0) return false;
    if (n == 0) {
      c.read_eof = true;
      break;
    }
    c.in.append(buf, static_cast<size_t>(n));
  }
  return true;
}

HttpServer::Loop::Step HttpServer::Loop::ProcessOne(Connection& c) {
  // One request at a time: while one is with a worker or being answered,
  // what follows it waits in c.in.
  if (c.in.empty()) {
    if (c.read_eof) {
      Close(c);  // the sender is done (an unfinished request has no one to answer)
      return Step::kClosed;
    }
    return Step::kWait;
  }
  if (c.phase == Phase::kIdle) {
    // A request begins: from its first byte it has read_timeout to arrive whole.
    c.phase = Phase::kReading;
    SetEvictable(c, false);
    if (!c.refused) SetDeadline(c, SteadyNowMs() + int64_t{options_.read_timeout_seconds} * 1000);
  }
  size_t used = 0;
  const HttpRequestParser::Result r = c.parser.Parse(c.in, &used);
  c.in.erase(0, used);
  if (r == HttpRequestParser::Result::kError) {
    AnswerError(c, c.parser.error_status(), c.parser.error_message(), /*close=*/true);
    return Step::kProgress;
  }
  if (r == HttpRequestParser::Result::kIncomplete) {
    if (c.refused && c.parser.head_complete()) {
      // Refused before its body is read (or sent, with Expect: 100-continue).
      AnswerRefusal(c);
      return Step::kProgress;
    }
    if (c.parser.head_complete() && c.parser.request().expect_continue && !c.sent_continue) {
      c.sent_continue = true;
      c.out.append("HTTP/1.1 100 Continue\r\n\r\n");
      return Step::kProgress;
    }
    if (c.read_eof) {
      Close(c);
      return Step::kClosed;
    }
    return Step::kWait;
  }
  c.sent_continue = false;
  ++c.requests;
  Route(c, c.parser.TakeRequest());
  return Step::kProgress;
}

void HttpServer::Loop::Route(Connection& c, HttpRequest request) {
  const bool close = !request.keep_alive;
  if (c.refused) {
    AnswerRefusal(c);
    return;
  }
  if (request.method == "POST") {
    Dispatch(c, std::move(request));
    return;
  }
  if (request.method == "GET" || request.method == "HEAD") {
    const bool head = request.method == "HEAD";
    if (request.path == "/healthz") {
      Answer(c, 200, R"({"status":"ok"})", "application/json", {}, close, head);
      return;
    }
    if (request.path == "/readyz") {
      // Answered here, never behind the workers: a probe must not time
      // out because webhooks are waiting for the store.
      absl::Status st = server_->ready_();
      if (st.ok()) {
        Answer(c, 200, R"({"status":"ready"})", "application/json", {}, close, head);
      } else {
        Answer(c, 503, ErrorJson(503, st.message()), "application/json", {}, close, head);
      }
      return;
    }
    // GET /metrics, and a GET on a source's path (a sender's connection
    // test; the handler says 404 for any other path), on a worker.
    Dispatch(c, std::move(request));
    return;
  }
  Answer(c, 405, ErrorJson(405, "method not allowed"), "application/json",
         {{"Allow", "GET, HEAD, POST"}}, close);
}

void HttpServer::Loop::Dispatch(Connection& c, HttpRequest request) {
  c.phase = Phase::kHandling;
  c.close_after_write = !request.keep_alive;
  SetDeadline(c, 0);
  SetInterest(c);
  ++handling_;
  auto shared = std::make_shared<HttpRequest>(std::move(request));
  workers_->Schedule([this, id = c.id, peer = c.peer, req = std::move(shared)] {
    Completion done{.id = id,
                    .answer = {},
                    .content_type = "application/json",
                    .head_only = req->method == "HEAD"};
    if (req->method != "POST" && req->path == "/metrics" && server_->options_.metrics) {
      done.answer.body = server_->options_.metrics();
      done.content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else {
      std::string decoded;
      absl::Status decoding = absl::OkStatus();
      const std::optional<std::string_view> encoding = req->Header("Content-Encoding");
      if (encoding.has_value()) {
        decoding = DecodeContent(absl::string_view(encoding->data(), encoding->size()), req->body, limits_.max_body_bytes, &decoded);
        if (decoding.ok()) req->body = std::move(decoded);
      }
      if (!decoding.ok()) {
        const int status = decoding.code() == absl::StatusCode::kOutOfRange     ? 413
                           : decoding.code() == absl::StatusCode::kUnimplemented ? 415
                                                                                 : 400;
        done.answer = ErrorAnswer(status, decoding.message());
      } else {
        IngressRequest ingress{
            .method = req->method,
            .path = req->path,
            .remote_ip = peer,
            .content_type = req->Header("Content-Type").value_or(std::string_view()),
            .header = [&req](std::string_view name) { return req->Header(name); },
            .body = req->body};
        for (const auto& [name, value] : req->headers) ingress.header_names.push_back(name);
        done.answer = server_->handler_->Handle(ingress);
      }
    }
    {
      MutexLock lock(&mu_);
      completions_.push_back(std::move(done));
    }
    Wake();
  });
}

void HttpServer::Loop::OnCompletions() {
  std::vector<Completion> done;
  {
    MutexLock lock(&mu_);
    done.swap(completions_);
  }
  for (Completion& d : done) {
    --handling_;
    Connection* c = Find(d.id);
    if (c == nullptr) continue;  // the sender hung up
    Answer(*c, d.answer.status, std::move(d.answer.body), d.content_type, d.answer.headers,
           c->close_after_write, d.head_only);
    Drive(*c);
  }
}

void HttpServer::Loop::Answer(Connection& c, int status, std::string body,
                              absl::string_view content_type,
                              const std::vector<std::pair<std::string, std::string>>& headers,
                              bool close, bool head_only) {
  if (stopping_ || c.requests >= options_.keep_alive_max_requests) close = true;
  absl::StrAppend(&c.out, "HTTP/1.1 ", status, " ", HttpReason(status), "\r\nContent-Type: ",
                  content_type, "\r\nContent-Length: ", body.size(), "\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&c.out, name, ": ", value, "\r\n");
  if (close) c.out.append("Connection: close\r\n");
  c.out.append("\r\n");
  if (!head_only) c.out.append(body);
  c.close_after_write = close;
  c.phase = Phase::kWriting;
  SetEvictable(c, false);
  SetDeadline(c, SteadyNowMs() + int64_t{options_.write_timeout_seconds} * 1000);
}

HttpServer::Loop::Step HttpServer::Loop::Flush(Connection& c) {
  while (c.out_pos < c.out.size()) {
    const ssize_t n = Send(c, c.out.data() + c.out_pos, c.out.size() - c.out_pos);
    if (n == -2) return Step::kWait;
    if (n <= 0) {
      Close(c);
      return Step::kClosed;
    }
    c.out_pos += static_cast<size_t>(n);
  }
  c.out.clear();
  c.out_pos = 0;
  return Step::kProgress;
}

void HttpServer::Loop::Linger(Connection& c) {
  if (c.ssl != nullptr) SSL_shutdown(c.ssl);  // close_notify, if the socket takes it
  ERR_clear_error();
  shutdown(c.fd, SHUT_WR);
  c.phase = Phase::kLinger;
  SetEvictable(c, false);
  SetDeadline(c, SteadyNowMs() + kLingerMs);
  SetInterest(c);
}

void HttpServer::Loop::ExpireDeadlines() {
  const int64_t now = SteadyNowMs();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    Connection* c = Find(deadlines_.begin()->second);
    if (c == nullptr) {
      deadlines_.erase(deadlines_.begin());
      continue;
    }
    switch (c->phase) {
      case Phase::kReading:
        counts_->timed_out.fetch_add(1, std::memory_order_relaxed);
        if (c->refused || stopping_) {
          Close(*c);
        } else {
          AnswerError(*c, 408,
                      absl::StrCat("the request did not arrive whole within ",
                                   options_.read_timeout_seconds, " s (--http-read-timeout)"),
                      /*close=*/true);
          Drive(*c);
        }
        break;
      case Phase::kIdle:
        if (c->requests == 0) counts_->timed_out.fetch_add(1, std::memory_order_relaxed);
        Close(*c);
        break;
      case Phase::kHandshake:
      case Phase::kWriting:
        counts_->timed_out.fetch_add(1, std::memory_order_relaxed);
        Close(*c);
        break;
      case Phase::kLinger:
      case Phase::kHandling:
        Close(*c);
        break;
    }
  }
}

void HttpServer::Loop::SetDeadline(Connection& c, int64_t deadline_ms) {
  if (c.deadline_ms != 0) deadlines_.erase({c.deadline_ms, c.id});
  c.deadline_ms = deadline_ms;
  if (deadline_ms != 0) deadlines_.insert({deadline_ms, c.id});
}

void HttpServer::Loop::SetEvictable(Connection& c, bool evictable) {
  if (c.in_evictable == evictable || c.refused) return;
  if (evictable) {
    c.evictable = evictable_.insert(evictable_.end(), c.id);
  } else {
    evictable_.erase(c.evictable);
  }
  c.in_evictable = evictable;
}

void HttpServer::Loop::SetInterest(Connection& c) {
  uint32_t events = 0;
  const bool tls_waits_for_write = c.ssl != nullptr && c.tls_wants_write;
  switch (c.phase) {
    case Phase::kHandshake:
      events = tls_waits_for_write ? EPOLLOUT : EPOLLIN;
      break;
    case Phase::kIdle:
    case Phase::kReading:
      if (!c.read_eof && c.in.size() < read_cap_) events |= EPOLLIN;
      if (c.out_pos < c.out.size()) events |= EPOLLOUT;
      if (tls_waits_for_write) events |= EPOLLOUT;
      break;
    case Phase::kWriting:
      events = c.ssl != nullptr && !c.tls_wants_write ? EPOLLIN : EPOLLOUT;
      break;
    case Phase::kLinger:
      events = EPOLLIN;
      break;
    case Phase::kHandling:
      events = 0;
      break;
  }
  if (events == c.events) return;
  c.events = events;
  epoll_event ev{.events = events, .data = {.u64 = c.id}};
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void HttpServer::Loop::CloseSocket(Connection& c) {
  if (c.ssl != nullptr) {
    // close_notify, if the socket takes it now. Besides telling the client
    // the end is not a truncation, it keeps the session resumable: OpenSSL
    // drops from its cache the session of a connection freed without one,
    // so clients resuming by session id (TLS 1.2 without tickets) would
    // never resume. After a fatal TLS error nothing is sent.
    if (SSL_is_init_finished(c.ssl) && (SSL_get_shutdown(c.ssl) & SSL_SENT_SHUTDOWN) == 0) {
      SSL_shutdown(c.ssl);
    }
    ERR_clear_error();
    SSL_free(c.ssl);
  }
  c.ssl = nullptr;
  if (c.fd >= 0) close(c.fd);  // also leaves the epoll set
  c.fd = -1;
}

void HttpServer::Loop::Close(Connection& c) {
  SetDeadline(c, 0);
  SetEvictable(c, false);
  CloseSocket(c);
  if (c.refused) {
    --open_refusals_;
  } else {
    counts_->open.fetch_sub(1, std::memory_order_relaxed);
  }
  connections_.erase(c.id);
}

HttpServer::HttpServer(WebhookHandler* handler, std::function<absl::Status()> ready,
                       Options options)
    : handler_(handler),
      ready_(std::move(ready)),
      options_(std::move(options)),
      counts_(std::make_unique<Counts>()) {}

HttpServer::~HttpServer() {
  Stop(absl::ZeroDuration());
  loop_.reset();
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

absl::Status HttpServer::Bind() {
  if (options_.tls != nullptr) {
    ssl_ctx_ = SSL_CTX_new(TLS_server_method());
    if (ssl_ctx_ == nullptr) return absl::InternalError("cannot create a TLS context");
    SSL_CTX_set_min_proto_version(ssl_ctx_, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl_ctx_, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                      SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ssl_ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                   SSL_MODE_RELEASE_BUFFERS);
    // Sessions are resumed only in the context that made them; without an
    // id context OpenSSL refuses every resumption once client certificates
    // are verified.
    static constexpr unsigned char kSessionContext[] = "hookfan-https";
    SSL_CTX_set_session_id_context(ssl_ctx_, kSessionContext, sizeof(kSessionContext) - 1);
    SSL_CTX_set_max_cert_list(ssl_ctx_, kMaxClientCertificateBytes);
    SSL_CTX_set_verify_depth(ssl_ctx_, kMaxClientChainDepth);
    SSL_CTX_sess_set_cache_size(ssl_ctx_, kSessionCacheSize);
    options_.tls->Install(ssl_ctx_);
    if (!options_.tls_client_ca_file.empty()) {
      if (absl::Status s =
              TlsCertificate::RequireClientCertificates(ssl_ctx_, options_.tls_client_ca_file);
          !s.ok()) {
        log::Error("HTTPS setup failed", {{"error", std::string(s.message())}});
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot set up HTTPS with client CA ", options_.tls_client_ca_file));
      }
    }
  }
  loop_ = std::make_unique<Loop>(this);
  return loop_->Bind(options_.host, options_.port, &port_);
}

void HttpServer::Serve() { loop_->Run(); }

void HttpServer::Stop(absl::Duration grace) {
  if (loop_ != nullptr) loop_->Stop(grace);
}

}  // namespace hookfan::ingress
