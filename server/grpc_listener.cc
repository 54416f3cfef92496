#include "server/grpc_listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/log.h"
#include "grpcpp/server_builder.h"

namespace hookfan::server {

namespace {

// The pause after an accept that failed for want of descriptors or memory,
// and between checks while at the connection limit.
constexpr int64_t kPauseMs = 100;
// Handed-out descriptors are checked this often when nothing else happens.
constexpr int64_t kSweepMs = 1000;
// Connections one readiness event may accept before the loop looks around.
constexpr int kAcceptBatch = 256;
// Connections the kernel holds for us while we cannot accept (capped by
// net.core.somaxconn); they cost no descriptor there.
constexpr int kBacklog = 4096;

// gRPC's name for the peer at `addr` (ServerContext::peer()): an IPv4
// address mapped into IPv6 is named as IPv4, as gRPC names it.
std::string GrpcPeerName(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &v4.sin_addr, host, sizeof(host));
    return absl::StrCat("ipv4:", host, ":", ntohs(v4.sin_port));
  }
  const auto& v6 = reinterpret_cast<const sockaddr_in6&>(addr);
  if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
    inet_ntop(AF_INET, &v6.sin6_addr.s6_addr[12], host, sizeof(host));
    return absl::StrCat("ipv4:", host, ":", ntohs(v6.sin6_port));
  }
  inet_ntop(AF_INET6, &v6.sin6_addr, host, sizeof(host));
  return absl::StrCat("ipv6:[", host, "]:", ntohs(v6.sin6_port));
}

void SetPort(sockaddr* addr, int port) {
  if (addr->sa_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(static_cast<uint16_t>(port));
  } else if (addr->sa_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(static_cast<uint16_t>(port));
  }
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

}  // namespace

GrpcListener::GrpcListener(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<GrpcListener>> GrpcListener::Bind(Options options) {
  std::unique_ptr<GrpcListener> listener(new GrpcListener(std::move(options)));
  const std::string& host = listener->options_.host;
  const std::string where = absl::StrCat(host, ":", listener->options_.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(),
                           std::to_string(listener->options_.port).c_str(), &hints, &result);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", where, ": ", gai_strerror(rc)));
  }
  bool both_families = false;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    both_families |= ai->ai_family != result->ai_family;
  }
  // As gRPC did: every address the host resolves to ("localhost": ::1 and
  // 127.0.0.1), on one port; an address the machine lacks is skipped, one
  // in use fails (two servers must never share a port silently).
  int port = listener->options_.port;
  std::string error = "no address";
  bool in_use = false;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    const int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    // "::" would take IPv4 too and collide with "0.0.0.0" in the same list.
    if (ai->ai_family == AF_INET6 && both_families) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    SetPort(ai->ai_addr, port);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, kBacklog) != 0) {
      const int e = errno;
      error = strerror(e);
      close(fd);
      if (e == EADDRINUSE) {
        in_use = true;
        break;
      }
      continue;
    }
    if (port == 0) port = BoundPort(fd);
    listener->listen_fds_.push_back(fd);
  }
  freeaddrinfo(result);
  if (in_use || listener->listen_fds_.empty()) {  // the destructor closes what was bound
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", where, ": ", error));
  }
  listener->port_ = port;
  listener->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (listener->wake_fd_ < 0) {
    return absl::UnavailableError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  return listener;
}

GrpcListener::~GrpcListener() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void GrpcListener::Start(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor) {
  acceptor_ = std::move(acceptor);
  thread_ = std::thread([this] { Run(); });
}

void GrpcListener::Stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t w = write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  for (int fd : listen_fds_) close(fd);
  listen_fds_.clear();
}

absl::Status GrpcListener::Health() const {
  MutexLock lock(&mu_);
  if (stalled_.empty()) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrFormat("the gRPC port cannot accept new connections for %.1f s: %s",
                      static_cast<double>(SteadyNowMs() - stalled_since_ms_) / 1000, stalled_));
}

void GrpcListener::Run() {
  std::vector<pollfd> fds(listen_fds_.size() + 1);
  int64_t next_sweep_ms = SteadyNowMs() + kSweepMs;
  while (true) {
    int64_t now = SteadyNowMs();
    const bool paused = now < paused_until_ms_;
    fds[0] = {.fd = wake_fd_, .events = POLLIN, .revents = 0};
    for (size_t i = 0; i < listen_fds_.size(); ++i) {
      fds[i + 1] = {.fd = listen_fds_[i], .events = static_cast<short>(paused ? 0 : POLLIN),
                    .revents = 0};
    }
    const int64_t wake_at = paused ? std::min(paused_until_ms_, next_sweep_ms) : next_sweep_ms;
    const int n = poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(wake_at - now, 0)));
    if (n < 0 && errno != EINTR) {
      log::Error("gRPC listener: poll failed", {{"error", strerror(errno)}});
      return;
    }
    if (fds[0].revents != 0) return;  // Stop
    now = SteadyNowMs();
    if (now >= next_sweep_ms) {
      Sweep();
      next_sweep_ms = now + kSweepMs;
    }
    if (paused) continue;
    bool drained = true;
    for (size_t i = 0; i < listen_fds_.size(); ++i) {
      if ((fds[i + 1].revents & POLLIN) == 0) continue;
      const Accepted accepted = AcceptFrom(listen_fds_[i]);
      if (accepted == Accepted::kPause) {
        paused_until_ms_ = SteadyNowMs() + kPauseMs;
        pauses_.fetch_add(1, std::memory_order_relaxed);
      }
      drained &= accepted == Accepted::kDrained;
      if (accepted == Accepted::kPause) break;
    }
    // Every backlog was empty or emptied: nobody waits.
    if (drained) ClearStalled();
  }
}

GrpcListener::Accepted GrpcListener::AcceptFrom(int listen_fd) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    if (static_cast<int64_t>(handed_.size()) >= options_.max_connections) {
      Sweep();
      if (static_cast<int64_t>(handed_.size()) >= options_.max_connections) {
        SetStalled(absl::StrCat(handed_.size(),
                                " connections are open, the most --grpc-max-connections "
                                "allows (new ones wait until some close)"));
        return Accepted::kPause;
      }
    }
    sockaddr_storage addr{};
    socklen_t addr_len = sizeof(addr);
    const int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &addr_len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      if (e == EINTR || e == ECONNABORTED) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) return Accepted::kDrained;
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        SetStalled(absl::StrCat("accept: ", strerror(e),
                                e == EMFILE ? " (the open-file limit is reached)" : ""));
        return Accepted::kPause;
      }
      // Anything else concerns that one connection (a reset before
      // accept, a firewall's EPERM): go on with the next.
      log::Debug("gRPC listener: accept failed", {{"error", strerror(e)}});
      continue;
    }
    const std::string peer = GrpcPeerName(addr);
    if (Penalized(peer, SteadyNowMs())) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct stat st;
    if (fstat(fd, &st) != 0) {
      close(fd);
      continue;
    }
    handed_[fd] = st.st_ino;  // a descriptor reused after gRPC closed it
    {
      MutexLock lock(&peers_mu_);
      peers_[peer] = {fd, st.st_ino};
    }
    open_.store(static_cast<int64_t>(handed_.size()), std::memory_order_relaxed);
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters params;
    params.listener_fd = listen_fd;
    params.fd = fd;
    acceptor_->HandleNewConnection(&params);  // gRPC owns fd from here
  }
  return Accepted::kMore;
}

namespace {
// gRPC's peer name without its port: the client's address.
std::string PeerAddress(const std::string& peer) { return peer.substr(0, peer.rfind(':')); }
}  // namespace

bool GrpcListener::Penalized(const std::string& peer, int64_t now_ms) {
  MutexLock lock(&peers_mu_);
  if (penalized_.empty()) return false;
  std::erase_if(penalized_, [&](const auto& entry) { return entry.second <= now_ms; });
  return penalized_.contains(PeerAddress(peer));
}

bool GrpcListener::Disconnect(const std::string& peer, absl::Duration penalty) {
  MutexLock lock(&peers_mu_);
  if (penalty > absl::ZeroDuration()) {
    penalized_[PeerAddress(peer)] = SteadyNowMs() + absl::ToInt64Milliseconds(penalty);
  }
  auto it = peers_.find(peer);
  if (it == peers_.end()) return false;
  struct stat st;
  const bool same = fstat(it->second.fd, &st) == 0 && st.st_ino == it->second.inode;
  if (same) shutdown(it->second.fd, SHUT_RDWR);
  peers_.erase(it);
  return same;
}

void GrpcListener::Sweep() {
  {
    MutexLock lock(&peers_mu_);
    std::erase_if(peers_, [](const auto& entry) {
      struct stat st;
      return fstat(entry.second.fd, &st) != 0 || st.st_ino != entry.second.inode;
    });
  }
  for (auto it = handed_.begin(); it != handed_.end();) {
    struct stat st;
    if (fstat(it->first, &st) != 0 || st.st_ino != it->second || !S_ISSOCK(st.st_mode)) {
      it = handed_.erase(it);
    } else {
      ++it;
    }
  }
  open_.store(static_cast<int64_t>(handed_.size()), std::memory_order_relaxed);
}

void GrpcListener::SetStalled(std::string why) {
  const int64_t now = SteadyNowMs();
  bool started = false;
  {
    MutexLock lock(&mu_);
    if (stalled_.empty()) {
      stalled_since_ms_ = now;
      started = true;
    }
    stalled_ = why;
  }
  if (started && now - last_log_ms_ >= 10000) {
    last_log_ms_ = now;
    log::Warn("gRPC: new connections wait in the backlog; accepting pauses 100 ms at a time",
              {{"why", why}});
  }
}

void GrpcListener::ClearStalled() {
  int64_t since;
  {
    MutexLock lock(&mu_);
    if (stalled_.empty()) return;
    stalled_.clear();
    since = stalled_since_ms_;
  }
  const int64_t now = SteadyNowMs();
  if (now - last_log_ms_ >= 10000 || now - since >= 1000) {
    last_log_ms_ = now;
    log::Info("gRPC: accepting new connections again",
              {{"waited_ms", now - since}, {"open", open_.load()}});
  }
}

}  // namespace hookfan::server
